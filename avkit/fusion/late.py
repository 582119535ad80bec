"""Late fusion: every modality classifies on its own, the class scores are averaged.

``scores = sum_m w_m * head_m(f_m)`` with ``w`` either fixed (normalised to sum to 1) or learned
(a softmax over one logit per modality, so the weights stay positive and sum to 1).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn as nn

from avkit.errors import AvkitError
from avkit.fusion.common import check_modalities


class LateFusion(nn.Module):
    """Per-modality linear classifiers on pooled features; weighted average of their logits."""

    inputs = "pooled"

    def __init__(self, dims: Mapping[str, int], num_classes: int,
                 weights: Sequence[float] | Mapping[str, float] | None = None, learnable: bool = False,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.modalities = list(dims)
        self.num_classes = num_classes
        self.heads = nn.ModuleDict(
            {m: nn.Sequential(nn.Dropout(dropout), nn.Linear(d, num_classes)) for m, d in dims.items()})
        if weights is None:
            w = torch.ones(len(dims))
        elif isinstance(weights, Mapping):
            w = torch.tensor([float(weights[m]) for m in self.modalities])
        else:
            w = torch.tensor([float(v) for v in weights])
        if w.numel() != len(dims) or (w < 0).any() or w.sum() <= 0:
            raise AvkitError(f"late fusion needs one non-negative weight per modality {self.modalities}, "
                             f"got {w.tolist()}")
        self.learnable = learnable
        if learnable:
            self.weight_logits = nn.Parameter(torch.log(w / w.sum()))
        else:
            self.register_buffer("fixed_weights", w / w.sum())

    def weights(self) -> torch.Tensor:
        """The modality weights in ``self.modalities`` order (positive, summing to 1)."""
        return self.weight_logits.softmax(0) if self.learnable else self.get_buffer("fixed_weights")

    def modality_logits(self, feats: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Each modality's own class scores ``[B, C]``."""
        check_modalities(feats, self.modalities)
        return {m: self.heads[m](feats[m]) for m in self.modalities}

    def forward(self, feats: Mapping[str, torch.Tensor]) -> torch.Tensor:
        logits = self.modality_logits(feats)
        w = self.weights()
        return torch.stack([w[i] * logits[m] for i, m in enumerate(self.modalities)]).sum(0)
