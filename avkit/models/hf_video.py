"""Hugging Face video transformers (VideoMAE, TimeSformer, ViViT) with the avkit encoder API.

Each builder makes the bare transformer (``VideoMAEModel``, ``TimesformerModel``, ``VivitModel``)
either at random from a config (a config object, a dict, or keyword options such as
``hidden_size=32``) or from a checkpoint (``pretrained=``: a ``save_pretrained`` folder, a downloaded
checkpoint's folder, or a hub id such as ``MCG-NJU/videomae-base`` already in the Hugging Face cache;
always ``local_files_only=True`` and ``trust_remote_code=False``, so it never downloads or runs remote
code; see ``avkit.models.weights``). A classification checkpoint's folder loads too (its head
weights are ignored); avkit's own head is a LayerNorm + Linear on the pooled features.

Input: avkit's ``float [B, 3, T, H, W]`` is permuted to the ``pixel_values [B, T, 3, H, W]`` these
models take; ``T``, ``H``, ``W`` must match the config (``num_frames``, ``image_size``).
Pooled features: the mean of the tokens for VideoMAE (as its classifier does), the CLS token for
TimeSformer and ViViT. ``forward_tokens``: the patch tokens ``[B, N, hidden]`` (CLS dropped).
``save_pretrained(path)`` writes the transformer (not the avkit head) as a Hugging Face folder.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from avkit.errors import AvkitError
from avkit.models.base import check_clip
from avkit.models.registry import register_model
from avkit.models.weights import load_hf_pretrained


class HFVideoEncoder(nn.Module):
    """A bare Hugging Face video transformer behind ``out_dim``/``forward_features``/``forward_tokens``."""

    config: Any  # the transformers config (hidden_size, image_size, num_frames)

    model: Any  # a transformers model, used through its config and attribute names

    def __init__(self, model: Any, pool: str, has_cls: bool, num_classes: int | None = None,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.model = model
        self.config = model.config
        self.pool, self.has_cls = pool, has_cls
        self.out_dim = int(model.config.hidden_size)
        self.num_classes = num_classes
        self.head = None
        if num_classes is not None:
            self.head = nn.Sequential(nn.LayerNorm(self.out_dim), nn.Dropout(dropout), nn.Linear(self.out_dim, num_classes))

    def _hidden(self, x: torch.Tensor) -> torch.Tensor:
        check_clip(x)
        t, h, w = x.shape[2:]
        size = self.config.image_size
        if t != self.config.num_frames or (h, w) != (size, size):
            raise AvkitError(f"{type(self.model).__name__} was built for clips of {self.config.num_frames} frames "
                             f"of {size}x{size}, got T={t}, {h}x{w}")
        return self.model(pixel_values=x.transpose(1, 2)).last_hidden_state

    def forward_tokens(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self._hidden(x)
        return hidden[:, 1:] if self.has_cls else hidden

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self._hidden(x)
        return hidden[:, 0] if self.pool == "cls" else hidden[:, int(self.has_cls):].mean(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.forward_features(x)
        return features if self.head is None else self.head(features)

    def save_pretrained(self, path: str | Path) -> None:
        """Write the transformer (config + safetensors weights) as a Hugging Face folder."""
        self.model.save_pretrained(str(path))


def _build(name: str, config_cls: Any, model_cls: Any, pretrained: str | Path | None, config: Any,
           options: dict[str, Any], model_kwargs: dict[str, Any] | None = None) -> nn.Module:
    model_kwargs = model_kwargs or {}
    if pretrained is not None:
        if config is not None or options:
            raise AvkitError("pass either pretrained= or a config / config options, not both")
        return load_hf_pretrained(model_cls, name, pretrained, **model_kwargs)[0]
    if config is None:
        try:
            config = config_cls(**options)
        except TypeError as err:
            raise AvkitError(f"bad {config_cls.__name__} options: {err}") from None
    elif isinstance(config, dict):
        config = config_cls(**{**config, **options})
    elif options:
        raise AvkitError("pass config options either in config= or as keywords, not both")
    if not isinstance(config, config_cls):
        raise AvkitError(f"config must be a {config_cls.__name__} or a dict, got {type(config).__name__}")
    return model_cls(config, **model_kwargs)


# Tiny configs: 8 frames of 32x32, 8x8 patches, tubelets of 2 frames -> 4 * 16 = 64 tokens of width 32.
_TINY_COMMON = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
                "image_size": 32, "num_frames": 8}
VIDEOMAE_TINY = {**_TINY_COMMON, "patch_size": 8, "tubelet_size": 2}
TIMESFORMER_TINY = {**_TINY_COMMON, "patch_size": 8}
VIVIT_TINY = {**_TINY_COMMON, "tubelet_size": [2, 8, 8]}


@register_model("hf_videomae", family="hf_video", tiny=VIDEOMAE_TINY)
def hf_videomae(num_classes: int | None = None, pretrained: str | Path | None = None, config: Any = None,
                dropout: float = 0.0, **config_options: Any) -> HFVideoEncoder:
    """VideoMAE (Hugging Face VideoMAEModel): tube tokens, joint attention, mean pooled; config or local folder."""
    from transformers import VideoMAEConfig, VideoMAEModel

    model = _build("hf_videomae", VideoMAEConfig, VideoMAEModel, pretrained, config, config_options)
    return HFVideoEncoder(model, "mean", False, num_classes, dropout)


@register_model("hf_timesformer", family="hf_video", tiny=TIMESFORMER_TINY)
def hf_timesformer(num_classes: int | None = None, pretrained: str | Path | None = None, config: Any = None,
                   dropout: float = 0.0, **config_options: Any) -> HFVideoEncoder:
    """TimeSformer (Hugging Face TimesformerModel): divided space-time attention, CLS; config or local folder."""
    from transformers import TimesformerConfig, TimesformerModel

    model = _build("hf_timesformer", TimesformerConfig, TimesformerModel, pretrained, config, config_options)
    return HFVideoEncoder(model, "cls", True, num_classes, dropout)


@register_model("hf_vivit", family="hf_video", tiny=VIVIT_TINY)
def hf_vivit(num_classes: int | None = None, pretrained: str | Path | None = None, config: Any = None,
             dropout: float = 0.0, **config_options: Any) -> HFVideoEncoder:
    """ViViT (Hugging Face VivitModel): tubelet tokens, joint attention, CLS; config or local folder."""
    from transformers import VivitConfig, VivitModel

    model = _build("hf_vivit", VivitConfig, VivitModel, pretrained, config, config_options, {"add_pooling_layer": False})
    return HFVideoEncoder(model, "cls", True, num_classes, dropout)
