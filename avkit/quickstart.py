"""The quickstart: the lecture's model comparison, on motion data avkit generates itself.

``avkit quickstart`` runs :func:`run_quickstart`:

1. generate the synthetic ``motion`` set (6 classes that differ only in motion, 4 that differ only
   in appearance; any single frame of a motion class says nothing about its class);
2. read it back through :class:`~avkit.data.VideoDataset` with the clip sampler (decode speed);
3. train tiny versions of single-frame, late fusion (pooling and concatenation), early fusion, C3D,
   two-stream and an audio-visual model with the same engine ``avkit train`` uses, evaluate each
   with multi-clip averaging and print a table (accuracy on motion-only classes, on
   appearance-only classes, overall, params, GFLOPs, train time) plus a plot
   (``compare=False`` / ``--no-train`` stops after step 2).

The lecture's picture comes out: single-frame at chance on the motion classes, late fusion by
pooling in between (it keeps what happened but not in which order), 3D and two-stream models at
90% or more. Measured tables are in docs/quickstart.md. Everything is an ordinary Python call a
user can repeat or change.

The output folder carries a marker file (``.avkit-quickstart``). ``overwrite`` replaces only
what an earlier quickstart wrote there (data/, runs/, results.*, comparison.png), only in a
folder that carries the marker, and only once the new run has finished: the old output waits in
``.avkit-quickstart-previous/`` and is put back if the run fails or is interrupted.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from avkit.errors import AvkitError
from avkit.utils import atomic_write_json, atomic_write_text, can_fork, check_output, cpu_cores, forked_pool

if TYPE_CHECKING:
    from rich.table import Table

# torch, the engine and the data pipeline are imported inside the functions that use them, so that
# `avkit --help` (which reads this module's defaults) starts without loading torch.


@dataclass
class QuickModel:
    """One row of the comparison: a display name and the recipe's ``model`` section."""

    name: str
    lecture: str  # what the row shows, in the lecture's words
    model: dict[str, Any]
    lr: float = 3e-3
    epoch_share: float = 1.0  # of QuickstartConfig.epochs (and warm-up) this model trains for
    seconds: float = 60.0  # its measured training time (docs/quickstart.md): parallel jobs start the longest first

    def epochs(self, cfg: "QuickstartConfig") -> tuple[int, int]:
        """(epochs, warm-up epochs) for this model under ``cfg``."""
        return max(1, round(cfg.epochs * self.epoch_share)), round(cfg.warmup_epochs * self.epoch_share)


def default_models() -> list[QuickModel]:
    """The families the quickstart compares, each at its tiny CPU size."""
    cnn = {"backbone": "cnn", "width": 16}
    # BatchNorm, and global average pooling instead of fc6/fc7: the direction of motion is the
    # same anywhere in the frame, and position-specific fc layers overfit a few hundred clips.
    c3d = {"width": 8, "fc_dim": None, "batch_norm": True}
    return [
        QuickModel("single_frame", "2D CNN per frame, scores averaged", {"video": "single_frame", "video_options": cnn},
                   seconds=59),
        # Max, not mean: a mean of per-frame features into a linear head is the same function as
        # single_frame's mean of per-frame scores. The max keeps which features fired at some
        # time (a spread of orientations, say) and loses only their order, so it can tell rotation
        # from sliding but not left from right: at most about half of the motion classes.
        QuickModel("late_fusion_pool", "per-frame features, max-pooled over time",
                   {"video": "late_fusion_pool", "video_options": {**cnn, "pool": "max"}}, seconds=48),
        # Two thirds of the epochs, to keep the quickstart under 10 minutes: it stays at chance on
        # the motion classes at 30 epochs too (17% val motion, train accuracy 39% at epoch 20 and
        # 44% at 30; 2026-12-03), so the cut costs the comparison nothing.
        QuickModel("late_fusion_concat", "per-frame features concatenated into an MLP",
                   {"video": "late_fusion_concat", "video_options": {**cnn, "num_frames": 8, "hidden": 64}},
                   epoch_share=2 / 3, seconds=28),
        # Twice the epochs: it is the cheapest model (a quarter of single_frame's time per epoch)
        # and still underfits at 30 (train accuracy 78%, val motion 53%; 60 epochs: 83%, measured
        # with torch 2.14.1 on 2026-12-02).
        QuickModel("early_fusion", "frames stacked into the first conv",
                   {"video": "early_fusion", "video_options": {**cnn, "num_frames": 8}}, epoch_share=2.0,
                   seconds=49),
        # 45 epochs: at 30 its training accuracy was still 70-84% and val motion 62-79% over two
        # runs (torch 2.14.1, 2026-12-02); its loss falls late, after the warm-up.
        QuickModel("c3d", "slow fusion: 3x3x3 convs", {"video": "c3d", "video_options": c3d}, epoch_share=1.5,
                   seconds=130),
        QuickModel("two_stream", "RGB stream + stacked optical flow stream",
                   {"video": "two_stream", "video_options": {**cnn, "flow_fields": 4}}, seconds=65),
        # The sound helps it converge fast: 6 epochs (train accuracy 85% at epoch 5 and 99% at
        # epoch 10 of a 10-epoch run, val 98%; 2026-12-03), the least time of the 3D models.
        QuickModel("c3d+audio", "C3D + log-mel CNN, concat fusion",
                   {"video": "c3d", "video_options": c3d,
                    "audio": "audio_cnn", "audio_options": {"width": 8}, "fusion": "concat"}, epoch_share=0.2,
                   seconds=45),
    ]


@dataclass
class QuickstartConfig:
    out: str = "avkit_runs/quickstart"
    num: int = 960  # generated clips (75% train, 25% val)
    # Two of the generator's four appearance classes: with all four (10 classes, 576 motion clips)
    # early fusion fell to 26% and C3D to 74% on the motion classes in a measured run (834 s);
    # with two, every motion class keeps 120 clips as when the ordering was measured.
    appearance: tuple[str, ...] = ("stripes", "checker")
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


def group_accuracy(confusion: list[list[int]], class_names: list[str], groups: dict[str, str]) -> dict[str, float]:
    """Accuracy per class group (e.g. "motion", "appearance") and overall, from a confusion matrix."""
    import torch

    cm = torch.tensor(confusion, dtype=torch.float64)  # rows = true class
    out: dict[str, float] = {}
    for group in sorted(set(groups.values())):
        idx = [i for i, n in enumerate(class_names) if groups.get(n) == group]
        rows = cm[idx]
        out[group] = float(rows[:, idx].diagonal().sum() / rows.sum()) if rows.sum() > 0 else float("nan")
    out["overall"] = float(cm.diagonal().sum() / cm.sum())
    return out


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


MARKER = ".avkit-quickstart"  # says a folder is a quickstart output, so --overwrite may replace it
PREVIOUS = ".avkit-quickstart-previous"  # the previous output, while a new one is being made
OUTPUTS = ("results.json", "results.md", "comparison.png", "data", "runs")  # what the quickstart writes
# results.json goes first when moving aside and is written last: an output with it is complete.


def is_quickstart_output(out: Path) -> bool:
    """Whether ``out`` was written by the quickstart: it has the marker, or (written before there
    was one) a quickstart ``results.json`` next to a ``data`` folder."""
    if (out / MARKER).is_file():
        return True
    try:
        results = json.loads((out / "results.json").read_text())
    except (OSError, ValueError):
        return False
    keys = {"config", "read_back", "results"}
    return isinstance(results, dict) and keys <= results.keys() and (out / "data").is_dir()


def _prepare_out(out: Path, overwrite: bool) -> Path | None:
    """Make ``out`` ready for a new quickstart; returns where the previous output was moved (or None).

    A non-empty folder is used only with ``overwrite`` and only if it is a quickstart output;
    anything else is never touched.
    """
    if out.exists() and not out.is_dir():
        raise AvkitError(f"{out}: exists and is not a folder; choose another --out")
    previous = None
    if out.is_dir() and any(out.iterdir()):
        if not is_quickstart_output(out):
            raise AvkitError(f"{out}: not a quickstart output (no {MARKER}), refusing to replace it; "
                             f"choose another --out")
        check_output(out, overwrite)
        cwd = Path.cwd()
        for name in OUTPUTS:  # moving the working directory away would send relative paths after it
            here = (out / name).resolve()
            if here == cwd or here in cwd.parents:
                raise AvkitError(f"{out}: --overwrite would move the working directory ({name}/); "
                                 f"run it from outside {out / name}")
        previous = out / PREVIOUS
        if previous.is_dir():  # left by a quickstart that was killed
            if (out / "results.json").is_file():
                shutil.rmtree(previous)  # it had finished: what was moved aside is obsolete
            else:
                _restore(out, previous, all_new=False)  # it had not: put the complete output back first
        previous.mkdir()
        try:
            for name in OUTPUTS:
                if (out / name).exists():
                    os.replace(out / name, previous / name)
        except BaseException:
            _restore(out, previous, all_new=False)
            raise
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("written by 'avkit quickstart'; 'avkit quickstart --overwrite' may replace "
                              + ", ".join(OUTPUTS) + " here and leaves everything else\n")
    return previous


def _restore(out: Path, previous: Path, all_new: bool) -> None:
    """Put the output moved to ``previous`` back in ``out``, replacing an unfinished new one.

    ``all_new``: every output now in ``out`` was made after the move (a run that failed in this
    process) and goes; otherwise only those an entry of ``previous`` replaces.
    """
    for name in OUTPUTS:
        path, old = out / name, previous / name
        if old.exists() or all_new:
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
        if old.exists():
            os.replace(old, path)
    shutil.rmtree(previous)


def run_quickstart(cfg: QuickstartConfig, quiet: bool = False) -> dict[str, Any]:
    """Run the whole quickstart into ``cfg.out``; returns (and writes) ``results.json``'s content.

    ``cfg.overwrite`` replaces an earlier quickstart's output, once the new one is complete; a
    folder the quickstart did not write raises ``AvkitError`` (see the module docstring).
    """
    check_config(cfg)
    out = Path(cfg.out)
    previous = _prepare_out(out, cfg.overwrite)
    try:
        summary = _run(cfg, out, quiet)
    except BaseException:
        if previous is not None:
            _restore(out, previous, all_new=True)
        raise
    if previous is not None:
        shutil.rmtree(previous)
    return summary


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


def _run(cfg: QuickstartConfig, out: Path, quiet: bool) -> dict[str, Any]:
    import torch
    from rich.console import Console

    from avkit.data.synthetic import generate

    console = Console(quiet=quiet)
    t_start = time.perf_counter()
    console.rule("[bold]avkit quickstart")

    gen = generate("motion", out / "data", num=cfg.num, seed=cfg.seed, size=cfg.size, fps=cfg.fps,
                   appearance=tuple(cfg.appearance), jobs=cpu_cores())
    groups = {c["name"]: c["group"] for c in json.loads((gen.out / "classes.json").read_text())}
    console.print(f"1. generated {gen.num} motion clips in {gen.seconds:.1f}s ({gen.clips_per_second:.1f} clips/s): "
                  f"{', '.join(f'{n} ({g})' for n, g in groups.items())}")

    read = read_back(gen.manifest, cfg, limit=64 if cfg.compare else None)
    console.print(f"2. read back {read['read']} of {read['clips']} clips through VideoDataset: video {read['item_shapes']['video']}"
                  f" + spectrogram {read['item_shapes']['spectrogram']}, {read['clips_per_second']} clips/s, "
                  f"{len(read['skipped'])} skipped")

    chosen = [m for m in default_models() if not cfg.models or m.name in cfg.models] if cfg.compare else []
    jobs, threads = plan_jobs(cfg, len(chosen), torch.cuda.is_available())
    rows = train_models(cfg, gen.out, out / "runs", chosen, groups, jobs, threads, console, quiet)

    summary = {"config": asdict(cfg), "data": gen.to_dict(), "read_back": read, "results": rows,
               "chance": 1 / len(groups), "motion_chance": 1 / max(1, list(groups.values()).count("motion")),
               "jobs": {"parallel": jobs, "threads_each": threads},
               "seconds": round(time.perf_counter() - t_start, 1),
               "device": "cuda" if torch.cuda.is_available() else "cpu"}
    if rows:
        plot_results(rows, out / "comparison.png", chance=summary["motion_chance"])
        atomic_write_text(out / "results.md", results_markdown(summary))
    atomic_write_json(out / "results.json", summary)  # last: its presence says the output is complete
    if rows:
        console.print(results_table(rows, cfg))
        console.print(f"chance = {summary['motion_chance']:.0%} on the motion classes, {summary['chance']:.0%} overall. Wrote {out / 'results.md'}, {out / 'comparison.png'} and "
                      f"one run directory per model under {out / 'runs'} ({summary['seconds']:.0f}s in all).")
        console.print("next: [bold]avkit eval RUN_DIR --clips 10 --crops 3[/bold], [bold]avkit classify VIDEO --run "
                      "RUN_DIR[/bold], or train your own with [bold]avkit train recipes/motion_c3d.yaml[/bold]")
    else:
        console.print(read_back_table(read))
        console.print(f"Wrote {out / 'results.json'} ({summary['seconds']:.0f}s). next: [bold]avkit quickstart "
                      f"--overwrite[/bold] also trains and compares the model families; "
                      f"[bold]avkit train recipes/motion_c3d.yaml data.source={gen.out}[/bold] trains one.")
    return summary


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


_TRAIN_SETS: dict[str, Any] = {}  # per process: decoded training sets by data config, shared by its models


def train_one(cfg: QuickstartConfig, data: Path, runs: Path, name: str, groups: dict[str, str],
              quiet: bool = True) -> dict[str, Any]:
    """Train and evaluate one model of the comparison in this process; returns its results row."""
    from avkit.engine import evaluate, train
    from avkit.engine.build import build_dataset
    from avkit.engine.config import as_config

    qm = next(m for m in default_models() if m.name == name)
    run_dir = runs / qm.name.replace("+", "_")
    run_cfg = as_config(recipe(cfg, data, run_dir, qm))
    t0 = time.perf_counter()
    key = json.dumps(asdict(run_cfg.data), sort_keys=True)  # the clips decoded once per process
    if key not in _TRAIN_SETS:
        _TRAIN_SETS[key] = build_dataset(run_cfg.data, run_cfg.data.train_split, train=True, seed=cfg.seed,
                                         cache=run_cfg.data.cache)
    # No per-epoch validation (val_set=None): the last weights are evaluated once on the val
    # split, so the table is not picked by the data it reports on, and it saves a minute.
    train(run_cfg, train_set=_TRAIN_SETS[key], val_set=None, quiet=quiet)
    train_s = time.perf_counter() - t0
    ev = evaluate(run_dir, clips=cfg.test_clips, crops=1, checkpoint="last")
    acc = group_accuracy(ev["confusion"], ev["class_names"], groups)
    params, gflops = _cost(run_dir, cfg, bool(qm.model.get("audio")))
    return {"model": qm.name, "what": qm.lecture, "motion_acc": acc.get("motion"),
            "appearance_acc": acc.get("appearance"), "overall_acc": acc["overall"],
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
                f"overall {_pct(row['overall_acc'])}  ({row['train_seconds']:.0f}s)")

    _TRAIN_SETS.clear()  # a new dataset; forked workers inherit the empty cache
    try:
        if jobs == 1:
            rows = []
            for i, qm in enumerate(chosen, 1):
                console.print(f"3.{i} training [bold]{qm.name}[/bold] ({qm.lecture}), {qm.epochs(cfg)[0]} epochs")
                rows.append(train_one(cfg, data, runs, qm.name, groups, quiet))
                console.print(done_line(rows[-1]))
            return rows
        return _train_in_workers(cfg, data, runs, chosen, groups, jobs, console, quiet, done_line)
    finally:
        _TRAIN_SETS.clear()


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
        pending = {qm.name: pool.apply_async(train_one, (cfg, data, runs, qm.name, groups)) for qm in order}
        with progress:
            while pending:
                time.sleep(0.5)
                for qm in chosen:
                    run_dir = runs / qm.name.replace("+", "_")
                    if qm.name in pending and run_dir.exists():
                        progress.start_task(tasks[qm.name])  # no-op once started
                        progress.update(tasks[qm.name], completed=_epochs_done(run_dir))
                for name in [n for n, r in pending.items() if r.ready()]:
                    row = results[name] = pending.pop(name).get()  # re-raises a worker's exception
                    progress.update(tasks[name], completed=row["epochs"])
                    progress.console.print(done_line(row))
    return [results[qm.name] for qm in chosen]


def read_back(manifest: Path, cfg: QuickstartConfig, limit: int | None = None) -> dict[str, Any]:
    """Read clips through VideoDataset (random clip sampler, spectrogram): shapes and speed.

    Every clip, or the first ``limit`` (training reads and checks them all anyway).
    """
    import torch

    from avkit.data import VideoDataset

    ds = VideoDataset(manifest, num_frames=cfg.num_frames, fps=cfg.fps, size=cfg.size, mode="train",
                      audio="spectrogram", seed=cfg.seed)
    t0 = time.perf_counter()
    shapes: dict[str, list[int]] = {}
    count = len(ds) if limit is None else min(limit, len(ds))
    for i in range(count):
        item = ds[i]
        if not shapes:
            shapes = {k: list(v.shape) for k, v in item.items() if isinstance(v, torch.Tensor) and v.ndim > 0}
    seconds = time.perf_counter() - t0
    return {"clips": len(ds), "read": count, "classes": ds.classes, "clips_per_second": round(count / seconds, 1),
            "item_shapes": shapes, "skipped": dict(ds.skipped)}


def read_back_table(read: dict[str, Any]) -> Table:
    from rich.table import Table

    table = Table(title="motion data read back through VideoDataset (random clip sampler)")
    table.add_column("what")
    table.add_column("value")
    table.add_row("clips", str(read["clips"]))
    table.add_row("classes", ", ".join(read["classes"]))
    table.add_row("decode + transform + log-mel", f"{read['clips_per_second']} clips/s")
    for k, v in read["item_shapes"].items():
        table.add_row(f"item['{k}']", str(v))
    table.add_row("skipped files", str(len(read["skipped"])))
    return table


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def results_table(rows: list[dict[str, Any]], cfg: QuickstartConfig) -> Table:
    from rich import box
    from rich.table import Table

    # No vertical borders and a model column that never truncates: fits an 80-column terminal.
    table = Table(title=f"val video accuracy, {cfg.test_clips} clips averaged "
                        f"({cfg.num_frames}x{cfg.size}x{cfg.size} at {cfg.fps:g} fps)",
                  box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    table.add_column("model", no_wrap=True, min_width=max(len(r["model"]) for r in rows))
    for col in ("motion", "appearance", "overall", "params", "GFLOPs", "train s"):
        table.add_column(col, justify="right", no_wrap=True)
    for r in rows:
        table.add_row(r["model"], _pct(r["motion_acc"]), _pct(r["appearance_acc"]), _pct(r["overall_acc"]),
                      f"{r['params'] / 1e3:.0f}k", f"{r['gflops']:.4f}", f"{r['train_seconds']:.0f}")
    counts = Counter(r["epochs"] for r in rows)
    if len(counts) > 1:  # results.md has a column for it
        usual = counts.most_common(1)[0][0]
        table.caption = "epochs: " + ", ".join(f"{r['model']} {r['epochs']}" for r in rows if r["epochs"] != usual) + \
                        f", the others {usual}"
    return table


def _jobs_text(summary: dict[str, Any]) -> str:
    jobs = summary.get("jobs") or {"parallel": 1, "threads_each": 0}
    if jobs["parallel"] == 1:
        return "one model trained at a time"
    return (f"{jobs['parallel']} models trained side by side, {jobs['threads_each']} CPU thread(s) each "
            f"(column 'train s' is each one's wall clock)")


def results_markdown(summary: dict[str, Any]) -> str:
    cfg = summary["config"]
    lines = ["# avkit quickstart results", "",
             f"{summary['data']['num']} generated motion clips; {cfg['num_frames']} frames of {cfg['size']}x{cfg['size']} "
             f"at {cfg['fps']:g} fps; video accuracy on the val split averaged over {cfg['test_clips']} clips; "
             f"up to {cfg['epochs']} epochs (column 'epochs'); device {summary['device']}; chance {summary['motion_chance']:.0%} on the motion "
             f"classes, {summary['chance']:.0%} overall; {_jobs_text(summary)}.", "",
             "| model | what | motion classes | appearance classes | overall | params | GFLOPs | epochs | train s |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in summary["results"]:
        lines.append(f"| {r['model']} | {r['what']} | {_pct(r['motion_acc'])} | {_pct(r['appearance_acc'])} | "
                     f"{_pct(r['overall_acc'])} | {r['params'] / 1e3:.0f}k | {r['gflops']:.4f} | {r['epochs']} | "
                     f"{r['train_seconds']:.0f} |")
    lines += ["", "![comparison](comparison.png)", ""]
    return "\n".join(lines)


def plot_results(rows: list[dict[str, Any]], path: Path, chance: float) -> None:
    """Grouped bars of motion-class and appearance-class accuracy per model; ``chance`` on the motion classes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from avkit.utils import atomic_path

    names = [r["model"] for r in rows]
    x = range(len(rows))
    fig, ax = plt.subplots(figsize=(1.3 * len(rows) + 2, 3.6))
    ax.bar([i - 0.2 for i in x], [100 * (r["motion_acc"] or 0) for r in rows], 0.4, label="motion classes")
    ax.bar([i + 0.2 for i in x], [100 * (r["appearance_acc"] or 0) for r in rows], 0.4, label="appearance classes")
    ax.axhline(100 * chance, color="gray", ls="--", lw=1, label="chance on motion classes")
    ax.set_xticks(list(x), names, rotation=20, ha="right")
    ax.set_ylabel("video accuracy (%)")
    ax.set_ylim(0, 105)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, fontsize=8, frameon=False)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)
