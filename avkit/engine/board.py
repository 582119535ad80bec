"""TensorBoard events of a training run (``RUN/tensorboard/``), or nothing when turned off."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


class Board:
    """Writes the learning rate per step and the epoch metrics; every method is a no-op when disabled
    (``train.tensorboard: false``, or a process other than rank 0)."""

    def __init__(self, folder: Path, enabled: bool, purge_step: int | None = None) -> None:
        self.writer: Any = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(folder), purge_step=purge_step)  # purge: events after a resumed step

    def step(self, lr: float, step: int) -> None:
        if self.writer is not None:
            self.writer.add_scalar("lr", lr, step)

    def epoch(self, row: Mapping[str, Any], keys: Sequence[str], prefix: str = "") -> None:
        """``row``'s ``keys`` at the row's step: ``train_loss`` -> ``train/loss``, or with a ``prefix``
        ``step_seconds`` -> ``time/step_seconds``."""
        if self.writer is None:
            return
        for key in keys:
            if row.get(key) is not None:
                tag = f"{prefix}/{key}" if prefix else key.replace("_", "/", 1)
                self.writer.add_scalar(tag, row[key], row["step"])
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
