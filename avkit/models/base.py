"""Shared pieces of the video model families: the classifier base class and 2D/torchvision builders.

- ``VideoClassifier``: an encoder with a declared width (``out_dim``) plus an optional linear head,
  so every family is a classifier (``num_classes``) and a feature encoder at the same time.
- ``image_backbone``: a torchvision 2D image model (or a tiny CNN) as a frame encoder
  ``[N, C, H, W] -> [N, D]``; single-frame, late/early fusion, I3D and CNN+LSTM reuse it.
- ``build_torchvision``: torchvision's ``weights=`` path kept intact (hub cache or a local file),
  with one clear ``AvkitError`` when weights cannot be had (no network).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from avkit.errors import AvkitError
from avkit.models.weights import (
    hub_file,
    hub_file_missing,
    read_state_dict,
    report_load,
    torchvision_load,
    torchvision_weights,
)


class VideoClassifier(nn.Module):
    """Base class: ``forward_features(x) -> [B, out_dim]``; ``forward`` adds the head when there is one.

    Subclasses build their encoder, then call ``self.init_head(out_dim, num_classes)`` last.
    Families with tokens override ``forward_tokens(x) -> [B, N, out_dim]``.
    """

    out_dim: int
    num_classes: int | None

    def init_head(self, out_dim: int, num_classes: int | None = None, dropout: float = 0.0) -> None:
        """Declare the feature width and add a linear classifier when ``num_classes`` is set."""
        self.out_dim = int(out_dim)
        self.num_classes = num_classes
        self.head: nn.Module | None
        if num_classes is None:
            self.head = None
        elif dropout > 0:
            self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.out_dim, num_classes))
        else:
            self.head = nn.Linear(self.out_dim, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_tokens(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no tokens; use forward_features")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.forward_features(x)
        return features if self.head is None else self.head(features)


def check_clip(x: torch.Tensor, channels: int = 3) -> None:
    """Raise AvkitError unless ``x`` is a float clip batch ``[B, channels, T, H, W]``."""
    if x.dim() != 5 or x.shape[1] != channels:
        raise AvkitError(f"expected a clip batch [B, {channels}, T, H, W], got shape {tuple(x.shape)}")


def per_frame(encoder: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Apply a 2D frame encoder ``[N, C, H, W] -> [N, D]`` to every frame of ``[B, C, T, H, W]`` -> ``[B, T, D]``."""
    b, c, t, h, w = x.shape
    frames = x.transpose(1, 2).reshape(b * t, c, h, w)
    return encoder(frames).reshape(b, t, -1)


# ---------------------------------------------------------------------------------------------
# torchvision models with the weights= path


def build_torchvision(name: str, weights: Any = None, **kwargs: Any) -> nn.Module:
    """``torchvision.models.get_model(name, weights=weights)``, with local files, clear errors and a load report.

    ``weights`` is None (random init), anything torchvision accepts (``"DEFAULT"``, ``"KINETICS400_V1"``,
    a ``Weights`` enum: read from the torch hub cache, downloaded if missing), or the path of a
    state_dict file (``.pth``/``.pt``/``.safetensors``) saved from the same torchvision architecture.
    Files are read without running pickled code; a cached file is checked that way before torchvision
    (which unpickles freely) reads it. Without network, the error names the file to put where
    (``avkit.models.weights.hub_file``). Each load is reported (``weights.report_load``); callers
    replace the model's classifier with their own head.
    """
    import torchvision

    is_path = isinstance(weights, Path) or (isinstance(weights, str) and (os.sep in weights or weights.endswith(
        (".pth", ".pt", ".bin", ".safetensors"))))
    if weights is None or is_path:
        model = torchvision.models.get_model(name, weights=None, **kwargs)
        if is_path:
            path = Path(weights)
            if not path.is_file():
                raise AvkitError(f"{path}: weights file not found")
            try:
                model.load_state_dict(read_state_dict(path))
            except (RuntimeError, KeyError, ValueError) as err:
                if isinstance(err, AvkitError):
                    raise
                first = str(err).strip().splitlines()[0]
                raise AvkitError(f"{path}: not a {name} state_dict ({first})") from None
            report_load(torchvision_load(name, str(path), path, model))
        return model
    enum = torchvision_weights(name, weights)
    file = hub_file(enum)
    cached = file.is_file()
    if cached:
        read_state_dict(file)  # refuses pickled code before torchvision unpickles the file
    try:
        model = torchvision.models.get_model(name, weights=enum, **kwargs)
    except Exception as err:  # noqa: BLE001 - download/network/cache errors have many types
        if not cached:
            raise hub_file_missing(name, enum, err) from None
        first = (str(err).strip().splitlines() or [""])[0]
        raise AvkitError(f"{file}: not the {name} {enum.name} checkpoint ({type(err).__name__}: {first}); "
                         f"replace it with {enum.url}") from None
    report_load(torchvision_load(name, enum.name, file, model))
    return model


# ---------------------------------------------------------------------------------------------
# 2D image backbones


class TinyCNN(nn.Sequential):
    """Four conv3x3-BN-ReLU stages of width w, 2w, 4w, 8w, each halving the size, then global pooling."""

    def __init__(self, width: int = 8, in_channels: int = 3) -> None:
        layers: list[nn.Module] = []
        c_in = in_channels
        for i in range(4):
            c_out = width * 2**i
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c_out),
                       nn.ReLU(inplace=True)]
            c_in = c_out
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(1)]
        super().__init__(*layers)
        self.out_dim = c_in


def _scaled_resnet(name: str, width: int) -> nn.Module:
    """A torchvision ResNet with stage widths ``width * (1, 2, 4, 8)`` instead of 64..512."""
    from torchvision.models import resnet as tv

    block, layers = {
        "resnet18": (tv.BasicBlock, [2, 2, 2, 2]), "resnet34": (tv.BasicBlock, [3, 4, 6, 3]),
        "resnet50": (tv.Bottleneck, [3, 4, 6, 3]), "resnet101": (tv.Bottleneck, [3, 4, 23, 3]),
    }[name]
    model = tv.ResNet(block, layers)  # the full-width one, to reuse its exact structure code below
    model.inplanes = width
    model.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
    model.bn1 = nn.BatchNorm2d(width)
    for i, n in enumerate(layers):
        setattr(model, f"layer{i + 1}", model._make_layer(block, width * 2**i, n, stride=1 if i == 0 else 2))
    model.fc = nn.Linear(width * 8 * block.expansion, 1000)
    resnet_init(model)
    return model


def resnet_init(model: nn.Module) -> None:
    """torchvision's ResNet / VideoResNet init, for 2D and 3D: He-normal convs, unit BatchNorms."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Conv3d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm3d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def _replace_first_conv(model: nn.Module, in_channels: int) -> None:
    """Swap the first Conv2d for one taking ``in_channels``; pretrained RGB kernels are tiled and averaged."""
    for parent in model.modules():
        for child_name, conv in parent.named_children():
            if isinstance(conv, nn.Conv2d):
                new = nn.Conv2d(in_channels, conv.out_channels, conv.kernel_size,  # type: ignore[arg-type]
                                conv.stride, conv.padding, conv.dilation,  # type: ignore[arg-type]
                                conv.groups, conv.bias is not None)
                if in_channels % conv.in_channels == 0:
                    reps = in_channels // conv.in_channels
                    with torch.no_grad():
                        new.weight.copy_(conv.weight.repeat(1, reps, 1, 1) / reps)
                        if conv.bias is not None and new.bias is not None:
                            new.bias.copy_(conv.bias)
                setattr(parent, child_name, new)
                return
    raise AvkitError(f"{type(model).__name__} has no Conv2d to adapt to {in_channels} input channels")


def image_backbone(
    name: str = "resnet18", width: int | None = None, weights: Any = None, in_channels: int = 3
) -> tuple[nn.Module, int]:
    """A 2D frame encoder ``[N, in_channels, H, W] -> [N, D]`` and its width ``D``.

    ``name`` is ``"cnn"`` (``TinyCNN``, default width 8) or a torchvision classification model
    (``resnet18``, ``resnet50``, ``mobilenet_v3_small``, ``efficientnet_b0``, ``convnext_tiny``, ...) with
    its classifier removed. ``width`` scales a ResNet's stage widths (64 is the standard one; only
    random init). ``weights`` follows ``build_torchvision``. ``in_channels != 3`` replaces the first
    conv (pretrained RGB kernels are repeated and divided, as for early fusion).
    """
    if name == "cnn":
        if weights is not None:
            raise AvkitError("the tiny 'cnn' backbone has no pretrained weights")
        tiny = TinyCNN(width or 8, in_channels)
        return tiny, tiny.out_dim
    model: Any
    if width is not None and width != 64:
        if not name.startswith("resnet"):
            raise AvkitError(f"width= is only supported for resnet backbones and 'cnn', not {name!r}")
        if weights is not None:
            raise AvkitError(f"pretrained weights need the standard width 64, got width={width}")
        try:
            model = _scaled_resnet(name, width)
        except KeyError:
            raise AvkitError(f"width= supports resnet18/34/50/101, not {name!r}") from None
    else:
        try:
            model = build_torchvision(name, weights)
        except (KeyError, ValueError) as err:
            if isinstance(err, AvkitError):
                raise
            raise AvkitError(f"unknown torchvision image model {name!r}: {err}") from None
    if hasattr(model, "fc") and isinstance(model.fc, nn.Linear):
        out_dim = model.fc.in_features
        model.fc = nn.Identity()
    elif hasattr(model, "classifier"):
        children = list(model.classifier.children())
        first = next((i for i, m in enumerate(children) if isinstance(m, nn.Linear)), None)
        if first is None:
            raise AvkitError(f"cannot find the classifier of torchvision model {name!r}")
        out_dim = children[first].in_features
        # Keep what precedes the first Linear (ConvNeXt's norm), drop dropout and the MLP.
        keep = [m for m in children[:first] if not isinstance(m, (nn.Dropout, nn.Flatten))]
        model.classifier = nn.Sequential(*keep, nn.Flatten(1))
    else:
        raise AvkitError(f"torchvision model {name!r} is not supported as a frame encoder (no fc/classifier)")
    if in_channels != 3:
        _replace_first_conv(model, in_channels)
    return model, out_dim
