"""Concatenation fusion: pooled features of every modality, side by side, into an MLP."""
from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn as nn

from avkit.fusion.common import check_modalities


class ConcatFusion(nn.Module):
    """``MLP([f_video; f_audio])``: the simplest joint classifier (``hidden=None`` gives a linear one)."""

    inputs = "pooled"

    def __init__(self, dims: Mapping[str, int], num_classes: int, hidden: int | None = 256,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.modalities = list(dims)
        self.num_classes = num_classes
        total = sum(dims.values())
        if hidden is None:
            self.mlp = nn.Sequential(nn.Dropout(dropout), nn.Linear(total, num_classes))
        else:
            self.mlp = nn.Sequential(nn.Linear(total, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
                                     nn.Linear(hidden, num_classes))

    def forward(self, feats: Mapping[str, torch.Tensor]) -> torch.Tensor:
        check_modalities(feats, self.modalities)
        return self.mlp(torch.cat([feats[m] for m in self.modalities], dim=1))
