"""``run_batch``: a trained run over a corpus on Ray Data, written to a resumable Parquet folder.

The driver (this process) lists SOURCE, skips the videos already committed in OUT
(:class:`~avkit.apps.batch.store.BatchStore`), starts or joins Ray, and streams the dataset
plan -> decode (CPU tasks) -> model (an actor pool, weights loaded once per actor; GPUs with
``gpus_per_worker``). Ray's streaming executor keeps a bounded number of blocks in flight
(backpressure), so memory does not grow with the corpus. The driver gathers each video's chunks,
turns them into output rows and commits a part every :data:`COMMIT_SECONDS` or
:data:`COMMIT_VIDEOS` videos, so a killed run loses at most the work since the last commit.
"""
from __future__ import annotations

import logging
import math
import pickle
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from avkit.apps.batch.source import Video, find_videos
from avkit.apps.batch.store import BatchStore
from avkit.apps.batch.workers import RUN_TASK, TASKS, TENSOR_TASKS, BatchSpec, ModelWorker, decode, plan
from avkit.errors import AvkitError

COMMIT_SECONDS = 10.0
COMMIT_VIDEOS = 256
DECODE_MEMORY = 256 * 2**20  # bytes a decode task reserves: a chunk of clips as float32, with room to spare
# The list of videos is cut into blocks, one decode task each. Ray's cost per task (20-40 ms on the 2-core
# machine here) is paid per block, so a block holds several videos; but every CPU gets several blocks, and past
# MAX_INPUT_BLOCKS the blocks grow instead (Ray splits big outputs itself).
VIDEOS_PER_BLOCK = 16
BLOCKS_PER_CPU = 4
MAX_INPUT_BLOCKS = 1000
RUN_HINT = {"classify": "train one with recipes/motion_c3d.yaml", "embed": "a classification run",
                   "select": "a classification run", "caption": "train one with recipes/caption_*.yaml",
                   "separate": "train one with recipes/separation_instruments.yaml"}


@dataclass
class BatchJob:
    """One ``avkit batch`` invocation (the CLI's arguments, checked)."""

    task: str
    source: str
    run: str | None  # None: separate with the model shipped with avkit (the other tasks need a run)
    out: str
    options: dict[str, Any] = field(default_factory=dict)  # clips, stride (embed), beams, budget, policy, ...
    checkpoint: str = "best"
    device: str = "auto"
    address: str | None = None  # None: a local Ray on this machine; "auto" or "ray://HOST:PORT": a cluster
    workers: int = 1  # model actors
    gpus_per_worker: float = 0.0
    batch_size: int = 4  # rows (chunks of clips, or videos) per model call


@dataclass
class Progress:
    """What the driver reports while it runs (and returns at the end)."""

    total: int = 0  # videos to process in this run
    done: int = 0
    errors: int = 0
    skipped: int = 0  # already committed by an earlier run
    seconds: float = 0.0
    rows: int = 0
    out: str = ""

    @property
    def rate(self) -> float | None:
        """Videos per second so far (None before any time has passed)."""
        return self.done / self.seconds if self.seconds > 0 else None

    def to_dict(self) -> dict[str, Any]:
        return {"out": self.out, "total": self.total, "done": self.done, "errors": self.errors,
                "skipped": self.skipped, "rows": self.rows, "seconds": round(self.seconds, 3),
                "videos_per_second": None if self.rate is None else round(self.rate, 3)}


def check_job(job: BatchJob) -> BatchSpec:
    """Refuse bad arguments and a run of the wrong kind in one line, before Ray starts; the stages' spec."""
    from avkit.engine.checkpoint import open_run

    if job.task not in TASKS:
        raise AvkitError(f"unknown task {job.task!r} (use {', '.join(TASKS)})")
    if job.workers < 1 or job.batch_size < 1:
        raise AvkitError(f"--workers and --batch-size must be >= 1, got {job.workers} and {job.batch_size}")
    check_address(job.address)
    if job.gpus_per_worker < 0:
        raise AvkitError(f"--gpus-per-worker must be >= 0, got {job.gpus_per_worker}")
    stride = job.options.get("stride")
    if stride is not None and (job.task != "embed" or not stride > 0):
        raise AvkitError(f"--stride is for embed and must be positive seconds, got {stride} for {job.task}")
    clips = job.options.get("clips")
    if clips is not None and (job.task not in TENSOR_TASKS or clips < 1):
        raise AvkitError(f"--clips is for classify and embed and must be >= 1, got {clips} for {job.task}")
    if job.task == "select":
        from avkit.apps.clip_selection import POLICIES

        if job.options.get("policy", "audio") not in POLICIES or int(job.options.get("budget", 3)) < 1:
            raise AvkitError(f"select: --policy must be one of {', '.join(POLICIES)} and --budget >= 1, got "
                             f"{job.options.get('policy')!r} and {job.options.get('budget')}")
    if job.task == "caption" and int(job.options.get("beams", 1)) < 1:
        raise AvkitError(f"caption: --beams must be >= 1, got {job.options.get('beams')}")
    out = str(Path(job.out).absolute())
    if job.run is None:
        if job.task != "separate":
            raise AvkitError(f"--run is required for {job.task} ({RUN_HINT[job.task]})")
        from avkit.apps import separation

        separation.load(None, device="cpu")  # a missing or damaged shipped model: one line here, before Ray
        return BatchSpec(task=job.task, run="", checkpoint=job.checkpoint, device=job.device,
                         options=dict(job.options), out=out)  # the shipped separation model
    run_dir = Path(job.run).absolute()
    run = open_run(run_dir, job.checkpoint, task=RUN_TASK[job.task], hint=RUN_HINT[job.task])
    data = run.config.data if job.task in TENSOR_TASKS else None
    names = [str(n) for n in run.meta.get("class_names") or []]
    return BatchSpec(task=job.task, run=str(run_dir), checkpoint=job.checkpoint, device=job.device,
                     options=dict(job.options), data=data, precision=run.config.train.precision,
                     out=out, class_names=tuple(names))


def job_record(job: BatchJob, spec: BatchSpec) -> dict[str, Any]:
    """What must match for a rerun to continue an output folder."""
    return {"task": job.task, "run": spec.run, "checkpoint": job.checkpoint, "options": dict(sorted(job.options.items()))}


def check_address(address: str | None) -> None:
    """A ``HOST:PORT`` / ``ray://HOST:PORT`` address that nothing answers at is a one-line error (Ray
    itself would retry for a long time); "auto" and None are checked when Ray starts."""
    if not address or address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=5).close()
    except (OSError, ValueError) as err:
        raise AvkitError(f"--address {address}: cannot reach a Ray cluster there ({err}); start one with "
                         "'ray start --head' or leave --address out to run on this machine") from None


def connect(address: str | None, *, cpus: int | None = None, quiet: bool = True) -> None:
    """Join the Ray cluster at ``address`` ("auto", "HOST:PORT", "ray://HOST:PORT"), or start a local
    Ray on this machine (no dashboard, ``cpus`` CPUs); a Ray this process already runs is used as it is."""
    import ray

    if ray.is_initialized():
        return
    level = logging.ERROR if quiet else logging.INFO
    try:
        if address:
            ray.init(address=address, logging_level=level, log_to_driver=not quiet)
        else:
            ray.init(num_cpus=cpus, include_dashboard=False, logging_level=level, log_to_driver=not quiet)
    except ConnectionError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise AvkitError(f"--address {address}: {first}") from None
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the driver shows its own progress
    ctx.print_on_execution_start = False
    if quiet:
        logging.getLogger("ray.data").setLevel(logging.ERROR)


def cpu_slots(job: BatchJob, cpus: float) -> float:
    """CPUs a decode task and a CPU model actor each reserve on a cluster of ``cpus`` CPUs: one, or less where
    there are too few for a decode task on every core beside ``workers`` actors (this machine, embedded). A
    small CPU model leaves its actor mostly waiting, so the cores are shared out this way rather than one
    decode task beside the actors, which left a 2-core machine decoding on one core."""
    if job.gpus_per_worker > 0:
        return 1.0
    # Rounded down: Ray adds CPUs in fixed point, and 3 x 0.6667 would not fit 2 cores.
    return min(1.0, math.floor(cpus / (math.ceil(cpus) + job.workers) * 1000) / 1000)


def input_blocks(videos: int, cpus: float) -> int:
    """How many blocks (decode tasks) ``videos`` videos are cut into on a cluster of ``cpus`` CPUs."""
    wanted = max(math.ceil(videos / VIDEOS_PER_BLOCK), int(BLOCKS_PER_CPU * cpus))
    return max(1, min(videos, MAX_INPUT_BLOCKS, wanted))


def run_batch(job: BatchJob, on_progress: Callable[[Progress], None] | None = None, quiet: bool = True) -> Progress:
    """Run ``job`` and return what it did; ``on_progress`` is called after each block of results."""
    spec = check_job(job)
    videos = find_videos(job.source)
    with BatchStore(job.out, job_record(job, spec)) as store:
        done_keys = store.done_keys()
        todo = [v for v in videos if v.key not in done_keys]
        progress = Progress(total=len(todo), skipped=len(videos) - len(todo), out=str(job.out))
        if on_progress is not None:
            on_progress(progress)
        if todo:
            _stream(job, spec, todo, store, progress, on_progress, quiet)
        progress.rows = store.counts()["rows"]
    return progress


def _stream(job: BatchJob, spec: BatchSpec, todo: list[Video], store: BatchStore, progress: Progress,
            on_progress: Callable[[Progress], None] | None, quiet: bool) -> None:
    import ray
    import ray.data

    connect(job.address, quiet=quiet)
    cpus = float(ray.cluster_resources().get("CPU", 1.0))
    slot = cpu_slots(job, cpus)
    spec = BatchSpec(**{**spec.__dict__, "threads": max(1, int(slot))})
    items = [{"key": v.key, "path": v.path, "size": v.size, "mtime_ns": v.mtime_ns} for v in todo]
    # The CPU stages reserve memory for a chunk of decoded clips; being unlike the actors' resources, this
    # also keeps Ray from fusing decoding into the model actors (which would serialise decode and model).
    ds = (ray.data.from_items(items, override_num_blocks=input_blocks(len(items), cpus))
          .flat_map(partial(plan, spec=spec), num_cpus=slot, memory=DECODE_MEMORY)
          .map(partial(decode, spec=spec), num_cpus=slot, memory=DECODE_MEMORY)
          .map_batches(ModelWorker, fn_constructor_kwargs={"spec": spec}, batch_size=job.batch_size,
                       batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=job.workers),
                       num_cpus=0 if job.gpus_per_worker > 0 else slot, num_gpus=job.gpus_per_worker or None))
    pending: dict[str, list[dict[str, Any]]] = {}
    results: list[tuple[dict[str, Any], np.ndarray | None]] = []
    errors: list[dict[str, Any]] = []
    videos, last_commit, t0 = 0, time.monotonic(), time.monotonic()

    def commit() -> None:
        nonlocal videos, last_commit
        if videos:
            store.commit(result_table(results, "probs" if spec.task == "classify" else "features"),
                         error_table(errors), videos)
            results.clear()
            errors.clear()
            videos = 0
        last_commit = time.monotonic()

    for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
        for i in range(len(batch["key"])):
            row = {k: batch[k][i] for k in batch}
            chunks = pending.setdefault(str(row["key"]), [])
            chunks.append(row)
            if len(chunks) < int(row["chunks"]):
                continue
            del pending[str(row["key"])]
            bad = [str(c["error"]) for c in chunks if c["error"]]
            if bad:
                errors.append({**_video_columns(chunks[0]), "error": bad[0]})
                progress.errors += 1
            else:
                results.extend(finish(spec, sorted(chunks, key=lambda c: int(c["chunk"]))))
            videos += 1
            progress.done += 1
        progress.seconds = time.monotonic() - t0
        if videos >= COMMIT_VIDEOS or time.monotonic() - last_commit >= COMMIT_SECONDS:
            commit()
        if on_progress is not None:
            on_progress(progress)
    commit()
    progress.seconds = time.monotonic() - t0


def _video_columns(row: dict[str, Any]) -> dict[str, Any]:
    return {"path": str(row["path"]), "key": str(row["key"]), "size": int(row["size"]),
            "mtime_ns": int(row["mtime_ns"])}


def finish(spec: BatchSpec, chunks: list[dict[str, Any]]) -> list[tuple[dict[str, Any], np.ndarray | None]]:
    """One video's output rows (columns, vector) from its chunks, in order."""
    import json

    base = _video_columns(chunks[0])
    if spec.task not in TENSOR_TASKS:
        return [({**base, **json.loads(bytes(chunks[0]["payload"]))}, None)]
    parts = [pickle.loads(c["payload"]) for c in chunks]
    out = np.concatenate([p["out"] for p in parts])
    starts = np.concatenate([p["starts"] for p in parts])
    ends = np.concatenate([p["ends"] for p in parts])
    if spec.task == "embed" and spec.options.get("stride"):
        return [({**base, "window": k, "start": float(s), "end": float(e)}, out[k])
                for k, (s, e) in enumerate(zip(starts, ends))]
    mean = out.mean(axis=0)
    if spec.task == "embed":
        return [({**base, "clips": len(out)}, mean)]
    best = int(mean.argmax())
    label = spec.class_names[best] if best < len(spec.class_names) else str(best)
    return [({**base, "label": label, "label_index": best, "score": float(mean[best]), "clips": len(out)}, mean)]


def result_table(rows: list[tuple[dict[str, Any], np.ndarray | None]], vector: str) -> Any:
    """The rows as a pyarrow Table; their vectors as one fixed-size list column named ``vector``."""
    import pyarrow as pa

    if not rows:
        return pa.table({})
    table = pa.Table.from_pylist([r for r, _ in rows])
    vectors = [v for _, v in rows if v is not None]
    if vectors:
        flat = pa.array(np.concatenate(vectors).astype(np.float32), pa.float32())
        table = table.append_column(vector, pa.FixedSizeListArray.from_arrays(flat, len(vectors[0])))
    return table


def error_table(rows: list[dict[str, Any]]) -> Any:
    import pyarrow as pa

    return pa.Table.from_pylist(rows) if rows else pa.table({})
