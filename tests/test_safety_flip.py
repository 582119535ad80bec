"""No horizontal flip unless asked for: a mirror turns move_left into move_right (and cw into ccw)
without changing the label, so recipes and VideoDataset that do not mention flip never mirror."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from avkit.data import VideoDataset, train_transform
from avkit.engine.build import build_dataset
from avkit.engine.config import DataConfig, load_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def left_bright(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One clip whose left half is bright and right half dark, in a manifest."""
    from avkit.io.write import write_video

    d = tmp_path_factory.mktemp("flip")
    frames = np.full((8, 32, 40, 3), 20, np.uint8)
    frames[:, :, :20] = 230
    write_video(d / "clip.mp4", frames, 4.0)
    (d / "manifest.jsonl").write_text(json.dumps({"path": "clip.mp4", "label": "left"}) + "\n")
    return d / "manifest.jsonl"


def _mirrored(dataset, epochs: int = 12) -> list[bool]:
    """For each epoch's random draw: is the bright half on the right (the clip was mirrored)?"""
    out = []
    for epoch in range(epochs):
        dataset.set_epoch(epoch)
        video = dataset[0]["video"]  # [3, T, H, W]
        w = video.shape[-1]
        out.append(bool(video[..., : w // 2].mean() < video[..., w // 2:].mean()))
    return out


def test_recipe_without_flip_never_mirrors(left_bright: Path) -> None:
    cfg = DataConfig(source=str(left_bright), num_frames=2, fps=4.0, size=16, augment=True)
    assert cfg.flip is False
    assert not any(_mirrored(build_dataset(cfg, "", train=True)))
    cfg.flip = True  # asked for: half the draws or so are mirrored (the check above can see one)
    assert any(_mirrored(build_dataset(cfg, "", train=True)))


def test_video_dataset_default_never_mirrors(left_bright: Path) -> None:
    kw = dict(num_frames=2, fps=4.0, size=16)
    assert not any(_mirrored(VideoDataset(left_bright, **kw)))
    assert any(_mirrored(VideoDataset(left_bright, **kw, transform=train_transform(16, flip=True))))


@pytest.mark.parametrize("recipe", sorted(p.name for p in (ROOT / "recipes").glob("motion_*.yaml")))
def test_motion_recipes_do_not_flip(recipe: str) -> None:
    assert load_config(ROOT / "recipes" / recipe).data.flip is False
