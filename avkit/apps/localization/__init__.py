"""Temporal action localisation: where in a long video each action starts and ends (``avkit localize``).

```python
from avkit.apps import localization

loc = localization.load("runs/localize_onestage")          # -> Localizer
loc.localize("long.mp4")   # [{"label": "rotate_cw", "start": 12.4, "end": 15.1, "score": 0.83}, ...]
localization.mean_average_precision(predictions, ground_truth, (0.3, 0.5, 0.7))   # {tIoU: mAP}
```

Three methods over the same per-window features (``features.py``): sliding-window classification
(the baseline), proposals then classification, and a one-stage anchor-free localiser; each is
trained with ``avkit train`` (``task: localization``, :class:`LocalizationTask`; recipes/localize_*.yaml).
See docs/localization.md. Importing this package is light; torch loads with the models.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from avkit.apps.localization.metrics import mean_average_precision

if TYPE_CHECKING:
    import torch

    from avkit.apps.localization.inference import Localizer

__all__ = ["load", "Localizer", "mean_average_precision", "LocalizationTask", "FeatureSpec", "Extractor"]

_LAZY = {"Localizer": "inference", "LocalizationTask": "task", "FeatureSpec": "features", "Extractor": "features"}


def load(run_dir: str | Path, checkpoint: str = "best", device: str | torch.device | None = "auto") -> Localizer:
    """The localiser trained in ``run_dir`` (any of the three methods)."""
    from avkit.apps.localization.inference import Localizer

    return Localizer(run_dir, checkpoint=checkpoint, device=device)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
