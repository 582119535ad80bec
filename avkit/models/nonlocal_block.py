"""Non-local block (Wang et al. 2018): self-attention over all space-time positions of a 3D feature map.

``z = x + W_z(softmax(theta(x)^T phi(x)) g(x))`` with 1x1x1 convolutions for theta (queries), phi
(keys), g (values) and W_z, attention over all ``T*H*W`` positions through
``torch.nn.functional.scaled_dot_product_attention`` (fused kernels on GPUs; it scales the logits
by ``1/sqrt(inner)`` like a transformer, where the paper's embedded-Gaussian form does not).
W_z ends in a BatchNorm whose gamma starts at zero, so a new block is the identity and can be
inserted into a pretrained network without changing its output.
"""
from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn as nn
import torch.nn.functional as F

from avkit.errors import AvkitError


class NonLocalBlock(nn.Module):
    """Space-time self-attention with a residual connection; identity at initialisation."""

    def __init__(self, channels: int, inner: int | None = None, batch_norm: bool = True) -> None:
        super().__init__()
        inner = inner or max(1, channels // 2)
        self.theta = nn.Conv3d(channels, inner, kernel_size=1)
        self.phi = nn.Conv3d(channels, inner, kernel_size=1)
        self.g = nn.Conv3d(channels, inner, kernel_size=1)
        self.out = nn.Conv3d(inner, channels, kernel_size=1, bias=not batch_norm)
        self.norm: nn.Module = nn.Identity()
        if batch_norm:
            self.norm = norm = nn.BatchNorm3d(channels)
            nn.init.zeros_(norm.weight)
            nn.init.zeros_(norm.bias)
        else:
            nn.init.zeros_(self.out.weight)
            assert self.out.bias is not None
            nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        # [B, inner, T, H, W] -> [B, 1 head, T*H*W, inner]
        q, k, v = (m(x).flatten(2).transpose(1, 2).unsqueeze(1) for m in (self.theta, self.phi, self.g))
        y = F.scaled_dot_product_attention(q, k, v)
        y = y.squeeze(1).transpose(1, 2).reshape(b, -1, t, h, w)
        return x + self.norm(self.out(y))


def add_nonlocal(resnet3d: nn.Module, stages: Iterable[int]) -> nn.Module:
    """Insert a ``NonLocalBlock`` after each chosen stage (1-4) of a 3D ResNet with ``layer1..layer4``.

    Works on torchvision's video ResNets and on inflated (I3D) ResNets; returns the same module.
    Load pretrained weights before calling it (the stage's parameter names gain a ``.0`` prefix).
    """
    for stage in stages:
        name = f"layer{stage}"
        layer = getattr(resnet3d, name, None)
        if layer is None or stage not in (1, 2, 3, 4):
            raise AvkitError(f"nonlocal_stages must be in 1..4 of a 3D ResNet, got {stage!r}")
        norms = [m for m in layer.modules() if isinstance(m, nn.BatchNorm3d)]
        if not norms:
            raise AvkitError(f"cannot tell the width of {name}: no BatchNorm3d in it")
        setattr(resnet3d, name, nn.Sequential(layer, NonLocalBlock(norms[-1].num_features)))
    return resnet3d
