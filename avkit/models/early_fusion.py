"""Early fusion: the frames stacked on the channel axis (3T channels) into the first 2D conv.

All temporal reasoning happens in that one layer; after it the network is an ordinary 2D one.
The channel order is frame-major (frame 0's RGB, frame 1's RGB, ...). With pretrained 2D weights
the first kernel is repeated over frames and divided by ``T`` (I3D-style), so a static clip gives
the 2D network's response.
"""
from __future__ import annotations

from typing import Any

import torch

from avkit.errors import AvkitError
from avkit.models.base import VideoClassifier, check_clip, image_backbone
from avkit.models.registry import register_model


class EarlyFusion(VideoClassifier):
    """``[B, 3, T, H, W] -> [B, 3T, H, W]`` into a 2D ``backbone`` built for ``3 * num_frames`` channels."""

    def __init__(self, num_frames: int = 16, backbone: str = "resnet18", width: int | None = None,
                 weights: Any = None, num_classes: int | None = None, dropout: float = 0.0) -> None:
        super().__init__()
        self.num_frames = num_frames
        self.encoder, out_dim = image_backbone(backbone, width, weights, in_channels=3 * num_frames)
        self.init_head(out_dim, num_classes, dropout)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        check_clip(x)
        b, c, t, h, w = x.shape
        if t != self.num_frames:
            raise AvkitError(f"early_fusion was built for num_frames={self.num_frames}, got T={t}")
        return self.encoder(x.transpose(1, 2).reshape(b, t * c, h, w))


@register_model("early_fusion", family="early_fusion", tiny={"backbone": "cnn", "width": 8, "num_frames": 8})
def early_fusion(num_frames: int = 16, backbone: str = "resnet18", width: int | None = None, weights: Any = None,
                 num_classes: int | None = None, dropout: float = 0.0) -> EarlyFusion:
    """Early fusion: frames stacked on channels (3T) into a 2D network (fixed T)."""
    return EarlyFusion(num_frames, backbone, width, weights, num_classes, dropout)
