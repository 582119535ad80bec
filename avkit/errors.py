"""The one error family avkit raises for bad input.

Every error is a ``ValueError`` so callers that already catch ``ValueError`` keep working;
the CLI prints ``str(err)`` on one line and exits with code 2.
"""
from __future__ import annotations

from pathlib import Path


class AvkitError(ValueError):
    """Bad input or a request avkit cannot satisfy (a user error, not a bug).

    Every subclass survives pickling (a worker process sends its error back to the parent): the
    default unpickling calls ``cls(*self.args)``, which fails for subclasses whose ``__init__``
    takes other arguments than the message (``MediaError(path, reason)``) and leaves a process
    pool waiting forever. Instead the object is rebuilt as it is: args and attributes.
    """

    def __reduce__(self):
        return _rebuild, (type(self), self.args, self.__dict__)


def _rebuild(cls: type, args: tuple, state: dict) -> AvkitError:
    """Unpickle an AvkitError without calling its ``__init__``."""
    err = cls.__new__(cls, *args)
    err.args = args
    err.__dict__.update(state)
    return err


class MediaError(AvkitError):
    """A media file that cannot be read: missing, empty, truncated, corrupt or not media.

    The message always starts with the file name, so one line tells what and where.
    """

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class OutputExistsError(AvkitError):
    """Refusing to replace an existing output without ``overwrite=True`` (``--overwrite``)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        super().__init__(f"{self.path}: already exists (pass --overwrite to replace it)")


class DependencyError(AvkitError):
    """A package avkit needs is missing or fails to load; the message says which and how to fix it."""

    def __init__(self, package: str, message: str) -> None:
        self.package = package
        super().__init__(message)


class WorkerError(AvkitError):
    """A task in a worker process failed in a way the parent cannot re-raise as itself: the worker
    died (a signal, an exit code) or raised an exception that cannot be pickled back. The message
    names the task; the worker's traceback, where there is one, is the ``__cause__``."""
