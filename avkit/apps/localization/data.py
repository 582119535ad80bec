"""Ground-truth segments of long videos, checked row by row, and per-window targets.

``source`` is an avkit manifest (``avkit generate longvideo ... --actions``: rows with ``path``,
``duration`` and ``segments`` of ``label``, ``start``, ``end``) or an ActivityNet / THUMOS style JSON
(``database -> id -> subset, duration, annotations``, read by :mod:`avkit.data.formats`; videos
``v_<id>`` / ``<id>`` under its folder or ``video_root``; a video without ``duration`` is probed).
Bad rows are one line naming the file, the row (manifest line or video id) and the problem: a
segment outside the video, an end before its start, an unknown label, a video shorter than one
window, a video file not found. :func:`read_videos` raises on the first (``strict``), or skips the
row and lists it (training goes on and reports them). A JSON segment that ends before it starts is
refused by the format reader for the whole file (one line, as for classification from that file).
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


def class_names_of(annotations: Path, labels: list[str] | None = None) -> list[str]:
    """``classes.json`` beside the annotation file, else ``labels`` (a layout's), else the sorted segment labels."""
    classes = annotations.parent / "classes.json"
    if classes.is_file():
        return [c["name"] if isinstance(c, dict) else str(c) for c in json.loads(classes.read_text())]
    if labels is not None:
        return list(labels)
    return sorted({str(s.get("label")) for _, row in read_jsonl(annotations) for s in row.get("segments") or []})


def _layout_rows(source: str | Path, format: str, video_root: str
                 ) -> tuple[Path, list[tuple[str, dict[str, Any]]], list[str] | None, list[str]]:
    """``(annotation file, [(row name, row with an absolute path)], the layout's classes, missing videos)``."""
    from avkit.data.formats import FormatOptions, read_format

    table = read_format(source, format, FormatOptions(video_root=video_root))
    if table is None:
        manifest = manifest_file(source, "generate one with 'avkit generate longvideo OUT --actions ...' "
                                         "or give an ActivityNet / THUMOS JSON (see docs/localization.md)")
        return manifest, [(f"{manifest}: row {line}", {**row, "path": _absolute(row, manifest.parent)})
                          for line, row in read_jsonl(manifest)], None, []
    if table.format != "activitynet":
        raise AvkitError(f"{source}: a {table.format} layout has no temporal segments; localisation needs a manifest "
                         f"with segments or an ActivityNet / THUMOS JSON")
    rows = []
    for row in table.rows:
        meta = row.get("meta") or {}
        rows.append((str(row["_where"]), {"path": str(table.base / row["path"]), "duration": meta.get("duration"),
                                          "split": row.get("split"), "segments": row["segments"]}))
    return table.source, rows, table.classes, [f"{m}: video file not found under {table.base}" for m in table.missing]


def _absolute(row: dict[str, Any], base: Path) -> Any:
    if "path" not in row:
        return None
    path = Path(row["path"])
    return str(path if path.is_absolute() else base / path)


def _probed_duration(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` with the video's own duration when the annotations give none (ActivityNet JSON may not)."""
    if row.get("duration") is not None or row.get("path") is None:
        return row
    from avkit.io.probe import probe

    return {**row, "duration": probe(row["path"]).duration}


def check_row(row: dict[str, Any], class_names: list[str], min_duration: float = 0.0) -> str | None:
    """The problem with one annotation row, or None."""
    if row.get("path") is None:
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
                strict: bool = True, min_duration: float = 0.0, format: str = "auto", video_root: str = ""
                ) -> tuple[list[Video], list[str], list[str]]:
    """``(videos in split, class names, skipped rows as 'file: row: problem')`` of a manifest (or its folder)
    or an ActivityNet / THUMOS JSON (``format``, ``video_root``: as ``data.format`` / ``data.video_root``)."""
    from avkit.errors import MediaError

    annotations, rows, layout_classes, skipped = _layout_rows(source, format, video_root)
    if strict and skipped:
        raise AvkitError(skipped[0])
    names = class_names if class_names is not None else class_names_of(annotations, layout_classes)
    videos: list[Video] = []
    for where, row in rows:
        if split is not None and row.get("split") != split:
            continue
        try:
            row = _probed_duration(row)
        except MediaError as err:
            problem: str | None = f"cannot read the video ({err})"
        else:
            problem = check_row(row, names, min_duration)
        if problem is not None:
            message = f"{where}: {problem}"
            if strict:
                raise AvkitError(message)
            skipped.append(message)
            continue
        videos.append(Video(str(row["path"]), float(row["duration"]), row.get("split"),
                            [{"label": str(s["label"]), "start": float(s["start"]),
                              "end": min(float(s["end"]), float(row["duration"]))} for s in row.get("segments") or []]))
    if not videos:
        raise AvkitError(f"{annotations}: no usable video" + (f" in split {split!r}" if split else "")
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
