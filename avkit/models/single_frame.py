"""Single-frame baseline: a 2D image network on every frame, predictions averaged over time.

The strong baseline to always run first: it sees no motion at all, so whatever it gets right
needs no temporal modelling.
"""
from __future__ import annotations

from typing import Any

import torch

from avkit.models.base import VideoClassifier, check_clip, image_backbone, per_frame
from avkit.models.registry import register_model


class SingleFrame(VideoClassifier):
    """2D ``backbone`` per frame; features (and logits) are the mean over frames."""

    def __init__(self, backbone: str = "resnet18", width: int | None = None, weights: Any = None,
                 num_classes: int | None = None, dropout: float = 0.0) -> None:
        super().__init__()
        self.encoder, out_dim = image_backbone(backbone, width, weights)
        self.init_head(out_dim, num_classes, dropout)

    def forward_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Per-frame features ``[B, T, out_dim]`` (one token per frame)."""
        check_clip(x)
        return per_frame(self.encoder, x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_tokens(x).mean(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.forward_tokens(x)
        if self.head is None:
            return tokens.mean(dim=1)
        return self.head(tokens).mean(dim=1)  # per-frame predictions, averaged over frames


@register_model("single_frame", family="single_frame", tiny={"backbone": "cnn", "width": 8})
def single_frame(backbone: str = "resnet18", width: int | None = None, weights: Any = None,
                 num_classes: int | None = None, dropout: float = 0.0) -> SingleFrame:
    """Single-frame baseline: 2D network (resnet18 default) per frame, predictions averaged."""
    return SingleFrame(backbone, width, weights, num_classes, dropout)
