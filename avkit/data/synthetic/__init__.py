"""Deterministic procedural audio-visual datasets written as real mp4 files plus a manifest.

``generate(kind, out, num, seed, **params)`` writes ``OUT/clips/*.mp4``, ``OUT/manifest.jsonl``
and ``OUT/classes.json`` (format in docs/ARCHITECTURE.md). Clip ``i`` is rendered from its own
random stream ``(seed, i)``, so it does not depend on ``num`` and the same seed gives the same
files. Kinds are listed in ``GENERATORS``; ``params`` set fields of the kind's config dataclass
(``size``, ``fps``, ``duration``, ``sample_rate``, ...). See docs/synthetic.md.
"""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from avkit.data.synthetic import instruments, longvideo, motion
from avkit.data.synthetic.common import ClassInfo, Generator, SyntheticClip, rounded, stratified_split
from avkit.errors import AvkitError, OutputExistsError
from avkit.io.write import write_video
from avkit.utils import atomic_write_json, atomic_write_text

GENERATORS: dict[str, Generator] = {
    g.name: g for g in (motion.GENERATOR, instruments.GENERATOR, longvideo.GENERATOR)
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
    return gen.render(cfg, names[index % len(names)], np.random.default_rng([seed, index]))


def generate(kind: str, out: str | Path, num: int, seed: int = 0, *, overwrite: bool = False,
             val_fraction: float = 0.25, progress: Callable[[int, int], None] | None = None,
             **params: Any) -> GenerateResult:
    """Write ``num`` clips of ``kind`` under ``out`` with a manifest; returns a ``GenerateResult``.

    Classes are balanced (clip ``i`` has class ``i % num_classes``) and the split is stratified
    (``val_fraction`` of each class is ``"val"``). A non-empty ``out`` raises
    ``OutputExistsError`` unless ``overwrite``; then stale clips from a previous run are removed.
    ``progress(done, total)`` is called after each clip.
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
    clips_dir = out / "clips"
    clips_dir.mkdir(parents=True, exist_ok=True)

    start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for i in range(num):
        label = names[i % len(names)]
        clip = gen.render(cfg, label, np.random.default_rng([seed, i]))
        rel = f"clips/{i:06d}.mp4"
        write_video(out / rel, clip.frames, cfg.fps, clip.audio, cfg.sample_rate, overwrite=True)
        rows.append({
            "path": rel, "label": clip.label, "caption": clip.caption,
            "duration": rounded(len(clip.frames) / cfg.fps), "split": "train",
            "segments": rounded(clip.segments),
            "meta": rounded({"kind": kind, "seed": seed, "index": i, "fps": cfg.fps, "size": cfg.size,
                             "sample_rate": cfg.sample_rate, **clip.meta}),
        })
        if progress is not None:
            progress(i + 1, num)
    for row, split in zip(rows, stratified_split([r["label"] for r in rows], val_fraction, seed)):
        row["split"] = split

    keep = {Path(r["path"]).name for r in rows}
    for stale in clips_dir.glob("*.mp4"):
        if stale.name not in keep:
            stale.unlink()
    atomic_write_json(out / "classes.json", [c.to_dict() for c in class_infos])
    atomic_write_text(out / "manifest.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    seconds = time.perf_counter() - start
    return GenerateResult(kind, out, num, names, seconds, rounded(dataclasses.asdict(cfg)))


def read_manifest(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a ``manifest.jsonl`` (a dataset folder is accepted too)."""
    path = Path(path)
    if path.is_dir():
        path = path / "manifest.jsonl"
    if not path.is_file():
        raise AvkitError(f"{path}: no manifest found")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


__all__ = ["GENERATORS", "GenerateResult", "generate", "make_config", "read_manifest", "render_clip",
           "ClassInfo", "Generator", "SyntheticClip"]
