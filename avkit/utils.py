"""Small helpers shared across avkit: atomic writes, output guards, CPU cores."""
from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from avkit.errors import AvkitError, OutputExistsError


def check_output(path: str | Path, overwrite: bool = False) -> Path:
    """Return ``path`` as a Path, raising if it exists and ``overwrite`` is False."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(path)
    return path


TEMP_MARK = ".avkit-tmp."  # in the name of every temporary file avkit writes beside a target
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}  # a full disk, a quota, a file too large


def _umask() -> int:
    """The process umask, read without changing it where the OS says (Linux), else by setting it back."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    A crash or exception leaves any previous file at ``path`` untouched and no partial file behind
    (a process killed inside the block leaves its temporary file, named with its pid, which
    :func:`remove_stale_temps` deletes later). The file gets the mode a plain ``open`` would give
    it (``0o666`` less the umask), not ``mkstemp``'s ``0o600``. ``suffix`` defaults to the target's
    suffix so writers that infer the format from it keep working. A write that fails for want of
    space (or an OS error that names no file) raises :class:`AvkitError` naming ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}{TEMP_MARK}{os.getpid()}.",
                               suffix=suffix if suffix is not None else path.suffix, dir=path.parent)
    mode = 0o666 & ~_umask()
    os.fchmod(fd, mode)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, mode)  # again: some writers replace the file (safetensors' save_file makes it 0600)
        os.replace(tmp_path, path)
    except OSError as err:
        if err.errno in _NO_SPACE or err.filename is None:  # a failed write names no file: name it
            raise AvkitError(f"{path}: cannot write it ({err.strerror or err}); "
                             f"any previous {path.name} is unchanged") from err
        raise
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid runs on this machine (one we may not signal counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temps(folder: str | Path) -> list[Path]:
    """Delete the temporary files :func:`atomic_path` left in ``folder`` from processes that are gone
    (killed during a write); returns what was deleted. Files of live processes are kept."""
    removed = []
    for tmp in Path(folder).glob(f".*{TEMP_MARK}*"):
        try:
            pid = int(tmp.name.split(TEMP_MARK, 1)[1].split(".", 1)[0])
        except ValueError:
            continue
        if tmp.is_file() and not pid_alive(pid):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


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


REINSTALL = "reinstall avkit to get it back (pip install --force-reinstall --no-deps avkit, or from a source tree)"


def user_cache_dir(*parts: str) -> Path:
    """Where avkit keeps what it can compute again but would rather not (``$AVKIT_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/avkit``, else ``~/.cache/avkit``), joined with ``parts``. Deleting it loses only time."""
    root = os.environ.get("AVKIT_CACHE_DIR")
    if not root:
        root = str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "avkit")
    return Path(root).joinpath(*parts)


def shipped_asset(*parts: str) -> Path:
    """A file or folder shipped with avkit: in the installed package ``avkit.assets`` (the top-level
    ``assets/`` folder of the source tree, mapped by setup.py), or in that folder itself when avkit
    runs from a source tree. Whether it exists is the caller's check (with :data:`REINSTALL`)."""
    import importlib.util

    spec = importlib.util.find_spec("avkit.assets")
    if spec is not None and spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0]).joinpath(*parts)
    return Path(__file__).resolve().parents[1].joinpath("assets", *parts)
