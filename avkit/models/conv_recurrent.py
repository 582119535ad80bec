"""Recurrent convolutional network (Ballas et al. 2016): ConvGRU / ConvLSTM cells.

A convolutional recurrent cell is an ordinary GRU/LSTM whose matrix multiplications are 2D
convolutions, so its hidden state is a feature map ``[B, C, H, W]`` and each unit only sees a
spatial neighbourhood. Layers are stacked: layer ``l`` at time ``t`` takes the previous layer's
current state ``h[l-1, t]`` (the frame itself for the first layer, after a conv stem) through a
strided input conv and its own previous state ``h[l, t-1]`` through a same-size hidden conv.

``forward_features``: the last layer's final hidden map, global-average pooled ``[B, C_last]``;
``forward_tokens``: that map's positions ``[B, h*w, C_last]``.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from avkit.errors import AvkitError
from avkit.models.base import VideoClassifier, check_clip
from avkit.models.registry import register_model


class ConvGRUCell(nn.Module):
    """GRU with convolutions: ``z, r = sigmoid(Wx*x + Uh*h)``, ``n = tanh(Wn*x + Un*(r.h))``,
    ``h' = (1 - z).h + z.n``. ``stride`` downsamples the input to the hidden map's size."""

    def __init__(self, in_channels: int, hidden_channels: int, kernel_size: int = 3, stride: int = 1) -> None:
        super().__init__()
        self.hidden_channels, self.stride = hidden_channels, stride
        pad = kernel_size // 2
        self.input_conv = nn.Conv2d(in_channels, 3 * hidden_channels, kernel_size, stride, pad)
        self.gate_conv = nn.Conv2d(hidden_channels, 2 * hidden_channels, kernel_size, padding=pad, bias=False)
        self.candidate_conv = nn.Conv2d(hidden_channels, hidden_channels, kernel_size, padding=pad, bias=False)

    def init_state(self, x: torch.Tensor) -> torch.Tensor:
        """Zero hidden map for input ``x`` ``[B, C_in, H, W]``."""
        h, w = -(-x.shape[-2] // self.stride), -(-x.shape[-1] // self.stride)
        return x.new_zeros(x.shape[0], self.hidden_channels, h, w)

    def forward(self, x: torch.Tensor, h: torch.Tensor | None = None) -> torch.Tensor:
        h = self.init_state(x) if h is None else h
        xz, xr, xn = self.input_conv(x).chunk(3, dim=1)
        hz, hr = self.gate_conv(h).chunk(2, dim=1)
        z = torch.sigmoid(xz + hz)
        r = torch.sigmoid(xr + hr)
        n = torch.tanh(xn + self.candidate_conv(r * h))
        return (1 - z) * h + z * n


class ConvLSTMCell(nn.Module):
    """LSTM with convolutions (Shi et al. 2015): gates from ``Wx*x + Uh*h``; state is ``(h, c)``."""

    def __init__(self, in_channels: int, hidden_channels: int, kernel_size: int = 3, stride: int = 1) -> None:
        super().__init__()
        self.hidden_channels, self.stride = hidden_channels, stride
        pad = kernel_size // 2
        self.input_conv = nn.Conv2d(in_channels, 4 * hidden_channels, kernel_size, stride, pad)
        self.hidden_conv = nn.Conv2d(hidden_channels, 4 * hidden_channels, kernel_size, padding=pad, bias=False)

    def init_state(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, w = -(-x.shape[-2] // self.stride), -(-x.shape[-1] // self.stride)
        zeros = x.new_zeros(x.shape[0], self.hidden_channels, h, w)
        return zeros, zeros

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        h, c = self.init_state(x) if state is None else state
        i, f, g, o = (self.input_conv(x) + self.hidden_conv(h)).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c


class ConvRecurrentNet(VideoClassifier):
    """Conv stem per frame, then ``len(widths)`` stacked ConvGRU/ConvLSTM layers run over time."""

    def __init__(self, num_classes: int | None = None, width: int = 32, widths: tuple[int, ...] | None = None,
                 cell: str = "gru", kernel_size: int = 3, dropout: float = 0.0) -> None:
        super().__init__()
        if cell not in ("gru", "lstm"):
            raise AvkitError(f"cell must be 'gru' or 'lstm', got {cell!r}")
        widths = tuple(widths) if widths is not None else (width, 2 * width, 4 * width)
        self.cell_type = cell
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 3, stride=2, padding=1, bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True))
        cls = ConvGRUCell if cell == "gru" else ConvLSTMCell
        c_in, cells = widths[0], []
        for i, c in enumerate(widths):
            cells.append(cls(c_in, c, kernel_size, stride=1 if i == 0 else 2))
            c_in = c
        self.cells = nn.ModuleList(cells)
        self.init_head(widths[-1], num_classes, dropout)

    def hidden_states(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Each layer's final hidden map ``[B, C_l, H_l, W_l]`` after the whole clip."""
        check_clip(x)
        states: list = [None] * len(self.cells)
        for t in range(x.shape[2]):
            inp = self.stem(x[:, :, t])
            for i, cell in enumerate(self.cells):
                states[i] = cell(inp, states[i])
                inp = states[i] if self.cell_type == "gru" else states[i][0]
        return [s if self.cell_type == "gru" else s[0] for s in states]

    def forward_tokens(self, x: torch.Tensor) -> torch.Tensor:
        return self.hidden_states(x)[-1].flatten(2).transpose(1, 2)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.hidden_states(x)[-1].mean(dim=(2, 3))


@register_model("conv_gru", family="conv_recurrent", tiny={"width": 8, "widths": (8, 16)})
def conv_gru(num_classes: int | None = None, width: int = 32, widths: tuple[int, ...] | None = None,
             kernel_size: int = 3, dropout: float = 0.0) -> ConvRecurrentNet:
    """Recurrent convolutional network: stacked ConvGRU layers (convolutions replace matmuls)."""
    return ConvRecurrentNet(num_classes, width, widths, "gru", kernel_size, dropout)


@register_model("conv_lstm", family="conv_recurrent", tiny={"width": 8, "widths": (8, 16)})
def conv_lstm(num_classes: int | None = None, width: int = 32, widths: tuple[int, ...] | None = None,
              kernel_size: int = 3, dropout: float = 0.0) -> ConvRecurrentNet:
    """Recurrent convolutional network with ConvLSTM cells (Shi et al. 2015)."""
    return ConvRecurrentNet(num_classes, width, widths, "lstm", kernel_size, dropout)
