"""Small helpers shared across avkit: atomic writes, output guards, seeding, device choice."""
from __future__ import annotations

import contextlib
import json
import os
import random
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator

from avkit.errors import OutputExistsError


def check_output(path: str | Path, overwrite: bool = False) -> Path:
    """Return ``path`` as a Path, raising if it exists and ``overwrite`` is False."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(path)
    return path


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    A crash or exception leaves any previous file at ``path`` untouched and no partial file behind.
    ``suffix`` defaults to the target's suffix so writers that infer format from it keep working.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=suffix if suffix is not None else path.suffix,
                               dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write text to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, default=str) + "\n")


def cpu_cores() -> int:
    """CPU cores this process may run on (its affinity where the OS says, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def can_fork() -> bool:
    """Whether :func:`forked_pool` may be used here (Linux: fork is safe for what avkit runs in it)."""
    return sys.platform == "linux"


@contextlib.contextmanager
def forked_pool(processes: int, initializer: Any = None, initargs: tuple = ()) -> Iterator[Any]:
    """A ``multiprocessing`` pool of forked processes, terminated on leaving (at once on an error or
    Ctrl-C, so no worker outlives its caller). Forked, not spawned: a spawned worker re-imports the
    caller's ``__main__``, which re-runs a user's script that has no main guard."""
    import multiprocessing as mp

    pool = mp.get_context("fork").Pool(processes, initializer, initargs)
    try:
        yield pool
        pool.close()
    finally:
        pool.terminate()
        pool.join()


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def default_device() -> "torch.device":  # noqa: F821
    """CUDA when available, else CPU."""
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
