"""Step 3 of the quickstart: train and evaluate each model, one after the other or side by side in
forked one-thread processes (:func:`plan_jobs`)."""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from avkit.pool import can_fork, forked_pool
from avkit.quickstart.config import QuickstartConfig, recipe
from avkit.quickstart.models import QuickModel, default_models
from avkit.quickstart.report import _pct, group_accuracy
from avkit.utils import cpu_cores


def plan_jobs(cfg: QuickstartConfig, num_models: int, cuda: bool) -> tuple[int, int]:
    """``(parallel trainings, threads each)`` for ``num_models`` models under ``cfg``.

    Parallel trainings run in forked processes of one thread each: a child forked from a process
    that has run OpenMP threads hangs in its first multi-threaded op (measured with torch 2.14.1),
    and spawned children would re-run a user's script that calls :func:`run_quickstart`. Where
    there is no fork (not Linux) the models train one after the other.
    """
    cores = cpu_cores()
    if cfg.num_workers > 0:  # DataLoader worker processes use the cores (and a pool worker cannot start them)
        jobs = 1
    elif cfg.jobs:
        jobs = cfg.jobs
    else:
        jobs = 1 if cuda else cores  # one GPU: one training at a time
    jobs = max(1, min(jobs, num_models))
    if jobs > 1 and not can_fork():
        jobs = 1
    return jobs, (1 if jobs > 1 else cores)


def _cost(run_dir: Path, cfg: QuickstartConfig, has_audio: bool) -> tuple[int, float]:
    import torch

    from avkit.engine import load_run
    from avkit.models.flops import count_gflops, count_params

    model, _, _ = load_run(run_dir, device="cpu")
    video = torch.zeros(1, 3, cfg.num_frames, cfg.size, cfg.size)
    x: Any = video
    if has_audio:
        n_frames = int(cfg.num_frames / cfg.fps * 100) + 1  # 10 ms hop
        x = {"video": video, "spectrogram": torch.zeros(1, 1, 64, n_frames)}
    return count_params(model), count_gflops(model, x)


class TrainSets:
    """Training sets by data config, decoded once (``data.cache``) and shared by the models that one
    process trains one after the other; made by whoever trains them and passed along explicitly."""

    def __init__(self) -> None:
        self.sets: dict[str, Any] = {}

    def get(self, run_cfg: Any, seed: int) -> Any:
        from avkit.engine.build import build_dataset

        key = json.dumps(asdict(run_cfg.data), sort_keys=True)
        if key not in self.sets:
            self.sets[key] = build_dataset(run_cfg.data, run_cfg.data.train_split, train=True, seed=seed,
                                           cache=run_cfg.data.cache)
        return self.sets[key]


def train_one(cfg: QuickstartConfig, data: Path, runs: Path, name: str, groups: dict[str, str],
              quiet: bool = True, train_sets: TrainSets | None = None) -> dict[str, Any]:
    """Train and evaluate one model of the comparison in this process; returns its results row.
    ``train_sets``: decoded training sets to share with the other models this process trains."""
    from avkit.engine import evaluate, train
    from avkit.engine.config import as_config

    qm = next(m for m in default_models() if m.name == name)
    run_dir = runs / qm.name.replace("+", "_")
    run_cfg = as_config(recipe(cfg, data, run_dir, qm))
    t0 = time.perf_counter()
    train_set = (train_sets or TrainSets()).get(run_cfg, cfg.seed)
    # No per-epoch validation (val_set=None): the last weights are evaluated once on the val
    # split, so the table is not picked by the data it reports on, and it saves a minute.
    train(run_cfg, train_set=train_set, val_set=None, quiet=quiet)
    train_s = time.perf_counter() - t0
    ev = evaluate(run_dir, clips=cfg.test_clips, crops=1, checkpoint="last")
    acc = group_accuracy(ev["confusion"], ev["class_names"], groups)
    params, gflops = _cost(run_dir, cfg, bool(qm.model.get("audio")))
    return {"model": qm.name, "what": qm.lecture, "motion_acc": acc.get("motion"),
            "appearance_acc": acc.get("appearance"), "sound_acc": acc.get("sound"), "overall_acc": acc["overall"],
            "clip_acc": ev["clip"]["top1"], "params": params, "gflops": gflops,
            "epochs": run_cfg.train.epochs, "train_seconds": round(train_s, 1), "run_dir": str(run_dir)}


def _set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _epochs_done(run_dir: Path) -> int:
    try:
        return max(0, len((run_dir / "metrics.csv").read_text().splitlines()) - 1)
    except OSError:
        return 0


def train_models(cfg: QuickstartConfig, data: Path, runs: Path, chosen: list[QuickModel], groups: dict[str, str],
                 jobs: int, threads: int, console: Any, quiet: bool) -> list[dict[str, Any]]:
    """Step 3: train and evaluate ``chosen``, ``jobs`` at a time in processes of ``threads`` threads
    (:func:`plan_jobs`; one job trains in this process); rows in the order of ``chosen``."""
    def done_line(row: dict[str, Any]) -> str:
        return (f"    {row['model']}: motion {_pct(row['motion_acc'])}  appearance {_pct(row['appearance_acc'])}  "
                f"sound {_pct(row.get('sound_acc'))}  overall {_pct(row['overall_acc'])}  ({row['train_seconds']:.0f}s)")

    if jobs > 1:
        return _train_in_workers(cfg, data, runs, chosen, groups, jobs, console, quiet, done_line)
    rows = []
    train_sets = TrainSets()  # the clips decoded once, for every model
    for i, qm in enumerate(chosen, 1):
        console.print(f"3.{i} training [bold]{qm.name}[/bold] ({qm.lecture}), {qm.epochs(cfg)[0]} epochs")
        rows.append(train_one(cfg, data, runs, qm.name, groups, quiet, train_sets))
        console.print(done_line(rows[-1]))
    return rows


def _train_in_workers(cfg: QuickstartConfig, data: Path, runs: Path, chosen: list[QuickModel],
                      groups: dict[str, str], jobs: int, console: Any, quiet: bool,
                      done_line: Callable[[dict[str, Any]], str]) -> list[dict[str, Any]]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console.print(f"3. training {len(chosen)} models, {jobs} at a time (one CPU thread each): "
                  + ", ".join(f"{qm.name} ({qm.lecture}, {qm.epochs(cfg)[0]} epochs)" for qm in chosen))
    results: dict[str, dict[str, Any]] = {}
    order = sorted(chosen, key=lambda m: -m.seconds)  # longest first: the last to finish ends soonest
    progress = Progress(TextColumn("    {task.description:<20}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("epochs"), TimeElapsedColumn(), console=console, disable=quiet, transient=True)
    tasks = {qm.name: progress.add_task(qm.name, total=qm.epochs(cfg)[0], start=False) for qm in chosen}
    # The workers are forked here, before the progress display starts its thread.
    with forked_pool(jobs, initializer=_set_threads, initargs=(1,)) as pool:
        pending = {qm.name: pool.submit(train_one, cfg, data, runs, qm.name, groups, what=f"training {qm.name}")
                   for qm in order}
        with progress:
            while pending:
                pool.wait(0.5)  # raises a failed or dead worker's error at once
                for qm in chosen:
                    run_dir = runs / qm.name.replace("+", "_")
                    if qm.name in pending and run_dir.exists():
                        progress.start_task(tasks[qm.name])  # no-op once started
                        progress.update(tasks[qm.name], completed=_epochs_done(run_dir))
                for name in [n for n, r in pending.items() if r.ready()]:
                    row = results[name] = pending.pop(name).get()
                    progress.update(tasks[name], completed=row["epochs"])
                    progress.console.print(done_line(row))
    return [results[qm.name] for qm in chosen]
