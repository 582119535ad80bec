"""Shared pytest fixtures. Heavy fixtures are session-scoped and generated once per run."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
MEDIA_DIR = Path(os.environ.get("AVKIT_MEDIA_DIR", ROOT.parent / "shared" / "media"))

# CI has 2 cores; keep torch from oversubscribing them.
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session", autouse=True)
def _cache_dir(tmp_path_factory) -> None:
    """avkit's user cache (``avkit.utils.user_cache_dir``) in a folder of this test session, not the user's."""
    os.environ["AVKIT_CACHE_DIR"] = str(tmp_path_factory.mktemp("avkit_cache"))


@pytest.fixture(scope="session")
def media_dir() -> Path:
    """``../shared/media`` (real recorded clips); skips the test cleanly when absent."""
    if not (MEDIA_DIR / "video").is_dir():
        pytest.skip(f"real media folder not found at {MEDIA_DIR} (set AVKIT_MEDIA_DIR)")
    return MEDIA_DIR


def shared_videos() -> list[Path]:
    """Every file in ``../shared/media/video`` (empty list when absent), for parametrize."""
    d = MEDIA_DIR / "video"
    return sorted(p for p in d.iterdir() if p.is_file() and not p.name.endswith(".md")) if d.is_dir() else []


def shared_audio() -> list[Path]:
    d = MEDIA_DIR / "audio"
    return sorted(d.glob("*.wav")) if d.is_dir() else []


@pytest.fixture(scope="session")
def duet(tmp_path_factory) -> tuple[Path, dict]:
    """One 3 s gm_instruments duet of two different instruments (generator seed 4): its video and manifest row."""
    from avkit.data.synthetic import generate, read_manifest

    root = tmp_path_factory.mktemp("gm_duet")
    generate("gm_instruments", root / "d", 1, seed=4, duets=1.0, duration=3.0)
    row = read_manifest(root / "d")[0]
    return root / "d" / row["path"], row
