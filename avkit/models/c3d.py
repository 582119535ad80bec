"""C3D (slow fusion): VGG-style 3x3x3 convolutions and 2x2x2 max pooling, the first pool spatial only.

Tran et al. 2015, "Learning Spatiotemporal Features with 3D Convolutional Networks". Time is
fused slowly: every layer sees a few more frames. Stage widths are ``width * (1, 2, 4, 8, 8)``
(``width=64`` is the paper's network, about 39 GFLOPs per 3x16x112x112 clip counting one
multiply-add as one FLOP, see ``avkit/models/flops.py``).

Pool5 is an adaptive max pool to ``(1, 4, 4)``: at 16x112x112 it gives the paper's 512x1x4x4 map
(the paper pads pool5 spatially), and it lets any input size reach fc6. ``fc_dim=None`` drops
fc6/fc7 and returns globally pooled conv5 features (with tokens).
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn as nn

from avkit.models.base import VideoClassifier, check_clip
from avkit.models.registry import register_model

PaddingMode = Literal["zeros", "reflect", "replicate", "circular"]


def _conv(c_in: int, c_out: int, batch_norm: bool, padding_mode: PaddingMode = "zeros") -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv3d(c_in, c_out, kernel_size=3, padding=1, bias=not batch_norm,
                                         padding_mode=padding_mode)]
    if batch_norm:
        layers.append(nn.BatchNorm3d(c_out))
    return layers + [nn.ReLU(inplace=True)]


class C3D(VideoClassifier):
    """conv1a pool1 | conv2a pool2 | conv3a,b pool3 | conv4a,b pool4 | conv5a,b pool5 | fc6 fc7."""

    def __init__(self, width: int = 64, fc_dim: int | None = 4096, num_classes: int | None = None,
                 dropout: float = 0.5, batch_norm: bool = False, temporal_pool: bool = True,
                 padding_mode: PaddingMode = "zeros") -> None:
        super().__init__()
        w = [width, 2 * width, 4 * width, 8 * width, 8 * width]
        convs_per_stage = [1, 1, 2, 2, 2]
        layers: list[nn.Module] = []
        c_in = 3
        for stage, (c_out, n) in enumerate(zip(w, convs_per_stage)):
            for _ in range(n):
                layers += _conv(c_in, c_out, batch_norm, padding_mode)
                c_in = c_out
            if stage < 4:  # pool5 is the adaptive pool below
                kt = 2 if stage > 0 and temporal_pool else 1
                layers.append(nn.MaxPool3d(kernel_size=(kt, 2, 2), stride=(kt, 2, 2)))
        self.features = nn.Sequential(*layers)
        self.fc_dim = fc_dim
        if fc_dim is None:
            self.fc = None
            out_dim = c_in
        else:
            self.pool5 = nn.AdaptiveMaxPool3d((1, 4, 4))
            self.fc = nn.Sequential(
                nn.Flatten(1),
                nn.Linear(c_in * 16, fc_dim), nn.ReLU(inplace=True), nn.Dropout(dropout),  # fc6
                nn.Linear(fc_dim, fc_dim), nn.ReLU(inplace=True),  # fc7: the "C3D features"
            )
            out_dim = fc_dim
        for m in self.modules():
            if isinstance(m, nn.Conv3d):  # He init, as torchvision's video ResNets: trains from scratch
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        self.init_head(out_dim, num_classes, dropout if fc_dim is not None else 0.0)

    def forward_maps(self, x: torch.Tensor) -> torch.Tensor:
        """conv5b feature maps ``[B, 8*width, T', H', W']``."""
        check_clip(x)
        return self.features(x)

    def forward_tokens(self, x: torch.Tensor) -> torch.Tensor:
        if self.fc is not None:
            raise NotImplementedError("c3d with fc layers has no tokens; build it with fc_dim=None")
        return self.forward_maps(x).flatten(2).transpose(1, 2)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        maps = self.forward_maps(x)
        if self.fc is None:
            return maps.mean(dim=(2, 3, 4))
        return self.fc(self.pool5(maps))


@register_model("c3d", family="c3d",
                tiny={"width": 8, "fc_dim": 64, "dropout": 0.0, "batch_norm": True})
def c3d(width: int = 64, fc_dim: int | None = 4096, num_classes: int | None = None, dropout: float = 0.5,
        batch_norm: bool = False, temporal_pool: bool = True, padding_mode: PaddingMode = "zeros") -> C3D:
    """C3D slow fusion: VGG-style 3x3x3 convs, 2x2x2 pools, fc6/fc7 (width 64 = the paper).

    ``padding_mode="circular"`` pads each conv by wrapping around (in time too), for frames that
    are a torus, as the synthetic ``motion`` data's: an object across an edge is then one object.
    """
    return C3D(width, fc_dim, num_classes, dropout, batch_norm, temporal_pool, padding_mode)
