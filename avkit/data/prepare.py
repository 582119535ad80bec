"""``prepare``: cut, resize and re-encode a corpus into short clips that train fast.

Originals are often large (1080p), with a keyframe every 5-10 s: every training clip then decodes
from the keyframe before it, several seconds of full-size frames for 8 small ones. A prepared clip
is H.264 at the training resolution (``short_side``), at a constant ``fps``, with a keyframe every
``keyframe_interval`` seconds, so a random clip decodes little; the sound is kept (mono AAC).

Input: any dataset source :func:`~avkit.data.dataset.load_records` reads (an avkit manifest, class
folders, a standard layout). Each record becomes one clip (its ``[start, end)`` segment, or the
whole video), or with ``clip_seconds`` consecutive clips of that length (a last piece shorter than
half of it is left out). Output in ``OUT``: ``clips/*.mp4``, ``manifest.jsonl`` (the records'
label, split, caption, segments moved into clip time, and ``meta.source`` / ``source_start`` /
``source_end``), ``classes.json``, ``errors.jsonl`` (sources that could not be read, with the
reason) and ``prepare.json`` (settings and counts). The manifest and the lists are written
atomically at the end; each clip appears atomically when it is complete.

Resumable: a clip's file name holds a key of its source (path, size, modification time), its span
and the settings, so a rerun (after a kill, or with more sources) encodes only the clips not there
yet, and changed settings or a changed source make new clips. Work runs in forked processes
(``jobs``); a failure in a worker is an error row, never a hang or a lost run.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from avkit.data.dataset import VideoRecord, load_records
from avkit.data.formats import FormatOptions
from avkit.errors import AvkitError
from avkit.pool import can_fork, forked_pool
from avkit.utils import atomic_write_json, atomic_write_text, remove_stale_temps

CHUNK_SECONDS = 2.0  # frames decoded and encoded at a time (bounds memory for long videos)


@dataclass(frozen=True)
class PrepareSettings:
    """How clips are made. Zeros keep the source's value (its short side, frame rate, sample rate)."""

    short_side: int = 256  # pixels of the shorter side (aspect kept)
    fps: float = 0.0  # frames per second, constant
    keyframe_interval: float = 0.5  # seconds between keyframes: the most a clip read decodes before its start
    clip_seconds: float = 0.0  # cut each record into clips this long (0: one clip per record)
    sample_rate: int = 0  # Hz of the mono sound
    crf: int = 20  # x264 quality (lower: better, larger)
    preset: str = "veryfast"  # x264 speed

    def check(self) -> None:
        if self.short_side < 0 or self.fps < 0 or self.clip_seconds < 0 or self.sample_rate < 0:
            raise AvkitError("prepare: short side, fps, clip seconds and sample rate must be >= 0 (0 = the source's)")
        if not self.keyframe_interval > 0:
            raise AvkitError(f"prepare: the keyframe interval must be > 0 seconds, got {self.keyframe_interval}")
        if not 0 <= self.crf <= 51:
            raise AvkitError(f"prepare: crf must be in 0..51, got {self.crf}")


@dataclass
class PrepareResult:
    """What a run did: clips listed, encoded now, found done from an earlier run, and the errors."""

    out: Path
    manifest: Path
    clips: int
    encoded: int
    reused: int
    errors: list[dict[str, str]]
    seconds: float
    settings: PrepareSettings
    sources: int = 0
    stale: list[str] = field(default_factory=list)  # clips in OUT/clips that the manifest no longer lists

    def to_dict(self) -> dict[str, Any]:
        return {"out": str(self.out), "manifest": str(self.manifest), "sources": self.sources, "clips": self.clips,
                "encoded": self.encoded, "reused": self.reused, "errors": self.errors,
                "seconds": round(self.seconds, 3), "settings": dataclasses.asdict(self.settings),
                "stale": self.stale}


def prepare(source: str | Path, out: str | Path, settings: PrepareSettings | None = None, *, jobs: int = 1,
            format: str = "auto", format_options: FormatOptions | None = None, allow_outside: bool = False,
            progress: Callable[[int, int], None] | None = None) -> PrepareResult:
    """Prepare every record of ``source`` into ``out`` (see the module docstring); ``progress(done,
    total)`` after each source video."""
    settings = settings or PrepareSettings()
    settings.check()
    start_time = time.perf_counter()
    records, classes, manifest_in = load_records(source, format=format, format_options=format_options,
                                                 allow_outside=allow_outside, duplicates="drop")
    out = Path(out)
    _check_out(out)
    (out / "clips").mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out / "clips")
    task = _Task(out, settings, classes, threads=1 if jobs > 1 else 0)
    rows: list[dict[str, Any]] = []
    errors: list[dict[str, str]] = []
    encoded = reused = 0
    for done, part in enumerate(_map(task, records, jobs), 1):
        rows += part["rows"]
        errors += part["errors"]
        encoded += part["encoded"]
        reused += part["reused"]
        if progress is not None:
            progress(done, len(records))
    listed = {row["path"] for row in rows}
    stale = sorted(f"clips/{p.name}" for p in (out / "clips").glob("*.mp4") if f"clips/{p.name}" not in listed)
    atomic_write_text(out / "manifest.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    atomic_write_json(out / "classes.json", classes)
    atomic_write_text(out / "errors.jsonl", "".join(json.dumps(e) + "\n" for e in errors))
    seconds = time.perf_counter() - start_time
    result = PrepareResult(out, out / "manifest.jsonl", len(rows), encoded, reused, errors, seconds, settings,
                           sources=len(records), stale=stale)
    atomic_write_json(out / "prepare.json", {"source": str(manifest_in), **result.to_dict()})
    return result


def _check_out(out: Path) -> None:
    """``out`` may be absent, empty or an earlier ``prepare`` output (resumed); nothing else is written into."""
    if out.exists() and not out.is_dir():
        raise AvkitError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / "prepare.json").is_file() and not (out / "clips").is_dir():
        raise AvkitError(f"{out}: not empty and not an avkit prepare output (choose an empty or new folder)")


def _map(task: _Task, records: list[VideoRecord], jobs: int) -> Iterator[dict[str, Any]]:
    """``task`` over ``records`` in order, in ``jobs`` forked processes when possible."""
    if jobs <= 1 or len(records) < 2 or not can_fork():
        yield from map(task, records)
        return
    with forked_pool(min(jobs, len(records)), initializer=_one_thread) as pool:
        yield from pool.imap(task, records, what=lambda record: f"preparing {record.path}")


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


@dataclass
class _Task:
    """Prepare one record (picklable, so a forked pool can run it); never raises: errors become rows."""

    out: Path
    settings: PrepareSettings
    classes: list[str]
    threads: int

    def __call__(self, record: VideoRecord) -> dict[str, Any]:
        result: dict[str, Any] = {"rows": [], "errors": [], "encoded": 0, "reused": 0}
        try:
            self._prepare(record, result)
        except Exception as err:  # any failure of one source is its error row; the run goes on
            reason = getattr(err, "reason", None) or f"{type(err).__name__}: {err}"
            result["errors"].append({"source": record.path, "error": str(reason).splitlines()[0]})
        return result

    def _prepare(self, record: VideoRecord, result: dict[str, Any]) -> None:
        from avkit.io.read import VideoReader

        stat = os.stat(record.path)
        with VideoReader(record.path, threads=self.threads) as reader:
            duration = reader.duration
            if reader.video is None:
                raise AvkitError(f"{record.path}: no video stream")
            if duration is None or not duration > 0:
                raise AvkitError(f"{record.path}: unknown or zero duration")
            lo = record.start or 0.0
            hi = min(record.end, duration) if record.end is not None else duration
            if hi <= lo:
                raise AvkitError(f"segment [{lo}, {record.end}) lies outside the video ({duration:.2f} s)")
            fps = self.settings.fps or reader.fps or 25.0
            sample_rate = self.settings.sample_rate or (reader.audio.codec_context.sample_rate if reader.audio else 0)
            for s, e in _pieces(lo, hi, self.settings.clip_seconds):
                key = _key(record.path, stat, s, e, self.settings)
                rel = f"clips/{_safe_stem(record.path)}-{key}.mp4"
                if (self.out / rel).is_file():
                    result["reused"] += 1
                else:
                    self._encode(reader, s, e, fps, sample_rate, self.out / rel)
                    result["encoded"] += 1
                result["rows"].append(self._row(record, rel, s, e, fps))

    def _encode(self, reader: Any, start: float, end: float, fps: float, sample_rate: int, path: Path) -> None:
        """Frames at ``start + k / fps`` in ``[start, end)`` and the sound of that span into ``path``."""
        from avkit.io.write import open_video_writer

        n = max(1, math.ceil((end - start) * fps - 1e-6))
        audio = None
        if reader.audio is not None and sample_rate:
            audio = reader.read_audio(start, start + n / fps, sample_rate=sample_rate).numpy()
        settings = self.settings
        size = settings.short_side or None
        gop = max(1, round(settings.keyframe_interval * fps))
        per_chunk = max(1, int(CHUNK_SECONDS * fps))
        with open_video_writer(path, fps, audio, sample_rate or None, overwrite=True, crf=settings.crf,
                               preset=settings.preset, gop=gop, threads=self.threads or None) as writer:
            for k in range(0, n, per_chunk):
                times = [start + j / fps for j in range(k, min(n, k + per_chunk))]
                frames, _ = reader.frames_at(times, size=size)
                writer.write(frames.numpy())

    def _row(self, record: VideoRecord, rel: str, start: float, end: float, fps: float) -> dict[str, Any]:
        n = max(1, math.ceil((end - start) * fps - 1e-6))
        segments = [{**seg, "start": round(max(seg["start"], start) - start, 4),
                     "end": round(min(seg["end"], end) - start, 4)}
                    for seg in record.segments if seg["end"] > start and seg["start"] < end]
        row: dict[str, Any] = {"path": rel, "label": self.classes[record.label], "duration": round(n / fps, 4)}
        if record.split is not None:
            row["split"] = record.split
        if record.caption:
            row["caption"] = record.caption
        if segments:
            row["segments"] = segments
        row["meta"] = {**record.meta, "source": record.path, "source_start": round(start, 4),
                       "source_end": round(end, 4), "fps": fps}
        return row


def _pieces(lo: float, hi: float, length: float) -> list[tuple[float, float]]:
    """``[lo, hi)`` whole, or cut into ``length``-second pieces (a last one under half a length dropped,
    unless it is the only one)."""
    if not length or hi - lo <= length:
        return [(lo, hi)]
    count = int((hi - lo) // length)
    pieces = [(lo + k * length, lo + (k + 1) * length) for k in range(count)]
    rest = lo + count * length
    if hi - rest >= length / 2:
        pieces.append((rest, hi))
    return pieces


def _key(path: str, stat: os.stat_result, start: float, end: float, settings: PrepareSettings) -> str:
    """12 hex digits naming a clip: its source (path, size, modification time), span and settings."""
    facts = {"source": os.path.abspath(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
             "start": round(start, 6), "end": round(end, 6), "settings": dataclasses.asdict(settings)}
    return hashlib.sha1(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:12]


def _safe_stem(path: str) -> str:
    """The source's file name without suffix, in characters safe in any file system (at most 60)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", Path(path).stem)[:60] or "clip"


__all__ = ["PrepareResult", "PrepareSettings", "prepare"]
