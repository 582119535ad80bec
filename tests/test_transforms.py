"""Clip transforms act identically on every frame; crops land where the recipe says."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from avkit.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    CenterCrop,
    Compose,
    HorizontalFlip,
    Normalize,
    RandomCrop,
    RandomHorizontalFlip,
    ResizeShortSide,
    ThreeCrop,
    ToFloat,
    eval_transform,
    train_transform,
)
from avkit.errors import AvkitError


def _image(h: int, w: int, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def _coords(t: int, h: int, w: int) -> torch.Tensor:
    """Frames whose pixels encode their own (row, col) so crops can be located exactly."""
    rows = torch.arange(h).view(h, 1).expand(h, w)
    cols = torch.arange(w).view(1, w).expand(h, w)
    img = torch.stack([rows, cols, torch.zeros_like(rows)], dim=-1).to(torch.uint8)
    return img.expand(t, h, w, 3).clone()


def test_random_transforms_identical_on_every_frame():
    clip = _image(40, 52).expand(8, 40, 52, 3).contiguous()  # one image repeated over T
    tf = train_transform(32)
    rng = np.random.default_rng(0)
    outs = [tf(clip, rng) for _ in range(6)]
    for out in outs:
        assert out.shape == (3, 8, 32, 32) and out.dtype == torch.float32
        assert torch.equal(out, out[:, :1].expand_as(out))  # constant across T
    # The random draws differ between calls (crop position and/or flip), not between frames.
    assert any(not torch.equal(outs[0], o) for o in outs[1:])


def test_random_crop_same_window_for_all_frames_of_moving_clip():
    clip = _coords(4, 30, 30)
    clip[:, :, :, 2] = torch.arange(4, dtype=torch.uint8).view(4, 1, 1)  # frame index in channel 2
    out = RandomCrop(10)(clip, rng=np.random.default_rng(3))
    assert out.shape == (4, 10, 10, 3)
    assert torch.equal(out[..., :2], out[:1, ..., :2].expand(4, 10, 10, 2))
    assert torch.equal(out[:, 0, 0, 2], torch.arange(4, dtype=torch.uint8))


def test_compose_is_deterministic_for_a_seed():
    clip = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (4, 40, 50, 3), dtype=np.uint8))
    tf = train_transform(24)
    assert torch.equal(tf(clip, 5), tf(clip, 5))
    outs = {tf(clip, s).sum().item() for s in range(8)}
    assert len(outs) > 1


def test_flip_mirrors_columns():
    clip = _coords(2, 6, 9)
    out = RandomHorizontalFlip(p=1.0)(clip, rng=0)
    assert out[0, 0, 0, 1] == 8 and out[1, 3, 8, 1] == 0
    assert torch.equal(RandomHorizontalFlip(p=0.0)(clip, rng=0), clip)
    assert torch.equal(HorizontalFlip()(clip), out)


def test_three_crop_positions_landscape_and_portrait():
    land = ThreeCrop(20)(_coords(3, 20, 50))
    assert land.shape == (3, 3, 20, 20, 3)
    assert [int(v[0, 0, 0, 1]) for v in land] == [0, 15, 30]  # left, centre, right
    assert all(int(v[0, 0, 0, 0]) == 0 for v in land)
    port = ThreeCrop(20)(_coords(3, 50, 20))
    assert [int(v[0, 0, 0, 0]) for v in port] == [0, 15, 30]  # top, centre, bottom
    # Three crops of a resized frame cover its long side end to end.
    assert int(land[2, 0, 0, -1, 1]) == 49


def test_center_crop_position():
    out = CenterCrop((4, 6))(_coords(1, 10, 20))
    assert int(out[0, 0, 0, 0]) == 3 and int(out[0, 0, 0, 1]) == 7


def test_resize_short_side_keeps_aspect_and_values():
    clip = torch.full((3, 40, 60, 3), 77, dtype=torch.uint8)
    out = ResizeShortSide(20)(clip)
    assert out.shape == (3, 20, 30, 3) and out.dtype == torch.uint8
    assert (out == 77).all()  # a flat image stays flat
    assert ResizeShortSide(20)(torch.zeros(2, 60, 40, 3, dtype=torch.uint8)).shape == (2, 30, 20, 3)


def test_to_float_and_normalize():
    clip = torch.zeros(2, 4, 4, 3, dtype=torch.uint8)
    clip[..., 0] = 255
    x = ToFloat()(clip)
    assert x.shape == (3, 2, 4, 4) and x.dtype == torch.float32
    assert x[0].eq(1).all() and x[1:].eq(0).all()
    y = Normalize()(x)
    assert y[0, 0, 0, 0].item() == pytest.approx((1 - IMAGENET_MEAN[0]) / IMAGENET_STD[0])
    assert y[2, 0, 0, 0].item() == pytest.approx(-IMAGENET_MEAN[2] / IMAGENET_STD[2])


def test_eval_presets_shapes_and_determinism():
    clip = torch.from_numpy(np.random.default_rng(2).integers(0, 256, (4, 36, 48, 3), dtype=np.uint8))
    one = eval_transform(32)
    assert one(clip).shape == (3, 4, 32, 32)
    assert torch.equal(one(clip), one(clip))
    three = eval_transform(32, num_crops=3)
    out = three(clip)
    assert out.shape == (3, 3, 4, 32, 32)
    # Views differ (left vs right part of the frame).
    assert not torch.equal(out[0], out[2])
    with pytest.raises(AvkitError):
        eval_transform(32, num_crops=5)


def test_crop_larger_than_frame_raises():
    with pytest.raises(AvkitError):
        CenterCrop(64)(torch.zeros(2, 32, 32, 3, dtype=torch.uint8))
    with pytest.raises(AvkitError):
        Compose([ResizeShortSide(8)])(torch.zeros(32, 32, dtype=torch.uint8))
