"""Clips with captions for the captioner: records from generator manifests, the dataset, the tokenizer.

**Records.** :func:`read_caption_records` turns a dataset folder (or ``manifest.jsonl``) written
by ``avkit generate`` into one :class:`CaptionRecord` per captioned clip:

- ``motion`` and ``instruments`` rows: the whole clip with the row's ``caption``;
- ``longvideo`` rows: one record per *visible* action segment (``meta.segments``, silent actions
  included), from the segment's start, with the segment's own caption (``meta.segments[k].caption``)
  without its time prefix, which gives times in the long video
  (``"12.3-13.8 s: a chime, then a red bar slides left ..."`` -> ``"A chime, then a red bar slides
  left ..."``). Sound-only distractors have nothing to see and are not clips.

Each record keeps its attribute truth (:func:`avkit.apps.captioning.metrics.truth_attributes`), so
evaluation compares parsed captions with the manifest's metadata.

**Held-out combinations.** A generator caption is a template filled in with the clip's attributes,
so held-out clips of the same generator mostly repeat training captions word for word. With
``task_options.hold_out: N`` the captioner trains on none of the clips whose visual combination
(:func:`combination`: object, colour, motion) is among about 1 in N of all combinations
(:func:`held_out`, a fixed hash: a red triangle sliding left is left out whatever the seed), so
the test clips of those combinations ask for captions it has never seen whole.

**Clips.** :class:`CaptionDataset` reads ``data.num_frames`` frames at ``data.fps`` (the engine's
transforms: random crop in training, centre crop otherwise) and the waveform of the same window.
A whole-clip record uses a random window in training and the centre window otherwise; a segment
record always starts at the segment's start, where its chime is. ``data.cache`` decodes each file
once (shared by all the segments of a long video).

**Tokenizer.** :func:`build_tokenizer`: a word-level ``tokenizers`` model (lower-cased, split at
whitespace and punctuation) over the training captions and the prompt, with ``<pad> <bos> <eos>
<unk>``, wrapped as a ``PreTrainedTokenizerFast`` so it saves and loads with ``save_pretrained``.
:func:`detokenize` turns its decoded text back into a sentence.
"""
from __future__ import annotations

import re
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from avkit.apps.captioning.metrics import TIME_PREFIX, truth_attributes
from avkit.data.jsonl import manifest_file, read_jsonl
from avkit.errors import AvkitError

SPECIAL_TOKENS = {"pad_token": "<pad>", "bos_token": "<bos>", "eos_token": "<eos>", "unk_token": "<unk>"}


@dataclass(frozen=True)
class CaptionRecord:
    """One captioned clip: a file, the part of it to look at, its caption and attribute truth."""

    path: str  # absolute
    caption: str
    start: float = 0.0  # seconds
    end: float | None = None  # None = the end of the file
    anchor: str = "random"  # "random": any window inside [start, end) in training, the centre otherwise; "start"
    kind: str = ""  # generator kind (motion, longvideo, instruments) or ""
    label: str = ""
    split: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    source: str = ""  # the manifest
    row: int = 0  # line of the manifest (0-based, non-empty lines)
    segment: int | None = None  # longvideo: index into meta.segments

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "caption": self.caption, "start": self.start, "end": self.end,
                "kind": self.kind, "label": self.label, "split": self.split, "attributes": self.attributes,
                "source": self.source, "row": self.row, "segment": self.segment}


def clip_caption(text: str) -> str:
    """A segment caption without its time prefix, starting with a capital letter."""
    text = TIME_PREFIX.sub("", text).strip()
    return text[:1].upper() + text[1:]


def _manifest(source: str | Path) -> Path:
    path = manifest_file(source, "make one with 'avkit generate motion|longvideo|instruments'")
    if path.suffix.lower() != ".jsonl":
        raise AvkitError(f"{path}: the captioner reads generator manifests (.jsonl)")
    return path


def read_caption_records(source: str | Path, split: str | None = None) -> list[CaptionRecord]:
    """Captioned clips of a generator dataset (module docstring); ``split`` filters the rows."""
    path = _manifest(source)
    records: list[CaptionRecord] = []
    for i, (n, row) in enumerate(read_jsonl(path)):
        if split and row.get("split") != split:
            continue
        if "path" not in row:
            raise AvkitError(f"{path}: line {n} has no path")
        file = Path(row["path"])
        file = file if file.is_absolute() else path.parent / file
        meta = row.get("meta") or {}
        kind = str(meta.get("kind") or "")
        common: dict[str, Any] = {"path": str(file), "kind": kind, "label": str(row.get("label", "")), "split": row.get("split"),
                  "source": str(path), "row": i}
        if kind == "longvideo":
            for k, seg in enumerate(meta.get("segments") or []):
                records.append(CaptionRecord(caption=clip_caption(seg["caption"]), start=float(seg["start"]),
                                             end=float(seg["end"]), anchor="start", segment=k,
                                             attributes=_truth(row, k), **common))
            continue
        caption = str(row.get("caption") or "")
        if not caption:
            raise AvkitError(f"{path}: line {i + 1} has no caption")
        start = float(row["start"]) if row.get("start") is not None else 0.0
        end = float(row["end"]) if row.get("end") is not None else None
        records.append(CaptionRecord(caption=caption, start=start, end=end, attributes=_truth(row, None), **common))
    if not records:
        raise AvkitError(f"{path}: no captioned clips" + (f" in split {split!r}" if split else ""))
    return records


def _truth(row: dict[str, Any], segment: int | None) -> dict[str, Any]:
    if not (row.get("meta") or {}).get("kind"):
        return {}
    try:
        return truth_attributes(row, segment)
    except (KeyError, TypeError, ValueError):
        return {}


def combination(record: CaptionRecord) -> tuple[str, ...] | None:
    """What the caption says the clip shows: ``(object, colour, motion)`` from its attribute truth
    (motion ``""`` for a static object); None for a record without truth (not a generator clip)."""
    a = record.attributes
    if not a or a.get("object") is None:
        return None
    return str(a.get("object")), str(a.get("colour")), str(a.get("motion") or "")


def held_out(record: CaptionRecord, every: int) -> bool:
    """Whether ``record``'s combination is one of about 1 in ``every`` left out of training
    (module docstring); the choice is a hash of the combination, the same in every dataset and run.
    ``every`` 0 holds nothing out."""
    combo = combination(record)
    if every <= 0 or combo is None:
        return False
    return zlib.crc32("|".join(combo).encode()) % every == 0


def read_sources(sources: Sequence[str], split: str | None, *, allow_empty: bool = False) -> list[CaptionRecord]:
    """Records of several datasets, in order. ``allow_empty``: a dataset with no row in ``split``
    adds nothing (a small validation split may miss one of them) instead of raising."""
    out: list[CaptionRecord] = []
    for s in sources:
        try:
            out += read_caption_records(s, split)
        except AvkitError as err:
            if not (allow_empty and "no captioned clips" in str(err)):
                raise
    return out


# ---------------------------------------------------------------------------------------------
# dataset


class CaptionDataset(Dataset):
    """Items ``{"video" [3,T,H,W], "audio" [S] (when asked), "caption", "index"}`` of records.

    ``data`` is the recipe's ``data`` section (frames, fps, size, crops, sample rate, cache);
    ``train`` picks the training transform and random windows. ``media=False`` gives captions
    only (language-model pre-training).
    """

    def __init__(self, records: Sequence[CaptionRecord], data: Any, *, train: bool, audio: bool = False,
                 media: bool = True, seed: int = 0) -> None:
        from avkit.engine.build import clip_transform, short_side_of

        if not records:
            raise AvkitError("no captioned clips")
        self.records = list(records)
        self.data = data
        self.train = bool(train)
        self.audio = bool(audio)
        self.media = bool(media)
        self.seed = int(seed)
        self.epoch = 0
        self.short_side = short_side_of(data, 1)
        self.transform = clip_transform(data, train=self.train, num_crops=1)
        self.num_frames = int(data.num_frames)
        self.fps = float(data.fps)
        self.sample_rate = int(data.sample_rate)
        self.cache = bool(getattr(data, "cache", False))
        self._decoded: dict[str, Any] = {}  # path -> InMemoryVideo (data.cache)
        self._windows: dict[int, tuple[torch.Tensor, Any]] = {}  # fixed-window records (data.cache)
        self.mode = "train" if train else "eval"

    def __len__(self) -> int:
        return len(self.records)

    @property
    def captions(self) -> list[str]:
        return [r.caption for r in self.records]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _reader(self, path: str) -> Any:
        from avkit.io import VideoReader
        from avkit.io.in_memory import InMemoryVideo

        if not self.cache:
            return VideoReader(path)
        if path not in self._decoded:
            self._decoded[path] = InMemoryVideo.decode(path, size=self.short_side, sample_rate=self.sample_rate,
                                                       audio=self.audio)
        return self._decoded[path]

    def window(self, rec: CaptionRecord, duration: float, rng: np.random.Generator) -> Any:
        """The frames' window of ``rec`` in a file of ``duration`` seconds."""
        return clip_window(rec, duration, self.num_frames, self.fps, train=self.train, rng=rng)

    def __getitem__(self, index: int) -> dict[str, Any]:
        rec = self.records[index]
        item: dict[str, Any] = {"caption": rec.caption, "index": int(index)}
        if not self.media:
            return item
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        if self.cache and rec.anchor == "start":  # a fixed window: keep just its frames and sound
            if index not in self._windows:
                from avkit.io import VideoReader

                self._windows[index] = self._read(rec, VideoReader(rec.path), rng)
            frames, wave = self._windows[index]
        else:
            frames, wave = self._read(rec, self._reader(rec.path), rng)
        item["video"] = _apply(self.transform, frames, rng)
        if wave is not None:
            item["audio"] = wave
        return item

    def _read(self, rec: CaptionRecord, reader: Any, rng: np.random.Generator) -> tuple[torch.Tensor, Any]:
        """The frames ``uint8 [T, H, W, 3]`` and sound of ``rec``'s window, untransformed: the training
        transform draws its random crop from the item's ``rng`` afterwards (and cached windows are
        transformed anew every epoch)."""
        from avkit.data.batch import clip_batch
        from avkit.errors import MediaError

        with reader as r:
            duration = r.duration
            if duration is None or not duration > 0:
                raise MediaError(rec.path, "unknown or zero video duration")
            w = self.window(rec, float(duration), rng)
            batch = clip_batch(r, [w], num_frames=self.num_frames, size=self.short_side, transform=lambda clip: clip,
                               audio=self.audio, sample_rate=self.sample_rate,
                               audio_seconds=self.num_frames / self.fps)
        return batch["video"][0], batch["audio"][0] if self.audio else None


def clip_window(rec: CaptionRecord, duration: float, num_frames: int, fps: float, *, train: bool = False,
                rng: np.random.Generator | None = None) -> Any:
    """The ``ClipWindow`` of ``num_frames`` at ``fps`` that ``rec`` is seen through: from its start
    (``anchor="start"``), else random inside ``[start, end)`` in training and centred otherwise."""
    from avkit.data.sampling import clip_at, random_clip, uniform_clips
    from avkit.errors import MediaError

    lo = rec.start or 0.0
    hi = min(rec.end, duration) if rec.end is not None else duration
    if hi <= lo:
        raise MediaError(rec.path, f"[{rec.start}, {rec.end}) lies outside the video ({duration:.3f} s)")
    if rec.anchor == "start":
        return clip_at(lo, duration, num_frames, fps)
    if train:
        w = random_clip(hi - lo, num_frames, fps, rng if rng is not None else np.random.default_rng(0))
    else:
        w = uniform_clips(hi - lo, num_frames, fps, 1)[0]
    return clip_at(lo + w.start, duration, num_frames, fps)


def _apply(transform: Any, frames: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    from avkit.data.transforms import Compose

    if isinstance(transform, Compose) or getattr(transform, "takes_rng", False):
        return transform(frames, rng=rng)
    return transform(frames)


# ---------------------------------------------------------------------------------------------
# tokenizer


def build_tokenizer(texts: Sequence[str], min_count: int = 1) -> Any:
    """A word-level ``PreTrainedTokenizerFast`` over ``texts`` (module docstring).

    Ids: ``<pad>`` 0, ``<bos>`` 1, ``<eos>`` 2, ``<unk>`` 3, then the words by decreasing count
    (ties alphabetical), so the same texts always give the same ids.
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    normalizer = normalizers.Lowercase()
    pre = pre_tokenizers.Whitespace()
    counts: Counter = Counter()
    for t in texts:
        counts.update(w for w, _ in pre.pre_tokenize_str(normalizer.normalize_str(t)))
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS.values())}
    for word, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        if n >= min_count and word not in vocab:
            vocab[word] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab, unk_token=SPECIAL_TOKENS["unk_token"]))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre
    return PreTrainedTokenizerFast(tokenizer_object=tok, **SPECIAL_TOKENS)


_SPACE_BEFORE = re.compile(r"\s+([,.;:!?)])")
_SPACE_AFTER = re.compile(r"([(])\s+")
_HYPHEN = re.compile(r"\s*-\s*")


def detokenize(text: str) -> str:
    """``"a red bar slides left , with a tick ."`` -> ``"A red bar slides left, with a tick."``."""
    text = " ".join(text.split())
    text = _SPACE_BEFORE.sub(r"\1", text)
    text = _SPACE_AFTER.sub(r"\1", text)
    text = _HYPHEN.sub("-", text)
    text = re.sub(r"(\d)\s*\.\s*(\d)", r"\1.\2", text)
    return text[:1].upper() + text[1:]
