"""Self-supervised audio-visual pretraining: a masked autoencoder of frames and spectrograms with an
audio-visual contrastive term (``task: av_mae``), then ``model.init`` for probing and fine-tuning.

```python
from avkit.apps import pretraining

enc = pretraining.load("runs/av_mae")              # -> AVMAE (encoder, decoders, projections), eval mode
emb = enc.embed_unmasked({"video": clips, "audio": waves})   # {"video": [B, P], "audio": [B, P]}
pretraining.retrieval_metrics(emb["audio"], emb["video"])    # {"a2v_r1": ..., "a2v_r5": ..., ...}
```

Recipes: recipes/pretrain_av_mae.yaml, then recipes/probe_av_mae.yaml (linear probe) and
recipes/finetune_av_mae.yaml. See docs/pretraining.md. Importing this package is light; torch
loads with the model.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from avkit.apps.pretraining.metrics import recall_at_k, retrieval_metrics
    from avkit.apps.pretraining.task import AVMAETask
    from avkit.models.av_mae import AVMAE

__all__ = ["load", "recall_at_k", "retrieval_metrics", "AVMAETask"]


def load(run_dir: str | Path, checkpoint: str = "best", device: str | torch.device | None = "auto") -> AVMAE:
    """The pretrained model of an ``av_mae`` run, on ``device`` in eval mode."""
    from avkit.apps.pretraining.task import AVMAETask
    from avkit.engine.checkpoint import load_trained, open_run

    run = open_run(run_dir, checkpoint, task="av_mae", hint="train one with recipes/pretrain_av_mae.yaml")
    model: Any = AVMAETask(run.config).build_model()
    return load_trained(model, run, device)


_LAZY = {"recall_at_k": "metrics", "retrieval_metrics": "metrics", "AVMAETask": "task"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
