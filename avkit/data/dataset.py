"""``VideoDataset``: clips (frames + sound) from a manifest or a class-per-folder tree.

Sources:

- a manifest ``.jsonl`` (one JSON object a line) or ``.csv`` (with a header) with fields
  ``path`` and ``label`` and optionally ``start``, ``end`` (seconds: use only that segment),
  ``caption`` and ``split``; paths are relative to the manifest's folder;
- a folder holding ``manifest.jsonl`` / ``manifest.csv`` (what ``avkit generate`` writes);
- a folder with one subfolder of videos per class (the UCF-101 / Kinetics layout);
- a folder holding only split folders ``train/``, ``val/``, ``test/`` (some of them), each with one
  subfolder per class: the rows get ``split`` from their folder (:func:`split_folders`), so the
  split names are never taken as classes;
- a standard layout as downloaded (UCF-101, HMDB-51, Kinetics, Something-Something v2, VGGSound,
  ActivityNet / THUMOS, AVA-ActiveSpeaker): :mod:`avkit.data.formats`.

Rows naming a file outside the dataset folder are refused unless allowed, and repeated rows are
reported (:mod:`avkit.data.manifest_checks`).

Classes come from ``classes.json`` beside the manifest (a list of names or of
``{"name": ...}`` objects, in label-index order) when present, else the sorted unique labels.

Randomness is a function of ``(seed, epoch, index)`` only, so an item is the same whichever
DataLoader worker makes it; ``set_epoch`` changes the draws (call it before each epoch; with
``persistent_workers=True`` workers keep the epoch they started with). Files are opened per item,
so nothing open is pickled into workers. ``cache=True`` decodes each file once, whole, into
memory (:class:`~avkit.io.in_memory.InMemoryVideo`) and serves later items from there: for
small datasets trained for many epochs, with ``num_workers=0`` (each worker would hold its own
copy, rebuilt each epoch unless workers persist).

Unreadable videos are skipped: the path and reason are recorded in ``dataset.skipped``, a
warning names the file the first time, and ``skipped_report()`` lists them. What the item is
then depends on ``on_unreadable``: ``"next"`` (the default, for training) returns the next
readable index instead, so every batch is full; ``"skip"`` (for evaluation, where a substitute
would be counted twice and the broken video scored as another one) returns a stub without a clip
(``"unreadable": reason``) that :func:`collate_readable` leaves out of the batch. Evaluation
chooses ``"skip"`` with :meth:`VideoDataset.set_on_unreadable`.

Videos without an audio stream, in a dataset that reads sound, are found when the dataset is built
(:func:`has_audio_stream`, a header read) and listed in ``dataset.without_audio``. Their silence
would be a class cue a model can learn ("no sound means class X"), so ``missing_audio`` says what
to do: ``"error"`` (stop, naming the files), ``"zeros"`` (keep them: silence, and items say
``has_audio=False`` so audio-visual models treat the sound as absent) or ``"drop"`` (leave them out).

Items carry what they skipped under ``"skipped"``, a JSON string ``{path: reason}`` (a string, so
that items have the same structure and PyTorch's default collate batches them: a plain
``DataLoader(VideoDataset(...))`` works over data with broken files). Items made in worker
processes skip in a copy of the dataset: :meth:`VideoDataset.record_skips` copies a batch's
``"skipped"`` (:func:`collate`'s merged dict, or the default collate's list of strings) into the
main process's ``skipped``; :meth:`VideoDataset.loader` and the trainer do it for every batch.
"""
from __future__ import annotations

import csv
import json
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from avkit.data.audio_features import LogMel
from avkit.data.batch import clip_batch
from avkit.data.formats import FormatOptions, read_format
from avkit.data.jsonl import read_jsonl
from avkit.data.manifest_checks import drop_duplicates, parse_segments, row_key, row_path
from avkit.data.sampling import ClipWindow, random_clip, sliding_windows, uniform_clips
from avkit.data.transforms import Compose, eval_transform, train_transform
from avkit.errors import AvkitError, MediaError
from avkit.io.in_memory import InMemoryVideo
from avkit.io.read import VideoReader

log = logging.getLogger("avkit.data")

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".ogv", ".flv", ".wmv")
AUDIO_MODES = (None, "waveform", "spectrogram", "both")
UNREADABLE_MODES = ("next", "skip")  # what an unreadable video's item is: the next readable one, or a stub
MISSING_AUDIO = ("error", "zeros", "drop")  # what a dataset that reads sound does with a video without any
SPLIT_FOLDERS = ("train", "val", "test")  # a root holding only these folders is split, not class, folders
# Errors that mean "this file cannot be read" (io wraps most into MediaError).
_READ_ERRORS = (MediaError, OSError, av.FFmpegError, EOFError)


@dataclass(frozen=True)
class VideoRecord:
    """One manifest row, resolved: absolute path, label index, optional segment and caption."""

    path: str
    label: int
    start: float | None = None
    end: float | None = None
    caption: str = ""
    split: str | None = None
    segments: tuple[dict[str, Any], ...] = field(default=(), compare=False)  # [{label, start, end}] (s)
    meta: dict[str, Any] = field(default_factory=dict, compare=False)


# -- sources --------------------------------------------------------------------------------

def _read_jsonl(path: Path) -> tuple[list[dict[str, Any]], set[str]]:
    rows = [{**row, "_line": n} for n, row in read_jsonl(path)]
    columns = set().union(*(r.keys() for r in rows)) if rows else set()
    return rows, columns


def _read_csv(path: Path) -> tuple[list[dict[str, Any]], set[str]]:
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        columns = {c.strip() for c in (reader.fieldnames or [])}
        rows = []
        for n, row in enumerate(reader, 2):
            clean = {k.strip(): (v.strip() if isinstance(v, str) else v) for k, v in row.items() if k}
            clean = {k: (None if v == "" else v) for k, v in clean.items()}
            clean["_line"] = n
            rows.append(clean)
    return rows, columns


def _subfolders(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _read_folder(root: Path, base: Path | None = None) -> tuple[list[dict[str, Any]], set[str]]:
    """Rows of a class-per-folder tree, paths relative to ``base`` (default ``root``)."""
    rows = []
    for class_dir in _subfolders(root):
        for f in sorted(class_dir.rglob("*")):
            if f.is_file() and f.suffix.lower() in VIDEO_EXTENSIONS:
                rows.append({"path": str(f.relative_to(base or root)), "label": class_dir.name, "_line": None})
    return rows, {"path", "label"}


def split_folders(root: str | Path) -> list[str]:
    """The split folders of ``root`` (``train``, ``val``, ``test``, in that order) when those are all
    the folders it holds, else ``[]`` (a class-per-folder root, or a manifest)."""
    root = Path(root)
    if not root.is_dir():
        return []
    names = {p.name for p in _subfolders(root)}
    if not names or not names <= set(SPLIT_FOLDERS):
        return []
    return [n for n in SPLIT_FOLDERS if n in names]


def _read_split_folders(root: Path, splits: Sequence[str]) -> tuple[list[dict[str, Any]], set[str]]:
    rows = []
    for split in splits:
        part, _ = _read_folder(root / split, base=root)
        rows += [{**row, "split": split} for row in part]
    return rows, {"path", "label", "split"}


def _load_classes(path: Path) -> list[str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise AvkitError(f"{path}: cannot read classes ({err})") from None
    if not isinstance(data, list) or not data:
        raise AvkitError(f"{path}: expected a non-empty list of class names or {{'name': ...}} objects")
    names = [c["name"] if isinstance(c, dict) and "name" in c else c for c in data]
    if not all(isinstance(n, str) for n in names) or len(set(names)) != len(names):
        raise AvkitError(f"{path}: class names must be unique strings")
    return names


def has_audio_stream(path: str | Path) -> bool | None:
    """Whether ``path`` has an audio stream (its header only); None when it cannot be opened (the
    loader then reports it as unreadable)."""
    from avkit.io.probe import best_audio_index, open_media_estimate

    try:
        container, _ = open_media_estimate(path)
    except _READ_ERRORS:
        return None
    try:
        return best_audio_index(container) is not None
    finally:
        container.close()


def describe_paths(paths: Sequence[str], base: Path, limit: int = 5) -> str:
    """Up to ``limit`` paths relative to ``base``, comma-separated, with how many more."""
    shown = []
    for p in paths[:limit]:
        try:
            shown.append(str(Path(p).relative_to(base)))
        except ValueError:
            shown.append(p)
    return ", ".join(shown) + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


def _float_or_none(value: Any, what: str, where: str) -> float | None:
    if value is None:
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise AvkitError(f"{where}: {what} must be a number of seconds, got {value!r}") from None
    if not math.isfinite(x) or x < 0:
        raise AvkitError(f"{where}: {what} must be a non-negative number of seconds, got {value!r}")
    return x


def load_records(source: str | Path, split: str | None = None, *, format: str = "auto",
                 format_options: FormatOptions | None = None, allow_outside: bool = False,
                 duplicates: str = "drop", labels: bool = True) -> tuple[list[VideoRecord], list[str], Path]:
    """Validate ``source`` and return its records, the class names and the manifest (or root) path.

    ``format``: ``"auto"`` (found from the path), ``"manifest"``, ``"folder"`` or a standard layout
    read by :mod:`avkit.data.formats` (``format_options``: its split number, file-name pattern, video
    root). Rows whose path leaves the dataset folder are refused unless ``allow_outside``; repeated
    rows are reported and dropped (``duplicates="keep"`` keeps them, ``"error"`` stops).
    Raises ``AvkitError`` naming the manifest (and line) for a missing file, missing columns, unknown
    labels, bad numbers, or no rows (after the ``split`` filter). ``labels=False`` (a corpus to run a
    model over) lets rows go without a label: their record's label is -1.
    """
    source = Path(source)
    if not source.exists():
        raise AvkitError(f"{source}: dataset source does not exist")
    table = read_format(source, format, format_options)  # a standard layout; None: manifest or class folders
    if table is None and source.is_dir():
        for name in ("manifest.jsonl", "manifest.csv"):
            if (source / name).is_file():
                source = source / name
                break
    if table is not None:
        rows, columns, base, source = table.rows, table.columns, table.base, table.source
    elif source.is_dir():
        splits = split_folders(source)
        rows, columns = _read_split_folders(source, splits) if splits else _read_folder(source)
        base = source
    elif source.suffix.lower() == ".jsonl":
        rows, columns = _read_jsonl(source)
        base = source.parent
    elif source.suffix.lower() == ".csv":
        rows, columns = _read_csv(source)
        base = source.parent
    else:
        raise AvkitError(f"{source}: expected a .jsonl or .csv manifest or a folder of class folders")
    if not rows:
        raise AvkitError(f"{source}: no videos listed (empty manifest or no class folders with videos)")
    missing = [c for c in ("path", "label") if c not in columns and (labels or c == "path")]
    if missing:
        raise AvkitError(f"{source}: missing column(s) {', '.join(missing)} (need path{' and label' if labels else ''})")

    classes_file = base / "classes.json"
    classes = _load_classes(classes_file) if classes_file.is_file() else None
    if table is not None and table.classes:
        classes = table.classes
    if classes is None:
        classes = sorted({str(r["label"]) for r in rows if r.get("label") is not None})
    index_of = {name: i for i, name in enumerate(classes)}

    if split is not None and "split" not in columns:
        raise AvkitError(f"{source}: split={split!r} asked for but the manifest has no 'split' field")
    records, wheres, keys = [], [], []
    for row in rows:
        where = row.get("_where") or f"{source}" + (f" line {row['_line']}" if row.get("_line") else "")
        if not row.get("path"):
            raise AvkitError(f"{where}: empty path")
        label = row.get("label")
        if label is None and not labels:
            y = -1
        elif label is None:
            raise AvkitError(f"{where}: empty label")
        elif str(label) in index_of:
            y = index_of[str(label)]
        elif isinstance(label, int) and classes_file.is_file() and 0 <= label < len(classes):
            y = label
        else:
            raise AvkitError(f"{where}: unknown label {label!r} (classes: {', '.join(classes[:10])}"
                             f"{', ...' if len(classes) > 10 else ''})")
        start = _float_or_none(row.get("start"), "start", where)
        end = _float_or_none(row.get("end"), "end", where)
        if start is not None and end is not None and end <= start:
            raise AvkitError(f"{where}: end ({end}) must be after start ({start})")
        rec = VideoRecord(path=row_path(str(row["path"]), base, where, allow_outside), label=y, start=start,
                          end=end, caption=str(row.get("caption") or ""), split=row.get("split"),
                          segments=parse_segments(row.get("segments"), where), meta=row.get("meta") or {})
        if split is None or rec.split == split:
            records.append(rec)
            wheres.append(where)
            keys.append(row_key(row, rec.path))
    if not records:
        found = sorted({str(r.get("split")) for r in rows if r.get("split") is not None})
        raise AvkitError(f"{source}: no videos in split {split!r} (splits: {', '.join(found) or 'none'})")
    records = drop_duplicates(records, keys, wheres, source, duplicates)
    return records, classes, source


# -- the dataset ----------------------------------------------------------------------------

class ItemsDataset(Dataset):
    """Ready-made items (dicts) as a dataset: tasks that compute their items up front (features of
    long videos, ranked windows) hand them to the training loop with this."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.items[i]


class VideoDataset(Dataset):
    """Clips of ``num_frames`` at ``fps`` with their sound, label and metadata.

    ``mode="train"``: one random clip, random crop -> ``video float [3, T, size, size]``. No flip
    by default (a mirror turns move_left into move_right without changing the label); pass
    ``transform=train_transform(size, flip=True)`` for classes a mirror image keeps.
    ``mode="test"``: ``num_clips`` uniform clips x ``num_crops`` (1 or 3) crops ->
    ``video [K, 3, T, size, size]`` with ``K = num_clips * num_crops``, clip-major.

    ``audio``: None, ``"waveform"`` (``audio float32 [S]``), ``"spectrogram"``
    (``spectrogram [1, F, T']``, see ``spectrogram=LogMel(...)``) or ``"both"``. The audio span
    is ``audio_seconds`` long (default: the clip's length) centred on the video clip, read at
    ``sample_rate``; in test mode there is one per view (``[K, S]``, ``[K, 1, F, T']``). Videos
    without sound are listed in ``without_audio``; ``missing_audio`` says what is done with them:
    ``"error"`` (the default, as in recipes' ``data.missing_audio``: raise, naming them), ``"zeros"``
    (silence and ``has_audio=False``) or ``"drop"`` (left out).

    ``transform`` replaces the preset (``train_transform(size)`` / ``eval_transform(size,
    num_crops)``); it gets ``uint8 [T, H, W, 3]`` frames decoded at the preset's short side
    (``short_side``) and, if it is a ``Compose`` or has ``takes_rng``, the item's generator.
    ``audio_transform`` (e.g. ``RandomGain``) acts on the waveform in train mode.
    ``cache=True`` keeps every decoded file in memory (see the module docstring).
    ``on_unreadable``: ``"next"`` or ``"skip"`` (see the module docstring; evaluation changes it on
    a dataset it is given with :meth:`set_on_unreadable`).
    ``format``, ``format_options``, ``allow_outside``, ``duplicates``: how the source is read
    (standard layouts, rows outside the dataset folder, repeated rows; see :func:`load_records`).
    """

    def __init__(
        self,
        source: str | Path,
        *,
        num_frames: int = 8,
        fps: float = 5.0,
        size: int = 112,
        short_side: int | None = None,
        mode: str = "train",
        num_clips: int = 10,
        num_crops: int = 1,
        pad: str = "repeat",
        audio: str | None = None,
        sample_rate: int = 16000,
        audio_seconds: float | None = None,
        spectrogram: LogMel | None = None,
        split: str | None = None,
        seed: int = 0,
        transform: Callable | None = None,
        audio_transform: Callable | None = None,
        max_skips: int = 50,
        cache: bool = False,
        on_unreadable: str = "next",
        format: str = "auto",
        format_options: FormatOptions | None = None,
        allow_outside: bool = False,
        duplicates: str = "drop",
        missing_audio: str = "error",
    ) -> None:
        if mode not in ("train", "test"):
            raise AvkitError(f"mode must be 'train' or 'test', got {mode!r}")
        if audio not in AUDIO_MODES:
            raise AvkitError(f"audio must be one of {AUDIO_MODES}, got {audio!r}")
        if num_crops not in (1, 3):
            raise AvkitError(f"num_crops must be 1 or 3, got {num_crops!r}")
        if audio_seconds is not None and audio_seconds <= 0:
            raise AvkitError(f"audio_seconds must be positive, got {audio_seconds!r}")
        if on_unreadable not in UNREADABLE_MODES:
            raise AvkitError(f"on_unreadable must be one of {UNREADABLE_MODES}, got {on_unreadable!r}")
        if missing_audio not in MISSING_AUDIO:
            raise AvkitError(f"missing_audio must be one of {MISSING_AUDIO}, got {missing_audio!r}")
        self.records, self.classes, self.source = load_records(
            source, split, format=format, format_options=format_options, allow_outside=allow_outside,
            duplicates=duplicates)
        self.split_folders = split_folders(self.source)  # the layout, for the training log
        self.missing_audio = missing_audio
        self.without_audio: list[str] = []  # videos with no audio stream (datasets that read sound)
        if audio is not None:
            self._check_audio()
        self.num_frames = int(num_frames)
        self.fps = float(fps)
        self.size = int(size)
        self.mode = mode
        self.num_clips = int(num_clips)
        self.num_crops = int(num_crops) if mode == "test" else 1
        self.pad = pad
        self.audio = audio
        self.sample_rate = int(sample_rate)
        self.audio_seconds = float(audio_seconds) if audio_seconds is not None else self.num_frames / self.fps
        self.spectrogram = spectrogram if spectrogram is not None else LogMel(sample_rate=self.sample_rate)
        if audio in ("spectrogram", "both") and self.spectrogram.sample_rate != self.sample_rate:
            raise AvkitError(f"spectrogram.sample_rate ({self.spectrogram.sample_rate}) must equal "
                             f"sample_rate ({self.sample_rate})")
        self.split = split
        self.seed = int(seed)
        self.epoch = 0
        if short_side is None:
            short_side = self.size if self.num_crops == 3 else round(self.size * 8 / 7)
        self.short_side = int(short_side)
        if transform is None:
            transform = (train_transform(self.size, self.short_side, flip=False) if mode == "train"
                         else eval_transform(self.size, self.num_crops, self.short_side))
        self.transform = transform
        self.audio_transform = audio_transform
        self.max_skips = int(max_skips)
        self.skipped: dict[str, str] = {}
        self.on_unreadable = on_unreadable
        self.cache = bool(cache)
        self._decoded: dict[int, InMemoryVideo] = {}
        # Sanity-check the sampling arguments now rather than in a worker.
        random_clip(1.0, self.num_frames, self.fps, 0, pad=self.pad)

    # -- basic facts --------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.records)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def labels(self) -> list[int]:
        """Label index of every item (for balanced samplers, class counts)."""
        return [r.label for r in self.records]

    def set_epoch(self, epoch: int) -> None:
        """Change the random draws (clip start, crop, flip) for the next pass."""
        self.epoch = int(epoch)

    def rng(self, index: int) -> np.random.Generator:
        """The generator for ``index`` this epoch: a function of ``(seed, epoch, index)`` only."""
        return np.random.default_rng([self.seed, self.epoch, int(index)])

    def __repr__(self) -> str:
        return (f"VideoDataset({str(self.source)!r}, {len(self)} videos, {self.num_classes} classes, "
                f"mode={self.mode!r}, num_frames={self.num_frames}, fps={self.fps}, size={self.size}, "
                f"audio={self.audio!r})")

    def _check_audio(self) -> None:
        """Find the videos without an audio stream and apply ``missing_audio`` to them."""
        self.without_audio = [r.path for r in self.records if has_audio_stream(r.path) is False]
        if not self.without_audio or self.missing_audio == "zeros":
            return
        base = self.source if self.source.is_dir() else self.source.parent
        names = describe_paths(self.without_audio, base)
        if self.missing_audio == "error":
            raise AvkitError(
                f"{self.source}: {len(self.without_audio)} of {len(self.records)} videos have no audio stream "
                f"({names}) and this dataset reads sound: their silence would become a class cue. Set "
                f"data.missing_audio=zeros (keep them, sound marked absent) or drop (leave them out), or give them sound "
                f"(VideoDataset: missing_audio='zeros' or 'drop')")
        silent = set(self.without_audio)
        self.records = [r for r in self.records if r.path not in silent]
        if not self.records:
            raise AvkitError(f"{self.source}: every video lacks an audio stream, and missing_audio='drop' leaves none")

    # -- items --------------------------------------------------------------------------
    def __getitem__(self, index: int) -> dict[str, Any]:
        n = len(self.records)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} videos")
        index %= n
        if self.on_unreadable == "skip":
            return self._item_or_stub(index)
        skipped_here: dict[str, str] = {}
        for attempt in range(min(n, self.max_skips + 1)):
            i = (index + attempt) % n
            path = self.records[i].path
            if path in self.skipped:
                skipped_here[path] = self.skipped[path]
                continue
            try:
                item = self.load(i)
            except _READ_ERRORS as err:
                reason = _reason(err)
                self.record_skip(path, reason)
                skipped_here[path] = reason
                continue
            item["skipped"] = json.dumps(skipped_here)
            return item
        raise AvkitError(f"{self.source}: no readable video found from index {index} after skipping "
                         f"{len(skipped_here)} file(s):\n{self.skipped_report()}")

    def _item_or_stub(self, index: int) -> dict[str, Any]:
        """Item ``index``, or for an unreadable file a stub without a clip (``on_unreadable="skip"``)."""
        rec = self.records[index]
        reason = self.skipped.get(rec.path)
        if reason is None:
            try:
                item = self.load(index)
            except _READ_ERRORS as err:
                reason = _reason(err)
                self.record_skip(rec.path, reason)
            else:
                item["skipped"] = json.dumps({})
                return item
        return {"index": index, "path": rec.path, "label": rec.label, "unreadable": reason,
                "skipped": json.dumps({rec.path: reason})}

    # -- unreadable files -------------------------------------------------------------------
    def set_on_unreadable(self, mode: str) -> None:
        """What an unreadable video's item is from now on: ``"next"`` readable one or a ``"skip"`` stub."""
        if mode not in UNREADABLE_MODES:
            raise AvkitError(f"on_unreadable must be one of {UNREADABLE_MODES}, got {mode!r}")
        self.on_unreadable = mode

    def record_skip(self, path: str, reason: str) -> None:
        """Note that ``path`` cannot be read (a warning the first time); later items do not open it again."""
        if path not in self.skipped:
            log.warning("skipping unreadable video %s: %s", path, reason)
        self.skipped[path] = reason

    def record_skips(self, skipped: Any) -> None:
        """Record what a batch (or an item) says was skipped: its ``"skipped"`` value (see :func:`skips_of`)."""
        for path, reason in skips_of(skipped).items():
            self.record_skip(path, reason)

    def load(self, index: int) -> dict[str, Any]:
        """Item ``index`` without the skip logic (raises ``MediaError`` for an unreadable file)."""
        rec = self.records[index]
        rng = self.rng(index)
        with self._open(index) as reader:
            lo, hi = self._segment(rec, reader)
            if self.mode == "train":
                windows = [_shift(random_clip(hi - lo, self.num_frames, self.fps, rng, pad=self.pad), lo)]
            else:
                windows = [_shift(w, lo) for w in
                           uniform_clips(hi - lo, self.num_frames, self.fps, self.num_clips, pad=self.pad)]
            batch = self._clip_batch(reader, windows, rng, self.transform, augment=self.mode == "train")
        item: dict[str, Any] = {"video": batch["video"].squeeze(0) if self.mode == "train" else batch["video"]}
        if self.audio is not None:
            waves = batch["audio"]
            if self.mode == "test":
                waves = waves.repeat_interleave(self.num_crops, dim=0)  # one per view
            else:
                waves = waves[0]
            if self.audio in ("waveform", "both"):
                item["audio"] = waves
            if self.audio in ("spectrogram", "both"):
                item["spectrogram"] = self.spectrogram(waves)
            item["has_audio"] = bool(batch["has_audio"][0])
        item.update(label=rec.label, index=index, path=rec.path, start=float(windows[0].start),
                    end=float(windows[-1].end), caption=rec.caption)
        return item

    def _open(self, index: int) -> VideoReader | InMemoryVideo:
        """A reader for video ``index``: a fresh ``VideoReader``, or with ``cache`` the file
        decoded into memory on first use."""
        path = self.records[index].path
        if not self.cache:
            return VideoReader(path)
        if index not in self._decoded:
            self._decoded[index] = InMemoryVideo.decode(path, size=self.short_side, sample_rate=self.sample_rate,
                                                        audio=self.audio is not None)
        return self._decoded[index]

    def _segment(self, rec: VideoRecord, reader: VideoReader | InMemoryVideo) -> tuple[float, float]:
        duration = reader.duration
        if duration is None or not duration > 0:
            raise MediaError(rec.path, "unknown or zero video duration")
        lo = rec.start or 0.0
        hi = min(rec.end, duration) if rec.end is not None else duration
        if hi <= lo:
            raise MediaError(rec.path, f"segment [{rec.start}, {rec.end}) lies outside the video "
                                       f"(duration {duration:.3f} s)")
        return lo, hi

    def _clip_batch(self, reader: VideoReader | InMemoryVideo, windows: list[ClipWindow], rng: np.random.Generator,
                    transform: Callable, augment: bool) -> dict[str, torch.Tensor]:
        """:func:`~avkit.data.batch.clip_batch` of ``windows`` with this dataset's transforms (given the
        item's generator); ``audio`` is the raw waveform per window (the spectrogram is made by the caller
        with ``self.spectrogram``). The audio transform acts only when ``augment``."""
        audio_transform = None
        if augment and self.audio_transform is not None:
            audio_transform = lambda wave: _apply(self.audio_transform, wave, rng)  # noqa: E731
        return clip_batch(reader, windows, num_frames=self.num_frames, size=self.short_side,
                          transform=lambda clip: _apply(transform, clip, rng), audio=self.audio is not None,
                          sample_rate=self.sample_rate, audio_seconds=self.audio_seconds,
                          audio_transform=audio_transform)

    # -- whole-video evaluation ------------------------------------------------------------
    def video_clips(self, index: int, *, stride: float | None = None, batch_size: int = 16,
                    transform: Callable | None = None) -> Iterator[dict[str, Any]]:
        """All clips of video ``index`` (sliding windows, default stride = clip length), in batches.

        Yields dicts with ``video [B, 3, T, size, size]`` (``[B, 3 crops, 3, T, size, size]`` for a
        three-crop test set), ``audio`` / ``spectrogram`` as configured, ``start`` / ``end``
        float64 ``[B]``, ``label``, ``path``. The transform is the test-mode one (a centre crop
        for a train-mode dataset) unless given. Raises ``MediaError`` for an unreadable file (no
        skipping: the caller asked for this video).
        """
        rec = self.records[index]
        if transform is None:
            transform = self.transform if self.mode == "test" else eval_transform(self.size, 1, self.short_side)
        rng = np.random.default_rng(0)  # unused by eval transforms; keeps custom ones deterministic
        with VideoReader(rec.path) as reader:
            lo, hi = self._segment(rec, reader)
            windows = [_shift(w, lo) for w in sliding_windows(hi - lo, self.num_frames, self.fps, stride,
                                                             pad=self.pad)]
            for b in range(0, len(windows), batch_size):
                chunk = windows[b:b + batch_size]
                batch = self._clip_batch(reader, chunk, rng, transform, augment=False)
                video = batch["video"]
                if video.shape[0] != len(chunk):  # three crops: [B, crops, 3, T, H, W]
                    video = video.unflatten(0, (len(chunk), -1))
                out: dict[str, Any] = {"video": video}
                if self.audio in ("waveform", "both"):
                    out["audio"] = batch["audio"]
                if self.audio in ("spectrogram", "both"):
                    out["spectrogram"] = self.spectrogram(batch["audio"])
                out.update(start=torch.tensor([w.start for w in chunk], dtype=torch.float64),
                           end=torch.tensor([w.end for w in chunk], dtype=torch.float64),
                           label=rec.label, path=rec.path)
                yield out

    # -- reporting and loading -----------------------------------------------------------
    def skipped_report(self) -> str:
        """A readable list of the skipped files and why (``"no videos skipped"`` when none)."""
        if not self.skipped:
            return "no videos skipped"
        lines = [f"{len(self.skipped)} of {len(self)} videos skipped (unreadable):"]
        lines += [f"  {p}: {r}" for p, r in sorted(self.skipped.items())]
        return "\n".join(lines)

    def loader(self, batch_size: int = 8, *, shuffle: bool | None = None, num_workers: int = 0,
               drop_last: bool = False, **kwargs: Any) -> SkipTrackingLoader:
        """A DataLoader with :func:`collate` whose batches' skip records land in ``self.skipped``.

        ``shuffle`` defaults to True in train mode; the shuffle order is seeded by
        ``(seed, epoch)``, so call ``set_epoch`` before each epoch.
        """
        return SkipTrackingLoader(self, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers,
                                  drop_last=drop_last, **kwargs)


class SkipTrackingLoader:
    """Iterates a ``DataLoader`` over a :class:`VideoDataset`, copying skip records into it."""

    def __init__(self, dataset: VideoDataset, *, batch_size: int, shuffle: bool | None, num_workers: int,
                 drop_last: bool, **kwargs: Any) -> None:
        self.dataset = dataset
        self.shuffle = dataset.mode == "train" if shuffle is None else shuffle
        self.options = dict(batch_size=batch_size, num_workers=num_workers, drop_last=drop_last,
                            collate_fn=collate, **kwargs)

    def __len__(self) -> int:
        n, b = len(self.dataset), self.options["batch_size"]
        return n // b if self.options["drop_last"] else math.ceil(n / b)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        ds = self.dataset
        gen = torch.Generator().manual_seed(ds.seed * 1_000_003 + ds.epoch)
        # A fresh DataLoader per pass: workers get the dataset with its current epoch.
        loader = DataLoader(ds, shuffle=self.shuffle, generator=gen, **self.options)
        for batch in loader:
            ds.record_skips(batch.get("skipped"))
            yield batch


def skips_of(value: Any) -> dict[str, str]:
    """``{path: reason}`` from an item's or a batch's ``"skipped"``: a dict (:func:`collate`), an item's
    JSON string, a list of those (PyTorch's default collate), or None."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, str):
        return json.loads(value) if value else {}
    out: dict[str, str] = {}
    for part in value:
        out.update(skips_of(part))
    return out


def _reason(err: BaseException) -> str:
    return err.reason if isinstance(err, MediaError) else f"{type(err).__name__}: {err}"


def _shift(w: ClipWindow, offset: float) -> ClipWindow:
    if offset == 0:
        return w
    return ClipWindow(w.start + offset, w.end + offset, w.times + offset)


def _apply(transform: Callable, x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    if isinstance(transform, Compose) or getattr(transform, "takes_rng", False):
        return transform(x, rng=rng)
    return transform(x)


def collate(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Batch item dicts: tensors stacked, numbers to tensors, strings as lists.

    ``"skipped"`` (path -> reason per item) becomes one merged dict for the batch (:func:`skips_of`). Keys missing
    from some items are dropped from the batch rather than guessed.
    """
    if not items:
        raise AvkitError("collate got an empty batch")
    keys = [k for k in items[0] if all(k in it for it in items)]
    out: dict[str, Any] = {}
    for k in keys:
        values = [it[k] for it in items]
        if k == "skipped":
            out[k] = skips_of(values)
        elif isinstance(values[0], torch.Tensor):
            out[k] = torch.stack(values)
        elif isinstance(values[0], bool):
            out[k] = torch.tensor(values, dtype=torch.bool)
        elif isinstance(values[0], int):
            out[k] = torch.tensor(values, dtype=torch.int64)
        elif isinstance(values[0], float):
            out[k] = torch.tensor(values, dtype=torch.float64)
        else:
            out[k] = list(values)
    return out


def collate_readable(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """:func:`collate` over the items that hold a clip, for evaluation.

    Stubs of unreadable videos (``on_unreadable="skip"``) are left out, so metrics count only
    the videos that were read; every item's ``"skipped"`` record is kept. ``"kept"`` (bool
    ``[len(items)]``) says which items are in the batch; when none is, the batch holds only
    ``"skipped"`` and ``"kept"``.
    """
    if not items:
        raise AvkitError("collate got an empty batch")
    kept = ["unreadable" not in it for it in items]
    readable = [it for it, k in zip(items, kept) if k]
    out = collate(readable) if readable else {}
    skipped: dict[str, str] = {}
    for it in items:
        skipped.update(skips_of(it.get("skipped")))
    out["skipped"] = skipped
    out["kept"] = torch.tensor(kept, dtype=torch.bool)
    return out
