"""The pictures ``avkit separate`` writes: soundmap.png's panels and boxes, and matplotlib's inferno colours
without matplotlib."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib import colormaps
from PIL import Image

from avkit.apps.separation.inference import Source
from avkit.apps.separation.plots import _INFERNO, BOX_COLOURS, PANEL_HEIGHT, _overlay, plot_sound_map


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


def test_the_colour_table_is_matplotlibs_inferno() -> None:
    """soundmap.png and soundmap.mp4 need no matplotlib: the table they use is its inferno map to 8 bits."""
    expected = np.round(colormaps["inferno"](np.arange(256))[:, :3] * 255.0)
    np.testing.assert_array_equal(_INFERNO, expected.astype(np.uint8))


def test_sound_map_png_shows_the_hot_spot_and_each_source_in_its_box(tmp_path: Path) -> None:
    """The three panels: the frame, the map hot where the share is (bright inferno yellow over a grey frame)
    and dark elsewhere, and each source's box in its colour at the place its frame_size pixels say."""
    frame = np.full((32, 48, 3), 128, np.uint8)  # the network's frame; the picture was 64 x 96
    share = np.zeros((4, 6), np.float32)
    share[0, 0] = 0.8
    sources = [Source(None, (0.0, 0.0, 48.0, 64.0), None, 0.7, "found 0"),
               Source(None, (48.0, 32.0, 96.0, 64.0), None, 0.2, "rest of the picture")]
    path = plot_sound_map(tmp_path / "soundmap.png", frame, share, sources, (64, 96), title="clip.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["soundmap.png"]  # written in place, no leftovers
    png = np.asarray(Image.open(path).convert("RGB")).astype(int)
    panel_w, top = PANEL_HEIGHT * 96 // 64, 28 + 24  # the title band and a panel's title band
    assert png.shape[:2] == (top + PANEL_HEIGHT + 10, 3 * panel_w + 4 * 10 + 70)
    np.testing.assert_array_equal(png[top + 100, 10 + 100], [128, 128, 128])  # the frame as it is
    mapped = 2 * 10 + panel_w
    hot, cold = png[top + 15, mapped + 15], png[top + PANEL_HEIGHT - 15, mapped + panel_w - 15]
    assert hot[0] > 200 and hot[1] > 150 and cold.sum() < 3 * 128, (hot, cold)
    boxes = 3 * 10 + 2 * panel_w + 70
    np.testing.assert_array_equal(png[top + 100, boxes], BOX_COLOURS[0])  # box 0's left edge
    np.testing.assert_array_equal(png[top + PANEL_HEIGHT - 1, boxes + panel_w - 20], BOX_COLOURS[1])  # box 1's bottom
    np.testing.assert_array_equal(png[top + 60, boxes + panel_w // 2 - 30], [128, 128, 128])  # inside box 0: the frame
