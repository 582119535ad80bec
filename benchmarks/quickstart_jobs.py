"""The quickstart's step 3 (train + evaluate every model) one model at a time, against side by side.

On the quickstart's own data (generated once, 960 clips of seed 0), ``avkit.quickstart.train_models``
runs the same models on a short budget (``--epochs``, each model's share as in the quickstart)
twice in this one run, alternating: one model at a time in this process with every CPU thread
(``jobs=1``, the baseline), and ``--jobs`` models at a time in forked one-thread processes (what
``avkit quickstart`` does on a CPU). The table gives the wall clock of each and the ratio; the runs
are the same models and data (not bit-for-bit the same weights: CPU training here is not repeatable).
Also the data generation with one process against one per core.

    python benchmarks/quickstart_jobs.py                 # 3 epochs (c3d 4, early fusion 6), 2 rounds
    python benchmarks/quickstart_jobs.py --epochs 6 --rounds 1
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console

from avkit.data.synthetic import generate
from avkit.quickstart import QuickstartConfig, default_models, train_models
from avkit.utils import cpu_cores


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=3, help="the budget QuickstartConfig.epochs (shares apply)")
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds of both ways")
    ap.add_argument("--jobs", type=int, default=0, help="parallel trainings (0 = one per CPU core)")
    args = ap.parse_args()
    jobs = args.jobs or cpu_cores()
    cores = cpu_cores()
    cfg = QuickstartConfig(epochs=args.epochs, warmup_epochs=1)
    models = default_models()
    console = Console(quiet=True)
    root = Path(tempfile.mkdtemp(prefix="avkit_qs_jobs_"))
    try:
        gen_s = {}
        for n in (1, cores):
            start = time.perf_counter()
            gen = generate("motion", root / f"data{n}", cfg.num, seed=cfg.seed, size=cfg.size, fps=cfg.fps,
                           appearance=tuple(cfg.appearance), jobs=n)
            gen_s[n] = time.perf_counter() - start
        data = gen.out
        groups = {c["name"]: c["group"] for c in json.loads((data / "classes.json").read_text())}
        times: dict[str, list[float]] = {"one at a time": [], "side by side": []}
        per_model: dict[str, dict[str, float]] = {}
        for r in range(args.rounds):
            for label, (j, threads) in (("one at a time", (1, cores)), ("side by side", (jobs, 1))):
                runs = root / f"runs_{r}_{j}"
                torch.set_num_threads(cores)
                start = time.perf_counter()
                rows = train_models(cfg, data, runs, models, groups, j, threads, console, quiet=True)
                times[label].append(time.perf_counter() - start)
                per_model[label] = {row["model"]: row["train_seconds"] for row in rows}
                shutil.rmtree(runs)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    base = min(times["one at a time"])
    print(f"quickstart step 3, {len(models)} models, budget {args.epochs} epochs, {cores} CPU cores, "
          f"torch {torch.__version__}; best of {args.rounds} rounds")
    print(f"{'way':<34}{'wall s':>9}{'speed-up':>10}")
    print(f"{'one at a time (' + str(cores) + ' threads)':<34}{base:>9.1f}{1.0:>9.2f}x")
    best = min(times["side by side"])
    print(f"{f'side by side ({jobs} jobs x 1 thread)':<34}{best:>9.1f}{base / best:>9.2f}x")
    print("\nper model train s (last round): " + ", ".join(
        f"{m} {per_model['one at a time'][m]:.1f} -> {per_model['side by side'][m]:.1f}" for m in per_model["one at a time"]))
    print(f"\ndata generation ({cfg.num} clips): 1 process {gen_s[1]:.1f} s, {cores} processes {gen_s[cores]:.1f} s "
          f"({gen_s[1] / gen_s[cores]:.2f}x)")


if __name__ == "__main__":
    main()
