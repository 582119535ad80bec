"""Deterministic procedural audio-visual datasets written as real mp4 files plus a manifest.

``generate(kind, out, num, seed, **params)`` writes ``OUT/clips/*.mp4`` (plus WAV stems for
kinds that have them), ``OUT/manifest.jsonl`` and ``OUT/classes.json`` (format in
docs/ARCHITECTURE.md). Clip ``i`` is rendered from its own random stream ``(seed, i)`` and its
class comes from a seeded shuffle of each block of ``num_classes`` clips, so it does not depend
on ``num``, the same seed gives the same files, and no index, name or order tells the class.
The dataset is rendered into a sibling temporary folder and swapped in at the end, so a crash
leaves the previous dataset whole. Kinds are listed in ``GENERATORS``; ``params`` set fields of
the kind's config dataclass (``size``, ``fps``, ``duration``, ``sample_rate``, ...). See
docs/synthetic.md.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from avkit.data.synthetic import gm_instruments, instruments, longvideo, motion
from avkit.data.synthetic.common import (
    ClassInfo,
    Generator,
    SyntheticClip,
    clip_label,
    read_wav,
    rounded,
    stratified_split,
    write_wav,
)
from avkit.errors import AvkitError, OutputExistsError
from avkit.io.write import write_video
from avkit.pool import can_fork, forked_pool
from avkit.staging import StagedOutput

GENERATORS: dict[str, Generator] = {
    g.name: g for g in (motion.GENERATOR, instruments.GENERATOR, longvideo.GENERATOR, gm_instruments.GENERATOR)
}


@dataclass
class GenerateResult:
    """What ``generate`` wrote: paths, counts and speed."""

    kind: str
    out: Path
    num: int
    classes: list[str]
    seconds: float
    config: dict[str, Any]

    @property
    def clips_per_second(self) -> float:
        return self.num / self.seconds if self.seconds > 0 else float("inf")

    @property
    def manifest(self) -> Path:
        return self.out / "manifest.jsonl"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "out": str(self.out), "manifest": str(self.manifest), "num": self.num,
                "classes": self.classes, "seconds": round(self.seconds, 3),
                "clips_per_second": round(self.clips_per_second, 2), "config": self.config}


def make_config(kind: str, **params: Any) -> Any:
    """The config dataclass of ``kind`` with ``params`` applied (unknown names raise AvkitError)."""
    gen = _generator(kind)
    fields = {f.name: f for f in dataclasses.fields(gen.config)}
    unknown = sorted(set(params) - set(fields))
    if unknown:
        raise AvkitError(f"unknown parameter(s) {unknown} for kind {kind!r}; valid: {sorted(fields)}")
    cfg = gen.config(**{k: v for k, v in params.items() if v is not None})
    _validate(cfg)
    return cfg


def _validate(cfg: Any) -> None:
    if cfg.size < 8:
        raise AvkitError(f"size must be >= 8 pixels, got {cfg.size}")
    if cfg.fps <= 0 or cfg.duration <= 0 or cfg.sample_rate < 4000:
        raise AvkitError(f"need fps > 0, duration > 0 and sample_rate >= 4000 "
                         f"(got fps={cfg.fps}, duration={cfg.duration}, sample_rate={cfg.sample_rate})")


def _generator(kind: str) -> Generator:
    if kind not in GENERATORS:
        raise AvkitError(f"unknown kind {kind!r}; choose from {sorted(GENERATORS)}")
    return GENERATORS[kind]


def render_clip(kind: str, index: int, seed: int = 0, **params: Any) -> SyntheticClip:
    """Render clip ``index`` of a dataset in memory (no files): the same clip ``generate`` writes."""
    gen = _generator(kind)
    cfg = make_config(kind, **params)
    names = [c.name for c in gen.classes(cfg)]
    return gen.render(cfg, clip_label(names, seed, index), np.random.default_rng([seed, index]))


def generate(kind: str, out: str | Path, num: int, seed: int = 0, *, overwrite: bool = False,
             val_fraction: float = 0.25, progress: Callable[[int, int], None] | None = None,
             jobs: int = 1, **params: Any) -> GenerateResult:
    """Write ``num`` clips of ``kind`` under ``out`` with a manifest; returns a ``GenerateResult``.

    Classes are balanced (each block of ``num_classes`` clips is a seeded shuffle of the classes)
    and the split is stratified (``val_fraction`` of each class is ``"val"``). A non-empty ``out``
    raises ``OutputExistsError`` unless ``overwrite``; then ``clips/``, ``classes.json`` and
    ``manifest.jsonl`` are replaced as a whole and other files are left alone. Everything is
    rendered into a temporary folder beside ``out`` first, so an exception (or a crash) before the
    final renames leaves the previous dataset untouched. ``progress(done, total)`` is called
    after each clip. ``jobs`` > 1 renders clips in that many forked processes (Linux; the files
    are the same: each clip depends only on its own random stream).
    """
    gen = _generator(kind)
    cfg = make_config(kind, **params)
    if num < 1:
        raise AvkitError(f"--num must be >= 1, got {num}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise AvkitError(f"{out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise OutputExistsError(out)
    class_infos = gen.classes(cfg)
    names = [c.name for c in class_infos]
    try:
        # The manifest is listed first: the first to go out and the last to come in, so at no moment
        # does a manifest sit next to clips it does not describe.
        staged = StagedOutput(out, entries=["manifest.jsonl", "clips", "classes.json"])
    except OSError as err:
        raise AvkitError(f"{out}: cannot write a dataset here ({err.strerror or err})") from None
    with staged:  # swapped in on success; on an exception deleted, the previous dataset untouched
        staging = staged.path
        start = time.perf_counter()
        (staging / "clips").mkdir()
        rows = []
        write = functools.partial(_write_indexed_clip, kind, cfg, seed, names, staging)
        for row in _map(write, range(num), jobs):
            rows.append(row)
            if progress is not None:
                progress(len(rows), num)
        for row, split in zip(rows, stratified_split([r["label"] for r in rows], val_fraction, seed)):
            row["split"] = split
        (staging / "classes.json").write_text(json.dumps([c.to_dict() for c in class_infos], indent=2) + "\n")
        (staging / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    seconds = time.perf_counter() - start
    return GenerateResult(kind, out, num, names, seconds, rounded(dataclasses.asdict(cfg)))


def _map(fn: Callable[[int], Any], items: range, jobs: int) -> Iterator[Any]:
    """``map(fn, items)`` in order, in ``jobs`` forked processes when that is possible."""
    if jobs <= 1 or len(items) < 2 or not can_fork():
        yield from map(fn, items)
        return
    with forked_pool(min(jobs, len(items))) as pool:
        yield from pool.imap(fn, items, what=lambda index: f"generating clip {index}")


def _write_indexed_clip(kind: str, cfg: Any, seed: int, names: list[str], root: Path, index: int) -> dict[str, Any]:
    return _write_clip(_generator(kind), cfg, kind, seed, index, clip_label(names, seed, index), root)


def _write_clip(gen: Generator, cfg: Any, kind: str, seed: int, index: int, label: str, root: Path
                ) -> dict[str, Any]:
    """Render clip ``index`` and write its mp4 (and WAV stems) under ``root``; returns its manifest row."""
    clip = gen.render(cfg, label, np.random.default_rng([seed, index]))
    rel = f"clips/{index:06d}.mp4"
    write_video(root / rel, clip.frames, cfg.fps, clip.audio, cfg.sample_rate, overwrite=True)
    meta = dict(clip.meta)
    if clip.stems:
        sources = [dict(src) for src in meta.get("sources", [{} for _ in clip.stems])]
        for k, (src, stem) in enumerate(zip(sources, clip.stems)):
            src["stem"] = f"clips/{index:06d}.s{k}.wav"
            write_wav(root / src["stem"], stem, cfg.sample_rate)
        meta["sources"] = sources
    return {
        "path": rel, "label": clip.label, "caption": clip.caption,
        "duration": rounded(len(clip.frames) / cfg.fps), "split": "train",
        "segments": rounded(clip.segments),
        "meta": rounded({"kind": kind, "seed": seed, "index": index, "fps": cfg.fps, "size": cfg.size,
                         "sample_rate": cfg.sample_rate, **meta}),
    }


def read_manifest(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a ``manifest.jsonl`` (a dataset folder is accepted too)."""
    path = Path(path)
    if path.is_dir():
        path = path / "manifest.jsonl"
    if not path.is_file():
        raise AvkitError(f"{path}: no manifest found")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


__all__ = ["GENERATORS", "GenerateResult", "generate", "make_config", "read_manifest", "read_wav", "render_clip",
           "ClassInfo", "Generator", "SyntheticClip", "clip_label"]
