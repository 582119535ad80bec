"""Attention-bottleneck fusion (MBT, Nagrani et al. 2021, "Attention Bottlenecks for Multimodal Fusion").

Each modality keeps its own transformer layers over its own tokens (plus a CLS token). The only
path between modalities is a handful of shared *bottleneck* tokens ``z``: in every fusion layer,
each modality runs self-attention over ``[its tokens ; z]``, and the new ``z`` is the average of
the modalities' updated copies. So cross-modal information must be condensed into
``num_bottlenecks`` tokens, which is cheap (attention cost grows with ``N_m + B`` per modality,
not ``(N_video + N_audio)^2``) and forces the modalities to share only what matters.

Consequences that the tests check: with ``num_bottlenecks=0`` the branches are independent;
within one layer a modality sees the bottleneck of the previous layer, so the audio can first
affect the video branch in the second fusion layer. Layers before ``fusion_layer`` are unimodal
(MBT's "mid fusion"). Classification averages the per-modality CLS logits, as MBT does.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn as nn

from avkit.fusion.common import check_modalities


def transformer_layer(dim: int, heads: int, mlp_ratio: float, dropout: float) -> nn.TransformerEncoderLayer:
    """Pre-norm self-attention layer (GELU MLP), batch-first."""
    return nn.TransformerEncoderLayer(dim, heads, int(dim * mlp_ratio), dropout, activation="gelu",
                                      batch_first=True, norm_first=True)


class BottleneckFusion(nn.Module):
    """Per-modality transformer layers that exchange information only through shared bottleneck tokens."""

    inputs = "tokens"

    def __init__(self, dims: Mapping[str, int], num_classes: int, dim: int = 128, heads: int = 4, depth: int = 2,
                 num_bottlenecks: int = 4, fusion_layer: int = 0, mlp_ratio: float = 2.0, dropout: float = 0.0) -> None:
        super().__init__()
        self.modalities = list(dims)
        self.num_classes = num_classes
        self.num_bottlenecks = num_bottlenecks
        self.fusion_layer = fusion_layer
        self.proj = nn.ModuleDict({m: nn.Linear(d, dim) for m, d in dims.items()})
        self.cls = nn.ParameterDict({m: nn.Parameter(torch.zeros(1, 1, dim)) for m in dims})
        self.bottleneck = nn.Parameter(torch.randn(1, num_bottlenecks, dim) * 0.02)
        self.layers = nn.ModuleList(
            nn.ModuleDict({m: transformer_layer(dim, heads, mlp_ratio, dropout) for m in dims}) for _ in range(depth)
        )
        self.norm = nn.ModuleDict({m: nn.LayerNorm(dim) for m in dims})
        self.heads = nn.ModuleDict({m: nn.Sequential(nn.Dropout(dropout), nn.Linear(dim, num_classes)) for m in dims})

    def branches(self, tokens: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Each modality's CLS output ``[B, dim]`` after the fusion layers."""
        check_modalities(tokens, self.modalities)
        x = {}
        for m in self.modalities:
            t = self.proj[m](tokens[m])
            x[m] = torch.cat([self.cls[m].expand(t.shape[0], -1, -1), t], dim=1)
        batch = next(iter(x.values())).shape[0]
        z = self.bottleneck.expand(batch, -1, -1)
        layer: Any
        for i, layer in enumerate(self.layers):
            if i < self.fusion_layer or self.num_bottlenecks == 0:
                x = {m: layer[m](x[m]) for m in self.modalities}
                continue
            copies = []
            for m in self.modalities:
                n = x[m].shape[1]
                y = layer[m](torch.cat([x[m], z], dim=1))
                x[m], zm = y[:, :n], y[:, n:]
                copies.append(zm)
            z = torch.stack(copies).mean(dim=0)
        return {m: self.norm[m](x[m][:, 0]) for m in self.modalities}

    def modality_logits(self, tokens: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Each branch's class scores ``[B, C]``."""
        return {m: self.heads[m](f) for m, f in self.branches(tokens).items()}

    def forward(self, tokens: Mapping[str, torch.Tensor]) -> torch.Tensor:
        logits = self.modality_logits(tokens)
        return torch.stack([logits[m] for m in self.modalities]).mean(dim=0)
