"""``avkit batch``: a trained run over a whole corpus on Ray Data (docs/batch.md).

```python
from avkit.apps.batch import BatchJob, run_batch

job = BatchJob("embed", "data/motion/clips", run="runs/motion_c3d", out="features", options={"stride": 0.5})
progress = run_batch(job)                       # a local Ray, or job.address="auto" for a cluster
# pandas.read_parquet("features/results"): one row per window, `features` a fixed-size list
```

Modules: :mod:`~avkit.apps.batch.source` (SOURCE -> videos and their resume keys),
:mod:`~avkit.apps.batch.workers` (the Ray stages: plan, decode, the model actor),
:mod:`~avkit.apps.batch.store` (Parquet parts committed through ``batch.json``),
:mod:`~avkit.apps.batch.pipeline` (the driver). Importing this package loads neither torch nor Ray.
"""
from __future__ import annotations

from typing import Any

__all__ = ["BatchJob", "Progress", "run_batch", "find_videos", "TASKS"]

_LAZY = {"BatchJob": "pipeline", "Progress": "pipeline", "run_batch": "pipeline", "find_videos": "source",
         "TASKS": "workers"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
