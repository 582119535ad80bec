"""Ground-truth segments of long videos, checked row by row, and per-window targets.

A manifest row (``avkit generate longvideo ... actions=...``, or ActivityNet / THUMOS JSON read by
:mod:`avkit.data.formats`) gives ``path``, ``duration`` and ``segments`` (``label``, ``start``,
``end``). Bad rows are one line naming the file, the row and the problem: a segment outside the
video, an end before its start, an unknown label. :func:`read_videos` raises on the first
(``strict``), or skips the row and lists it (training goes on and reports them).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from avkit.data.jsonl import manifest_file, read_jsonl
from avkit.errors import AvkitError

TOLERANCE = 0.05  # s a segment may pass the video's end (timestamps rounded by the writer)


@dataclass
class Video:
    """One annotated long video: absolute path, duration and ``segments`` (dicts label, start, end)."""

    path: str
    duration: float
    split: str | None
    segments: list[dict[str, Any]] = field(default_factory=list)


def class_names_of(manifest: Path) -> list[str]:
    """``classes.json`` beside the manifest, else the sorted segment labels."""
    classes = manifest.parent / "classes.json"
    if classes.is_file():
        return [c["name"] if isinstance(c, dict) else str(c) for c in json.loads(classes.read_text())]
    return sorted({str(s.get("label")) for _, row in read_jsonl(manifest) for s in row.get("segments") or []})


def check_row(row: dict[str, Any], class_names: list[str], min_duration: float = 0.0) -> str | None:
    """The problem with one manifest row, or None."""
    if "path" not in row:
        return "no 'path'"
    duration = row.get("duration")
    if duration is None:
        return "no 'duration'"
    duration = float(duration)
    if duration < min_duration:
        return f"video is {duration:.2f} s, shorter than one {min_duration:g} s window"
    for k, seg in enumerate(row.get("segments") or []):
        try:
            label, start, end = str(seg["label"]), float(seg["start"]), float(seg["end"])
        except (KeyError, TypeError, ValueError):
            return f"segment {k} needs label, start and end"
        if label not in class_names:
            return f"segment {k}: unknown label {label!r} (classes: {', '.join(class_names)})"
        if not end > start:
            return f"segment {k}: end {end:g} s before start {start:g} s"
        if start < 0 or end > duration + TOLERANCE:
            return f"segment {k}: {start:g}-{end:g} s is outside the {duration:g} s video"
    return None


def read_videos(source: str | Path, split: str | None = None, *, class_names: list[str] | None = None,
                strict: bool = True, min_duration: float = 0.0) -> tuple[list[Video], list[str], list[str]]:
    """``(videos in split, class names, skipped rows as 'file:row N: problem')`` of a manifest (or its folder)."""
    manifest = manifest_file(source, "generate one with 'avkit generate longvideo OUT' (see docs/localization.md)")
    names = class_names if class_names is not None else class_names_of(manifest)
    videos: list[Video] = []
    skipped: list[str] = []
    for line, row in read_jsonl(manifest):
        if split is not None and row.get("split") != split:
            continue
        problem = check_row(row, names, min_duration)
        if problem is not None:
            message = f"{manifest}: row {line}: {problem}"
            if strict:
                raise AvkitError(message)
            skipped.append(message)
            continue
        path = Path(row["path"])
        videos.append(Video(str(path if path.is_absolute() else manifest.parent / path), float(row["duration"]),
                            row.get("split"), [{"label": str(s["label"]), "start": float(s["start"]),
                                                "end": min(float(s["end"]), float(row["duration"]))}
                                               for s in row.get("segments") or []]))
    if not videos:
        raise AvkitError(f"{manifest}: no usable video" + (f" in split {split!r}" if split else "")
                         + (f" ({len(skipped)} rows skipped; first: {skipped[0]})" if skipped else ""))
    return videos, names, skipped


def window_targets(starts: np.ndarray, ends: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """Class index + 1 of the segment covering each window's centre (0: background); ``segments [S, 3]``."""
    centres = (np.asarray(starts) + np.asarray(ends)) / 2
    out = np.zeros(len(centres), dtype=np.int64)
    for s, e, c in segments:
        out[(centres >= s) & (centres < e)] = int(c) + 1
    return out


def ground_truth_rows(videos: list[Video]) -> list[dict[str, Any]]:
    """The metric's ground-truth dicts (``video`` = path)."""
    return [{"video": v.path, **s} for v in videos for s in v.segments]
