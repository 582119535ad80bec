"""Write outputs beside their target, then swap them in together: :class:`StagedOutput`.

Every command that replaces an earlier output (``train --overwrite``, ``quickstart --overwrite``,
``separate --overwrite``, ``generate`` into an existing dataset, the captioner's language-model
folder) goes through this one helper, so a failure or a kill never leaves a half-written output
and never loses the previous one.

Beside ``TARGET`` it uses three hidden names:

- ``.TARGET.avkit-new``: the staging folder the new output is written into;
- ``.TARGET.avkit-old``: where the replaced output waits during the swap;
- ``.TARGET.avkit-swap``: the journal, written once the new output is complete and removed once it
  is in place. A process killed during the swap leaves the journal, and the next
  :class:`StagedOutput` of the same target finishes the swap (the staged output was complete);
  a process killed before it leaves only a staging folder, which is deleted.

Two shapes: ``entries=None`` replaces the folder ``TARGET`` as a whole (a run directory);
``entries=[names]`` replaces only those names inside ``TARGET`` and leaves everything else there
(a dataset's ``manifest.jsonl``, ``clips/`` and ``classes.json``; the files an earlier
``avkit separate`` wrote). A listed name the new output does not contain is removed.

One writer at a time: :class:`OutputLock` (``.TARGET.avkit-lock``, holding the writer's pid and
host) is taken for as long as a :class:`StagedOutput` is open, so two processes replacing the same
output (two ``avkit generate`` or ``avkit separate`` into one folder) cannot interleave their swaps;
the second stops with one line. A lock left by a process of this host that is gone is taken over.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from avkit.errors import AvkitError
from avkit.utils import pid_alive


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


class OutputLock:
    """``.TARGET.avkit-lock`` beside ``target`` while this process writes it (see the module docstring).

    Taking a lock this process already holds is allowed (the nested holder does not release it), so a
    training that holds its run's lock can stage the run's replacement.
    """

    def __init__(self, target: str | Path) -> None:
        self.target = Path(target)
        here = self.target.absolute()
        self.path = here.with_name(f".{here.name}.avkit-lock")
        self.held = False

    def busy(self, owner: dict) -> str:
        """The error when another process holds the lock."""
        return (f"{self.target}: another avkit process (pid {owner.get('pid', '?')} on {owner.get('host', '?')}) "
                f"is writing it; wait for it, or delete {self.path} if that process is gone")

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        me = {"pid": os.getpid(), "host": socket.gethostname()}
        for _ in range(2):  # a second try after taking over a stale lock
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self._owner()
                if owner == me:
                    return  # ours already (held by an outer holder)
                if owner.get("host") == me["host"] and isinstance(owner.get("pid"), int) \
                        and not pid_alive(owner["pid"]):
                    self.path.unlink(missing_ok=True)  # its process is gone: take the lock over
                    continue
                raise AvkitError(self.busy(owner)) from None
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            self.held = True
            return
        raise AvkitError(f"{self.path}: cannot take the lock")

    def _owner(self) -> dict:
        try:
            owner = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}  # being written this instant, or damaged: treat as held
        return owner if isinstance(owner, dict) else {}

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> OutputLock:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


class StagedOutput:
    """Stage a new output for ``target`` and swap it in with :meth:`commit` (see the module docstring).

    ```python
    with StagedOutput(out, entries=["manifest.jsonl", "clips"]) as staged:
        write_everything_into(staged.path)
    # committed on success; on an exception the staging folder is deleted and ``out`` is untouched
    ```

    ``entries`` are taken out of ``target`` in the given order and put in in the reverse order, so
    list an index file first (a manifest): it is the first to go and the last to come.
    """

    def __init__(self, target: str | Path, entries: Sequence[str] | None = None) -> None:
        self.target = Path(target).absolute()
        self.entries = None if entries is None else [str(e) for e in entries]
        self.path, self.old, self.journal = _names(self.target)  # self.path: where the new output is written
        self.lock = OutputLock(self.target)
        self.lock.acquire()
        try:
            recover(self.target)
            _remove(self.path)
            self.path.mkdir(parents=True)
        except BaseException:
            self.lock.release()
            raise

    def commit(self) -> None:
        """Swap the staged output in (the previous output is deleted only once the new one is in place)."""
        try:
            _write_journal(self.journal, self.entries, "out")
            _swap(self.target, self.entries)
        finally:
            self.lock.release()

    def discard(self) -> None:
        """Delete the staged output; the target stays as it was."""
        shutil.rmtree(self.path, ignore_errors=True)
        self.lock.release()

    def __enter__(self) -> StagedOutput:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()


def _names(target: Path) -> tuple[Path, Path, Path]:
    name = target.name
    return (target.with_name(f".{name}.avkit-new"), target.with_name(f".{name}.avkit-old"),
            target.with_name(f".{name}.avkit-swap"))


def _moves(target: Path, entries: list[str] | None) -> list[tuple[Path, Path, Path]]:
    new, old, _ = _names(target)
    if entries is None:
        return [(new, target, old)]
    return [(new / e, target / e, old / e) for e in entries]


def _swap(target: Path, entries: list[str] | None, phase: str = "out") -> None:
    """Take the old entries out, then put the staged ones in; the journal records the phase, so a
    swap killed halfway is finished by :func:`recover` (the staged output was complete)."""
    new, old, journal = _names(target)
    moves = _moves(target, entries)
    if phase == "out":
        if entries is not None:
            target.mkdir(parents=True, exist_ok=True)
            old.mkdir(exist_ok=True)
        for _, dest, aside in moves:  # nothing is put in before every old entry is out
            if (dest.exists() or dest.is_symlink()) and not aside.exists():
                os.replace(dest, aside)
        _write_journal(journal, entries, "in")
    for staged, dest, _ in reversed(moves):
        if staged.exists() or staged.is_symlink():
            if dest.exists() or dest.is_symlink():
                _remove(dest)
            os.replace(staged, dest)
    journal.unlink()
    _remove(old)
    _remove(new)


def _write_journal(journal: Path, entries: list[str] | None, phase: str) -> None:
    tmp = journal.with_name(journal.name + ".tmp")
    tmp.write_text(json.dumps({"entries": entries, "phase": phase}))
    os.replace(tmp, journal)


def recover(target: str | Path) -> None:
    """Finish or undo what a process killed while writing ``target`` left beside it."""
    target = Path(target).absolute()
    new, old, journal = _names(target)
    half_written = journal.with_name(journal.name + ".tmp")
    if half_written.exists():  # killed while writing the journal: the swap had not started
        half_written.unlink()
    if journal.exists():
        record = json.loads(journal.read_text())
        _swap(target, record["entries"], record["phase"])
        return
    _remove(new)  # never completed
    if old.exists():  # the swap had finished (or an older avkit's whole-folder swap was killed halfway)
        if target.exists():
            _remove(old)
        else:
            os.replace(old, target)
