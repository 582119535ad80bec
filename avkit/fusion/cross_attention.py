"""Cross-modal attention fusion over tokens.

Every modality's tokens (projected to a common width) are queries attending to the tokens of the
other modalities: video tokens ask "which sounds matter here", audio tokens "which places and
moments". Each block is pre-norm: ``x = x + CrossAttn(LN(x), LN(context)); x = x + MLP(LN(x))``.
After ``depth`` blocks each modality's tokens are mean-pooled, concatenated and classified.
Attention uses ``nn.MultiheadAttention`` (fused scaled-dot-product attention on GPU).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn as nn

from avkit.errors import AvkitError
from avkit.fusion.common import check_modalities, mlp


class CrossAttentionBlock(nn.Module):
    """Queries ``x [B,N,D]`` attend to ``context [B,M,D]``; residual attention + residual MLP."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 2.0, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm_q = nn.LayerNorm(dim)
        self.norm_kv = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = mlp(dim, int(dim * mlp_ratio), dropout)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        kv = self.norm_kv(context)
        x = x + self.attn(self.norm_q(x), kv, kv, need_weights=False)[0]
        return x + self.mlp(self.norm_mlp(x))


class CrossAttentionFusion(nn.Module):
    """Each modality attends to the others' tokens (``depth`` blocks), then pooled, concatenated, classified."""

    inputs = "tokens"

    def __init__(self, dims: Mapping[str, int], num_classes: int, dim: int = 128, heads: int = 4, depth: int = 1,
                 mlp_ratio: float = 2.0, dropout: float = 0.0) -> None:
        super().__init__()
        if len(dims) < 2:
            raise AvkitError(f"cross_attention fusion needs two or more modalities, got {list(dims)}; "
                             "use fusion 'concat' or 'late' for a single encoder")
        self.modalities = list(dims)
        self.num_classes = num_classes
        self.proj = nn.ModuleDict({m: nn.Linear(d, dim) for m, d in dims.items()})
        self.blocks = nn.ModuleList(
            nn.ModuleDict({m: CrossAttentionBlock(dim, heads, mlp_ratio, dropout) for m in dims}) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim * len(dims))
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(dim * len(dims), num_classes))

    def attend(self, tokens: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Tokens ``[B, N_m, dim]`` of each modality after cross-attending to the other modalities."""
        check_modalities(tokens, self.modalities)
        x = {m: self.proj[m](tokens[m]) for m in self.modalities}
        block: Any
        for block in self.blocks:
            # Every modality reads the others' tokens from the previous block (updates are simultaneous).
            x = {m: block[m](x[m], torch.cat([x[o] for o in self.modalities if o != m], dim=1))
                 for m in self.modalities}
        return x

    def fuse(self, tokens: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The joint feature ``[B, M * dim]``: mean-pooled attended tokens of each modality, concatenated."""
        x = self.attend(tokens)
        return self.norm(torch.cat([x[m].mean(dim=1) for m in self.modalities], dim=1))

    def forward(self, tokens: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.head(self.fuse(tokens))
