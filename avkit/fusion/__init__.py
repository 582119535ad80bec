"""Fusion heads: combine per-modality encoder outputs into class scores.

Every head is built as ``Head(dims, num_classes, **options)`` where ``dims`` maps a modality name
("video", "audio") to its encoder's width (``encoder.out_dim``), and is called on a dict of that
modality's features. ``head.inputs`` says which: ``"pooled"`` (``[B, D_m]``) or ``"tokens"``
(``[B, N_m, D_m]``).

=================  ========  =====================================================
name               inputs    idea
=================  ========  =====================================================
late               pooled    average of per-modality class scores (fixed/learned w)
concat             pooled    concatenated features into an MLP
gated              pooled    gated multimodal unit: per-channel modality gates
cross_attention    tokens    each modality's tokens attend to the other's
bottleneck         tokens    MBT: modalities meet only through a few shared tokens
=================  ========  =====================================================
"""
from __future__ import annotations

from collections.abc import Mapping

import torch.nn as nn

from avkit.errors import AvkitError
from avkit.fusion.bottleneck import BottleneckFusion
from avkit.fusion.concat import ConcatFusion
from avkit.fusion.cross_attention import CrossAttentionFusion
from avkit.fusion.gated import GatedFusion
from avkit.fusion.late import LateFusion

FUSIONS: dict[str, type[nn.Module]] = {
    "late": LateFusion,
    "concat": ConcatFusion,
    "gated": GatedFusion,
    "cross_attention": CrossAttentionFusion,
    "bottleneck": BottleneckFusion,
}


def build_fusion(name: str, dims: Mapping[str, int], num_classes: int, **options) -> nn.Module:
    """Build fusion head ``name`` (one of ``FUSIONS``) for modalities of widths ``dims``."""
    if name not in FUSIONS:
        raise AvkitError(f"unknown fusion {name!r} (choose from {', '.join(FUSIONS)})")
    if not dims:
        raise AvkitError("a fusion head needs at least one modality (give a video and/or an audio encoder)")
    try:
        return FUSIONS[name](dict(dims), num_classes, **options)
    except TypeError as e:  # an option the head does not take
        raise AvkitError(f"fusion {name!r}: {e}") from e


__all__ = ["FUSIONS", "build_fusion", "LateFusion", "ConcatFusion", "GatedFusion", "CrossAttentionFusion",
           "BottleneckFusion"]
