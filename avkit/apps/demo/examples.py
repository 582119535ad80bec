"""The example clips shipped with avkit (top-level ``assets/examples/``, installed as ``avkit.assets``), so
``avkit demo`` has something to show on a fresh install. They are made by avkit's own generators
(:func:`make_examples`), never copied media."""
from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Example:
    """One shipped clip: its file name, what it shows, and the generator call that makes it."""

    name: str
    title: str
    kind: str
    seed: int
    params: dict[str, Any] = field(default_factory=dict)


# Small on purpose (the package carries them): a few seconds each at the generators' small sizes.
EXAMPLES = (
    Example("duet.mp4", "two instruments playing (Separate)", "gm_instruments", 4,
            {"duets": 1.0, "duration": 4.0, "size": 96}),
    Example("motion.mp4", "a moving object (Classify, as the quickstart's runs see it)", "motion", 1,
            {"duration": 3.0, "size": 64}),
    Example("long.mp4", "a long video with a few sounded actions (Select)", "longvideo", 2,
            {"duration": 16.0, "size": 32}),
)


def examples_dir() -> Path:
    """``examples/`` of the installed ``avkit.assets`` package, or of the source tree's ``assets/``."""
    import importlib.util

    spec = importlib.util.find_spec("avkit.assets")
    if spec is not None and spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0]) / "examples"
    return Path(__file__).resolve().parents[3] / "assets" / "examples"


def example_path(name: str) -> Path:
    """The shipped example ``name`` (e.g. ``"duet.mp4"``)."""
    return examples_dir() / name


def make_examples(out: str | Path | None = None) -> list[Path]:
    """Render :data:`EXAMPLES` with avkit's generators into ``out`` (default: :func:`examples_dir`); the
    files are replaced one by one (atomic renames). Returns the written paths."""
    from avkit.data.synthetic import generate

    out = Path(out) if out is not None else examples_dir()
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory(prefix=".avkit-examples-", dir=out) as tmp:
        for ex in EXAMPLES:
            res = generate(ex.kind, Path(tmp) / ex.name, 1, seed=ex.seed, val_fraction=0.0, **ex.params)
            clip = next((res.out / "clips").glob("*.mp4"))
            shutil.move(str(clip), str(Path(tmp) / f"{ex.name}.part"))
            (Path(tmp) / f"{ex.name}.part").replace(out / ex.name)
            written.append(out / ex.name)
    return written
