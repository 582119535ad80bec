"""The training loop: ``train(config) -> RunResult``.

One run directory holds everything needed to reuse a run:

```
RUN/config.yaml        the resolved recipe (every field)
RUN/last.safetensors   full training state (weights, optimiser, scheduler, RNG, step, history)
RUN/best.safetensors   weights of the epoch with the best validation accuracy
RUN/metrics.csv        one row per epoch: train/val loss and accuracy, lr, seconds
RUN/tensorboard/       TensorBoard events
RUN/report.md          curves and the confusion matrix (PNG files beside it)
```

Determinism: the shuffling order of epoch ``e`` depends only on ``(seed, e)`` (a
``DistributedSampler`` with ``set_epoch``), the DataLoader's worker seeds come from a generator
seeded the same way, and the checkpoint holds every RNG state. So ``--resume`` after a stop at
any step replays the same batches and, on CPU with ``num_workers=0``, gives the same weights.
"""
from __future__ import annotations

import contextlib
import csv
import io
import math
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from avkit.engine import distributed as D
from avkit.engine.build import (build_datasets, build_model, class_names_of, freeze_backbone, head_modules,
                                trainable_summary)
from avkit.engine.checkpoint import load_train_state, save_train_state, save_weights, unwrap
from avkit.engine.config import Config, as_config, config_diff, dump_config, load_config
from avkit.engine.metrics import classification_metrics, confusion_matrix
from avkit.engine.optim import build_optimizer, build_scheduler
from avkit.data.dataset import collate
from avkit.errors import AvkitError
from avkit.utils import atomic_write_json, atomic_write_text

METRIC_COLUMNS = ["epoch", "step", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds"]
# Keys that may change between a run and its --resume (they do not change the result).
RESUMABLE_CHANGES = ("train.epochs", "train.max_steps", "train.stop_after_epoch", "train.progress",
                     "train.tensorboard", "data.num_workers", "train.device")


@dataclass
class RunResult:
    """What :func:`train` did."""

    run_dir: Path
    epochs_done: int
    steps: int
    best_epoch: int  # 1-based; 0 when no epoch finished
    best_val_acc: float | None
    history: list[dict[str, Any]] = field(default_factory=list)
    stopped: bool = False  # stopped early by max_steps / stop_after_epoch (resume to continue)

    @property
    def last(self) -> dict[str, Any]:
        return self.history[-1] if self.history else {}


# ---------------------------------------------------------------------------------------------
# batches


def forward_batch(model: nn.Module, batch: Mapping[str, Any]) -> torch.Tensor:
    """Call ``model`` with what it takes from a batch dict; the only place the loop does so.

    Audio-visual models (``model.takes_batch``) get the whole dict; two-stream models get
    ``(video, flow)`` when the batch has "flow"; audio-only models their "spectrogram" (or
    "audio"); every other model the clip ``batch["video"]``.
    """
    inner = unwrap(model)
    if getattr(inner, "takes_batch", False):
        return model(batch)
    if "flow" in batch:
        return model(batch["video"], batch["flow"])
    if "video" not in batch:
        for key in ("spectrogram", "audio"):
            if key in batch:
                return model(batch[key])
        raise AvkitError(f"batch has no input the model can take (keys: {sorted(batch)})")
    return model(batch["video"])


def forward_views(model: nn.Module, batch: Mapping[str, Any]) -> torch.Tensor:
    """Logits ``[B, K, C]`` for a test-mode batch whose items hold ``K`` views
    (``video [B, K, 3, T, H, W]``, ``audio [B, K, S]``, ``spectrogram [B, K, 1, F, T]``);
    a batch of single clips counts as ``K = 1``."""
    video = batch.get("video")
    if video is None or video.ndim == 5:
        return forward_batch(model, batch).unsqueeze(1)
    b, k = video.shape[:2]
    view_dims = {"video": 6, "flow": 5, "audio": 3, "spectrogram": 5}
    flat = dict(batch)
    for key, ndim in view_dims.items():
        value = batch.get(key)
        if isinstance(value, torch.Tensor) and value.ndim == ndim:
            flat[key] = value.flatten(0, 1)
    return forward_batch(model, flat).view(b, k, -1)


def _note_skipped(dataset: Any, batch: dict[str, Any]) -> None:
    """Copy the unreadable files a worker skipped into the dataset's ``skipped`` record."""
    skipped = batch.pop("skipped", None)
    if skipped and hasattr(dataset, "_record_skip"):
        for path, reason in skipped.items():
            dataset._record_skip(path, reason)


def to_device(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def loss_fn(logits: torch.Tensor, target: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy for class indices; binary cross-entropy for multi-hot (multi-label) targets."""
    if target.ndim == 2:
        return F.binary_cross_entropy_with_logits(logits.float(), target.float())
    return F.cross_entropy(logits.float(), target.long(), label_smoothing=label_smoothing)


def _correct(logits: torch.Tensor, target: torch.Tensor) -> float:
    if target.ndim == 2:  # multi-label: count the top class being a positive
        return float(target.gather(1, logits.argmax(1, keepdim=True)).gt(0).sum())
    return float((logits.argmax(1) == target).sum())


def _worker_init(worker_id: int) -> None:
    # torch seeds each worker; NumPy and random are seeded from it so augmentations differ per worker.
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def autocast_context(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA (``auto``/``bf16``); full precision elsewhere."""
    if precision not in ("auto", "bf16", "fp32"):
        raise AvkitError(f"train.precision must be auto, bf16 or fp32, got {precision!r}")
    if device.type == "cuda" and precision in ("auto", "bf16"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


# ---------------------------------------------------------------------------------------------
# run directory


def _prepare_run_dir(cfg: Config, overwrite: bool, resume: bool) -> Path:
    """Check (on every rank, before anything is written) that the run dir may be used."""
    run_dir = Path(cfg.train.output_dir)
    if overwrite and resume:
        raise AvkitError("choose one of overwrite and resume")
    non_empty = run_dir.is_dir() and any(run_dir.iterdir())
    if run_dir.exists() and not run_dir.is_dir():
        raise AvkitError(f"{run_dir}: output_dir exists and is not a directory")
    if resume:
        if not (run_dir / "last.safetensors").is_file():
            raise AvkitError(f"{run_dir}: nothing to resume (no last.safetensors)")
        saved = load_config(run_dir / "config.yaml")
        diff = {k: v for k, v in config_diff(saved, cfg).items() if k not in RESUMABLE_CHANGES}
        if diff:
            lines = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in sorted(diff.items()))
            raise AvkitError(f"{run_dir}: --resume with a different config ({lines})")
    elif non_empty:
        if not overwrite:
            raise AvkitError(f"{run_dir}: run directory is not empty (pass --overwrite to replace it "
                             "or --resume to continue it)")
        if not (run_dir / "config.yaml").is_file():
            raise AvkitError(f"{run_dir}: not an avkit run directory (no config.yaml); refusing to delete it")
    return run_dir


def _write_metrics_csv(path: Path, history: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=METRIC_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in history:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in METRIC_COLUMNS})
    atomic_write_text(path, buf.getvalue())


# ---------------------------------------------------------------------------------------------
# the loop


class _Trainer:
    """State of one run; :func:`train` is the public entry point."""

    def __init__(self, cfg: Config, info: D.DistInfo, run_dir: Path, model: nn.Module | None,
                 train_set: Dataset | None, val_set: Dataset | None, log: Callable[[str], None]) -> None:
        self.cfg, self.info, self.run_dir, self.log = cfg, info, run_dir, log
        self.device = info.device
        if train_set is None:
            train_set, val_set = build_datasets(cfg.data, seed=cfg.train.seed)
        if len(train_set) == 0:  # type: ignore[arg-type]
            raise AvkitError("the training set is empty")
        self.train_set, self.val_set = train_set, val_set if val_set is not None and len(val_set) else None
        self.class_names = class_names_of(train_set)
        num_classes = cfg.model.num_classes or len(self.class_names)
        if not num_classes:
            raise AvkitError("model.num_classes is 0 and the dataset does not name its classes")
        self.num_classes = num_classes
        if len(self.class_names) != num_classes:
            self.class_names = [str(i) for i in range(num_classes)]

        batch = cfg.data.batch_size
        if batch < 1 or batch % info.world_size:
            raise AvkitError(f"data.batch_size ({batch}) must be a positive multiple of the number of "
                             f"processes ({info.world_size})")
        if cfg.optim.accumulate < 1:
            raise AvkitError("optim.accumulate must be >= 1")
        if cfg.train.epochs < 1:
            raise AvkitError("train.epochs must be >= 1")
        self.rank_batch = batch // info.world_size
        self.autocast = lambda: autocast_context(self.device, cfg.train.precision)
        self.autocast()  # validates precision early

        torch.manual_seed(cfg.train.seed)  # same initial weights on every rank and every run
        if model is None:
            model = build_model(cfg.model, num_classes, log=log)
        elif cfg.model.freeze_backbone or cfg.model.linear_probe:
            freeze_backbone(model)
        self.probe_heads = head_modules(model) if cfg.model.linear_probe else []
        if cfg.train.sync_bn and info.distributed and self.device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        self.model = model.to(self.device)
        self.optimizer = build_optimizer(self.model, cfg.optim)
        self.batches_per_epoch = math.ceil(self._train_sampler(0).__len__() / self.rank_batch)
        self.steps_per_epoch = math.ceil(self.batches_per_epoch / cfg.optim.accumulate)
        self.scheduler = build_scheduler(self.optimizer, cfg.optim, self.steps_per_epoch, cfg.train.epochs)
        if info.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp: nn.Module = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        else:
            self.ddp = self.model
        torch.manual_seed(cfg.train.seed + info.rank)  # dropout etc. differ between ranks

        self.step = 0
        self.epoch = 0  # completed epochs
        self.batches_done = 0  # batches of the current (unfinished) epoch already trained on
        self.partial = [0.0, 0.0, 0.0]  # loss sum, correct, count of that unfinished epoch
        self.history: list[dict[str, Any]] = []
        self.best_acc: float | None = None
        self.best_epoch = 0
        self.best_confusion: list[list[int]] | None = None
        self.last_confusion: list[list[int]] | None = None

    # -- data -----------------------------------------------------------------------------------

    def _train_sampler(self, epoch: int) -> DistributedSampler:
        sampler = DistributedSampler(self.train_set, num_replicas=self.info.world_size, rank=self.info.rank,
                                     shuffle=True, seed=self.cfg.train.seed, drop_last=False)
        sampler.set_epoch(epoch)
        return sampler

    def _train_loader(self, epoch: int, skip_batches: int) -> DataLoader:
        if hasattr(self.train_set, "set_epoch"):
            self.train_set.set_epoch(epoch)  # type: ignore[attr-defined]
        sampler = D.SkipSampler(self._train_sampler(epoch), skip_batches * self.rank_batch)
        gen = torch.Generator()
        gen.manual_seed(self.cfg.train.seed * 100003 + epoch * 1009 + self.info.rank)
        workers = self.cfg.data.num_workers
        return DataLoader(self.train_set, batch_size=self.rank_batch, sampler=sampler, num_workers=workers,
                          collate_fn=collate, generator=gen, worker_init_fn=_worker_init,
                          pin_memory=self.device.type == "cuda", drop_last=False)

    # -- state ----------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {"step": self.step, "epoch": self.epoch, "batches_done": self.batches_done,
                "partial": self.partial, "history": self.history, "best_acc": self.best_acc,
                "best_epoch": self.best_epoch, "best_confusion": self.best_confusion,
                "last_confusion": self.last_confusion, "class_names": self.class_names,
                "num_classes": self.num_classes}

    def resume(self) -> None:
        s = load_train_state(self.run_dir / "last.safetensors", self.model, self.optimizer, self.scheduler)
        self.step, self.epoch, self.batches_done = s["step"], s["epoch"], s["batches_done"]
        self.partial, self.history = list(s["partial"]), list(s["history"])
        self.best_acc, self.best_epoch = s["best_acc"], s["best_epoch"]
        self.best_confusion, self.last_confusion = s["best_confusion"], s["last_confusion"]
        self.log(f"resumed from step {self.step} (epoch {self.epoch + 1}, batch {self.batches_done})")

    def save_last(self) -> None:
        if self.info.is_main:
            save_train_state(self.run_dir / "last.safetensors", self.model, self.optimizer, self.scheduler,
                             self.state())

    # -- epochs ---------------------------------------------------------------------------------

    def _set_train_mode(self) -> None:
        self.model.train()
        if self.probe_heads:  # linear probe: the frozen backbone keeps its BN statistics, no dropout
            self.model.eval()
            for m in self.probe_heads:
                m.train()
        if self.cfg.model.freeze_bn:
            for m in self.model.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()

    def train_epoch(self, epoch: int, on_step: Callable[[], None]) -> bool:
        """Train one epoch (from ``self.batches_done``); returns False if stopped by max_steps."""
        cfg, accum = self.cfg, self.cfg.optim.accumulate
        start = self.batches_done
        loader = self._train_loader(epoch, start)
        self._set_train_mode()
        total = self.batches_per_epoch
        for i, batch in enumerate(loader, start=start):
            group_start = (i // accum) * accum
            group_size = min(accum, total - group_start)
            last_in_group = i - group_start == group_size - 1
            _note_skipped(self.train_set, batch)
            batch = to_device(batch, self.device)
            target = batch["label"]
            sync = contextlib.nullcontext() if last_in_group or not self.info.distributed else self.ddp.no_sync()
            with sync:
                with self.autocast():
                    logits = forward_batch(self.ddp, batch)
                loss = loss_fn(logits, target, cfg.train.label_smoothing)
                (loss / group_size).backward()
            n = target.shape[0]
            self.partial[0] += float(loss.detach()) * n
            self.partial[1] += _correct(logits.detach(), target)
            self.partial[2] += n
            self.batches_done = i + 1
            if not last_in_group:
                continue
            if cfg.optim.grad_clip > 0:
                nn.utils.clip_grad_norm_(self.model.parameters(), cfg.optim.grad_clip)
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.step += 1
            on_step()
            if cfg.train.max_steps and self.step >= cfg.train.max_steps and self.batches_done < total:
                return False
        return True

    @torch.no_grad()
    def validate(self) -> dict[str, Any]:
        """Loss, top-1 and confusion matrix on the validation set (one centre clip per video)."""
        assert self.val_set is not None
        model = self.model
        model.eval()
        sampler = D.ShardSampler(len(self.val_set), self.info.rank, self.info.world_size)  # type: ignore[arg-type]
        loader = DataLoader(self.val_set, batch_size=self.rank_batch, sampler=sampler, collate_fn=collate,
                            num_workers=self.cfg.data.num_workers, worker_init_fn=_worker_init)
        scores, targets = [], []
        for batch in loader:
            _note_skipped(self.val_set, batch)
            batch = to_device(batch, self.device)
            with self.autocast():
                logits = forward_views(model, batch)  # [B, K, C]; K = 1 view per video here
            scores.append(logits.float().mean(dim=1).cpu())
            targets.append(batch["label"].cpu())
        local = (torch.cat(scores), torch.cat(targets), torch.tensor(sampler.indices)) if scores else None
        parts = [p for p in D.all_gather_objects(self.info, local) if p is not None]
        order = torch.argsort(torch.cat([p[2] for p in parts]))  # dataset order, whatever the world size
        s = torch.cat([p[0] for p in parts])[order]
        t = torch.cat([p[1] for p in parts])[order]
        out: dict[str, Any] = {"val_loss": float(loss_fn(s, t)), **{f"val_{k}": v for k, v in
                                                                  classification_metrics(s, t).items()}}
        if t.ndim == 1:
            out["val_acc"] = out["val_top1"]
            out["confusion"] = confusion_matrix(s, t, self.num_classes).tolist()
        else:
            out["val_acc"] = out["val_mAP"]
        return out

    def end_epoch(self, epoch: int, seconds: float) -> dict[str, Any]:
        sums = D.all_reduce_sum(self.info, torch.tensor(self.partial, dtype=torch.float64))
        count = max(float(sums[2]), 1.0)
        row: dict[str, Any] = {"epoch": epoch + 1, "step": self.step, "train_loss": float(sums[0]) / count,
                               "train_acc": float(sums[1]) / count, "val_loss": None, "val_acc": None,
                               "lr": self.optimizer.param_groups[0]["lr"], "seconds": round(seconds, 3)}
        improved = False
        if self.val_set is not None:
            val = self.validate()
            confusion = val.pop("confusion", None)
            row.update(val)
            self.last_confusion = confusion
            if self.best_acc is None or row["val_acc"] > self.best_acc:
                self.best_acc, self.best_epoch, self.best_confusion, improved = row["val_acc"], epoch + 1, confusion, True
        else:
            self.best_epoch, improved = epoch + 1, True  # no validation: the best is the latest
        self.history.append(row)
        self.epoch, self.batches_done, self.partial = epoch + 1, 0, [0.0, 0.0, 0.0]
        if self.info.is_main:
            if improved:
                save_weights(self.run_dir / "best.safetensors", self.model,
                             {"epoch": epoch + 1, "step": self.step, "val_acc": self.best_acc,
                              "num_classes": self.num_classes, "class_names": self.class_names})
            self.save_last()
            _write_metrics_csv(self.run_dir / "metrics.csv", self.history)
        return row


class _Progress:
    """A rich progress bar on rank 0 (plain prints when disabled)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: Any = None

    def start(self, total: int, done: int) -> None:
        if not self.enabled:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[info]}"), TimeRemainingColumn())
        self.task = self.bar.add_task("train", total=total, completed=done, info="")
        self.bar.start()

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None

    def advance(self, info: str = "") -> None:
        if self.bar is not None:
            self.bar.update(self.task, advance=1, info=info)

    def print(self, text: str) -> None:
        if self.bar is not None:
            self.bar.console.print(text, highlight=False, markup=False)
        else:
            print(text, flush=True)


def train(config: Config | dict | str | Path, *, overwrite: bool = False, resume: bool = False,
          model: nn.Module | None = None, train_set: Dataset | None = None, val_set: Dataset | None = None,
          quiet: bool = False) -> RunResult:
    """Train ``config`` (a :class:`Config`, nested dict or recipe path) into its run directory.

    ``overwrite`` replaces an existing run; ``resume`` continues it from ``last.safetensors``.
    ``model`` / ``train_set`` / ``val_set`` replace what the config would build (for Python use:
    any module, any Dataset of dicts with "video" and "label"; evaluate/classify then need the
    same objects). Under ``torchrun`` this is one process of a distributed run; only rank 0
    writes files and logs.
    """
    from avkit.engine.report import write_report

    cfg = as_config(config)
    info = D.init_distributed(cfg.train.device)
    bar = _Progress(info.is_main and cfg.train.progress and not quiet)
    writer = None
    try:
        run_dir = _prepare_run_dir(cfg, overwrite, resume)
        D.barrier(info)  # every rank has checked before rank 0 changes anything
        if info.is_main:
            if overwrite and run_dir.exists():
                shutil.rmtree(run_dir)
            run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(run_dir / "config.yaml", dump_config(cfg))
        D.barrier(info)
        log: Callable[[str], None] = bar.print if info.is_main and not quiet else (lambda msg: None)
        t = _Trainer(cfg, info, run_dir, model, train_set, val_set, log)
        if resume:
            t.resume()
        if info.is_main:
            atomic_write_json(run_dir / "classes.json", t.class_names)
            log(f"run {run_dir}: {t.steps_per_epoch} steps/epoch x {cfg.train.epochs} epochs, "
                f"{trainable_summary(t.model)}, {info.world_size} process(es) on {info.device}")
        if info.is_main and cfg.train.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=t.step if resume else None)

        def on_step() -> None:
            lr = t.optimizer.param_groups[0]["lr"]
            bar.advance(f"epoch {t.epoch + 1}/{cfg.train.epochs} lr {lr:.2e}")
            if writer is not None:
                writer.add_scalar("lr", lr, t.step)

        stopped = False
        bar.start(cfg.train.epochs * t.steps_per_epoch, t.step)
        for epoch in range(t.epoch, cfg.train.epochs):
            if cfg.train.max_steps and t.step >= cfg.train.max_steps:
                log(f"stopped at step {t.step} (train.max_steps); continue with --resume")
                stopped = True
                break
            start = time.perf_counter()
            if not t.train_epoch(epoch, on_step):
                t.save_last()
                log(f"stopped at step {t.step} (train.max_steps); continue with --resume")
                stopped = True
                break
            row = t.end_epoch(epoch, time.perf_counter() - start)
            if info.is_main:
                if writer is not None:
                    for key in ("train_loss", "train_acc", "val_loss", "val_acc"):
                        if row.get(key) is not None:
                            writer.add_scalar(key.replace("_", "/", 1), row[key], row["step"])
                    writer.flush()
            val = f", val loss {row['val_loss']:.4f} acc {row['val_acc']:.3f}" if row["val_acc"] is not None else ""
            log(f"epoch {epoch + 1}/{cfg.train.epochs}: train loss {row['train_loss']:.4f} "
                f"acc {row['train_acc']:.3f}{val} ({row['seconds']:.1f}s)")
            if cfg.train.stop_after_epoch and cfg.train.stop_after_epoch <= epoch + 1 < cfg.train.epochs:
                log(f"stopped after epoch {epoch + 1} (train.stop_after_epoch); continue with --resume")
                stopped = True
                break
        bar.stop()
        if info.is_main and t.history:
            write_report(run_dir, t.history, t.best_confusion, t.class_names, best_epoch=t.best_epoch)
        D.barrier(info)
        return RunResult(run_dir=run_dir, epochs_done=t.epoch, steps=t.step, best_epoch=t.best_epoch,
                         best_val_acc=t.best_acc, history=list(t.history), stopped=stopped)
    finally:
        bar.stop()
        if writer is not None:
            writer.close()
        D.cleanup(info)
