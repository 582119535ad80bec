"""The appearance classes of ``motion``: one decoded frame shows the class.

Checked on decoded mp4s: both texture colours contrast with the background and with each other
in brightness, the objects lie wholly inside the frame, and a nearest-class-mean classifier on
a few invariant features of one frame per clip separates the appearance classes.
"""
from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from avkit.data.synthetic import generate, read_manifest, render_clip
from avkit.data.synthetic.motion import APPEARANCE_CLASSES

LUMA = np.array([0.299, 0.587, 0.114], np.float32)
NUM, DURATION = 100, 1.0  # 40 appearance clips of 8 frames


def first_frame(path: Path) -> np.ndarray:
    with av.open(str(path)) as c:
        return next(c.decode(video=0)).to_ndarray(format="rgb24")


@pytest.fixture(scope="session")
def appearance_data(tmp_path_factory):
    """(row, decoded first frame, rendered first frame) for each appearance clip."""
    out = tmp_path_factory.mktemp("appearance")
    generate("motion", out, NUM, seed=0, duration=DURATION)
    items = []
    for r in read_manifest(out):
        if r["label"] in APPEARANCE_CLASSES:
            rendered = render_clip("motion", r["meta"]["index"], seed=0, duration=DURATION).frames[0]
            items.append((r, first_frame(out / r["path"]), rendered))
    return items


def background_fit(frame: np.ndarray, thresh: float = 40.0) -> tuple[np.ndarray, np.ndarray]:
    """A smooth background (quadratic per channel, refitted without the object) and the object mask."""
    h, w, _ = frame.shape
    f = frame.astype(np.float32).reshape(-1, 3)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    x, y = (xs / w - 0.5).ravel(), (ys / h - 0.5).ravel()
    basis = np.stack([np.ones_like(x), x, y, x * x, y * y, x * y], -1)
    keep = np.zeros((h, w), bool)
    keep[:2] = keep[-2:] = keep[:, :2] = keep[:, -2:] = True  # start from the border
    for _ in range(3):
        coef, *_ = np.linalg.lstsq(basis[keep.ravel()], f[keep.ravel()], rcond=None)
        bg = (basis @ coef).reshape(h, w, 3)
        mask = np.linalg.norm(frame - bg, axis=-1) > thresh
        keep = ~cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    return bg, mask


def texture_features(frame: np.ndarray) -> np.ndarray:
    """Rotation-, position- and colour-invariant features of the object in one frame.

    compactness (area / radius^2 of the silhouette, hole included), how much of the two-tone
    pattern the radius explains (rings), how much one direction explains (stripes), the number
    of one-colour regions, and the share of the minority colour (spots cover less than a board).
    """
    _, mask = background_fit(frame)
    n, lab, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        return np.zeros(5)
    obj = (lab == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))).astype(np.uint8)
    obj = cv2.morphologyEx(obj, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8)).astype(bool)
    ys, xs = np.nonzero(obj)
    cy, cx = ys.mean(), xs.mean()
    rmax = np.percentile(np.hypot(ys - cy, xs - cx), 98) + 0.5
    compact = len(ys) / rmax ** 2
    core = cv2.erode(obj.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    y = frame.astype(np.float32) @ LUMA
    vals = y[core]
    light = (y > 0.5 * (np.percentile(vals, 10) + np.percentile(vals, 90))) & core
    t = light[core].astype(np.float32)

    def explained(coord: np.ndarray) -> float:  # share of the pattern's variance explained by 1 px bins
        bins = np.round(coord - coord.min()).astype(int)
        count, total = np.bincount(bins), np.bincount(bins, t)
        m = total[count > 0] / count[count > 0]
        return float(((m - t.mean()) ** 2 * count[count > 0]).sum() / count.sum() / (t.var() + 1e-6))

    cys, cxs = np.nonzero(core)
    radial = explained(np.hypot(cys - cy, cxs - cx))
    directional = max(explained((cxs - cx) * np.cos(a) + (cys - cy) * np.sin(a))
                      for a in np.linspace(0, np.pi, 24, endpoint=False))
    regions = 0
    for part in (light, core & ~light):
        _, _, st, _ = cv2.connectedComponentsWithStats(part.astype(np.uint8), connectivity=4)
        regions += int((st[1:, cv2.CC_STAT_AREA] >= 3).sum())
    return np.array([compact, radial, directional, regions, min(t.mean(), 1 - t.mean())])


def test_single_frame_separates_appearance_classes(appearance_data):
    """Nearest class mean on one decoded frame per clip, two folds: >= 95% on held-out clips."""
    x = np.array([texture_features(frame) for _, frame, _ in appearance_data])
    y = np.array([r["label"] for r, _, _ in appearance_data])
    assert set(y) == set(APPEARANCE_CLASSES) and len(y) >= 32
    fold = np.zeros(len(y), int)
    for name in APPEARANCE_CLASSES:
        fold[y == name] = np.arange((y == name).sum()) % 2
    accs = []
    for k in (0, 1):
        test, train = fold == k, fold != k
        z = (x - x[train].mean(0)) / (x[train].std(0) + 1e-6)
        means = np.stack([z[train][y[train] == n].mean(0) for n in APPEARANCE_CLASSES])
        pred = np.array(APPEARANCE_CLASSES)[np.argmin(((z[test][:, None] - means[None]) ** 2).sum(-1), axis=1)]
        accs.append(float((pred == y[test]).mean()))
    assert np.mean(accs) >= 0.95, accs


def test_texture_contrasts_in_decoded_frames(appearance_data):
    """Both colours stand out from the background around the object and from each other in luma
    (H.264 keeps luma at full resolution but halves chroma), measured on every clip."""
    ring = np.ones((5, 5), np.uint8)
    for r, frame, rendered in appearance_data:
        meta = r["meta"]
        dec = frame.astype(np.float32)
        regions = []
        for key in ("rgb", "second_rgb"):  # the pixels wholly of one colour (no anti-aliased edge)
            regions.append(np.abs(rendered.astype(np.float32) - np.array(meta[key])).max(-1) <= 2)
        obj = cv2.dilate((regions[0] | regions[1]).astype(np.uint8), np.ones((5, 5), np.uint8))
        around = cv2.dilate(obj, ring).astype(bool) & ~obj.astype(bool)
        assert all(reg.sum() >= 4 for reg in regions) and around.sum() >= 20, r["path"]
        bg_luma = dec[around] @ LUMA
        a, b = (dec[reg] @ LUMA for reg in regions)
        assert abs(a.mean() - b.mean()) >= 50, (r["path"], a.mean(), b.mean())
        for part, rgb in ((a, dec[regions[0]].mean(0)), (b, dec[regions[1]].mean(0))):
            assert abs(part.mean() - bg_luma.mean()) >= 20, (r["path"], part.mean(), bg_luma.mean())
            assert np.linalg.norm(rgb - dec[around].mean(0)) >= 60, r["path"]


def test_appearance_objects_lie_inside_the_frame(appearance_data):
    for r, frame, _ in appearance_data:
        size = frame.shape[0]
        x0, y0, x1, y1 = r["meta"]["box"]
        assert 0 <= x0 < x1 <= size and 0 <= y0 < y1 <= size, r["meta"]["box"]
        _, mask = background_fit(frame)
        border = np.concatenate([mask[0], mask[-1], mask[:, 0], mask[:, -1]])
        assert not border.any(), r["path"]  # nothing of the object on the frame's edge
        ys, xs = np.nonzero(mask)  # the box holds the object, give or take H.264's blur
        assert xs.min() >= x0 - 2 and xs.max() + 1 <= x1 + 2 and ys.min() >= y0 - 2 and ys.max() + 1 <= y1 + 2
