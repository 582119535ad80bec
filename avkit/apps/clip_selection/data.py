"""Long-video data for clip selection: manifests with action segments, truth lookup, window targets.

A ``longvideo`` dataset (``avkit generate longvideo OUT``) labels each long video with one class
and lists where the action is visible (``segments``), which of those carry sound
(``meta.segments[k].sound``) and the distractors (``meta.distractors``: a chime plus another
class's sound with nothing to see, or the action in silence). This module reads that into
:class:`LongVideo` records, writes the *segment manifest* the heavy classifier is trained on (one
row per visible segment, ``start``/``end`` in seconds, so ``VideoDataset`` samples clips inside
the action), finds the truth of a video file from the manifest beside it, and computes the
per-window overlap with the visible segments (the preview's saliency target).
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from avkit.data.jsonl import manifest_file, read_jsonl
from avkit.errors import AvkitError


@dataclass
class LongVideo:
    """One row of a long-video manifest, with absolute path and label index."""

    path: str
    label: str
    label_index: int
    duration: float
    split: str | None
    segments: list[dict[str, Any]] = field(default_factory=list)  # visible: start, end, sound
    distractors: list[dict[str, Any]] = field(default_factory=list)  # kind, start, end, ...

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "label": self.label, "duration": self.duration, "split": self.split,
                "segments": self.segments, "distractors": self.distractors}


def _manifest_path(source: str | Path) -> Path:
    return manifest_file(source, "generate a long-video dataset with 'avkit generate longvideo OUT'")


def class_names(source: str | Path) -> list[str]:
    """Class names of the dataset (``classes.json`` beside the manifest, else the sorted labels)."""
    manifest = _manifest_path(source)
    classes_file = manifest.parent / "classes.json"
    if classes_file.is_file():
        data = json.loads(classes_file.read_text())
        return [c["name"] if isinstance(c, dict) else str(c) for c in data]
    labels = {str(row.get("label", "")) for _, row in read_jsonl(manifest)}
    return sorted(labels)


def _row_to_video(row: dict[str, Any], base: Path, index_of: dict[str, int], where: str) -> LongVideo:
    if "path" not in row or "label" not in row:
        raise AvkitError(f"{where}: a long-video row needs 'path' and 'label'")
    label = str(row["label"])
    if label not in index_of:
        raise AvkitError(f"{where}: unknown label {label!r}")
    meta = row.get("meta") or {}
    details = meta.get("segments") or []
    segments = []
    for k, seg in enumerate(row.get("segments") or []):
        sound = bool(details[k].get("sound", True)) if k < len(details) else True
        events = list(details[k].get("sound_events", [])) if k < len(details) else []
        segments.append({"start": float(seg["start"]), "end": float(seg["end"]), "sound": sound,
                         "sound_events": events})
    distractors = [dict(d) for d in meta.get("distractors") or []]
    path = Path(row["path"])
    return LongVideo(path=str(path if path.is_absolute() else base / path), label=label,
                     label_index=index_of[label], duration=float(row.get("duration") or 0.0),
                     split=row.get("split"), segments=segments, distractors=distractors)


def read_long_manifest(source: str | Path, split: str | None = None) -> tuple[list[LongVideo], list[str]]:
    """The long videos of ``source`` (a manifest or its folder) in ``split`` (None: all) and the class names."""
    manifest = _manifest_path(source)
    names = class_names(manifest)
    index_of = {n: i for i, n in enumerate(names)}
    videos = []
    for i, row in read_jsonl(manifest):
        video = _row_to_video(row, manifest.parent, index_of, f"{manifest} line {i}")
        if split is None or video.split == split:
            videos.append(video)
    if not videos:
        raise AvkitError(f"{manifest}: no videos" + (f" in split {split!r}" if split else ""))
    return videos, names


def write_segment_manifest(source: str | Path, out: str | Path | None = None, background: int = 0) -> Path:
    """Write one row per visible action segment of ``source`` (default ``segments.jsonl`` beside it).

    ``background`` adds that many whole-video rows per video (no ``start``/``end``: a clip drawn
    anywhere in the video, mostly background, labelled with the video's class). A classifier trained
    on segments alone has never seen the background and is confidently wrong on it (the drifting
    texture looks like slow motion); with whole-video rows it learns that background says little,
    which dense averaging needs. Rows keep the video's ``split``, so the heavy classifier's
    validation clips come from other videos than its training clips. Paths stay relative to the
    manifest's folder (where ``classes.json`` is), so ``VideoDataset`` reads the new manifest directly.
    """
    from avkit.utils import atomic_write_text

    manifest = _manifest_path(source)
    out = Path(out) if out is not None else manifest.parent / "segments.jsonl"
    if out.resolve().parent != manifest.resolve().parent:
        raise AvkitError(f"{out}: the segment manifest must sit beside {manifest} (its paths are relative to it)")
    lines = []
    for _, row in read_jsonl(manifest):
        for seg in row.get("segments") or []:
            lines.append(json.dumps({"path": row["path"], "label": row["label"], "start": seg["start"],
                                     "end": seg["end"], "split": row.get("split"), "duration": row.get("duration")}))
        for draw in range(int(background)):  # "draw" keeps the rows distinct (identical rows are duplicates)
            lines.append(json.dumps({"path": row["path"], "label": row["label"], "split": row.get("split"),
                                     "duration": row.get("duration"), "draw": draw}))
    if not lines:
        raise AvkitError(f"{manifest}: no segments listed (is it a longvideo dataset?)")
    atomic_write_text(out, "\n".join(lines) + "\n")
    return out


def find_truth(video: str | Path) -> LongVideo | None:
    """The manifest row of ``video`` when it belongs to a generated dataset (the manifest is in its
    folder or the one above, as ``avkit generate`` writes ``OUT/clips/*.mp4``), else None."""
    video = Path(video).resolve()
    for folder in (video.parent, video.parent.parent):
        manifest = folder / "manifest.jsonl"
        if not manifest.is_file():
            continue
        try:
            names = class_names(manifest)
            index_of = {n: i for i, n in enumerate(names)}
            for _, row in read_jsonl(manifest):
                path = Path(row.get("path", ""))
                if (path if path.is_absolute() else folder / path).resolve() == video:
                    return _row_to_video(row, folder, index_of, str(manifest))
        except (OSError, ValueError, KeyError, TypeError):
            return None  # an unrelated or broken manifest: no truth, not an error
    return None


def overlap_fraction(starts: Sequence[float], ends: Sequence[float], segments: Sequence[dict[str, Any]]) -> np.ndarray:
    """For each window ``[start, end)``, the fraction of it covered by the (disjoint) ``segments``."""
    s = np.asarray(starts, dtype=np.float64)
    e = np.asarray(ends, dtype=np.float64)
    cover = np.zeros_like(s)
    for seg in segments:
        cover += np.clip(np.minimum(e, seg["end"]) - np.maximum(s, seg["start"]), 0.0, None)
    return np.clip(cover / np.maximum(e - s, 1e-9), 0.0, 1.0)


if __name__ == "__main__":  # python -m avkit.apps.clip_selection.data LONGVIDEO_DIR [OUT] [--background N]
    import argparse

    ap = argparse.ArgumentParser(prog="python -m avkit.apps.clip_selection.data",
                                 description="Write the segment manifest of a longvideo dataset (one row per visible "
                                             "action segment, plus --background whole-video rows per video).")
    ap.add_argument("source", help="longvideo dataset folder (or its manifest.jsonl)")
    ap.add_argument("out", nargs="?", default=None, help="output .jsonl beside the manifest (default segments.jsonl)")
    ap.add_argument("--background", type=int, default=0, help="whole-video rows per video")
    a = ap.parse_args()
    try:
        written = write_segment_manifest(a.source, a.out, a.background)
    except AvkitError as err:
        raise SystemExit(f"error: {err}") from None
    print(f"{written}: {sum(1 for _ in open(written))} rows")
