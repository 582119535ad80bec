"""torchvision's video models as avkit backbones: r3d_18, mc3_18, r2plus1d_18, s3d, mvit_v2_s, swin3d_t.

Each keeps torchvision's ``weights=`` argument (``"DEFAULT"``, ``"KINETICS400_V1"``, a Weights enum:
loaded from the torch hub cache; or a local state_dict path, see ``base.build_torchvision``), with the
Kinetics head removed so the model is a feature encoder plus an optional avkit head. ``width`` (and
depth options) build smaller variants of the same architecture from scratch for CPU work.

- 3D ResNets (Tran et al. 2018): r3d (3x3x3 everywhere), mc3 (3D only in the first stages, "mixed
  convolutions"), r2plus1d ((2+1)D: a 1x3x3 spatial then 3x1x1 temporal conv). ``nonlocal_stages``
  inserts non-local blocks after chosen stages.
- s3d: separable 3D Inception; mvit_v2_s: multiscale vision transformer (fixed input size, it has
  absolute position embeddings); swin3d_t: video Swin transformer (any size, windowed attention).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn

from avkit.errors import AvkitError
from avkit.models.base import VideoClassifier, build_torchvision, check_clip, resnet_init
from avkit.models.nonlocal_block import add_nonlocal
from avkit.models.registry import register_model

# ---------------------------------------------------------------------------------------------
# 3D ResNets


def _stem(arch: str, width: int) -> nn.Module:
    if arch == "r2plus1d_18":  # torchvision's R2Plus1dStem, 45 mid channels at width 64
        mid = max(1, round(45 * width / 64))
        return nn.Sequential(
            nn.Conv3d(3, mid, (1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3), bias=False),
            nn.BatchNorm3d(mid), nn.ReLU(inplace=True),
            nn.Conv3d(mid, width, (3, 1, 1), stride=1, padding=(1, 0, 0), bias=False),
            nn.BatchNorm3d(width), nn.ReLU(inplace=True),
        )
    return nn.Sequential(  # torchvision's BasicStem
        nn.Conv3d(3, width, (3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3), bias=False),
        nn.BatchNorm3d(width), nn.ReLU(inplace=True),
    )


def _scaled_video_resnet(arch: str, width: int, layers: Sequence[int]) -> nn.Module:
    """torchvision's VideoResNet code at stage widths ``width * (1, 2, 4, 8)`` and ``layers`` blocks."""
    from torchvision.models.video import resnet as tv

    conv_makers = {
        "r3d_18": [tv.Conv3DSimple] * 4,
        "mc3_18": [tv.Conv3DSimple] + [tv.Conv3DNoTemporal] * 3,
        "r2plus1d_18": [tv.Conv2Plus1D] * 4,
    }[arch]
    model = tv.VideoResNet.__new__(tv.VideoResNet)
    nn.Module.__init__(model)
    model.inplanes = width
    model.stem = _stem(arch, width)
    for i, n in enumerate(layers):
        layer = model._make_layer(tv.BasicBlock, conv_makers[i], width * 2**i, n, stride=1 if i == 0 else 2)
        setattr(model, f"layer{i + 1}", layer)
    model.avgpool = nn.AdaptiveAvgPool3d(1)
    model.fc = nn.Identity()
    resnet_init(model)
    return model


class VideoResNetEncoder(VideoClassifier):
    """A torchvision 3D ResNet (stem, layer1-4) as an encoder: pooled features and space-time tokens."""

    backbone: Any  # a torchvision model, used through its own attribute names

    def __init__(self, arch: str, weights: Any = None, width: int = 64, layers: Sequence[int] = (2, 2, 2, 2),
                 nonlocal_stages: Sequence[int] = (), num_classes: int | None = None, dropout: float = 0.0) -> None:
        super().__init__()
        if width == 64 and tuple(layers) == (2, 2, 2, 2):
            self.backbone = build_torchvision(arch, weights)
            self.backbone.fc = nn.Identity()
        else:
            if weights is not None:
                raise AvkitError(f"{arch}: pretrained weights need width=64, layers=(2, 2, 2, 2)")
            self.backbone = _scaled_video_resnet(arch, width, layers)
        add_nonlocal(self.backbone, nonlocal_stages)
        self.init_head(width * 8, num_classes, dropout)

    def forward_maps(self, x: torch.Tensor) -> torch.Tensor:
        """layer4 feature maps ``[B, out_dim, T', H', W']``."""
        check_clip(x)
        net = self.backbone
        return net.layer4(net.layer3(net.layer2(net.layer1(net.stem(x)))))

    def forward_tokens(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_maps(x).flatten(2).transpose(1, 2)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_maps(x).mean(dim=(2, 3, 4))


_RESNET_TINY = {"width": 8, "layers": (1, 1, 1, 1)}


@register_model("r3d_18", family="torchvision_video", tiny=_RESNET_TINY)
def r3d_18(weights: Any = None, width: int = 64, layers: Sequence[int] = (2, 2, 2, 2),
           nonlocal_stages: Sequence[int] = (), num_classes: int | None = None,
           dropout: float = 0.0) -> VideoResNetEncoder:
    """ResNet3D-18: 3x3x3 convolutions in every block (torchvision, Kinetics weights)."""
    return VideoResNetEncoder("r3d_18", weights, width, layers, nonlocal_stages, num_classes, dropout)


@register_model("mc3_18", family="torchvision_video", tiny=_RESNET_TINY)
def mc3_18(weights: Any = None, width: int = 64, layers: Sequence[int] = (2, 2, 2, 2),
           nonlocal_stages: Sequence[int] = (), num_classes: int | None = None,
           dropout: float = 0.0) -> VideoResNetEncoder:
    """MC3-18: 3D convs in the first stage, 2D (1x3x3) after it (torchvision, Kinetics weights)."""
    return VideoResNetEncoder("mc3_18", weights, width, layers, nonlocal_stages, num_classes, dropout)


@register_model("r2plus1d_18", family="torchvision_video", tiny=_RESNET_TINY)
def r2plus1d_18(weights: Any = None, width: int = 64, layers: Sequence[int] = (2, 2, 2, 2),
                nonlocal_stages: Sequence[int] = (), num_classes: int | None = None,
                dropout: float = 0.0) -> VideoResNetEncoder:
    """R(2+1)D-18: each 3x3x3 conv split into 1x3x3 spatial + 3x1x1 temporal (torchvision)."""
    return VideoResNetEncoder("r2plus1d_18", weights, width, layers, nonlocal_stages, num_classes, dropout)


# ---------------------------------------------------------------------------------------------
# S3D


class S3DEncoder(VideoClassifier):
    """torchvision's S3D features, globally averaged (its fixed 2x7x7 pool equals that at 16x224x224)."""

    backbone: Any  # a torchvision model, used through its own attribute names

    def __init__(self, weights: Any = None, num_classes: int | None = None, dropout: float = 0.0) -> None:
        super().__init__()
        self.backbone = build_torchvision("s3d", weights)
        self.backbone.avgpool = nn.Identity()
        self.backbone.classifier = nn.Identity()
        self.init_head(1024, num_classes, dropout)

    def forward_tokens(self, x: torch.Tensor) -> torch.Tensor:
        check_clip(x)
        return self.backbone.features(x).flatten(2).transpose(1, 2)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        check_clip(x)
        return self.backbone.features(x).mean(dim=(2, 3, 4))


@register_model("s3d", family="torchvision_video", tiny={})
def s3d(weights: Any = None, num_classes: int | None = None, dropout: float = 0.0) -> S3DEncoder:
    """S3D: separable 3D Inception network (torchvision, Kinetics weights); fixed width 1024."""
    return S3DEncoder(weights, num_classes, dropout)


# ---------------------------------------------------------------------------------------------
# MViT v2


def _mvit_v2_s(width: int, num_frames: int, size: int, stochastic_depth_prob: float, mid_blocks: int = 10) -> nn.Module:
    """torchvision's mvit_v2_s configuration (4 scales, 16 blocks of which ``mid_blocks=10`` at the third),
    with channels scaled to ``width`` (96 is the standard one)."""
    from torchvision.models.video.mvit import MSBlockConfig, MViT

    n = 6 + mid_blocks
    heads = [1, 2, 2] + [4] * (mid_blocks + 1) + [8, 8]
    mult_in = [1, 1, 2, 2] + [4] * mid_blocks + [4, 8]
    mult_out = [1, 2, 2] + [4] * (mid_blocks + 1) + [8, 8]
    q_down = {1, 3, n - 2}  # blocks that halve H and W
    blocks, kv = [], 8
    for i in range(n):
        if i in q_down:
            kv = max(1, kv // 2)
        s_q = [1, 2, 2] if i in q_down else [1, 1, 1]
        blocks.append(MSBlockConfig(heads[i], width * mult_in[i], width * mult_out[i], [3, 3, 3], [3, 3, 3],
                                    s_q, [1, kv, kv]))
    return MViT(spatial_size=(size, size), temporal_size=num_frames, block_setting=blocks, residual_pool=True,
                residual_with_cls_embed=False, rel_pos_embed=True, proj_after_attn=True,
                stochastic_depth_prob=stochastic_depth_prob)


class MViTEncoder(VideoClassifier):
    """MViT v2: features = the final norm's class token, tokens = the final patch tokens."""

    backbone: Any  # a torchvision model, used through its own attribute names

    def __init__(self, weights: Any = None, width: int = 96, num_frames: int = 16, size: int = 224,
                 mid_blocks: int = 10, stochastic_depth_prob: float = 0.2, num_classes: int | None = None,
                 dropout: float = 0.0) -> None:
        super().__init__()
        if weights is not None:
            if (width, num_frames, size, mid_blocks) != (96, 16, 224, 10):
                raise AvkitError("mvit_v2_s pretrained weights need width=96, num_frames=16, size=224, mid_blocks=10")
            self.backbone = build_torchvision("mvit_v2_s", weights)
        else:
            self.backbone = _mvit_v2_s(width, num_frames, size, stochastic_depth_prob, mid_blocks)
        self.backbone.head = nn.Identity()
        self.num_frames, self.size = num_frames, size
        self.init_head(width * 8, num_classes, dropout)

    def _all_tokens(self, x: torch.Tensor) -> torch.Tensor:
        check_clip(x)
        if tuple(x.shape[2:]) != (self.num_frames, self.size, self.size):
            raise AvkitError(f"mvit_v2_s takes a fixed {self.num_frames}x{self.size}x{self.size} input (it has "
                             f"absolute position embeddings), got {'x'.join(map(str, x.shape[2:]))}; "
                             f"build it with num_frames=, size=")
        net = self.backbone
        x = net.conv_proj(x).flatten(2).transpose(1, 2)
        x = net.pos_encoding(x)
        thw = (net.pos_encoding.temporal_size,) + net.pos_encoding.spatial_size
        for block in net.blocks:
            x, thw = block(x, thw)
        return net.norm(x)

    def forward_tokens(self, x: torch.Tensor) -> torch.Tensor:
        return self._all_tokens(x)[:, 1:]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self._all_tokens(x)[:, 0]


@register_model("mvit_v2_s", family="torchvision_video",
                tiny={"width": 16, "num_frames": 8, "size": 32, "mid_blocks": 1})
def mvit_v2_s(weights: Any = None, width: int = 96, num_frames: int = 16, size: int = 224, mid_blocks: int = 10,
              stochastic_depth_prob: float = 0.2, num_classes: int | None = None,
              dropout: float = 0.0) -> MViTEncoder:
    """MViT v2-S: multiscale video transformer with pooling attention (torchvision; fixed input size)."""
    return MViTEncoder(weights, width, num_frames, size, mid_blocks, stochastic_depth_prob, num_classes, dropout)


# ---------------------------------------------------------------------------------------------
# Video Swin


class SwinEncoder(VideoClassifier):
    """Video Swin: features = mean of the final tokens, tokens = the final ``T'*H'*W'`` patch tokens."""

    backbone: Any  # a torchvision model, used through its own attribute names

    def __init__(self, weights: Any = None, width: int = 96, depths: Sequence[int] = (2, 2, 6, 2),
                 stochastic_depth_prob: float = 0.1, num_classes: int | None = None, dropout: float = 0.0) -> None:
        super().__init__()
        if weights is not None:
            if width != 96 or tuple(depths) != (2, 2, 6, 2):
                raise AvkitError("swin3d_t pretrained weights need width=96, depths=(2, 2, 6, 2)")
            self.backbone = build_torchvision("swin3d_t", weights)
        else:
            from torchvision.models.video.swin_transformer import SwinTransformer3d

            heads = [max(1, width * 2**i // 32) for i in range(len(depths))]  # 32 channels per head
            self.backbone = SwinTransformer3d(patch_size=[2, 4, 4], embed_dim=width, depths=list(depths),
                                              num_heads=heads, window_size=[8, 7, 7],
                                              stochastic_depth_prob=stochastic_depth_prob)
        self.backbone.head = nn.Identity()
        self.init_head(self.backbone.num_features, num_classes, dropout)

    def forward_tokens(self, x: torch.Tensor) -> torch.Tensor:
        check_clip(x)
        net = self.backbone
        x = net.norm(net.features(net.pos_drop(net.patch_embed(x))))  # [B, T', H', W', C]
        return x.flatten(1, 3)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_tokens(x).mean(dim=1)


@register_model("swin3d_t", family="torchvision_video", tiny={"width": 16, "depths": (1, 1, 2, 1)})
def swin3d_t(weights: Any = None, width: int = 96, depths: Sequence[int] = (2, 2, 6, 2),
             stochastic_depth_prob: float = 0.1, num_classes: int | None = None,
             dropout: float = 0.0) -> SwinEncoder:
    """Video Swin-T: shifted-window space-time transformer (torchvision, Kinetics weights)."""
    return SwinEncoder(weights, width, depths, stochastic_depth_prob, num_classes, dropout)
