"""Learnability check of the synthetic ``motion`` set (docs/synthetic.md "Learnability check").

The set is built so that no single frame tells the motion classes apart. This checks it with a
training run: a temporal model (C3D) must learn the motion classes, a single-frame CNN (the
baseline, trained in the same run) must stay at chance on them. It runs the quickstart pipeline
(``avkit.quickstart.run_quickstart``: generate mp4s -> VideoDataset -> the engine of
``avkit train`` -> multi-clip evaluation) on a small set: 320 clips (240 train / 80 val),
8-frame windows at 8 fps, 32x32, 40 epochs of AdamW, the quickstart's tiny BatchNorm models.
Each model is also evaluated on its own training clips, which shows memorisation.

Classes and their groups ("motion", "appearance", ...) are read from the generated
``classes.json``, so a changed generator is picked up without editing this file.

    python benchmarks/learnability.py                       # ~3 min on 2 CPU cores
    python benchmarks/learnability.py --epochs 10 --num 160  # a quicker look
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from avkit.engine import evaluate
from avkit.quickstart import QuickstartConfig, group_accuracy, run_quickstart


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--num", type=int, default=320, help="generated clips (75%% train, 25%% val)")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--models", nargs="+", default=["single_frame", "c3d"], help="quickstart model names")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="keep the runs here (default: a temporary folder)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp) / "learnability"
        t0 = time.perf_counter()
        cfg = QuickstartConfig(out=str(out), num=args.num, seed=args.seed, epochs=args.epochs,
                               models=list(args.models), overwrite=True)
        summary = run_quickstart(cfg, quiet=True)
        classes = json.loads((Path(summary["data"]["out"]) / "classes.json").read_text())
        groups = {c["name"]: c["group"] for c in classes}
        names = sorted(set(groups.values()))
        counts = {g: list(groups.values()).count(g) for g in names}

        print(f"motion set: {summary['data']['num']} clips, {len(groups)} classes "
              f"({', '.join(f'{counts[g]} {g}' for g in names)}); {cfg.num_frames} frames of "
              f"{cfg.size}x{cfg.size} at {cfg.fps:g} fps; {args.epochs} epochs; video accuracy, "
              f"{cfg.test_clips} clips averaged per video\n")
        print("| model | split | " + " | ".join(f"{g} classes" for g in names) + " | overall |")
        print("|---|---|" + "---:|" * (len(names) + 1))
        print("| chance | - | " + " | ".join(f"{1 / counts[g]:.0%}" for g in names) + f" | {1 / len(groups):.0%} |")
        for row in summary["results"]:
            for split in ("train", "val"):
                ev = evaluate(row["run_dir"], clips=cfg.test_clips, crops=1, split=split, checkpoint="last")
                acc = group_accuracy(ev["confusion"], ev["class_names"], groups)
                cells = [f"{acc[g]:.0%}" for g in names]
                print(f"| {row['model']} | {split} | " + " | ".join(cells) + f" | {acc['overall']:.0%} |")
        print(f"\n{time.perf_counter() - t0:.0f} s in all (seed {args.seed}).")


if __name__ == "__main__":
    main()
