"""Appearance-only check (docs/quickstart.md): can a single-frame CNN learn the appearance classes?

In the quickstart the video-only models are well below 100% on the appearance classes. This
trains the quickstart's single-frame CNN (same recipe, same epochs) on the appearance clips of
the quickstart's data alone (the "2-class check" when the set had two appearance classes) and
reports its accuracy on its own training clips (does it fit them?) and on the val clips (does it
generalise?), against chance. The appearance classes are those whose group is "appearance" in
the generated ``classes.json``, so a changed generator is picked up without editing this file.

    python benchmarks/appearance_only.py            # 960 clips as the quickstart: ~5 min on 2 CPU cores
    python benchmarks/appearance_only.py --num 480 --epochs 10
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from avkit.data.synthetic import generate
from avkit.engine import evaluate, train
from avkit.engine.build import build_dataset
from avkit.engine.config import as_config
from avkit.quickstart import QuickstartConfig, default_models, recipe


def appearance_subset(data: Path, out: Path, group: str = "appearance") -> list[str]:
    """Write ``out/manifest.jsonl`` + ``out/classes.json`` with only ``group``'s classes; their names."""
    classes = [c for c in json.loads((data / "classes.json").read_text()) if c["group"] == group]
    names = {c["name"] for c in classes}
    out.mkdir(parents=True, exist_ok=True)
    # The rows keep their relative paths through a link to the clips (rows naming files outside the
    # dataset folder are refused).
    if not (out / "clips").exists():
        (out / "clips").symlink_to((data / "clips").resolve(), target_is_directory=True)
    rows = []
    for line in (data / "manifest.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row["label"] in names:
            rows.append(json.dumps(row))
    (out / "manifest.jsonl").write_text("\n".join(rows) + "\n")
    (out / "classes.json").write_text(json.dumps(classes))
    return [c["name"] for c in classes]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--num", type=int, default=QuickstartConfig.num, help="clips generated (all classes)")
    ap.add_argument("--epochs", type=int, default=QuickstartConfig.epochs)
    ap.add_argument("--model", default="single_frame", help="a quickstart model name")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        cfg = QuickstartConfig(out=tmp, num=args.num, seed=args.seed, epochs=args.epochs)
        data = generate("motion", Path(tmp) / "data", num=cfg.num, seed=cfg.seed, size=cfg.size, fps=cfg.fps).out
        subset = Path(tmp) / "appearance"
        names = appearance_subset(data, subset)
        qm = next(m for m in default_models() if m.name == args.model)
        run_cfg = as_config(recipe(cfg, subset, Path(tmp) / "run", qm))
        train_set = build_dataset(run_cfg.data, run_cfg.data.train_split, train=True, seed=cfg.seed,
                                  cache=run_cfg.data.cache)
        train(run_cfg, train_set=train_set, val_set=None, quiet=True)  # as the quickstart: no per-epoch val

        print(f"{args.model} on the {len(names)} appearance classes of the quickstart data "
              f"({', '.join(names)}); {cfg.num_frames}x{cfg.size}x{cfg.size} at {cfg.fps:g} fps, "
              f"{run_cfg.train.epochs} epochs; video accuracy, {cfg.test_clips} clips averaged\n")
        print("| split | videos | accuracy | chance |")
        print("|---|---:|---:|---:|")
        for split in ("train", "val"):
            ev = evaluate(run_cfg.train.output_dir, clips=cfg.test_clips, crops=1, split=split, checkpoint="last")
            print(f"| {split} | {ev['num_videos']} | {ev['video']['top1']:.0%} | {1 / len(names):.0%} |")
        print(f"\n{time.perf_counter() - t0:.0f} s in all (seed {args.seed}).")


if __name__ == "__main__":
    main()
