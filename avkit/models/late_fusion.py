"""Late fusion: 2D features per frame, combined over time only at the end.

Two variants from the lecture: concatenate the per-frame features into an MLP (its first layer,
and so its parameter count, grows linearly with the number of frames ``T``), or pool them over time
(mean or max) into a linear head (independent of ``T``).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from avkit.errors import AvkitError
from avkit.models.base import VideoClassifier, check_clip, image_backbone, per_frame
from avkit.models.registry import register_model


class LateFusionConcat(VideoClassifier):
    """Per-frame features ``[B, T, D]`` flattened to ``[B, T*D]`` then an MLP to ``hidden`` features."""

    def __init__(self, num_frames: int = 16, backbone: str = "resnet18", width: int | None = None,
                 weights: Any = None, hidden: int = 512, num_classes: int | None = None,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.num_frames = num_frames
        self.encoder, dim = image_backbone(backbone, width, weights)
        self.mlp = nn.Sequential(nn.Linear(num_frames * dim, hidden), nn.ReLU(inplace=True))
        self.init_head(hidden, num_classes, dropout)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        check_clip(x)
        if x.shape[2] != self.num_frames:
            raise AvkitError(f"late_fusion_concat was built for num_frames={self.num_frames}, got T={x.shape[2]}")
        return self.mlp(per_frame(self.encoder, x).flatten(1))


class LateFusionPool(VideoClassifier):
    """Per-frame features pooled over time (``pool="mean"`` or ``"max"``) into a linear head."""

    def __init__(self, backbone: str = "resnet18", width: int | None = None, weights: Any = None,
                 pool: str = "mean", num_classes: int | None = None, dropout: float = 0.0) -> None:
        super().__init__()
        if pool not in ("mean", "max"):
            raise AvkitError(f"pool must be 'mean' or 'max', got {pool!r}")
        self.pool = pool
        self.encoder, dim = image_backbone(backbone, width, weights)
        self.init_head(dim, num_classes, dropout)

    def forward_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Per-frame features ``[B, T, out_dim]``."""
        check_clip(x)
        return per_frame(self.encoder, x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.forward_tokens(x)
        return tokens.mean(dim=1) if self.pool == "mean" else tokens.amax(dim=1)


@register_model("late_fusion_concat", family="late_fusion",
                tiny={"backbone": "cnn", "width": 8, "num_frames": 8, "hidden": 32})
def late_fusion_concat(num_frames: int = 16, backbone: str = "resnet18", width: int | None = None,
                       weights: Any = None, hidden: int = 512, num_classes: int | None = None,
                       dropout: float = 0.0) -> LateFusionConcat:
    """Late fusion: per-frame 2D features concatenated over time into an MLP (fixed T)."""
    return LateFusionConcat(num_frames, backbone, width, weights, hidden, num_classes, dropout)


@register_model("late_fusion_pool", family="late_fusion", tiny={"backbone": "cnn", "width": 8})
def late_fusion_pool(backbone: str = "resnet18", width: int | None = None, weights: Any = None,
                     pool: str = "mean", num_classes: int | None = None, dropout: float = 0.0) -> LateFusionPool:
    """Late fusion: per-frame 2D features mean/max-pooled over time into a linear head."""
    return LateFusionPool(backbone, width, weights, pool, num_classes, dropout)
