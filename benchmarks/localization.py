"""Temporal action localisation: the three methods on the same held-out long videos (docs/localization.md).

Generates long videos with several actions each (``longvideo`` with ``actions=``: three visually
defined classes and the sound-defined pair ``still_low`` / ``still_high``, which look the same),
extracts per-window features once per modality (cached .npz), trains each method with
``avkit train`` (``task: localization``) and scores it on held-out videos of another seed:
mAP at tIoU 0.3..0.7 and their mean (the baseline, sliding windows, measured in the same run),
plus the mean AP of the sound-defined classes for video-only against audio-visual features.

    python benchmarks/localization.py --seeds 0 1 | tee docs/benchmarks/localization.txt
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ACTIONS = ("move_left", "rotate_cw", "stripes", "still_low", "still_high")
SOUND_DEFINED = ("still_low", "still_high")
METHODS = ("sliding", "proposals", "onestage")


def make_data(out: Path, num: int, seed: int, val_fraction: float) -> Path:
    from avkit.data.synthetic import generate

    if not (out / "manifest.jsonl").is_file():
        generate("longvideo", out, num, seed=seed, duration=30.0, actions=ACTIONS, segments=(3, 4),
                 segment_duration=(1.5, 4.0), val_fraction=val_fraction, jobs=1)
    return out


def train_run(method: str, modality: str, data: Path, out: Path, seed: int, epochs: int) -> float:
    """Trains one run; returns the seconds ``avkit train`` took (features already cached)."""
    from avkit.engine import train
    from avkit.engine.config import load_config

    cfg = load_config(ROOT / "recipes" / f"localize_{method}.yaml",
                      [f"data.source={data}", f"task_options.modality={modality}",
                       f"task_options.cache={data / f'features_{modality}.npz'}", f"train.output_dir={out}",
                       f"train.seed={seed}", f"train.epochs={epochs}", "train.progress=false", "train.tensorboard=false"])
    start = time.perf_counter()
    train(cfg, quiet=True, overwrite=True)
    return time.perf_counter() - start


def score(run: Path, test: Path) -> dict[str, float]:
    """The run's mAP table on the held-out videos (its detections saved as ``run/test_predictions.json``)."""
    from avkit.apps import localization
    from avkit.apps.localization.data import ground_truth_rows, read_videos
    from avkit.apps.localization.metrics import THUMOS_TIOUS, mean_average_precision, per_class_ap
    from avkit.utils import atomic_write_json

    loc = localization.load(run, device="cpu")
    videos, _, _ = read_videos(test, None, class_names=loc.class_names)
    preds = [{"video": v.path, **d} for v in videos for d in loc.localize(v.path)]
    truth = ground_truth_rows(videos)
    atomic_write_json(run / "test_predictions.json", preds)
    table = mean_average_precision(preds, truth, THUMOS_TIOUS)
    per_class = per_class_ap(preds, truth, THUMOS_TIOUS)
    out = {f"{t:g}": v for t, v in table.items()}
    out["avg"] = float(np.mean(list(table.values())))
    out["sound"] = float(np.mean([per_class[c] for c in SOUND_DEFINED]))
    out["visual"] = float(np.mean([v for c, v in per_class.items() if c not in SOUND_DEFINED]))
    return out


HEADS = ("0.3", "0.4", "0.5", "0.6", "0.7")
COLUMNS = [*HEADS, "avg", "vs", "sound", "visual", "seconds"]


def print_table(rows: list[tuple[int, str, str, float, dict[str, float]]]) -> None:
    """One markdown table: a row per seed, features and method, then the mean over seeds of each
    (features, method) with the spread of its average mAP (min-max over seeds)."""
    table: list[tuple[str, str, str, dict[str, float], str]] = []
    for seed, modality, method, seconds, r in rows:
        base = next(x[4]["avg"] for x in rows if x[0] == seed and x[1] == modality and x[2] == "sliding")
        table.append((str(seed), modality, method, {**r, "vs": r["avg"] - base, "seconds": seconds}, ""))
    seeds = sorted({x[0] for x in rows})
    if len(seeds) > 1:
        for modality, method in dict.fromkeys((x[1], x[2]) for x in rows):
            runs = [t[3] for t in table if t[1] == modality and t[2] == method]
            mean = {c: float(np.mean([r[c] for r in runs])) for c in COLUMNS}
            spread = f" ({100 * min(r['avg'] for r in runs):.1f}-{100 * max(r['avg'] for r in runs):.1f})"
            table.append((f"mean of {len(runs)}", modality, method, mean, spread))
    print("\n| seed | features | method | " + " | ".join(f"mAP@{h}" for h in HEADS)
          + " | avg 0.3:0.7 | vs sliding | sound-defined AP | visual AP | train s |")
    print("|" + "---|" * (len(HEADS) + 8))
    for seed_name, modality, method, r, spread in table:
        print(f"| {seed_name} | {modality} | {method} | " + " | ".join(f"{100 * r[h]:.1f}" for h in HEADS)
              + f" | {100 * r['avg']:.1f}{spread} | {100 * r['vs']:+.1f} | {100 * r['sound']:.1f} | "
              f"{100 * r['visual']:.1f} | {r['seconds']:.0f} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="/tmp/avkit_bench_localization")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--train-videos", type=int, default=40)
    ap.add_argument("--test-videos", type=int, default=12)
    ap.add_argument("--epochs", type=int, default=30)
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    work = Path(args.work)
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; "
          f"{args.train_videos} train videos (20% val), {args.test_videos} held-out videos of 30 s, classes {ACTIONS}")
    rows = []
    begin = time.perf_counter()
    for seed in args.seeds:
        t0 = time.perf_counter()
        train_dir = make_data(work / f"train_{seed}", args.train_videos, seed, 0.2)
        test_dir = make_data(work / f"test_{seed}", args.test_videos, 1000 + seed, 0.0)
        print(f"seed {seed}: data generated in {time.perf_counter() - t0:.0f} s", flush=True)
        for modality, methods in (("av", METHODS), ("video", ("sliding", "onestage"))):
            for method in methods:
                run = work / f"runs_{seed}" / f"{method}_{modality}"
                seconds = train_run(method, modality, train_dir, run, seed, args.epochs)
                result = score(run, test_dir)
                rows.append((seed, modality, method, seconds, result))
                print(f"  {method:9s} {modality:5s} trained in {seconds:5.1f} s: avg mAP {100 * result['avg']:.1f}, "
                      f"sound-defined {100 * result['sound']:.1f}, load {os.getloadavg()[0]:.1f}", flush=True)
    print_table(rows)
    print(f"\nload average at end: {os.getloadavg()[0]:.1f}; whole run {time.perf_counter() - begin:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
