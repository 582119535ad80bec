"""Optical flow for the two-stream family: compute, stack, cache.

``compute_flow(frames, method)`` turns decoded ``uint8 [T, H, W, 3]`` frames into
``float32 [T-1, 2, H, W]`` flow in pixels/frame (channel 0 = x to the right, 1 = y down).
Methods: ``"dis"`` and ``"farneback"`` (OpenCV), ``"tvl1"`` (needs opencv-contrib),
``"raft"`` (torchvision RAFT: avkit's shipped raft_small weights, or local ones) and ``"lk"`` (pyramidal Lucas-Kanade in torch).
``stack_flow`` builds the temporal stream's input ``[2L, H, W]``; ``FlowStack`` does both as a
dataset transform; ``cached_flow`` stores results beside the video.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from avkit.errors import AvkitError
from avkit.flow.cache import cached_flow, flow_cache_path
from avkit.flow.lucas_kanade import lk_pairs, lucas_kanade_flow
from avkit.flow.opencv_flow import dis_flow, farneback_flow, tvl1_flow
from avkit.flow.raft import build_raft, raft_flow, raft_pairs

METHODS = ("dis", "farneback", "tvl1", "raft", "lk")


def compute_flow(frames: torch.Tensor | np.ndarray, method: str = "dis", **params: Any) -> torch.Tensor:
    """Dense flow between consecutive frames: ``uint8 [T, H, W, 3]`` -> ``float32 [T-1, 2, H, W]``.

    ``params`` go to the method: ``preset`` for DIS, ``FARNEBACK_DEFAULTS`` names for Farneback,
    DualTVL1 setter names for TV-L1, ``model/size/weights/num_flow_updates/device`` for RAFT,
    ``levels/iterations/window_sigma/reg`` for LK.
    """
    if method == "dis":
        return dis_flow(frames, **params)
    if method == "farneback":
        return farneback_flow(frames, **params)
    if method == "tvl1":
        return tvl1_flow(frames, **params)
    if method == "raft":
        return raft_flow(frames, **params)
    if method == "lk":
        frames = torch.as_tensor(np.asarray(frames)) if not isinstance(frames, torch.Tensor) else frames
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] < 2:
            raise AvkitError(f"flow needs frames [T>=2, H, W, 3], got {list(frames.shape)}")
        return lucas_kanade_flow(frames.permute(3, 0, 1, 2)[None].float(), **params)[0]
    raise AvkitError(f"unknown flow method {method!r} (choose from {', '.join(METHODS)})")


def stack_flow(flow: torch.Tensor, num_fields: int | None = None, subtract_mean: bool = False) -> torch.Tensor:
    """Stack ``L`` consecutive flow fields into channels, as the temporal stream takes them.

    ``flow`` is ``[T-1, 2, H, W]`` (or batched ``[B, T-1, 2, H, W]``); returns ``[2L, H, W]``
    (or ``[B, 2L, H, W]``) ordered ``x_1, y_1, x_2, y_2, ...``. ``num_fields`` (default all)
    takes the ``L`` fields in the middle of the clip. ``subtract_mean`` removes each field's mean
    displacement, a cheap camera-motion compensation (Simonyan & Zisserman 2014).
    """
    batched = flow.ndim == 5
    if not batched:
        flow = flow[None]
    if flow.ndim != 5 or flow.shape[2] != 2:
        raise AvkitError(f"flow must be [T-1, 2, H, W] or [B, T-1, 2, H, W], got {list(flow.shape)}")
    n = flow.shape[1]
    num_fields = n if num_fields is None else num_fields
    if not 1 <= num_fields <= n:
        raise AvkitError(f"cannot stack {num_fields} flow fields from a clip with {n} (needs {num_fields + 1} frames)")
    start = (n - num_fields) // 2
    flow = flow[:, start:start + num_fields]
    if subtract_mean:
        flow = flow - flow.mean(dim=(-2, -1), keepdim=True)
    out = flow.reshape(flow.shape[0], 2 * num_fields, *flow.shape[-2:])
    return out if batched else out[0]


class FlowStack:
    """Dataset transform: ``uint8 [T, H, W, 3]`` clip -> stacked flow ``float32 [2L, H, W]``.

    For ``item["flow"]`` next to ``item["video"]``: build once (RAFT is loaded once here) and
    call per clip. ``num_fields`` defaults to ``T - 1``.
    """

    def __init__(self, method: str = "dis", num_fields: int | None = None, subtract_mean: bool = True,
                 **params: Any) -> None:
        if method not in METHODS:
            raise AvkitError(f"unknown flow method {method!r} (choose from {', '.join(METHODS)})")
        if method == "raft" and "model" not in params:
            params["model"] = build_raft(params.pop("size", "small"), params.pop("weights", "shipped"))
        self.method, self.num_fields, self.subtract_mean, self.params = method, num_fields, subtract_mean, params

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        flow = compute_flow(frames, self.method, **self.params)
        return stack_flow(flow, self.num_fields, self.subtract_mean)

    def __repr__(self) -> str:
        return f"FlowStack(method={self.method!r}, num_fields={self.num_fields}, subtract_mean={self.subtract_mean})"


__all__ = [
    "METHODS", "compute_flow", "stack_flow", "FlowStack", "cached_flow", "flow_cache_path",
    "dis_flow", "farneback_flow", "tvl1_flow", "raft_flow", "build_raft", "raft_pairs",
    "lucas_kanade_flow", "lk_pairs",
]
