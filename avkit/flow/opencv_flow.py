"""Dense optical flow with OpenCV: DIS, Farneback and (contrib build only) TV-L1.

Every function takes decoded frames ``uint8 [T, H, W, 3]`` (torch or numpy, RGB) and returns
``float32 [T-1, 2, H, W]``: for each consecutive pair, the (x, y) displacement in pixels/frame
that moves a pixel of frame t onto frame t+1.
"""
from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import torch

from avkit.errors import AvkitError

DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}

# Farneback parameters as cv2.calcOpticalFlowFarneback names them (OpenCV's documented defaults
# for video, except a 15-pixel window which copes with a few pixels of motion).
FARNEBACK_DEFAULTS = {"pyr_scale": 0.5, "levels": 3, "winsize": 15, "iterations": 3, "poly_n": 5,
                      "poly_sigma": 1.2}


def to_gray(frames: torch.Tensor | np.ndarray) -> np.ndarray:
    """``uint8 [T, H, W, 3]`` RGB frames -> ``uint8 [T, H, W]`` grayscale numpy array."""
    arr = frames.numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
        raise AvkitError(f"flow needs uint8 frames [T, H, W, 3], got {arr.dtype} {list(arr.shape)}")
    if arr.shape[0] < 2:
        raise AvkitError(f"flow needs at least 2 frames, got {arr.shape[0]}")
    return np.stack([cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in arr])


def _pairwise(gray: np.ndarray, step) -> torch.Tensor:
    out = np.empty((gray.shape[0] - 1, 2, *gray.shape[1:]), np.float32)
    for t in range(gray.shape[0] - 1):
        out[t] = step(gray[t], gray[t + 1]).transpose(2, 0, 1)
    return torch.from_numpy(out)


def dis_flow(frames: torch.Tensor | np.ndarray, preset: str = "medium") -> torch.Tensor:
    """DIS (dense inverse search) flow: fast and accurate enough for action recognition."""
    if preset not in DIS_PRESETS:
        raise AvkitError(f"unknown DIS preset {preset!r} (choose from {', '.join(DIS_PRESETS)})")
    dis = cv2.DISOpticalFlow_create(DIS_PRESETS[preset])  # type: ignore[attr-defined]  # not in cv2's stubs
    return _pairwise(to_gray(frames), lambda a, b: dis.calc(a, b, None))


def farneback_flow(frames: torch.Tensor | np.ndarray, **params: Any) -> torch.Tensor:
    """Farneback polynomial-expansion flow; ``params`` override ``FARNEBACK_DEFAULTS``."""
    unknown = set(params) - set(FARNEBACK_DEFAULTS)
    if unknown:
        raise AvkitError(f"unknown Farneback parameters {sorted(unknown)} (known: {sorted(FARNEBACK_DEFAULTS)})")
    p = {**FARNEBACK_DEFAULTS, **params}
    return _pairwise(to_gray(frames), lambda a, b: cv2.calcOpticalFlowFarneback(
        a, b, None, p["pyr_scale"], int(p["levels"]), int(p["winsize"]), int(p["iterations"]),
        int(p["poly_n"]), p["poly_sigma"], 0))


def tvl1_flow(frames: torch.Tensor | np.ndarray, **params: Any) -> torch.Tensor:
    """TV-L1 flow (the two-stream paper's choice); needs opencv-contrib's ``cv2.optflow``.

    ``params`` are setter names of ``cv2.optflow.DualTVL1OpticalFlow`` without ``set``,
    e.g. ``tau=0.25, lambda_=0.15`` (``Lambda`` also accepted).
    """
    if not hasattr(cv2, "optflow"):
        raise AvkitError("TV-L1 flow needs OpenCV's contrib modules (cv2.optflow): "
                         "pip install opencv-contrib-python-headless, or use method='dis'")
    tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()
    for name, value in params.items():
        setter = getattr(tvl1, "set" + name.rstrip("_")[:1].upper() + name.rstrip("_")[1:], None)
        if setter is None:
            raise AvkitError(f"unknown TV-L1 parameter {name!r}")
        setter(value)
    return _pairwise(to_gray(frames), lambda a, b: tvl1.calc(a, b, None))
