"""Visually guided sound separation (mix-and-separate): the public face of the application.

```python
from avkit.apps import separation

sep = separation.load("runs/separation_instruments")             # a Separator (None: the shipped model)
stems = separation.separate(mixture, 44100, [frames_a, frames_b], run=sep)   # one waveform per source
separation.separate_video("duet.mp4", sep, "sep/duet", regions="2x1")        # files + result.to_dict()
separation.separate_pair("a.mp4", "b.mp4", sep, "sep/mix").metrics["mean"]["model"]["sdr"]
separation.evaluate_separation("runs/separation_instruments")    # what `avkit eval RUN` prints
```

:func:`load` and :func:`separate` are the stable entry points; the rest is re-exported from the
package's modules (see docs/separation.md, "Layout"), imported on first use so that importing this
package loads no torch.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from avkit.errors import AvkitError
from avkit.utils import REINSTALL, shipped_asset

if TYPE_CHECKING:
    import numpy as np
    import torch

    from avkit.apps.separation.evaluate import evaluate_separation
    from avkit.apps.separation.inference import Separator
    from avkit.apps.separation.video import SeparationResult, separate_pair, separate_video


# The model shipped with avkit: config.yaml (its recipe), model.safetensors (weights), MODEL_CARD.md, and in
# audio_only/ the audio-only network that gives the sounds when it has a slot per source (Separator.attach_stems),
# and in instrument_names/ the classifier that names each source's instrument (Separator.attach_namer)
SHIPPED_MODEL = shipped_asset("separation")
SHIPPED_WEIGHTS = "model.safetensors"
SHIPPED_STEMS = "audio_only"
SHIPPED_NAMER = "instrument_names"  # the classifier that names each source's instrument (naming.py)
TRAIN_HINT = "train one with recipes/separation_gm.yaml"

T = TypeVar("T")

_EXPORTS = {"Separator": "inference", "separate_video": "video", "separate_pair": "video",
            "SeparationResult": "video", "evaluate_separation": "evaluate"}

__all__ = ["load", "separate", "SHIPPED_MODEL", "Separator", "separate_video", "separate_pair", "SeparationResult",
           "evaluate_separation"]


def load(run_dir: str | Path | None = None, checkpoint: str = "best",
         device: str | torch.device | None = None) -> Separator:
    """The separation model of a trained run (``best`` or ``last`` weights) on ``device`` (None: the GPU
    when there is one), in eval mode; ``run_dir=None`` is the model shipped with avkit (:data:`SHIPPED_MODEL`),
    and a missing or unreadable shipped file is one line naming it and how to get it back."""
    from avkit.apps.separation.inference import Separator
    from avkit.engine.checkpoint import open_run

    if run_dir is None:
        return _load_shipped(device)
    run = open_run(run_dir, checkpoint, task="separation", hint=TRAIN_HINT)
    return Separator.from_run(run, device)


def _load_shipped(device: str | torch.device | None) -> Separator:
    from avkit.apps.separation.inference import Separator
    from avkit.apps.separation.naming import InstrumentNamer

    separator = _from_shipped_folder(SHIPPED_MODEL, Separator.from_run, device)
    separator.attach_stems(_from_shipped_folder(SHIPPED_MODEL / SHIPPED_STEMS, Separator.from_run, device))
    separator.attach_namer(_from_shipped_folder(SHIPPED_MODEL / SHIPPED_NAMER, InstrumentNamer.from_run, device))
    return separator


def _from_shipped_folder(folder: Path, build: Callable[[Any, Any], T], device: str | torch.device | None) -> T:
    """``build(run, device)`` of one shipped folder (config.yaml + model.safetensors); a missing or damaged
    file is one line naming it and how to get it back."""
    from avkit.engine.checkpoint import RunFiles, read_meta
    from avkit.engine.config import load_config

    for name in ("config.yaml", SHIPPED_WEIGHTS):
        if not (folder / name).is_file():
            raise AvkitError(f"{folder / name}: the separation model shipped with avkit is missing; {REINSTALL}, "
                             "or give a run directory (--run RUN)")
    weights = folder / SHIPPED_WEIGHTS
    try:
        meta = read_meta(weights)
        return build(RunFiles(folder, load_config(folder), weights, meta.get("state", meta)), device)
    except Exception as err:  # a damaged file: safetensors, YAML or a mismatch of the two
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        first = first.removeprefix(f"{weights}: ")
        raise AvkitError(f"{weights}: the shipped separation model is unreadable ({first}); {REINSTALL}") from None


def separate(mixture: np.ndarray | torch.Tensor, sample_rate: int, sources: Sequence[np.ndarray | torch.Tensor],
             run: str | Path | Separator | None = None) -> list[np.ndarray]:
    """Separate ``mixture`` (float32 mono ``[S]`` at any ``sample_rate``) into one float32 ``[S]`` waveform
    per visible source, at ``sample_rate`` and in the order of ``sources``: one uint8 frame array
    ``[T, H, W, 3]`` per source, spanning the mixture's duration (any size and frame count).

    The sound is resampled to the model's rate and back; the frames are scaled to the model's picture
    size; a mixture over 64 s is separated a 60 s window at a time (memory does not grow with its length).
    ``run``: a run directory, a :class:`Separator` from :func:`load`, or None for the shipped model.
    Bad input is a one-line :class:`~avkit.errors.AvkitError`.
    """
    from avkit.apps.separation.inference import Separator

    separator = run if isinstance(run, Separator) else load(run)
    return separator.separate(mixture, sample_rate, sources)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
