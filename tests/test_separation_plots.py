"""The pictures ``avkit separate`` writes: soundmap.mp4's colours are matplotlib's inferno map."""
from __future__ import annotations

import numpy as np
from matplotlib import colormaps

from avkit.apps.separation.plots import _overlay


def test_overlay_blends_matplotlibs_inferno_colours() -> None:
    """The table lookup and float32 blend give the pixels of matplotlib's own mapping of each heat value
    (float64 RGBA), but for rounding: at most 1 in 255, on every heat from 0 to 1 and both ends."""
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, 40, 50, 3), dtype=np.uint8)
    heat = rng.random((3, 40, 50)).astype(np.float32)
    heat[0, 0, :6] = [0.0, 1.0, 0.5, 1 / 256, 255 / 256, 0.999999]
    colours = colormaps["inferno"](heat)[..., :3] * 255.0
    alpha = 0.35 + 0.5 * heat[..., None].astype(np.float64)
    expected = np.clip(frames * (1 - alpha) + colours * alpha, 0, 255).astype(np.uint8)
    got = _overlay(frames, heat)
    assert got.dtype == np.uint8 and got.shape == frames.shape
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1
