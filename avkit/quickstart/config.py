"""The quickstart's settings (:class:`QuickstartConfig`), their checks, and the ``avkit train`` recipe of one model."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from avkit.errors import AvkitError
from avkit.quickstart.models import QuickModel, default_models


@dataclass
class QuickstartConfig:
    out: str = "avkit_runs/quickstart"
    num: int = 1200  # generated clips (75% train, 25% val): 120 per class
    # Two of the generator's four appearance classes: with all four (10 classes, 576 motion clips)
    # early fusion fell to 26% and C3D to 74% on the motion classes in a measured run (834 s);
    # with two, every motion class keeps 120 clips as when the ordering was measured.
    appearance: tuple[str, ...] = ("stripes", "checker")
    # The generator's look-alike pair still_low / still_high (group "sound"): the same still shape
    # with a low or a high tone, so only a model that hears can tell them apart (the lecture's point
    # about sound; video-only models are at 50% there).
    sound_pair: bool = True
    seed: int = 0
    size: int = 32
    num_frames: int = 8
    fps: float = 8.0
    epochs: int = 30
    warmup_epochs: int = 5  # BatchNorm nets at Adam's lr 3e-3 need a long warm-up from scratch
    batch_size: int = 16
    test_clips: int = 5
    num_workers: int = 0  # clips are cached in memory after the first epoch
    # Models trained side by side, each in its own forked one-thread process: on 2 cores the whole
    # quickstart ran 1.37x faster than one 2-thread training at a time (docs/quickstart.md;
    # benchmarks/quickstart_jobs.py). 0 = auto: 1 on a GPU or with DataLoader workers, else as
    # many as there are CPU cores (at most one per model); see plan_jobs.
    jobs: int = 0
    models: list[str] = field(default_factory=list)  # subset of default_models() names; empty = all
    compare: bool = True  # train and compare the model families (step 3); False stops after the read-back
    overwrite: bool = False  # replace an earlier quickstart's output in ``out`` (never another folder)


def recipe(cfg: QuickstartConfig, data: Path, run_dir: Path, qm: QuickModel) -> dict[str, Any]:
    """The ``avkit train`` recipe (as a dict) the quickstart trains ``qm`` with."""
    audio = bool(qm.model.get("audio"))
    epochs, warmup = qm.epochs(cfg)
    return {
        "data": {"source": str(data), "num_frames": cfg.num_frames, "fps": cfg.fps, "size": cfg.size,
                 "augment": True, "flip": False, "cache": True, "spectrogram": audio,
                 "batch_size": cfg.batch_size, "num_workers": cfg.num_workers, "test_clips": cfg.test_clips, "test_crops": 1},
        "model": qm.model,
        "optim": {"optimizer": "adamw", "lr": qm.lr, "weight_decay": 0.05, "warmup_epochs": warmup},
        "train": {"output_dir": str(run_dir), "epochs": epochs, "seed": cfg.seed, "progress": True,
                  "tensorboard": False},
    }


def check_config(cfg: QuickstartConfig) -> None:
    """Reject settings that cannot work before anything is written or printed."""
    for name in ("num", "epochs", "num_frames", "batch_size", "test_clips"):
        if getattr(cfg, name) < 1:
            flag = {"num": "--num", "epochs": "--epochs"}.get(name, name)
            raise AvkitError(f"{flag} must be >= 1, got {getattr(cfg, name)}")
    if cfg.jobs < 0:
        raise AvkitError(f"--jobs must be >= 0 (0 = auto), got {cfg.jobs}")
    if cfg.size < 16 or cfg.fps <= 0 or cfg.num_workers < 0 or cfg.warmup_epochs < 0:
        raise AvkitError(f"quickstart settings out of range: size {cfg.size} (>= 16), fps {cfg.fps} (> 0), "
                         f"workers {cfg.num_workers} (>= 0), warm-up {cfg.warmup_epochs} (>= 0)")
    known = {m.name for m in default_models()}
    unknown = sorted(set(cfg.models) - known)
    if unknown:
        raise AvkitError(f"unknown quickstart model(s) {unknown}; choose from {sorted(known)}")
