"""Precomputed flow cached on disk, keyed by method, parameters and frame times.

Flow is expensive (TV-L1 and RAFT especially) and a clip's flow never changes, so the first
epoch computes it and writes ``clip.mp4.flow-<method>-<key>.npz`` beside the video (or into
``cache_dir``); later reads load it. The key hashes the method, its parameters, the frame times,
the frame size and the video file's size and modification time, so a changed video or a
different sampling never reuses stale flow. Writes are atomic: a crash leaves no partial file.
A prebuilt RAFT ``model=`` is not part of the key (only ``weights=``/``size=`` are): use one cache
folder per set of RAFT weights.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from avkit.utils import atomic_path

# Parameters that change where or how fast flow is computed, not its value.
_RUNTIME_PARAMS = {"model", "device", "batch_size"}


def flow_cache_key(video: str | Path, times: Sequence[float], method: str, params: dict[str, Any],
                   frame_size: tuple[int, int], cache_dir: str | Path | None = None) -> str:
    """Hex digest identifying one flow computation (see the module docstring)."""
    video = Path(video)
    stat = video.stat()
    if method == "raft" and params.get("weights", "shipped") == "shipped":
        from avkit.flow.raft import SHIPPED_RAFT  # loaded with avkit.flow anyway

        size = SHIPPED_RAFT.stat().st_size if SHIPPED_RAFT.is_file() else 0  # a new release: a new key
        params = {**params, "weights": f"shipped:{size}"}
    key = {
        "method": method,
        "params": {k: str(v) for k, v in sorted(params.items()) if k not in _RUNTIME_PARAMS},
        "times": [round(float(t), 6) for t in times],
        "frame_size": list(frame_size),
        "video_bytes": stat.st_size,
        "video_mtime_ns": stat.st_mtime_ns,
        # In a shared cache folder, two videos may share a file name.
        "video": str(video.resolve()) if cache_dir is not None else video.name,
    }
    return hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def flow_cache_path(video: str | Path, times: Sequence[float], method: str, params: dict[str, Any],
                    frame_size: tuple[int, int], cache_dir: str | Path | None = None) -> Path:
    """Where the flow of ``video`` at ``times`` is cached: beside the video or in ``cache_dir``."""
    video = Path(video)
    key = flow_cache_key(video, times, method, params, frame_size, cache_dir)
    folder = Path(cache_dir) if cache_dir is not None else video.parent
    return folder / f"{video.name}.flow-{method}-{key}.npz"


def cached_flow(video: str | Path, frames: torch.Tensor, times: Sequence[float], method: str = "dis",
                cache_dir: str | Path | None = None, **params: Any) -> torch.Tensor:
    """Flow of ``frames`` (``uint8 [T, H, W, 3]`` decoded from ``video`` at ``times``), cached.

    Returns ``float32 [T-1, 2, H, W]`` like ``compute_flow``; computes and writes the cache file
    on a miss, loads it on a hit.
    """
    from avkit.flow import compute_flow

    if len(times) != frames.shape[0]:
        raise ValueError(f"got {frames.shape[0]} frames but {len(times)} times")
    path = flow_cache_path(video, times, method, params, (int(frames.shape[1]), int(frames.shape[2])), cache_dir)
    if path.is_file():
        try:
            with np.load(path) as data:
                return torch.from_numpy(data["flow"].astype(np.float32))
        except (OSError, ValueError, KeyError, EOFError):
            pass  # unreadable cache file: recompute and replace it
    flow = compute_flow(frames, method, **params)
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez_compressed(tmp, flow=flow.numpy(), times=np.asarray(times, np.float64))
    return flow
