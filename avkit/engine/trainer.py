"""The training loop: ``train(config) -> RunResult``.

One run directory holds everything needed to reuse a run:

```
RUN/config.yaml        the resolved recipe (every field)
RUN/last.safetensors   full training state (weights, optimiser, scheduler, RNG, step, history)
RUN/best.safetensors   weights of the epoch with the best validation metric (the task's ``best_key``)
RUN/metrics.csv        one row per epoch: the task's train/val metrics, lr, seconds, and where the time went
RUN/tensorboard/       TensorBoard events
RUN/report.md          curves (and, for classification, the confusion matrix; PNG files beside it)
```

What is learned is a :class:`~avkit.engine.task.Task` (``task:`` in the recipe; classification by
default): it names the datasets and the model, computes the loss and the validation metrics and
picks the best checkpoint. The loop here is the same for every task.

The run directory itself (checks, the lock of a run being written, ``overwrite``'s staging beside
the old run) is :mod:`avkit.engine.rundir`; TensorBoard is :mod:`avkit.engine.board`; what every
loop over batches shares (device, precision, the model call) is :mod:`avkit.engine.step`; the time
per step, the share spent waiting for data and peak memory are :mod:`avkit.engine.timing`.

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
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from avkit.engine import distributed as D
from avkit.engine.board import Board
from avkit.engine.build import data_notes, freeze_backbone, head_modules, loader_workers, trainable_summary
from avkit.engine.checkpoint import load_train_state, save_train_state, save_weights
from avkit.engine.config import Config, as_config, dump_config
from avkit.engine.memory_format import to_channels_last
from avkit.engine.optim import build_optimizer, build_scheduler
from avkit.engine.report import append_report
from avkit.engine.rundir import RESUMABLE_CHANGES, RunLock, RunOutput, check_run_dir, is_non_empty
from avkit.engine.step import autocast_context, forward_batch, forward_views, to_device, worker_init
from avkit.engine.task import Task, loss_fn, make_task
from avkit.engine.timing import TIMING_COLUMNS, EpochTimer, bottleneck, timing_line
from avkit.errors import AvkitError
from avkit.utils import atomic_write_text, cpu_cores

# autocast_context, forward_batch, forward_views and to_device live in avkit.engine.step; they are
# re-exported here until every application imports them from there.
__all__ = ["RunResult", "train", "forward_batch", "forward_views", "loss_fn", "autocast_context", "to_device",
           "RESUMABLE_CHANGES"]


@dataclass
class RunResult:
    """What :func:`train` did."""

    run_dir: Path
    epochs_done: int
    steps: int
    best_epoch: int  # 1-based; 0 when no epoch finished
    best_value: float | None  # of best_key at best_epoch
    best_key: str = "val_acc"
    history: list[dict[str, Any]] = field(default_factory=list)
    stopped: bool = False  # stopped early by max_steps / stop_after_epoch (resume to continue)

    @property
    def last(self) -> dict[str, Any]:
        return self.history[-1] if self.history else {}

    @property
    def best_val_acc(self) -> float | None:
        """The best validation accuracy of a classification run (None for other tasks)."""
        return self.best_value if self.best_key == "val_acc" else None


# ---------------------------------------------------------------------------------------------
# batches


def _note_skipped(dataset: Any, batch: dict[str, Any]) -> None:
    """Copy the unreadable files a worker skipped into the dataset's record (``record_skips``)."""
    skipped = batch.pop("skipped", None)
    if skipped and hasattr(dataset, "record_skips"):
        dataset.record_skips(skipped)


def _write_metrics_csv(path: Path, history: list[dict[str, Any]], columns: list[str]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in history:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})
    atomic_write_text(path, buf.getvalue())


# ---------------------------------------------------------------------------------------------
# the loop


class _Trainer:
    """State of one run; :func:`train` is the public entry point."""

    def __init__(self, cfg: Config, info: D.DistInfo, task: Task, model: nn.Module | None,
                 train_set: Any, val_set: Any, log: Callable[[str], None]) -> None:
        self.cfg, self.info, self.task, self.log = cfg, info, task, log
        self.out = Path(cfg.train.output_dir)  # where files are written: train() sets it once the folder is ready
        self.device = info.device
        if train_set is None:
            train_set, val_set = task.datasets()
        if len(train_set) == 0:
            raise AvkitError("the training set is empty")
        self.train_set, self.val_set = train_set, val_set if val_set is not None and len(val_set) else None
        if getattr(self.val_set, "mode", None) == "test" and hasattr(self.val_set, "set_on_unreadable"):
            self.val_set.set_on_unreadable("skip")  # type: ignore[union-attr]  # score readable videos only
        task.setup(train_set)

        batch = cfg.data.batch_size
        if batch < 1 or batch % info.world_size:
            raise AvkitError(f"data.batch_size ({batch}) must be a positive multiple of the number of "
                             f"processes ({info.world_size})")
        if cfg.optim.accumulate < 1:
            raise AvkitError("optim.accumulate must be >= 1")
        if cfg.train.epochs < 1:
            raise AvkitError("train.epochs must be >= 1")
        self.rank_batch = batch // info.world_size
        self.workers = loader_workers(cfg.data.num_workers, cfg.data.cache)
        self.columns = task.csv_columns() + list(TIMING_COLUMNS)  # metrics.csv
        self.timer = EpochTimer(self.device)  # replaced at the start of every epoch
        self.autocast = lambda: autocast_context(self.device, cfg.train.precision)
        self.autocast()  # validates precision early

        torch.manual_seed(cfg.train.seed)  # same initial weights on every rank and every run
        if model is None:
            model = task.build_model(log=log)
        elif cfg.model.freeze_backbone or cfg.model.linear_probe:
            freeze_backbone(model)
        self.probe_heads = head_modules(model) if cfg.model.linear_probe else []
        if cfg.train.sync_bn and info.distributed and self.device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        self.model = model.to(self.device)
        if cfg.train.channels_last:
            to_channels_last(self.model)
        self.optimizer = build_optimizer(self.model, cfg.optim)
        self.batches_per_epoch = math.ceil(self._train_sampler(0).__len__() / self.rank_batch)
        self.steps_per_epoch = math.ceil(self.batches_per_epoch / cfg.optim.accumulate)
        self.scheduler = build_scheduler(self.optimizer, cfg.optim, self.steps_per_epoch, cfg.train.epochs)
        if info.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp: Any = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        else:
            self.ddp = self.model
        torch.manual_seed(cfg.train.seed + info.rank)  # dropout etc. differ between ranks

        self.step = 0
        self.epoch = 0  # completed epochs
        self.batches_done = 0  # batches of the current (unfinished) epoch already trained on
        self.partial = self._zero_partial()  # sums of the task's statistics over the unfinished epoch
        self.history: list[dict[str, Any]] = []
        self.best_value: float | None = None
        self.best_epoch = 0
        self.best_extras: dict[str, Any] | None = None  # e.g. the confusion matrix, for the report
        self.last_extras: dict[str, Any] | None = None

    def _zero_partial(self) -> dict[str, float]:
        return {**{c: 0.0 for c in self.task.train_columns}, "count": 0.0}

    # -- data -----------------------------------------------------------------------------------

    def _train_sampler(self, epoch: int) -> DistributedSampler:
        sampler: DistributedSampler = DistributedSampler(self.train_set, num_replicas=self.info.world_size, rank=self.info.rank,
                                     shuffle=True, seed=self.cfg.train.seed, drop_last=False)
        sampler.set_epoch(epoch)
        return sampler

    def _train_loader(self, epoch: int, skip_batches: int) -> DataLoader:
        if hasattr(self.train_set, "set_epoch"):
            self.train_set.set_epoch(epoch)
        sampler = D.SkipSampler(self._train_sampler(epoch), skip_batches * self.rank_batch)
        gen = torch.Generator()
        gen.manual_seed(self.cfg.train.seed * 100003 + epoch * 1009 + self.info.rank)
        return DataLoader(self.train_set, batch_size=self.rank_batch, sampler=sampler, num_workers=self.workers,
                          collate_fn=self.task.collate, generator=gen, worker_init_fn=worker_init,
                          pin_memory=self.device.type == "cuda", drop_last=False)

    # -- state ----------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {"task": self.task.name, "step": self.step, "epoch": self.epoch, "batches_done": self.batches_done,
                "partial": self.partial, "history": self.history, "best_value": self.best_value,
                "best_epoch": self.best_epoch, "best_extras": self.best_extras, "last_extras": self.last_extras,
                **self.task.meta()}

    def resume(self, path: Path) -> None:
        """Continue from the training state at ``path``. The schedule is the one of this run's
        ``train.epochs``: resuming with more epochs than the run was planned for continues the
        learning rate along the longer schedule (it does not train on at the old schedule's end)."""
        planned = dict(vars(self.scheduler.lr_lambdas[0]))  # built for cfg.train.epochs
        s = load_train_state(path, self.model, self.optimizer, self.scheduler)
        schedule = self.scheduler.lr_lambdas[0]
        if vars(schedule) != planned:
            vars(schedule).update(planned)
            for group, base in zip(self.optimizer.param_groups, self.scheduler.base_lrs):
                group["lr"] = base * schedule(self.scheduler.last_epoch)
        self.step, self.epoch, self.batches_done = s["step"], s["epoch"], s["batches_done"]
        self.partial, self.history = dict(s["partial"]), list(s["history"])
        self.best_value, self.best_epoch = s["best_value"], s["best_epoch"]
        self.best_extras, self.last_extras = s["best_extras"], s["last_extras"]
        self.log(f"resumed from step {self.step} (epoch {self.epoch + 1}, batch {self.batches_done})")

    def save_last(self) -> None:
        if self.info.is_main:
            save_train_state(self.out / "last.safetensors", self.model, self.optimizer, self.scheduler,
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

    def reached_max_steps(self) -> bool:
        return bool(self.cfg.train.max_steps) and self.step >= self.cfg.train.max_steps

    def train_epoch(self, epoch: int, on_step: Callable[[], None]) -> bool:
        """Train one epoch (from ``self.batches_done``); returns False if ``train.max_steps`` stopped
        it (or had been reached) before the epoch's end."""
        cfg, accum = self.cfg, self.cfg.optim.accumulate
        if self.reached_max_steps():
            return False
        start = self.batches_done
        loader = self._train_loader(epoch, start)
        self._set_train_mode()
        total = self.batches_per_epoch
        self.timer = EpochTimer(self.device)
        for i, batch in enumerate(self.timer.batches(loader), start=start):
            group_start = (i // accum) * accum
            group_size = min(accum, total - group_start)
            last_in_group = i - group_start == group_size - 1
            _note_skipped(self.train_set, batch)
            batch = to_device(batch, self.device)
            sync = contextlib.nullcontext() if last_in_group or not self.info.distributed else self.ddp.no_sync()
            with sync:
                with self.autocast():
                    loss, stats, n = self.task.train_step(self.ddp, batch)
                (loss.float() / group_size).backward()
            for key, value in stats.items():
                self.partial[key] += value
            self.partial["count"] += n
            self.timer.batch_done(n)
            self.batches_done = i + 1
            if not last_in_group:
                continue
            if cfg.optim.grad_clip > 0:
                nn.utils.clip_grad_norm_(self.model.parameters(), cfg.optim.grad_clip)
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.step += 1
            self.timer.step_done()
            on_step()
            if self.reached_max_steps() and self.batches_done < total:
                return False
        return True

    @torch.no_grad()
    def validate(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The task's metrics on the validation set (readable items only, in dataset order on every rank)."""
        assert self.val_set is not None
        model = self.model
        model.eval()
        sampler = D.ShardSampler(len(self.val_set), self.info.rank, self.info.world_size)
        loader = DataLoader(self.val_set, batch_size=self.rank_batch, sampler=sampler, collate_fn=self.task.val_collate,
                            num_workers=self.workers, worker_init_fn=worker_init)
        outputs: list[dict[str, torch.Tensor]] = []
        indices = []
        position = 0  # into sampler.indices
        for batch in loader:
            _note_skipped(self.val_set, batch)
            kept = batch.pop("kept")  # unreadable videos are left out, not counted as another one
            indices.append(torch.tensor(sampler.indices[position:position + len(kept)])[kept])
            position += len(kept)
            if not kept.any():
                continue
            batch = to_device(batch, self.device)
            with self.autocast():
                out = self.task.val_outputs(model, batch)
            outputs.append({k: v.detach().float().cpu() if v.is_floating_point() else v.cpu() for k, v in out.items()})
        local = None
        if outputs:
            local = ({k: torch.cat([o[k] for o in outputs]) for k in outputs[0]}, torch.cat(indices))
        parts = [p for p in D.all_gather_objects(self.info, local) if p is not None]
        if not parts:
            raise AvkitError(f"none of the {len(self.val_set)} validation videos can be read")
        order = torch.argsort(torch.cat([p[1] for p in parts]))  # dataset order, whatever the world size
        gathered = {k: torch.cat([p[0][k] for p in parts])[order] for k in parts[0][0]}
        return self.task.val_metrics(gathered)

    def end_epoch(self, epoch: int, seconds: float) -> dict[str, Any]:
        timing = self.timer.summary()  # before validation: the training loop's time only
        keys = list(self.partial)
        sums = D.all_reduce_sum(self.info, torch.tensor([self.partial[k] for k in keys], dtype=torch.float64))
        totals = dict(zip(keys, sums.tolist()))
        count = max(totals.pop("count"), 1.0)
        row: dict[str, Any] = {"epoch": epoch + 1, "step": self.step,
                               **{f"train_{k}": v / count for k, v in totals.items()},
                               **{f"val_{c}": None for c in self.task.val_columns},
                               "lr": self.optimizer.param_groups[0]["lr"], "seconds": round(seconds, 3), **timing}
        improved = False
        best_key = self.task.best_key
        if self.val_set is not None:
            metrics, extras = self.validate()
            row.update(metrics)
            self.last_extras = extras
            if self.task.is_better(row[best_key], self.best_value):
                self.best_value, self.best_epoch, self.best_extras, improved = row[best_key], epoch + 1, extras, True
        else:
            self.best_epoch, improved = epoch + 1, True  # no validation: the best is the latest
        self.history.append(row)
        self.epoch, self.batches_done, self.partial = epoch + 1, 0, self._zero_partial()
        if self.info.is_main:
            if improved:
                save_weights(self.out / "best.safetensors", self.model,
                             {"epoch": epoch + 1, "step": self.step, "task": self.task.name,
                              best_key: self.best_value, **self.task.meta()})
            self.save_last()
            _write_metrics_csv(self.out / "metrics.csv", self.history, self.columns)
        return row

    def partial_row(self, epoch: int) -> dict[str, Any] | None:
        """The unfinished epoch's training statistics so far (a run stopped by ``max_steps``), or None."""
        keys = list(self.partial)
        sums = D.all_reduce_sum(self.info, torch.tensor([self.partial[k] for k in keys], dtype=torch.float64))
        totals = dict(zip(keys, sums.tolist()))
        count = totals.pop("count")
        if not count:
            return None
        return {"epoch": epoch + 1, "step": self.step, **{f"train_{k}": v / count for k, v in totals.items()},
                **{f"val_{c}": None for c in self.task.val_columns}, "lr": self.optimizer.param_groups[0]["lr"],
                "seconds": None, **self.timer.summary()}


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


def time_section(rows: list[dict[str, Any]], verdict: str) -> list[str]:
    """The report's "Where the time goes": the verdict, then the timing columns of each epoch."""
    lines = [verdict[0].upper() + verdict[1:] + ".", "",
             "| epoch | " + " | ".join(TIMING_COLUMNS) + " |", "|---|" + "---|" * len(TIMING_COLUMNS)]
    for row in rows:
        cells = ["-" if row.get(c) is None else str(row[c]) for c in TIMING_COLUMNS]
        lines.append(f"| {row['epoch']} | " + " | ".join(cells) + " |")
    lines += ["", "step_seconds: wall time per optimiser step; data_wait: share of it spent waiting for the next "
              "batch; peak_rss_mb: peak resident memory of the training process; gpu_peak_mb / gpu_util: "
              "torch.cuda.max_memory_allocated and NVML utilisation (GPU runs)."]
    return lines


def train(config: Config | dict | str | Path, *, overwrite: bool = False, resume: bool = False,
          model: nn.Module | None = None, train_set: Dataset | None = None, val_set: Dataset | None = None,
          quiet: bool = False, task: Task | None = None) -> RunResult:
    """Train ``config`` (a :class:`Config`, nested dict or recipe path) into its run directory.

    ``overwrite`` replaces an existing run, once the new one has trained (until then the old run
    is untouched; see :mod:`avkit.engine.rundir`); ``resume`` continues it from ``last.safetensors``.
    ``model`` / ``train_set`` / ``val_set`` replace what the config would build (for Python use:
    any module, any Dataset of dicts with "video" and "label"; evaluate/classify then need the
    same objects). ``task`` replaces the recipe's ``task:`` (any :class:`~avkit.engine.task.Task`).
    Under ``torchrun`` this is one process of a distributed run; only rank 0 writes files and logs.
    A second training into the same run directory stops with an error (:class:`~avkit.engine.rundir.RunLock`).
    """
    cfg = as_config(config)
    info = D.init_distributed(cfg.train.device)
    bar = _Progress(info.is_main and cfg.train.progress and not quiet)
    log: Callable[[str], None] = bar.print if info.is_main and not quiet else (lambda msg: None)
    lock: RunLock | None = None
    output: RunOutput | None = None
    threads = torch.get_num_threads()
    board = Board(Path(), enabled=False)
    done = False
    try:
        # 1. May this run use its folder? Then data and model: a recipe that cannot build them writes nothing.
        run_dir = check_run_dir(cfg, overwrite, resume)
        replace = overwrite and is_non_empty(run_dir)  # the same on every rank
        task = task if task is not None else make_task(cfg)
        t = _Trainer(cfg, info, task, model, train_set, val_set, log)
        if task.cpu_threads and cfg.train.device in ("auto", "cpu") and not torch.cuda.is_available():
            torch.set_num_threads(task.cpu_threads)
        D.barrier(info)  # every rank has checked before rank 0 changes anything

        # 2. The run folder: locked, then created (or staged beside the old run), recipe written.
        if info.is_main:
            lock = RunLock(run_dir)
            lock.acquire()
            output = RunOutput(run_dir, replace)
            t.out = output.path
            atomic_write_text(t.out / "config.yaml", dump_config(cfg))
        D.barrier(info)
        if resume:
            t.resume(run_dir / "last.safetensors")
        notes = data_notes(cfg, t.train_set, t.val_set)  # what the data holds that the user should know
        if info.is_main:
            task.write_files(t.out)
            log(f"run {run_dir}: {t.steps_per_epoch} steps/epoch x {cfg.train.epochs} epochs, "
                f"{trainable_summary(t.model)}, {info.world_size} process(es) on {info.device}"
                + (" (replaces the old run when done)" if replace else ""))
            for note in notes:
                log(note)
        board = Board(t.out / "tensorboard", enabled=info.is_main and cfg.train.tensorboard,
                      purge_step=t.step if resume else None)

        def on_step() -> None:
            lr = t.optimizer.param_groups[0]["lr"]
            bar.advance(f"epoch {t.epoch + 1}/{cfg.train.epochs} lr {lr:.2e}")
            board.step(lr, t.step)

        # 3. The epochs.
        stopped = ""
        bar.start(cfg.train.epochs * t.steps_per_epoch, t.step)
        for epoch in range(t.epoch, cfg.train.epochs):
            start = time.perf_counter()
            if not t.train_epoch(epoch, on_step):
                stopped = f"stopped at step {t.step} (train.max_steps)"
                break
            row = t.end_epoch(epoch, time.perf_counter() - start)
            board.epoch(row, task.csv_columns()[2:-2])
            board.epoch(row, TIMING_COLUMNS, prefix="time")
            log(f"epoch {epoch + 1}/{cfg.train.epochs}: {task.describe(row)} ({row['seconds']:.1f}s; {timing_line(row)})")
            if cfg.train.stop_after_epoch and cfg.train.stop_after_epoch <= epoch + 1 < cfg.train.epochs:
                stopped = f"stopped after epoch {epoch + 1} (train.stop_after_epoch)"
                break
        bar.stop()

        # 4. Stopped mid-epoch: the state to resume from, and the epoch so far in metrics.csv and the report.
        rows = list(t.history)
        if stopped.endswith("(train.max_steps)"):
            t.save_last()
            partial = t.partial_row(t.epoch)
            rows += [partial] if partial is not None else []
            if info.is_main:
                _write_metrics_csv(t.out / "metrics.csv", rows, t.columns)
        if stopped:
            log(f"{stopped}; continue with --resume")

        # 5. Where the time went (and what the data held), in the log and the report.
        if info.is_main and rows:
            verdict = bottleneck(rows[-1], t.workers, cpu_cores())
            log(f"time: {timing_line(rows[-1])}; {verdict}")
            task.report(t.out, rows, t.best_epoch, t.best_extras)
            append_report(t.out, "Where the time goes", time_section(rows, verdict))
            if notes:
                append_report(t.out, "Data", notes)
        board.close()

        # 6. An --overwrite swaps the new run in.
        if output is not None:
            output.finish()
        done = True
        D.barrier(info)
        return RunResult(run_dir=run_dir, epochs_done=t.epoch, steps=t.step, best_epoch=t.best_epoch,
                         best_value=t.best_value, best_key=task.best_key, history=list(t.history),
                         stopped=bool(stopped))
    finally:
        torch.set_num_threads(threads)  # a task's cpu_threads hold for training only
        bar.stop()
        board.close()
        if output is not None and not done:
            output.abandon()  # a staged run goes (the old one stays); a new run with nothing to resume too
        if lock is not None:
            lock.release()
        D.cleanup(info)
