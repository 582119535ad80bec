"""The one error family avkit raises for bad input.

Every error is a ``ValueError`` so callers that already catch ``ValueError`` keep working;
the CLI prints ``str(err)`` on one line and exits with code 2.
"""
from __future__ import annotations

from pathlib import Path


class AvkitError(ValueError):
    """Bad input or a request avkit cannot satisfy (a user error, not a bug)."""


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
