"""One plain registry of model builders: ``create_model(name, **options)`` and ``list_models()``.

A family file registers its builders with ``@register_model("name", family="...")``; the
decorated function is an ordinary builder you can also call directly. Nothing is nested or
string-typed beyond the one name -> function table.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch.nn as nn

from avkit.errors import AvkitError


@dataclass(frozen=True)
class ModelEntry:
    name: str
    family: str
    builder: Callable[..., nn.Module]
    description: str
    # Input kinds the model takes: "video" (float [B,3,T,H,W]), "audio" (waveform or spectrogram).
    modality: str = "video"
    # Builder options of a tiny CPU variant: ``create_model(name, **entry.tiny, num_classes=...)``.
    tiny: dict = field(default_factory=dict)
    # Shape of one input sample (no batch dim) the tiny variant takes; None means video (3, 8, 32, 32).
    tiny_input: tuple[int, ...] | None = None


_MODELS: dict[str, ModelEntry] = {}


def register_model(
    name: str,
    family: str,
    modality: str = "video",
    tiny: dict | None = None,
    tiny_input: tuple[int, ...] | None = None,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator adding a builder under ``name``; the builder's docstring's first line describes it.

    ``tiny`` holds the builder options of a CPU-sized variant (e.g. ``{"width": 8}``) that tests,
    benchmarks and the quickstart build for ``tiny_input`` samples (default video ``(3, 8, 32, 32)``).
    """

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _MODELS:
            raise RuntimeError(f"model {name!r} registered twice")
        doc = (fn.__doc__ or "").strip().splitlines()
        _MODELS[name] = ModelEntry(name, family, fn, doc[0] if doc else "", modality,
                                   dict(tiny or {}), tuple(tiny_input) if tiny_input else None)
        return fn

    return wrap


# Every family file; each registers its builders when imported. Keep one module per line.
FAMILIES = (
    "avkit.models.audio_ast",
    "avkit.models.audio_cnn",
    "avkit.models.av_mae",
    "avkit.models.c3d",
    "avkit.models.conv_recurrent",
    "avkit.models.early_fusion",
    "avkit.models.hf_video",
    "avkit.models.i3d",
    "avkit.models.late_fusion",
    "avkit.models.recurrent",
    "avkit.models.single_frame",
    "avkit.models.torchvision_video",
    "avkit.models.two_stream",
    "avkit.models.video_transformer",
)


def _load_families() -> None:
    import importlib

    for module in FAMILIES:
        importlib.import_module(module)


def list_models(family: str | None = None, modality: str | None = None) -> list[str]:
    """Names of all registered models, optionally filtered by family or modality, sorted."""
    _load_families()
    return sorted(
        e.name for e in _MODELS.values()
        if (family is None or e.family == family) and (modality is None or e.modality == modality)
    )


def model_entry(name: str) -> ModelEntry:
    """The registry entry for ``name`` (raises AvkitError listing close names if unknown); looking it up imports
    only ``avkit.models.<name>`` when that file registers it, every family file otherwise."""
    if name not in _MODELS and f"avkit.models.{name}" in FAMILIES:
        import importlib

        importlib.import_module(f"avkit.models.{name}")
    if name not in _MODELS:
        _load_families()
    if name not in _MODELS:
        import difflib

        close = difflib.get_close_matches(name, list(_MODELS), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else " (see 'avkit models')"
        raise AvkitError(f"unknown model {name!r}{hint}")
    return _MODELS[name]


def create_model(name: str, **options) -> nn.Module:
    """Build model ``name`` with builder keyword ``options`` (e.g. ``num_classes=10, width=16``)."""
    return model_entry(name).builder(**options)
