"""What every loop over batches needs, training or inference: a batch on the device, the model
called with what it takes from the batch, and the precision it runs in.

The trainer, ``avkit eval``, ``avkit classify`` and the applications' inference all import these
from here, so inference never imports the training loop.
"""
from __future__ import annotations

import contextlib
import random
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from avkit.errors import AvkitError

PRECISIONS = ("auto", "bf16", "fp32")


def to_device(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    """``batch`` with its tensors on ``device`` (other values as they are)."""
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def autocast_context(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA (``auto``/``bf16``); full precision elsewhere."""
    if precision not in PRECISIONS:
        raise AvkitError(f"train.precision must be auto, bf16 or fp32, got {precision!r}")
    if device.type == "cuda" and precision in ("auto", "bf16"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def worker_init(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: torch seeds each worker; NumPy and ``random`` follow it, so
    augmentations differ between workers and repeat between runs."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def forward_batch(model: nn.Module, batch: Mapping[str, Any]) -> torch.Tensor:
    """Call ``model`` with what it takes from a batch dict; the only place the loops do so.

    Audio-visual models (``model.takes_batch``) get the whole dict; two-stream models get
    ``(video, flow)`` when the batch has "flow"; audio-only models their "spectrogram" (or
    "audio"); every other model the clip ``batch["video"]``.
    """
    from avkit.engine.checkpoint import unwrap

    inner = unwrap(model)
    if getattr(inner, "takes_batch", False):
        return model(batch)
    if "flow" in batch:
        return model(batch["video"], batch["flow"])
    if "video" not in batch:
        for key in ("spectrogram", "audio"):
            if key in batch:
                return model(batch[key])
        raise AvkitError(f"batch has no input the model can take (keys: {sorted(batch)})")
    return model(batch["video"])


def pooled_features(model: nn.Module, batch: Mapping[str, Any]) -> torch.Tensor:
    """Clip features ``[B, D]`` before the classifier, from what ``forward_batch`` would pass the model.

    A video or audio model gives its ``forward_features`` (with flow for two-stream nets); a model
    taking the batch dict with per-modality encoders (``encode``: audio-visual models) gives each
    encoder's features side by side (tokens averaged), a modality a clip lacks (``has_audio``) replaced
    by the model's learned "absent" embedding, as its fusion head sees it; another batch-dict model
    (``av_mae``) its ``forward_features`` of the whole batch. ``avkit batch embed`` and the localisation
    features of a trained run both use this.
    """
    from avkit.engine.checkpoint import unwrap

    inner: Any = unwrap(model)
    if getattr(inner, "takes_batch", False):
        if not hasattr(inner, "encode"):
            return inner.forward_features(batch)
        feats = inner.encode(batch)
        first = next(iter(feats.values()))
        present = inner.presence(batch, first.shape[0], first.device)
        pooled = [f.mean(1) if f.ndim == 3 else f for f in feats.values()]
        return torch.cat([torch.where(present[m].view(-1, 1), f, inner.absent[m].to(f.dtype))
                          for m, f in zip(feats, pooled)], dim=-1)
    if "flow" in batch:
        return inner.forward_features(batch["video"], batch["flow"])
    if "video" not in batch:
        for key in ("spectrogram", "audio"):
            if key in batch:
                return inner.forward_features(batch[key])
    return inner.forward_features(batch["video"])


def forward_views(model: nn.Module, batch: Mapping[str, Any]) -> torch.Tensor:
    """Logits ``[B, K, C]`` for a test-mode batch whose items hold ``K`` views
    (``video [B, K, 3, T, H, W]``, ``audio [B, K, S]``, ``spectrogram [B, K, 1, F, T]``);
    a batch of single clips counts as ``K = 1``."""
    video = batch.get("video")
    if video is None or video.ndim == 5:
        return forward_batch(model, batch).unsqueeze(1)
    b, k = video.shape[:2]
    view_dims = {"video": 6, "flow": 5, "audio": 3, "spectrogram": 5}
    flat = dict(batch)
    for key, ndim in view_dims.items():
        value = batch.get(key)
        if isinstance(value, torch.Tensor) and value.ndim == ndim:
            flat[key] = value.flatten(0, 1)
    has_audio = batch.get("has_audio")
    if isinstance(has_audio, torch.Tensor) and has_audio.shape == (b,):  # one per video: the same for its views
        flat["has_audio"] = has_audio.repeat_interleave(k)
    return forward_batch(model, flat).view(b, k, -1)
