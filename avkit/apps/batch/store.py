"""The output folder of ``avkit batch``: Parquet part files, committed through ``batch.json``.

```
OUT/batch.json            the job (task, run, options) and the list of committed parts
OUT/results/part-*.parquet one row per video (per window for ``embed --stride``)
OUT/errors/part-*.parquet  one row per video that could not be processed: path, key, error
```

A part is written beside its name and renamed into place (:func:`avkit.utils.atomic_path`), then
``batch.json`` is rewritten atomically with the part added: that is the commit. Opening the store
removes part files no commit lists (a run killed between the two steps), so ``results/`` and
``errors/`` always hold exactly the committed rows; committed parts are never rewritten. A lock
beside OUT keeps a second ``avkit batch`` out while one writes.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from avkit.errors import AvkitError
from avkit.utils import atomic_path, atomic_write_json, remove_stale_temps

JOB_FILE = "batch.json"
FOLDERS = ("results", "errors")
FORMAT = 1


class BatchStore:
    """The committed state of one output folder. Use as a context manager (takes and releases the lock)."""

    def __init__(self, out: str | Path, job: dict[str, Any]) -> None:
        self.out = Path(out)
        self.job = job  # task, run, checkpoint, options: what must match for a rerun to append
        self.parts: list[dict[str, Any]] = []
        self._lock: Any = None

    def __enter__(self) -> BatchStore:
        from avkit.engine.rundir import RunLock

        if self.out.exists() and not self.out.is_dir():
            raise AvkitError(f"{self.out}: exists and is not a folder")
        lock = RunLock(self.out)
        try:
            lock.acquire()
        except AvkitError:
            raise AvkitError(f"{self.out}: another avkit batch is writing this folder; wait for it, or delete "
                             f"{lock.path} if that process is gone") from None
        self._lock = lock
        try:
            self._open()
        except BaseException:
            lock.release()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self._lock.release()

    def _open(self) -> None:
        job_file = self.out / JOB_FILE
        if job_file.is_file():
            try:
                saved = json.loads(job_file.read_text(encoding="utf-8"))
                saved_job, self.parts = saved["job"], list(saved["parts"])
            except (OSError, ValueError, KeyError, TypeError) as err:
                raise AvkitError(f"{job_file}: not an avkit batch record ({err}); use another --out") from None
            if saved_job != self.job:
                diff = ", ".join(f"{k} {saved_job.get(k)!r} (now {self.job.get(k)!r})"
                                 for k in sorted(set(saved_job) | set(self.job)) if saved_job.get(k) != self.job.get(k))
                raise AvkitError(f"{self.out}: holds the output of another batch job ({diff}); "
                                 "rerun with the same task, run and options to continue it, or use another --out")
        elif self.out.is_dir() and any(self.out.iterdir()):
            raise AvkitError(f"{self.out}: folder exists and is not an avkit batch output; use another --out")
        committed = {p[name] for p in self.parts for name in FOLDERS if p.get(name)}
        for name in FOLDERS:
            folder = self.out / name
            if folder.is_dir():
                remove_stale_temps(folder)
                for f in folder.glob("part-*.parquet"):
                    if f"{name}/{f.name}" not in committed:
                        f.unlink()  # written by a run killed before its commit: those videos are redone
        self.out.mkdir(parents=True, exist_ok=True)
        if not job_file.is_file():
            self._write()

    def _write(self) -> None:
        atomic_write_json(self.out / JOB_FILE, {"format": FORMAT, "job": self.job, "parts": self.parts})

    def done_keys(self) -> set[str]:
        """Keys of the videos committed so far (results and errors)."""
        import pyarrow.parquet as pq

        keys: set[str] = set()
        for part in self.parts:
            for name in FOLDERS:
                if part.get(name):
                    keys.update(pq.read_table(self.out / part[name], columns=["key"]).column("key").to_pylist())
        return keys

    def commit(self, results: Any, errors: Any, videos: int) -> None:
        """Write ``results`` and ``errors`` (pyarrow Tables, either may be empty) as the next part and commit it."""
        import pyarrow.parquet as pq

        number = 1 + max((int(p["number"]) for p in self.parts), default=-1)
        part: dict[str, Any] = {"number": number, "videos": int(videos), "rows": results.num_rows,
                                "errors_rows": errors.num_rows}
        for name, table in zip(FOLDERS, (results, errors)):
            if table.num_rows:
                rel = f"{name}/part-{number:06d}.parquet"
                with atomic_path(self.out / rel) as tmp:
                    pq.write_table(table, tmp)
                part[name] = rel
        self.parts.append(part)
        self._write()

    def counts(self) -> dict[str, int]:
        """Videos, result rows and error rows committed so far."""
        return {"videos": sum(p["videos"] for p in self.parts), "rows": sum(p["rows"] for p in self.parts),
                "errors": sum(p["errors_rows"] for p in self.parts)}
