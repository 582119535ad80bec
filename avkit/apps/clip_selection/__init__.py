"""Audio-guided clip selection in front of a trained classifier (``avkit select``; docs/clip_selection.md).

```python
from avkit.apps import clip_selection

selector = clip_selection.load("runs/longvideo_c3d", preview="runs/longvideo_preview")   # -> ClipSelector
result = selector.select("video.mp4", budget=2, policy="audio")                            # -> Selection
result.prediction[0], result.gflops["total"], result.gflops["dense"]
```

The preview and the learned sampler are trained with ``avkit train`` (``task: clip_selection``,
:class:`ClipSelectionTask`; recipes/longvideo_preview.yaml, recipes/longvideo_sampler.yaml).
Importing this package is light; torch loads with the models.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from avkit.apps.clip_selection.inference import ClipSelector

__all__ = ["load", "ClipSelector", "Selection", "HeavyModel", "format_selection", "NetPreview", "EnergyPreview",
           "LearnedSampler", "ClipSelectionTask", "PreviewOptions", "SamplerOptions", "POLICIES"]

_LAZY = {"ClipSelector": "inference", "Selection": "inference", "HeavyModel": "inference",
         "format_selection": "inference", "NetPreview": "preview", "EnergyPreview": "preview",
         "LearnedSampler": "sampler", "ClipSelectionTask": "task", "PreviewOptions": "task", "SamplerOptions": "task",
         "POLICIES": "policies"}


def load(run_dir: str | Path, preview: str | Path | None = None, sampler: str | Path | None = None,
         checkpoint: str = "best", device: str | torch.device | None = None, **options: Any) -> ClipSelector:
    """Clip selection in front of the classifier trained in ``run_dir``: ``preview`` a preview run (None:
    the analytic energy preview), ``sampler`` a learned-sampler run (for ``policy="learned"``);
    ``options``: ``stride``, ``min_gap``, ``consensus`` (:class:`~avkit.apps.clip_selection.inference.ClipSelector`).
    ``device`` None: the GPU when there is one."""
    from avkit.apps.clip_selection.inference import ClipSelector

    return ClipSelector(run_dir, preview=preview, sampler=sampler, checkpoint=checkpoint, device=device, **options)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
