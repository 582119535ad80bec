"""The run directory of a training: may this run use it, who is writing it, where the files go.

- :func:`check_run_dir` (before anything is built or written, on every rank): a new run needs an
  empty or absent folder; ``--resume`` needs ``last.safetensors`` and the same recipe (up to
  :data:`RESUMABLE_CHANGES`); ``--overwrite`` replaces only an avkit run, never the working
  directory or a folder above it.
- :class:`RunLock`: ``.RUN.avkit-lock`` beside the run holds the pid and host of the training that
  writes it, so a second training into the same ``output_dir`` stops with one line; a lock left by a
  process of this host that is gone is taken over.
- :func:`open_output`: where the files are written. ``--overwrite`` of an existing run writes into a
  :class:`~avkit.staging.StagedOutput` beside it and swaps it in when training returns (a crash or
  Ctrl-C leaves the old run as it was); otherwise the run directory itself.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from avkit.engine.config import Config, config_diff, load_config
from avkit.errors import AvkitError
from avkit.staging import OutputLock, StagedOutput
from avkit.utils import remove_stale_temps

# Keys that may change between a run and its --resume (they do not change the result; a moved run
# directory resumes where it is now).
RESUMABLE_CHANGES = ("train.epochs", "train.max_steps", "train.stop_after_epoch", "train.progress",
                     "train.tensorboard", "data.num_workers", "train.device", "train.output_dir")


def check_run_dir(cfg: Config, overwrite: bool, resume: bool) -> Path:
    """Check that ``cfg.train.output_dir`` may be used (nothing is written); returns it."""
    run_dir = Path(cfg.train.output_dir)
    if overwrite and resume:
        raise AvkitError("choose one of overwrite and resume")
    if run_dir.exists() and not run_dir.is_dir():
        raise AvkitError(f"{run_dir}: output_dir exists and is not a directory")
    if resume:
        if not (run_dir / "last.safetensors").is_file():
            raise AvkitError(f"{run_dir}: nothing to resume (no last.safetensors)")
        saved = load_config(run_dir / "config.yaml")
        diff = {k: v for k, v in config_diff(saved, cfg).items() if k not in RESUMABLE_CHANGES}
        if diff:
            lines = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in sorted(diff.items()))
            raise AvkitError(f"{run_dir}: --resume with a different config ({lines})")
    elif is_non_empty(run_dir):
        if not overwrite:
            raise AvkitError(f"{run_dir}: run directory is not empty (pass --overwrite to replace it "
                             "or --resume to continue it)")
        _check_replaceable(run_dir)
    return run_dir


def is_non_empty(path: Path) -> bool:
    return path.is_dir() and any(path.iterdir())


def _is_run_or_empty(path: Path) -> bool:
    return path.is_dir() and ((path / "config.yaml").is_file() or not any(path.iterdir()))


def _check_replaceable(run_dir: Path) -> None:
    """``--overwrite`` replaces an avkit run only, never the working directory, and never deletes
    a user's folder that happens to carry a staging name beside it."""
    if not (run_dir / "config.yaml").is_file():
        raise AvkitError(f"{run_dir}: not an avkit run directory (no config.yaml); refusing to delete it")
    here = run_dir.resolve()
    if here == Path.cwd() or here in Path.cwd().parents:
        raise AvkitError(f"{run_dir}: --overwrite cannot replace the working directory or a folder above it; "
                         "choose another train.output_dir")
    for suffix in ("avkit-new", "avkit-old"):
        stale = here.with_name(f".{here.name}.{suffix}")
        if stale.exists() and not _is_run_or_empty(stale):
            raise AvkitError(f"{stale}: is in the way of --overwrite and is not an avkit run directory; move it away")


class RunLock(OutputLock):
    """``.RUN.avkit-lock`` beside ``run_dir`` while this process trains into it (see the module docstring)."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__(run_dir)
        self.run_dir = run_dir

    def busy(self, owner: dict) -> str:
        return (f"{self.run_dir}: another training (pid {owner.get('pid', '?')} on {owner.get('host', '?')}) "
                f"is writing this run; wait for it, or delete {self.path} if that process is gone")


class RunOutput:
    """Where a training writes: the run directory, or for ``--overwrite`` of an existing run a
    :class:`StagedOutput` beside it. Call :meth:`finish` when training returned, :meth:`abandon` when it failed."""

    def __init__(self, run_dir: Path, replace: bool) -> None:
        self.run_dir = run_dir
        self.staged = StagedOutput(run_dir) if replace else None
        self.path = self.staged.path if self.staged is not None else run_dir
        self.created = not self.path.exists() or self.staged is not None  # a new folder: removed if it fails
        self.path.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(self.path)  # temporary files of a process killed while writing here

    def finish(self) -> None:
        if self.staged is not None:
            self.staged.commit()

    def abandon(self) -> None:
        """A failed training: a staged run is deleted (the old one stays); a new run with nothing to
        resume leaves nothing."""
        if self.staged is not None:
            self.staged.discard()
        elif self.created and not (self.path / "last.safetensors").exists():
            shutil.rmtree(self.path, ignore_errors=True)
