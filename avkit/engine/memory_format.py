"""Channels-last layout for a model's conv weights: the same numbers, a faster memory order.

Conv kernels on CPU (oneDNN) and on GPU (cuDNN, with bf16) run fastest when the channels are the
innermost dimension. Converting the 4-D weights to ``channels_last`` and the 5-D ones to
``channels_last_3d`` makes the convs pick that layout for their outputs too, without touching the
inputs. ``benchmarks/channels_last.py`` on the quickstart's tiny models (2 CPU cores, batch 16 of
8x32x32, one training step, two runs): 1.15-1.27x for the per-frame 2D CNNs and C3D, 1.03-1.15x
for early fusion, two-stream and C3D + audio. At inference the separation U-Net gains only 1.04x,
so the app loaders (separation, captioner, preview) keep the default layout.
Checkpoints are unaffected: they are saved contiguous (``avkit.engine.checkpoint``).
"""
from __future__ import annotations

import torch
import torch.nn as nn

_FORMATS = {4: torch.channels_last, 5: torch.channels_last_3d}


def to_channels_last(model: nn.Module) -> nn.Module:
    """Give every 4-D and 5-D parameter and buffer of ``model`` its channels-last layout (in place)."""
    for tensor in list(model.parameters()) + list(model.buffers()):
        fmt = _FORMATS.get(tensor.dim())
        if fmt is not None:
            tensor.data = tensor.data.contiguous(memory_format=fmt)
    return model
