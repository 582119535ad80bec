"""CNN + LSTM (Donahue et al. 2015, "LRCN"): a CNN encodes each frame, an LSTM runs over time.

- Frame encoder: a 2D CNN on every frame (``image_backbone``), or, with ``chunk > 1``, a small
  3D CNN on consecutive non-overlapping chunks of ``chunk`` frames (per-clip 3D features; the LSTM
  then has ``T / chunk`` steps).
- Many-to-one (video label): ``forward`` -> ``[B, C]`` from the last step's output (``pool="last"``,
  causal: it has seen the whole clip) or the mean over steps (``pool="mean"``).
- Many-to-many (per-frame labels): ``per_frame=True`` -> ``forward`` returns ``[B, T', C]`` (``T'``
  steps; ``[B, T', hidden]`` without ``num_classes``). With a unidirectional LSTM, output ``t``
  only depends on frames ``<= t`` (in eval mode; BatchNorm in train mode mixes the batch).

``forward_tokens`` gives the per-step LSTM outputs ``[B, T', hidden]``; ``forward_features`` the
pooled ``[B, hidden]`` (``out_dim == hidden_size``, doubled when bidirectional).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from avkit.errors import AvkitError
from avkit.models.base import VideoClassifier, check_clip, image_backbone
from avkit.models.base import per_frame as encode_frames
from avkit.models.registry import register_model


class ChunkCNN3D(nn.Module):
    """Per-clip 3D features: conv3d-BN-ReLU stages of width w, 2w, 4w, 8w over a ``[N, 3, chunk, H, W]``
    clip (time kernel 3, spatial stride 2), global pooled to ``[N, 8w]``."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for i in range(4):
            c_out = width * 2**i
            layers += [nn.Conv3d(c_in, c_out, 3, stride=(1, 2, 2), padding=1, bias=False), nn.BatchNorm3d(c_out),
                       nn.ReLU(inplace=True)]
            c_in = c_out
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool3d(1), nn.Flatten(1))
        self.out_dim = c_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class CNNLSTM(VideoClassifier):
    """Per-frame (or per-chunk) CNN features -> LSTM -> many-to-one or many-to-many outputs."""

    def __init__(self, num_classes: int | None = None, backbone: str = "resnet18", width: int | None = None,
                 weights: Any = None, hidden_size: int = 512, num_layers: int = 1, per_frame: bool = False,
                 pool: str = "last", chunk: int = 1, bidirectional: bool = False, dropout: float = 0.0) -> None:
        super().__init__()
        if pool not in ("last", "mean"):
            raise AvkitError(f"pool must be 'last' or 'mean', got {pool!r}")
        if chunk < 1:
            raise AvkitError(f"chunk must be >= 1, got {chunk}")
        self.per_frame, self.pool, self.chunk = per_frame, pool, chunk
        if chunk == 1:
            self.encoder, d = image_backbone(backbone, width, weights)
        else:
            if weights is not None:
                raise AvkitError("the per-chunk 3D encoder (chunk > 1) has no pretrained weights")
            self.encoder = ChunkCNN3D(width or 8)
            d = self.encoder.out_dim
        self.lstm = nn.LSTM(d, hidden_size, num_layers, batch_first=True, bidirectional=bidirectional,
                            dropout=dropout if num_layers > 1 else 0.0)
        self.init_head(hidden_size * (2 if bidirectional else 1), num_classes, dropout)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Frame (or chunk) features ``[B, T', D_cnn]``."""
        check_clip(x)
        if self.chunk == 1:
            return encode_frames(self.encoder, x)
        b, c, t, h, w = x.shape
        if t % self.chunk:
            raise AvkitError(f"T={t} is not a multiple of chunk={self.chunk}")
        n = t // self.chunk
        chunks = x.reshape(b, c, n, self.chunk, h, w).transpose(1, 2).reshape(b * n, c, self.chunk, h, w)
        return self.encoder(chunks).reshape(b, n, -1)

    def forward_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """LSTM output at every step ``[B, T', out_dim]``."""
        return self.lstm(self.encode(x))[0]

    def _pool(self, steps: torch.Tensor) -> torch.Tensor:
        return steps[:, -1] if self.pool == "last" else steps.mean(1)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self._pool(self.forward_tokens(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps = self.forward_tokens(x)
        out = steps if self.per_frame else self._pool(steps)
        return out if self.head is None else self.head(out)


@register_model("cnn_lstm", family="recurrent",
                tiny={"backbone": "cnn", "width": 8, "hidden_size": 32})
def cnn_lstm(num_classes: int | None = None, backbone: str = "resnet18", width: int | None = None,
             weights: Any = None, hidden_size: int = 512, num_layers: int = 1, per_frame: bool = False,
             pool: str = "last", chunk: int = 1, bidirectional: bool = False, dropout: float = 0.0) -> CNNLSTM:
    """CNN+LSTM (LRCN): per-frame 2D CNN (or per-chunk 3D, chunk>1) into an LSTM; per_frame=True for [B,T,C]."""
    return CNNLSTM(num_classes, backbone, width, weights, hidden_size, num_layers, per_frame, pool, chunk,
                   bidirectional, dropout)
