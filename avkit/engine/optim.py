"""Optimisers (AdamW, SGD) and the learning-rate schedule (linear warm-up, then cosine)."""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from avkit.engine.config import OptimConfig
from avkit.errors import AvkitError

OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("cosine", "constant")


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Trainable parameters in two groups: weights with decay; biases and norm scales without.

    Decaying 1-D parameters (biases, BatchNorm/LayerNorm scales) only shrinks them towards zero,
    which hurts; this is the usual split.
    """
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for _, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 else decay).append(p)
    groups = []
    if decay:
        groups.append({"params": decay, "weight_decay": weight_decay})
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    if not groups:
        raise AvkitError("the model has no trainable parameters (everything is frozen)")
    return groups


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    """AdamW or SGD (with momentum, Nesterov off) over the model's trainable parameters."""
    name = cfg.optimizer.lower()
    if name not in OPTIMIZERS:
        raise AvkitError(f"optim.optimizer must be one of {OPTIMIZERS}, got {cfg.optimizer!r}")
    if cfg.lr <= 0:
        raise AvkitError(f"optim.lr must be positive, got {cfg.lr}")
    groups = param_groups(model, cfg.weight_decay)
    if name == "adamw":
        if len(cfg.betas) != 2:
            raise AvkitError(f"optim.betas needs two numbers, got {cfg.betas}")
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.betas[0], cfg.betas[1]))
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)


class WarmupCosine:
    """LR multiplier at optimiser step ``s``: linear from ~0 to 1 over ``warmup_steps``, then a
    half cosine from 1 down to ``min_ratio`` at ``total_steps`` (or flat for ``constant``).

    A plain object (not a lambda) so ``LambdaLR.state_dict()`` saves it and resume is exact.
    """

    def __init__(self, warmup_steps: int, total_steps: int, min_ratio: float = 0.0, cosine: bool = True) -> None:
        self.warmup_steps = int(warmup_steps)
        self.total_steps = max(int(total_steps), 1)
        self.min_ratio = float(min_ratio)
        self.cosine = bool(cosine)

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / (self.warmup_steps + 1)
        if not self.cosine:
            return 1.0
        span = max(self.total_steps - self.warmup_steps, 1)
        progress = min((step - self.warmup_steps) / span, 1.0)
        return self.min_ratio + (1.0 - self.min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: OptimConfig, steps_per_epoch: int,
                    epochs: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-optimiser-step schedule over ``epochs * steps_per_epoch`` steps."""
    if cfg.schedule not in SCHEDULES:
        raise AvkitError(f"optim.schedule must be one of {SCHEDULES}, got {cfg.schedule!r}")
    if cfg.warmup_epochs < 0 or cfg.min_lr < 0:
        raise AvkitError("optim.warmup_epochs and optim.min_lr must be >= 0")
    fn = WarmupCosine(
        warmup_steps=round(cfg.warmup_epochs * steps_per_epoch),
        total_steps=epochs * steps_per_epoch,
        min_ratio=min(cfg.min_lr / cfg.lr, 1.0),
        cosine=cfg.schedule == "cosine",
    )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, fn)
