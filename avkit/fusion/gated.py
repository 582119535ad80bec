"""Gated fusion (Gated Multimodal Unit, Arevalo et al. 2017).

Each modality is projected to a common width, ``h_m = tanh(W_m f_m)``; a gate computed from all
pooled features decides, per sample and per channel, how much of each modality to use:
``h = sum_m g_m * h_m`` with ``g = softmax over modalities`` (for two modalities this is the GMU's
``z * h_video + (1 - z) * h_audio`` with ``z = sigmoid(.)`` in (0, 1)). A noisy or silent modality
can thus be turned down sample by sample.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn as nn

from avkit.fusion.common import check_modalities


class GatedFusion(nn.Module):
    """Gated Multimodal Unit over pooled features, then a linear classifier."""

    inputs = "pooled"

    def __init__(self, dims: Mapping[str, int], num_classes: int, dim: int = 128, dropout: float = 0.0) -> None:
        super().__init__()
        self.modalities = list(dims)
        self.num_classes = num_classes
        self.dim = dim
        self.proj = nn.ModuleDict({m: nn.Linear(d, dim) for m, d in dims.items()})
        self.gate = nn.Linear(sum(dims.values()), dim * len(dims))
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(dim, num_classes))

    def gates(self, feats: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Gate values ``[B, M, dim]`` in (0, 1), summing to 1 over the M modalities."""
        check_modalities(feats, self.modalities)
        g = self.gate(torch.cat([feats[m] for m in self.modalities], dim=1))
        return g.view(g.shape[0], len(self.modalities), self.dim).softmax(dim=1)

    def fuse(self, feats: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The gated joint feature ``[B, dim]``."""
        g = self.gates(feats)
        h = torch.stack([torch.tanh(self.proj[m](feats[m])) for m in self.modalities], dim=1)
        return (g * h).sum(dim=1)

    def forward(self, feats: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.head(self.fuse(feats))
