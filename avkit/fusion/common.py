"""Small pieces the fusion heads share."""
from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
import torch.nn as nn

from avkit.errors import AvkitError


def check_modalities(feats: Mapping[str, torch.Tensor], modalities: Iterable[str]) -> None:
    """Raise AvkitError naming the modalities a fusion head was built for but did not get."""
    missing = [m for m in modalities if m not in feats]
    if missing:
        raise AvkitError(f"fusion head needs inputs for {missing}, got {sorted(feats)}")


def mlp(dim: int, hidden: int, dropout: float = 0.0) -> nn.Sequential:
    """The transformer feed-forward block: Linear -> GELU -> Dropout -> Linear."""
    return nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim))
