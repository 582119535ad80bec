"""I3D inflation (Carreira & Zisserman 2017): turn a 2D image network, architecture and weights, into 3D.

Each ``k x k`` conv becomes ``kt x k x k`` with the 2D kernel repeated ``kt`` times along time and
divided by ``kt``; BatchNorm2d becomes BatchNorm3d with the same statistics; pooling gains a time
axis. On a video whose frames are all the same image, every inflated conv then computes exactly
the 2D conv (``sum_t w / kt * x = w * x``), so the 3D network reproduces the 2D one: ImageNet
features are a good starting point for video ("boring video" fixed point).

Temporal padding is ``replicate`` (spatial padding stays zeros, as in 2D). With zero temporal
padding the border frames would see ``(kt - p) / kt`` of the image and the equality would only hold
in the interior; replicating the border frame keeps it exact at every time step for constant
videos, and is a sensible boundary condition for natural video too.
"""
from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from avkit.errors import AvkitError
from avkit.models.base import VideoClassifier, check_clip, image_backbone
from avkit.models.nonlocal_block import add_nonlocal
from avkit.models.registry import register_model


class InflatedConv3d(nn.Conv3d):
    """Conv3d with ``replicate`` padding along time and zero padding in space."""

    def __init__(self, *args: Any, time_padding: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.time_padding = time_padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.time_padding:
            x = F.pad(x, (0, 0, 0, 0, self.time_padding, self.time_padding), mode="replicate")
        return super().forward(x)


def inflate_conv(conv: nn.Conv2d, kt: int, time_stride: int = 1) -> InflatedConv3d:
    """A ``kt x k x k`` conv whose kernel is the 2D one repeated over time and divided by ``kt``."""
    new = InflatedConv3d(conv.in_channels, conv.out_channels, (kt, *conv.kernel_size),
                         stride=(time_stride, *conv.stride), padding=(0, *conv.padding),
                         dilation=(1, *conv.dilation), groups=conv.groups, bias=conv.bias is not None,
                         time_padding=kt // 2)
    with torch.no_grad():
        new.weight.copy_(conv.weight.unsqueeze(2).repeat(1, 1, kt, 1, 1) / kt)
        if conv.bias is not None and new.bias is not None:
            new.bias.copy_(conv.bias)
    return new


def inflate_batchnorm(bn: nn.BatchNorm2d) -> nn.BatchNorm3d:
    """BatchNorm3d with the 2D one's affine parameters and running statistics."""
    new = nn.BatchNorm3d(bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats)
    new.load_state_dict(bn.state_dict())
    return new


def inflate_pool(pool: nn.Module, kt: int = 1) -> nn.Module:
    """MaxPool2d -> MaxPool3d ``(kt, k, k)`` (time padding ``kt // 2``); adaptive average pools get a time axis."""
    if isinstance(pool, nn.MaxPool2d):
        k, s, p = (pool.kernel_size, pool.stride, pool.padding)
        k, s, p = (x if isinstance(x, tuple) else (x, x) for x in (k, s, p))
        return nn.MaxPool3d((kt, *k), stride=(1, *s), padding=(kt // 2, *p), ceil_mode=pool.ceil_mode)
    if isinstance(pool, nn.AdaptiveAvgPool2d):
        return nn.AdaptiveAvgPool3d(1)
    raise AvkitError(f"cannot inflate {type(pool).__name__}")


def inflate(model2d: nn.Module, kernel_time: dict[str, int] | None = None, default_kt: int = 1,
            pool_kt: int = 1) -> nn.Module:
    """A 3D copy of ``model2d``: every Conv2d/BatchNorm2d/pooling inflated, the 2D model left untouched.

    ``kernel_time`` maps conv names (as in ``named_modules``) to their temporal kernel size; the others
    get ``default_kt``. The module's own ``forward`` is reused, so it must only use shape-agnostic ops
    (true of torchvision's ResNets: conv, norm, relu, add, pool, flatten).
    """
    kernel_time = kernel_time or {}
    model = copy.deepcopy(model2d)
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            full = f"{name}.{child_name}" if name else child_name
            if isinstance(child, nn.Conv2d):
                setattr(module, child_name, inflate_conv(child, kernel_time.get(full, default_kt)))
            elif isinstance(child, nn.BatchNorm2d):
                setattr(module, child_name, inflate_batchnorm(child))
            elif isinstance(child, (nn.MaxPool2d, nn.AdaptiveAvgPool2d)):
                setattr(module, child_name, inflate_pool(child, pool_kt))
            elif isinstance(child, (nn.AvgPool2d, nn.LayerNorm, nn.GroupNorm)):
                raise AvkitError(f"inflate: {full} ({type(child).__name__}) has no 3D counterpart here")
    return model


def resnet_time_kernels(resnet: nn.Module, stem_kt: int = 5, block_kt: int = 3) -> dict[str, int]:
    """I3D-ResNet temporal kernels: the stem conv ``stem_kt``, each block's first conv ``block_kt``, others 1."""
    kt = {"conv1": stem_kt}
    for name, _ in resnet.named_modules():
        if name.startswith("layer") and name.endswith(".conv1"):
            kt[name] = block_kt
    return kt


class I3D(VideoClassifier):
    """An inflated 2D torchvision ResNet: pooled features and space-time tokens from layer4."""

    backbone: Any  # the inflated torchvision ResNet, used through its attribute names

    def __init__(self, backbone: str = "resnet18", width: int | None = None, weights: Any = None,
                 stem_kt: int = 5, block_kt: int = 3, pool_kt: int = 1, nonlocal_stages: Sequence[int] = (),
                 num_classes: int | None = None, dropout: float = 0.0) -> None:
        super().__init__()
        if not backbone.startswith("resnet"):
            raise AvkitError(f"i3d inflates torchvision ResNets, not {backbone!r}")
        net2d, out_dim = image_backbone(backbone, width, weights)
        self.backbone = inflate(net2d, resnet_time_kernels(net2d, stem_kt, block_kt), pool_kt=pool_kt)
        add_nonlocal(self.backbone, nonlocal_stages)
        self.init_head(out_dim, num_classes, dropout)

    def forward_maps(self, x: torch.Tensor) -> torch.Tensor:
        """layer4 feature maps ``[B, out_dim, T, H', W']`` (no temporal striding: T is kept)."""
        check_clip(x)
        n = self.backbone
        x = n.maxpool(n.relu(n.bn1(n.conv1(x))))
        return n.layer4(n.layer3(n.layer2(n.layer1(x))))

    def forward_tokens(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_maps(x).flatten(2).transpose(1, 2)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_maps(x).mean(dim=(2, 3, 4))


@register_model("i3d", family="i3d", tiny={"width": 8, "stem_kt": 3})
def i3d(backbone: str = "resnet18", width: int | None = None, weights: Any = None, stem_kt: int = 5,
        block_kt: int = 3, pool_kt: int = 1, nonlocal_stages: Sequence[int] = (), num_classes: int | None = None,
        dropout: float = 0.0) -> I3D:
    """I3D: a 2D torchvision ResNet (resnet18 default) inflated to 3D, 2D weights repeated over time."""
    return I3D(backbone, width, weights, stem_kt, block_kt, pool_kt, nonlocal_stages, num_classes, dropout)


@register_model("i3d_nonlocal", family="nonlocal", tiny={"width": 8, "stem_kt": 3, "nonlocal_stages": (3, 4)})
def i3d_nonlocal(backbone: str = "resnet18", width: int | None = None, weights: Any = None, stem_kt: int = 5,
                 block_kt: int = 3, pool_kt: int = 1, nonlocal_stages: Sequence[int] = (3, 4),
                 num_classes: int | None = None, dropout: float = 0.0) -> I3D:
    """I3D ResNet with non-local (space-time self-attention) blocks after stages 3 and 4."""
    return I3D(backbone, width, weights, stem_kt, block_kt, pool_kt, nonlocal_stages, num_classes, dropout)
