"""Running the quickstart top to bottom: :func:`run_quickstart` checks the output folder, stages the
new output beside it (:class:`~avkit.staging.StagedOutput`), runs the steps and swaps the output in.

The output folder carries a marker file (``.avkit-quickstart``). ``overwrite`` replaces only what
an earlier quickstart wrote there (:data:`OUTPUTS`), only in a folder that carries the marker, and
only once the new run has finished: the new output is written into ``.OUT.avkit-new`` beside it, so
a failed or interrupted run leaves the previous output as it was, and a run killed during the swap
is finished by the next quickstart (the staged output was complete).
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from avkit.errors import AvkitError
from avkit.quickstart.config import QuickstartConfig, check_config
from avkit.quickstart.models import default_models
from avkit.quickstart.report import plot_results, read_back_table, results_markdown, results_table
from avkit.quickstart.workers import plan_jobs, train_models
from avkit.staging import StagedOutput, recover
from avkit.utils import atomic_write_json, atomic_write_text, check_output, cpu_cores

MARKER = ".avkit-quickstart"  # says a folder is a quickstart output, so --overwrite may replace it
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


def check_out(out: Path, overwrite: bool) -> None:
    """Whether a new quickstart may write into ``out``: an empty or absent folder, or with
    ``overwrite`` an earlier quickstart's output (never another folder, never the working directory)."""
    if out.exists() and not out.is_dir():
        raise AvkitError(f"{out}: exists and is not a folder; choose another --out")
    if not (out.is_dir() and any(out.iterdir())):
        return
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


def run_quickstart(cfg: QuickstartConfig, quiet: bool = False) -> dict[str, Any]:
    """Run the whole quickstart into ``cfg.out``; returns (and writes) ``results.json``'s content.

    ``cfg.overwrite`` replaces an earlier quickstart's output, once the new one is complete; a
    folder the quickstart did not write raises ``AvkitError`` (see the module docstring).
    """
    check_config(cfg)
    out = Path(cfg.out)
    recover(out)  # a quickstart killed during its swap: finish it first (its output was complete)
    check_out(out, cfg.overwrite)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("written by 'avkit quickstart'; 'avkit quickstart --overwrite' may replace "
                              + ", ".join(OUTPUTS) + " here and leaves everything else\n")
    with StagedOutput(out, entries=OUTPUTS) as staged:  # swapped in on success, deleted on failure
        return _run(cfg, staged.path, out, quiet)


def _relocate_runs(runs: Path, out: Path) -> None:
    """Point the run directories trained in the staging folder at where they will be (``OUT/runs/NAME``,
    data in ``OUT/data``), so ``avkit eval`` / ``classify`` / ``--resume`` work on them after the swap."""
    from avkit.engine.config import dump_config, load_config

    for run_dir in sorted(p for p in runs.iterdir() if (p / "config.yaml").is_file()) if runs.is_dir() else []:
        cfg = load_config(run_dir)
        cfg.data.source = str(out / "data")
        cfg.train.output_dir = str(out / "runs" / run_dir.name)
        atomic_write_text(run_dir / "config.yaml", dump_config(cfg))


def _run(cfg: QuickstartConfig, work: Path, out: Path, quiet: bool) -> dict[str, Any]:
    """Steps 1-3 and the report, written into ``work`` (the staging folder); paths in what is written
    and printed name ``out``, where the output is once it is swapped in."""
    import torch
    from rich.console import Console

    from avkit.data.synthetic import generate

    console = Console(quiet=quiet)
    t_start = time.perf_counter()
    console.rule("[bold]avkit quickstart")

    gen = generate("motion", work / "data", num=cfg.num, seed=cfg.seed, size=cfg.size, fps=cfg.fps,
                   appearance=tuple(cfg.appearance), sound_pair=cfg.sound_pair, jobs=cpu_cores())
    groups = {c["name"]: c["group"] for c in json.loads((gen.out / "classes.json").read_text())}
    console.print(f"1. generated {gen.num} motion clips in {gen.seconds:.1f}s ({gen.clips_per_second:.1f} clips/s): "
                  f"{', '.join(f'{n} ({g})' for n, g in groups.items())}")

    read = read_back(gen.manifest, cfg, limit=64 if cfg.compare else None)
    console.print(f"2. read back {read['read']} of {read['clips']} clips through VideoDataset: video {read['item_shapes']['video']}"
                  f" + spectrogram {read['item_shapes']['spectrogram']}, {read['clips_per_second']} clips/s, "
                  f"{len(read['skipped'])} skipped")

    chosen = [m for m in default_models() if not cfg.models or m.name in cfg.models] if cfg.compare else []
    jobs, threads = plan_jobs(cfg, len(chosen), torch.cuda.is_available())
    rows = train_models(cfg, gen.out, work / "runs", chosen, groups, jobs, threads, console, quiet)
    for row in rows:
        row["run_dir"] = str(out / "runs" / Path(row["run_dir"]).name)
    _relocate_runs(work / "runs", out)

    data = {**gen.to_dict(), "out": str(out / "data"), "manifest": str(out / "data" / "manifest.jsonl")}
    summary: dict[str, Any] = {"config": asdict(cfg), "data": data, "read_back": read, "results": rows,
               "chance": 1 / len(groups), "motion_chance": 1 / max(1, list(groups.values()).count("motion")),
               "jobs": {"parallel": jobs, "threads_each": threads},
               "seconds": round(time.perf_counter() - t_start, 1),
               "device": "cuda" if torch.cuda.is_available() else "cpu"}
    if rows:
        plot_results(rows, work / "comparison.png", chance=summary["motion_chance"])
        atomic_write_text(work / "results.md", results_markdown(summary))
    atomic_write_json(work / "results.json", summary)  # last: its presence says the output is complete
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
                      f"[bold]avkit train recipes/motion_c3d.yaml data.source={out / 'data'}[/bold] trains one.")
    return summary


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
