"""``--regions``: which parts of the picture are separated as sources.

:func:`parse_regions` reads the option (``auto`` | ``whole`` | ``grid:CxR`` | boxes) into a
:class:`RegionSpec`; :func:`region_masks` turns a spec into boolean masks over the network's feature
map and boxes in the frame's pixels; :func:`region_box` is the box drawn around a region the model
found itself (``auto``, :meth:`avkit.apps.separation.inference.Separator.find_sources`).
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from avkit.errors import AvkitError

Box = tuple[float, float, float, float]  # (x0, y0, x1, y1)


@dataclass(frozen=True)
class RegionSpec:
    """A parsed ``--regions``: ``kind`` is ``auto``, ``whole``, ``grid`` (``cols`` x ``rows``) or ``boxes``
    (in pixels, or in fractions of the frame when ``fractions``)."""

    kind: str
    cols: int = 0
    rows: int = 0
    boxes: tuple[Box, ...] = ()
    fractions: bool = False


FIT_TOLERANCE = 0.01  # a box may reach this far (fraction of the side) beyond the frame


def parse_regions(spec: str) -> RegionSpec:
    """``auto`` | ``whole`` | ``grid:CxR`` (or ``CxR``) | boxes ``x0,y0,x1,y1;...`` (pixels, or fractions
    of the frame when every value is <= 1); a bad value is a one-line error naming ``--regions``."""
    text = (spec or "auto").strip().lower()
    if text in ("auto", "whole"):
        return RegionSpec(text)
    m = re.fullmatch(r"(?:grid:)?(\d+)x(\d+)", text)
    if m:
        cols, rows = int(m.group(1)), int(m.group(2))
        if not (1 <= cols <= 16 and 1 <= rows <= 16):
            raise AvkitError(f"--regions {spec!r}: a grid needs 1-16 columns and rows")
        return RegionSpec("grid", cols=cols, rows=rows)
    boxes = []
    for part in text.split(";"):
        try:
            vals = [float(v) for v in part.split(",")]
        except ValueError:
            vals = []
        if len(vals) != 4 or vals[2] <= vals[0] or vals[3] <= vals[1]:
            raise AvkitError(f"--regions {spec!r}: expected auto, whole, grid:CxR or boxes 'x0,y0,x1,y1;...' "
                             "with x1 > x0 and y1 > y0")
        boxes.append((vals[0], vals[1], vals[2], vals[3]))
    return RegionSpec("boxes", boxes=tuple(boxes), fractions=all(v <= 1.0 for b in boxes for v in b))


def region_masks(regions: RegionSpec, grid: tuple[int, int], frame_size: tuple[int, int]
                 ) -> tuple[list[np.ndarray], list[Box]]:
    """Boolean feature-map masks ``[h, w]`` and their boxes (frame pixels) for a parsed spec (not ``auto``).
    A box smaller than a cell gets the cell under its centre; a box outside the frame, or reaching beyond
    it by more than 1% of its side, is an error."""
    h, w = grid
    height, width = frame_size
    cy = (np.arange(h) + 0.5) / h  # cell centres, as fractions of the frame
    cx = (np.arange(w) + 0.5) / w
    if regions.kind == "whole":
        boxes: list[Box] = [(0.0, 0.0, 1.0, 1.0)]
    elif regions.kind == "grid":
        c, r = regions.cols, regions.rows
        boxes = [(i / c, j / r, (i + 1) / c, (j + 1) / r) for j in range(r) for i in range(c)]
    elif regions.kind == "boxes":
        boxes = [b if regions.fractions else (b[0] / width, b[1] / height, b[2] / width, b[3] / height)
                 for b in regions.boxes]
    else:
        raise ValueError(f"region_masks: {regions.kind!r} regions are found by the model, not laid out")
    masks = []
    for x0, y0, x1, y1 in boxes:
        if x1 <= 0 or y1 <= 0 or x0 >= 1 or y0 >= 1:
            raise AvkitError(f"region box {_px((x0, y0, x1, y1), frame_size)} lies outside the {width}x{height} frame")
        if min(x0, y0) < -FIT_TOLERANCE or max(x1, y1) > 1 + FIT_TOLERANCE:
            raise AvkitError(f"region box {_px((x0, y0, x1, y1), frame_size)} does not fit the {width}x{height} frame")
        m = ((cy[:, None] >= y0) & (cy[:, None] < y1)) & ((cx[None, :] >= x0) & (cx[None, :] < x1))
        if not m.any():  # a box smaller than a cell: the cell under its centre
            m = np.zeros((h, w), bool)
            m[min(h - 1, int((y0 + y1) / 2 * h)), min(w - 1, int((x0 + x1) / 2 * w))] = True
        masks.append(m)
    return masks, [_px(b, frame_size) for b in boxes]


def region_box(region: np.ndarray, frame_size: tuple[int, int]) -> Box:
    """The pixel box around the largest connected (8-neighbour) group of cells of a feature-map region
    (the first found, in reading order, of equal ones)."""
    region = _largest_group(np.asarray(region, bool))
    h, w = region.shape
    ys, xs = np.nonzero(region)
    return _px((xs.min() / w, ys.min() / h, (xs.max() + 1) / w, (ys.max() + 1) / h), frame_size)


def _largest_group(region: np.ndarray) -> np.ndarray:
    """The largest 8-connected group of a small boolean map (a flood fill: scipy.ndimage costs 0.2 s to import)."""
    h, w = region.shape
    seen = np.zeros_like(region)
    best: list[tuple[int, int]] = []
    for start in zip(*np.nonzero(region)):
        if seen[start]:
            continue
        seen[start] = True
        group, todo = [], [start]
        while todo:
            y, x = todo.pop()
            group.append((y, x))
            for yy in range(max(0, y - 1), min(h, y + 2)):
                for xx in range(max(0, x - 1), min(w, x + 2)):
                    if region[yy, xx] and not seen[yy, xx]:
                        seen[yy, xx] = True
                        todo.append((yy, xx))
        if len(group) > len(best):
            best = group
    out = np.zeros_like(region)
    for cell in best:
        out[cell] = True
    return out


def _px(box: Sequence[float], frame_size: tuple[int, int]) -> Box:
    """A box in fractions of the frame -> pixels, clipped to the frame."""
    height, width = frame_size
    x0, y0, x1, y1 = box
    return (max(0.0, x0) * width, max(0.0, y0) * height, min(1.0, x1) * width, min(1.0, y1) * height)


def group_positions(share: np.ndarray, corr: np.ndarray, *, active: float = 0.2, saddle: float = 0.35,
                    similarity: float = 0.4, min_share: float = 0.1, max_sources: int = 4) -> list[np.ndarray]:
    """Sources (bool ``[h, w]`` regions, strongest first) found in a sound map.

    ``share [h, w]``: how much of the mixture's energy each position's feature changes the mask of;
    ``corr [P, P]``: how alike two positions' mask changes are. The positions with at least ``active`` of
    the strongest one's share are grouped into hills of the map (each position joins the hill of its
    strongest already-placed neighbour, 8 neighbours, strongest positions first); where two hills meet,
    they are one when the meeting position has at least ``saddle`` of the lower hill's peak (a dip, not a
    valley). Then hills whose mask changes correlate ``>= similarity`` on average are one source (the
    parts of one instrument, apart in the picture, that sound together). Hills whose peak has less
    than ``min_share`` are dropped."""
    h, w = share.shape
    flat = share.reshape(-1)
    top = float(flat.max()) if flat.size else 0.0
    cells = [int(c) for c in np.argsort(-flat) if top > 0 and flat[c] >= active * top]
    hill = -np.ones(h * w, int)  # the hill of each placed position
    parent: list[int] = []  # union-find over hills
    peak: list[float] = []

    def root(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for c in cells:
        y, x = divmod(c, w)
        near = {root(hill[yy * w + xx]) for yy in range(max(0, y - 1), min(h, y + 2))
                for xx in range(max(0, x - 1), min(w, x + 2)) if hill[yy * w + xx] >= 0}
        if not near:
            parent.append(len(parent))
            peak.append(float(flat[c]))
            hill[c] = len(parent) - 1
            continue
        best = max(near, key=lambda k: peak[k])
        hill[c] = best
        for k in near - {best}:
            if flat[c] >= saddle * peak[k]:
                parent[k] = best
    groups: dict[int, list[int]] = {}
    for c in cells:
        groups.setdefault(root(hill[c]), []).append(c)
    found = list(groups.values())
    # hills that sound together: average-linkage merging on the correlation of their mask changes
    while len(found) > 1:
        pairs = [(float(corr[np.ix_(a, b)].mean()), i, j) for i, a in enumerate(found)
                 for j, b in enumerate(found) if i < j]
        best_corr, i, j = max(pairs)
        if best_corr < similarity:
            break
        found[i] = found[i] + found.pop(j)
    found.sort(key=lambda g: -flat[g].max())
    regions: list[np.ndarray] = []
    for g in found:
        if flat[g].max() < min_share or len(regions) >= max_sources:
            continue
        region = np.zeros(h * w, bool)
        region[g] = True
        regions.append(region.reshape(h, w))
    return regions
