"""avkit's own video captioner (``avkit caption``; docs/captioning.md).

```python
from avkit.apps import captioning

run = captioning.load("runs/caption_av_s2")          # -> CaptionerRun
run.caption("clip.mp4")["caption"]
```

Training is ``avkit train`` with ``task: captioning`` (:class:`CaptioningTask`, recipes/caption_*.yaml).
Importing this package is light; torch and transformers load with the captioner.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from avkit.apps.captioning.inference import CaptionerRun

__all__ = ["load", "CaptionerRun", "CaptioningTask", "CaptioningOptions", "Captioner", "caption_scores"]

_LAZY = {"CaptionerRun": "inference", "CaptioningTask": "task", "CaptioningOptions": "task", "Captioner": "model",
         "caption_scores": "metrics"}


def load(run_dir: str | Path, checkpoint: str = "best", device: str | torch.device | None = None) -> CaptionerRun:
    """The captioner trained in ``run_dir`` (:func:`avkit.apps.captioning.inference.load`)."""
    from avkit.apps.captioning.inference import load as load_run

    return load_run(run_dir, checkpoint, device)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
