"""What the training loop asks of the thing being learned: the :class:`Task` interface.

The loop in :mod:`avkit.engine.trainer` owns everything that is the same for every task: the
run directory, the optimiser and schedule, gradient accumulation, DDP, checkpoints and exact
resume, the progress bar, ``metrics.csv`` and TensorBoard. A task owns the rest:

- which datasets and which model a recipe means (:meth:`Task.datasets`, :meth:`Task.build_model`);
- the loss of a batch and the per-sample statistics averaged over an epoch (:meth:`Task.train_step`);
- validation: small per-item outputs of each batch (:meth:`Task.val_outputs`), gathered from every
  process in dataset order, turned into metrics (:meth:`Task.val_metrics`);
- which metric picks ``best.safetensors`` (``best_key``, ``higher_is_better``), the CSV columns,
  what is stored with the weights (:meth:`Task.meta`) and the report (:meth:`Task.report`).

:class:`ClassificationTask` is the default (``task: classification`` in a recipe). Other tasks
(sound separation, captioning, clip selection) live with their application in ``avkit/apps/`` and
are named by ``task:`` in the recipe; they are found through the ``avkit.tasks`` entry points
(:func:`known_tasks`), and :func:`make_task` maps the name to the class.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from avkit.engine.config import Config
from avkit.engine.step import forward_batch, forward_views  # noqa: F401  (also imported from here)
from avkit.errors import AvkitError

TASK_GROUP = "avkit.tasks"  # entry-point group: name = "module:Class" (pyproject.toml [project.entry-points])


def known_tasks() -> dict[str, str]:
    """``task name -> "module:Class"``: classification, plus every task an installed package declares
    in the ``avkit.tasks`` entry-point group (avkit's applications declare theirs in pyproject.toml),
    so the engine never names the layers above it and a plug-in task needs no change here."""
    from importlib.metadata import entry_points

    tasks = {"classification": f"{__name__}:ClassificationTask"}
    tasks.update({ep.name: ep.value for ep in entry_points(group=TASK_GROUP)})
    return tasks


class Task:
    """Base class: override what your task does differently. See the module docstring."""

    name = "task"
    train_columns: tuple[str, ...] = ("loss",)  # epoch means of train_step's stats -> train_<name>
    val_columns: tuple[str, ...] = ("loss",)  # keys of val_metrics shown in metrics.csv -> val_<name>
    best_key = "val_loss"  # the history key that picks best.safetensors
    higher_is_better = False
    # torch threads while training on a machine without a GPU (None: torch's default). Tasks with few
    # tokens and narrow layers set 1: per-op overhead dominates, and on a busy machine two threads were
    # several times slower. The trainer restores the previous count when training ends, however it ends.
    cpu_threads: int | None = None

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg

    # -- data and model --------------------------------------------------------------------------

    def datasets(self) -> tuple[Any, Any]:
        """``(train, val)`` datasets of the recipe; ``val`` may be None."""
        raise NotImplementedError

    def setup(self, train_set: Any) -> None:
        """Learn what the task needs from the training data (e.g. the class names) before the model is built."""

    def build_model(self, log: Callable[[str], None] | None = None) -> nn.Module:
        raise NotImplementedError

    def collate(self, items: Sequence[dict[str, Any]]) -> dict[str, Any]:
        from avkit.data.dataset import collate

        return collate(items)

    def val_collate(self, items: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """Like :meth:`collate`, leaving out unreadable items; the batch says which were ``kept``."""
        from avkit.data.dataset import collate_readable

        return collate_readable(items)

    # -- evaluation of a trained run (``avkit eval``) -------------------------------------------------

    def evaluate(self, run_dir: Path, *, checkpoint: str = "best", split: str | None = None, device: str = "auto",
                 progress: bool = False, log: Callable[[str], None] | None = None,
                 **options: Any) -> dict[str, Any]:
        """Score the trained run in ``run_dir`` on its validation data; written to ``RUN/eval.json``.
        ``log`` hears progress lines (e.g. the expected cost); ``options`` are the command's task-specific
        settings (e.g. ``clips``, ``crops``), None = the recipe's."""
        raise AvkitError(f"{run_dir}: avkit eval cannot score a {self.name!r} run yet")

    def format_evaluation(self, result: Mapping[str, Any]) -> str:
        """The table ``avkit eval`` prints for :meth:`evaluate`'s result."""
        import json

        return json.dumps(result, indent=2)

    # -- steps -----------------------------------------------------------------------------------

    def train_step(self, model: nn.Module, batch: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, float], int]:
        """``(loss to backpropagate, sums of per-sample statistics, number of samples)`` of one batch."""
        raise NotImplementedError

    def val_outputs(self, model: nn.Module, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """Per-item outputs of a validation batch (first dimension = items); keep them small."""
        raise NotImplementedError

    def val_metrics(self, outputs: dict[str, torch.Tensor]) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(scalar metrics with val_ keys, extras kept for the report)`` from all validation outputs."""
        raise NotImplementedError

    # -- run directory ---------------------------------------------------------------------------

    def meta(self) -> dict[str, Any]:
        """JSON-able facts stored with the weights (and needed to rebuild the model)."""
        return {}

    def write_files(self, run_dir: Path) -> None:
        """Files the task adds to a new run directory (e.g. ``classes.json``)."""

    def report(self, run_dir: Path, history: Sequence[dict[str, Any]], best_epoch: int,
               best_extras: dict[str, Any] | None) -> None:
        from avkit.engine.report import write_report

        write_report(run_dir, history, columns=self.csv_columns(), best_key=self.best_key, best_epoch=best_epoch,
                     curves=self.train_columns)

    @classmethod
    def csv_columns(cls) -> list[str]:
        """``metrics.csv`` columns: epoch, step, the train and val metrics, lr, seconds."""
        return (["epoch", "step"] + [f"train_{c}" for c in cls.train_columns]
                + [f"val_{c}" for c in cls.val_columns] + ["lr", "seconds"])

    def describe(self, row: Mapping[str, Any]) -> str:
        """The end-of-epoch log line's metrics."""
        parts = [f"train {c} {row[f'train_{c}']:.4f}" for c in self.train_columns if row.get(f"train_{c}") is not None]
        parts += [f"val {c} {row[f'val_{c}']:.4f}" for c in self.val_columns if row.get(f"val_{c}") is not None]
        return ", ".join(parts)

    def is_better(self, value: float, best: float | None) -> bool:
        if best is None:
            return True
        return value > best if self.higher_is_better else value < best


def make_task(cfg: Config) -> Task:
    """The task a recipe names (``task:``), built from the recipe."""
    tasks = known_tasks()
    target = tasks.get(cfg.task)
    if target is None:
        raise AvkitError(f"unknown task {cfg.task!r} (tasks: {', '.join(sorted(tasks))}; a task of another "
                         f"package is found once that package is installed)")
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)(cfg)


# ---------------------------------------------------------------------------------------------
# classification


def loss_fn(logits: torch.Tensor, target: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy for class indices; binary cross-entropy for multi-hot (multi-label) targets."""
    if target.ndim == 2:
        return F.binary_cross_entropy_with_logits(logits.float(), target.float())
    return F.cross_entropy(logits.float(), target.long(), label_smoothing=label_smoothing)


def correct(logits: torch.Tensor, target: torch.Tensor) -> float:
    """Number of items whose top class is right (multi-label: is one of the positives)."""
    if target.ndim == 2:
        return float(target.gather(1, logits.argmax(1, keepdim=True)).gt(0).sum())
    return float((logits.argmax(1) == target).sum())


class ClassificationTask(Task):
    """Clip classification (single- or multi-label): the lecture's model families, ``avkit train``'s default."""

    name = "classification"
    train_columns = ("loss", "acc")
    val_columns = ("loss", "acc")
    best_key = "val_acc"  # top-1 (single-label) or mAP (multi-label)
    higher_is_better = True

    def __init__(self, cfg: Config) -> None:
        super().__init__(cfg)
        self.class_names: list[str] = []
        self.num_classes = 0

    def datasets(self) -> tuple[Any, Any]:
        from avkit.engine.build import build_datasets

        return build_datasets(self.cfg.data, seed=self.cfg.train.seed)

    def setup(self, train_set: Any) -> None:
        from avkit.engine.build import class_names_of

        self.class_names = class_names_of(train_set)
        self.num_classes = self.cfg.model.num_classes or len(self.class_names)
        if not self.num_classes:
            raise AvkitError("model.num_classes is 0 and the dataset does not name its classes")
        if len(self.class_names) != self.num_classes:
            self.class_names = [str(i) for i in range(self.num_classes)]

    def build_model(self, log: Callable[[str], None] | None = None) -> nn.Module:
        from avkit.engine.build import build_model

        return build_model(self.cfg.model, self.num_classes, log=log)

    def train_step(self, model: nn.Module, batch: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, float], int]:
        logits = forward_batch(model, batch)
        target = batch["label"]
        loss = loss_fn(logits, target, self.cfg.train.label_smoothing)
        n = int(target.shape[0])
        return loss, {"loss": float(loss.detach()) * n, "acc": correct(logits.detach(), target)}, n

    def val_outputs(self, model: nn.Module, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        logits = forward_views(model, batch)  # [B, K, C]; K = 1 view per video here
        return {"scores": logits.float().mean(dim=1), "target": batch["label"]}

    def val_metrics(self, outputs: dict[str, torch.Tensor]) -> tuple[dict[str, Any], dict[str, Any]]:
        from avkit.engine.metrics import classification_metrics, confusion_matrix

        s, t = outputs["scores"], outputs["target"]
        out: dict[str, Any] = {"val_loss": float(loss_fn(s, t)),
                               **{f"val_{k}": v for k, v in classification_metrics(s, t).items()}}
        extras: dict[str, Any] = {}
        if t.ndim == 1:
            out["val_acc"] = out["val_top1"]
            extras["confusion"] = confusion_matrix(s, t, self.num_classes).tolist()
        else:
            out["val_acc"] = out["val_mAP"]
        return out, extras

    def meta(self) -> dict[str, Any]:
        return {"num_classes": self.num_classes, "class_names": self.class_names}

    def write_files(self, run_dir: Path) -> None:
        from avkit.utils import atomic_write_json

        atomic_write_json(run_dir / "classes.json", self.class_names)

    def report(self, run_dir: Path, history: Sequence[dict[str, Any]], best_epoch: int,
               best_extras: dict[str, Any] | None) -> None:
        from avkit.engine.report import write_report

        confusion = (best_extras or {}).get("confusion")
        write_report(run_dir, history, columns=self.csv_columns(), best_key=self.best_key, best_epoch=best_epoch,
                     curves=("loss", "acc"), confusion=confusion, class_names=self.class_names)

    def evaluate(self, run_dir: Path, *, checkpoint: str = "best", split: str | None = None, device: str = "auto",
                 progress: bool = False, log: Callable[[str], None] | None = None,
                 **options: Any) -> dict[str, Any]:
        """Clip and video accuracy over ``clips`` x ``crops`` views (:func:`avkit.engine.evaluate.evaluate`)."""
        from avkit.engine.evaluate import evaluate

        return evaluate(run_dir, options.get("clips"), options.get("crops"), split=split, checkpoint=checkpoint,
                        batch_size=options.get("batch_size"), device=device, progress=progress, log=log)

    def format_evaluation(self, result: Mapping[str, Any]) -> str:
        from avkit.engine.evaluate import format_table

        return format_table(dict(result))

    def describe(self, row: Mapping[str, Any]) -> str:
        text = f"train loss {row['train_loss']:.4f} acc {row['train_acc']:.3f}"
        if row.get("val_acc") is not None:
            text += f", val loss {row['val_loss']:.4f} acc {row['val_acc']:.3f}"
        return text
