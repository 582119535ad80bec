"""Log-mel spectrogram CNNs: a VGGish-style stack and a small ResNet, for audio event classification.

Input is a spectrogram ``float [B, 1, F, T]`` (frequency bins x time frames, see
``avkit.data.audio_features``). Both networks treat it as a one-channel image. The last
feature map ``[B, D, F', T']`` is:

- pooled PANNs-style (mean over frequency, then mean + max over time, so a short loud event
  is not averaged away) into ``[B, D]`` features, ``out_dim == D``;
- flattened into ``F' * T'`` tokens ``[B, N, D]`` (frequency-major) for token fusion heads.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from avkit.errors import AvkitError
from avkit.models.base import VideoClassifier
from avkit.models.registry import register_model


def conv_bn_relu(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class VGGStage(nn.Sequential):
    """``num_convs`` 3x3 conv-BN-ReLU layers, then 2x2 max pooling (VGGish)."""

    def __init__(self, cin: int, cout: int, num_convs: int) -> None:
        layers = [conv_bn_relu(cin if i == 0 else cout, cout) for i in range(num_convs)]
        super().__init__(*layers, nn.MaxPool2d(2))


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convs and a (projected when the shape changes) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = conv_bn_relu(cin, cout, stride)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn2(self.conv2(self.conv1(x))) + self.shortcut(x))


class AudioCNN(VideoClassifier):
    """A spectrogram CNN (``stages`` turn ``[B,1,F,T]`` into ``[B,D,F',T']``) with the avkit encoder API."""

    def __init__(self, stages: nn.Module, out_dim: int, num_classes: int | None = None, dropout: float = 0.0) -> None:
        super().__init__()
        # Log-mel values are far from zero mean / unit variance (dB: about -100..20); one learned
        # BatchNorm on the input puts them in range (as PANNs' bn0), so no dataset statistics are needed.
        self.input_norm = nn.BatchNorm2d(1)
        self.stages = stages
        self.init_head(out_dim, num_classes, dropout)

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """``[B,1,F,T]`` spectrogram -> ``[B,D,F',T']`` time-frequency feature map."""
        if x.dim() != 4 or x.shape[1] != 1:
            raise AvkitError(f"audio CNN expects a spectrogram [B, 1, F, T], got shape {tuple(x.shape)}")
        return self.stages(self.input_norm(x))

    def forward_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """One token per cell of the final time-frequency map: ``[B, F'*T', D]``."""
        return self.feature_map(x).flatten(2).transpose(1, 2)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        fmap = self.feature_map(x).mean(dim=2)  # [B, D, T']: average over frequency
        return fmap.mean(dim=2) + fmap.amax(dim=2)


@register_model("audio_cnn", family="audio_cnn", modality="audio", tiny={"width": 8}, tiny_input=(1, 64, 100))
def audio_cnn(num_classes: int | None = None, width: int = 64, convs: Sequence[int] = (1, 1, 2, 2),
              dropout: float = 0.0) -> AudioCNN:
    """VGGish-style log-mel CNN: stages of 3x3 convs at widths w, 2w, 4w, 8w, each halving F and T."""
    widths = [width * 2**i for i in range(len(convs))]
    stages, cin = [], 1
    for cout, n in zip(widths, convs):
        stages.append(VGGStage(cin, cout, n))
        cin = cout
    return AudioCNN(nn.Sequential(*stages), widths[-1], num_classes, dropout)


@register_model("audio_resnet", family="audio_cnn", modality="audio", tiny={"width": 8, "layers": (1, 1, 1, 1)},
                tiny_input=(1, 64, 100))
def audio_resnet(num_classes: int | None = None, width: int = 64, layers: Sequence[int] = (2, 2, 2, 2),
                 dropout: float = 0.0) -> AudioCNN:
    """ResNet-style log-mel CNN: a 3x3 stem, then basic-block stages at widths w..8w (stride 2 after the first)."""
    widths = [width * 2**i for i in range(len(layers))]
    blocks: list[nn.Module] = [conv_bn_relu(1, width), nn.MaxPool2d(2)]
    cin = width
    for i, (cout, n) in enumerate(zip(widths, layers)):
        for j in range(n):
            blocks.append(BasicBlock(cin, cout, stride=2 if (i > 0 and j == 0) else 1))
            cin = cout
    return AudioCNN(nn.Sequential(*blocks), widths[-1], num_classes, dropout)
