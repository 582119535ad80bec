"""Checks every manifest row passes, whatever layout it came from: paths stay inside the dataset
folder, duplicated rows are reported (and dropped by default), segments are well formed.

A path is inside the folder when ``folder / path``, with ``..`` resolved by name, lies under the
folder; symbolic links inside the folder are followed as the folder's owner set them, so a
``videos -> /mnt/disk/videos`` link keeps working while a row ``../../etc/passwd`` (or an absolute
path elsewhere) is refused unless the user allows outside paths.
"""
from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any

from avkit.errors import AvkitError

log = logging.getLogger("avkit.data")

DUPLICATE_MODES = ("drop", "keep", "error")
_warned: set[str] = set()
ALLOW_HINT = "data.allow_outside_paths: true, or VideoDataset(..., allow_outside=True)"


def row_path(raw: str, base: Path, where: str, allow_outside: bool = False) -> str:
    """The file a row names (relative paths from ``base``); an ``AvkitError`` naming the row when it
    lies outside ``base`` and ``allow_outside`` is False."""
    path = Path(raw)
    full = path if path.is_absolute() else base / path
    if not allow_outside:
        folder = os.path.abspath(base)
        inside = os.path.abspath(full)
        if os.path.commonpath([folder, inside]) != folder:
            raise AvkitError(f"{where}: path {raw!r} points outside the dataset folder {folder} "
                             f"(to allow it: {ALLOW_HINT})")
    return str(full)


def row_key(row: dict[str, Any], path: str) -> str:
    """What makes two rows the same row: every field (the file's path as resolved), not where it is.
    Rows that differ in any field (another segment, caption or ``meta``) are not duplicates."""
    fields = {k: v for k, v in row.items() if not k.startswith("_")}
    return json.dumps({**fields, "path": path}, sort_keys=True, default=str)


def drop_duplicates(items: Sequence[Any], keys: Sequence[Hashable], wheres: Sequence[str], source: Path,
                    mode: str = "drop") -> list[Any]:
    """``items`` without the rows whose key repeats an earlier one (``mode="drop"``), all of them
    (``"keep"``) or an error (``"error"``); any duplicate is reported in one line with the count and
    the first examples."""
    if mode not in DUPLICATE_MODES:
        raise AvkitError(f"data.duplicates must be one of {', '.join(DUPLICATE_MODES)}, got {mode!r}")
    first: dict[Hashable, str] = {}
    kept, repeats = [], []
    for item, key, where in zip(items, keys, wheres):
        if key in first:
            repeats.append(f"{_short(where, source)} repeats {_short(first[key], source)}")
            if mode != "keep":
                continue
        else:
            first[key] = where
        kept.append(item)
    if repeats:
        examples = "; ".join(repeats[:3]) + ("; ..." if len(repeats) > 3 else "")
        if mode == "error":
            raise AvkitError(f"{source}: {len(repeats)} duplicated row(s) ({examples}); "
                             "set data.duplicates: drop or keep")
        what = "dropped" if mode == "drop" else "kept (each trains once per copy)"
        warn_once(f"{source}: {len(repeats)} duplicated row(s) {what}: {examples}")
    return kept


def warn_once(message: str) -> None:
    """Log ``message`` as a warning the first time this process sees it (a source is read for the
    training set, the validation set and the split check: one report, not three)."""
    if message not in _warned:
        _warned.add(message)
        log.warning(message)


def _short(where: str, source: Path) -> str:
    """A row's place without the file the report already names: ``"line 5"``."""
    prefix = f"{source} "
    return where[len(prefix):] if where.startswith(prefix) else where


def parse_segments(value: Any, where: str) -> tuple[dict[str, Any], ...]:
    """A row's ``segments`` (``[{"label", "start", "end"}, ...]``, seconds) checked; () when absent."""
    if value is None or value == "":
        return ()
    if not isinstance(value, list):
        raise AvkitError(f"{where}: segments must be a list of {{label, start, end}}, got {type(value).__name__}")
    out = []
    for k, seg in enumerate(value):
        if not isinstance(seg, dict):
            raise AvkitError(f"{where}: segment {k} must be an object {{label, start, end}}")
        try:
            start, end = float(seg["start"]), float(seg["end"])
        except (KeyError, TypeError, ValueError):
            raise AvkitError(f"{where}: segment {k} needs numeric start and end, got {seg!r}") from None
        if not (math.isfinite(start) and math.isfinite(end)) or end <= start or start < 0:
            raise AvkitError(f"{where}: segment {k} must have 0 <= start < end, got [{seg['start']}, {seg['end']}]")
        out.append({**seg, "start": start, "end": end})
    return tuple(out)


__all__ = ["ALLOW_HINT", "DUPLICATE_MODES", "drop_duplicates", "parse_segments", "row_key", "row_path", "warn_once"]
