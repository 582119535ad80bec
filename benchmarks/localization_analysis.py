"""Where the proposal method wins and loses against the one-stage localiser (docs/localization.md).

Reads what ``benchmarks/localization.py`` left in ``--work``: each audio-visual run's detections on
the held-out videos (``runs_<seed>/<method>_av/test_predictions.json``) and those videos' ground
truth. All three methods saw the very same cached features (one ``.npz`` per seed), so the
differences below are the networks' and their decoding's, not the inputs'. ``--ablate-epochs N``
also trains the one-stage localiser for N epochs on those features (``onestage_eN``; is it just
under-trained at the benchmark's 30?). Prints, per seed and method:

1. AP at tIoU 0.3 ... 0.95 (the benchmark stops at 0.7) and the ActivityNet average 0.5:0.95;
2. per-class AP (mean over tIoU 0.3:0.7): the sound-defined pair against the visual classes;
3. boundary accuracy: for each ground-truth segment the detection a reader would take (the
   highest-scoring one of its class overlapping it), its tIoU and start/end errors (medians), for
   segments shorter than 2.5 s and from 2.5 s on (the one-stage model's coarse pyramid levels
   handle the long ones); and how many ground-truth segments that detection reaches at tIoU 0.5 / 0.7.

    python benchmarks/localization.py --seeds 0 1 --work W
    python benchmarks/localization_analysis.py --seeds 0 1 --work W --ablate-epochs 90 \
        | tee docs/benchmarks/localization_analysis.txt
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

METHODS = ("sliding", "proposals", "onestage")
TIOUS = (0.3, 0.5, 0.7, 0.8, 0.9)
LONG = 2.5  # s: segments from here on are "long"


def reader_pick(preds: list[dict[str, Any]], gt: dict[str, Any]) -> dict[str, Any] | None:
    """The highest-scoring detection of ``gt``'s class in its video that overlaps it, if any."""
    from avkit.apps.localization.metrics import tiou

    same = [p for p in preds if p["video"] == gt["video"] and p["label"] == gt["label"]
            and tiou(p["start"], p["end"], np.array([gt["start"]]), np.array([gt["end"]]))[0] > 0]
    return max(same, key=lambda p: p["score"]) if same else None


def boundaries(preds: list[dict[str, Any]], truth: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per length group (short, long, all): count, medians of tIoU / |start error| / |end error| of the reader's
    pick (a missed segment counts tIoU 0 and is left out of the error medians), reach at tIoU 0.5 / 0.7."""
    from avkit.apps.localization.metrics import tiou

    out = {}
    groups = {"short": [g for g in truth if g["end"] - g["start"] < LONG],
              "long": [g for g in truth if g["end"] - g["start"] >= LONG], "all": truth}
    for name, group in groups.items():
        ious, ds, de = [], [], []
        for g in group:
            p = reader_pick(preds, g)
            if p is None:
                ious.append(0.0)
                continue
            ious.append(float(tiou(p["start"], p["end"], np.array([g["start"]]), np.array([g["end"]]))[0]))
            ds.append(abs(p["start"] - g["start"]))
            de.append(abs(p["end"] - g["end"]))
        iou = np.array(ious)
        out[name] = {"n": len(group), "tiou": float(np.median(iou)), "start": float(np.median(ds)) if ds else float("nan"),
                     "end": float(np.median(de)) if de else float("nan"),
                     "at_0.5": float((iou >= 0.5).mean()), "at_0.7": float((iou >= 0.7).mean())}
    return out


def main() -> int:
    from avkit.apps.localization.data import ground_truth_rows, read_videos
    from avkit.apps.localization.metrics import ACTIVITYNET_TIOUS, THUMOS_TIOUS, mean_average_precision, per_class_ap

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="/tmp/avkit_bench_localization")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--ablate-epochs", type=int, default=0, help="also train onestage this long (0: no)")
    args = ap.parse_args()
    work = Path(args.work)
    methods = list(METHODS)
    if args.ablate_epochs:
        sys.path.insert(0, str(Path(__file__).parent))
        import localization as bench  # benchmarks/localization.py: the same training and scoring

        name = f"onestage_e{args.ablate_epochs}"
        methods.append(name)
        for seed in args.seeds:
            run = work / f"runs_{seed}" / f"{name}_av"
            seconds = bench.train_run("onestage", "av", work / f"train_{seed}", run, seed, args.ablate_epochs)
            avg = bench.score(run, work / f"test_{seed}")["avg"]
            print(f"seed {seed}: {name} trained in {seconds:.0f} s, avg mAP 0.3:0.7 {100 * avg:.1f}", flush=True)
    results: list[tuple[int, str, dict[str, float], dict[str, float], dict[str, dict[str, float]]]] = []
    classes: list[str] = []
    for seed in args.seeds:
        for method in methods:
            run = work / f"runs_{seed}" / f"{method}_av"
            classes = json.loads((run / "classes.json").read_text())
            preds = json.loads((run / "test_predictions.json").read_text())
            videos, _, _ = read_videos(work / f"test_{seed}", None, class_names=classes)
            truth = ground_truth_rows(videos)
            table = {f"{t:g}": v for t, v in mean_average_precision(preds, truth, TIOUS).items()}
            table["avg 0.5:0.95"] = float(np.mean(list(mean_average_precision(preds, truth, ACTIVITYNET_TIOUS).values())))
            results.append((seed, method, table, per_class_ap(preds, truth, THUMOS_TIOUS), boundaries(preds, truth)))
    counts = results[0][4]
    print(f"held-out ground truth per seed: {counts['all']['n']} segments "
          f"({counts['short']['n']} under {LONG:g} s, {counts['long']['n']} from {LONG:g} s) on seed {args.seeds[0]}")

    heads = [f"{t:g}" for t in TIOUS] + ["avg 0.5:0.95"]
    print("\n1. AP (%) at each tIoU, audio-visual features\n")
    print("| seed | method | " + " | ".join(f"mAP@{h}" if h[0] != "a" else h for h in heads) + " |")
    print("|" + "---|" * (len(heads) + 2))
    for seed, method, table, _, _ in results:
        print(f"| {seed} | {method} | " + " | ".join(f"{100 * table[h]:.1f}" for h in heads) + " |")

    print("\n2. AP (%) per class, mean over tIoU 0.3:0.7\n")
    print("| seed | method | " + " | ".join(classes) + " |")
    print("|" + "---|" * (len(classes) + 2))
    for seed, method, _, per_class, _ in results:
        print(f"| {seed} | {method} | " + " | ".join(f"{100 * per_class[c]:.1f}" for c in classes) + " |")

    print("\n3. Boundaries of the reader's pick (highest-scoring detection of the right class overlapping each "
          "ground-truth segment); errors in s, medians\n")
    print("| seed | method | segments | median tIoU | start error | end error | reached at tIoU 0.5 | at 0.7 |")
    print("|---|---|---|---|---|---|---|---|")
    for seed, method, _, _, bounds in results:
        for group in ("short", "long", "all"):
            b = bounds[group]
            label = {"short": f"< {LONG:g} s", "long": f">= {LONG:g} s", "all": "all"}[group]
            print(f"| {seed} | {method} | {label} ({b['n']}) | {b['tiou']:.2f} | {b['start']:.2f} | {b['end']:.2f} | "
                  f"{100 * b['at_0.5']:.0f}% | {100 * b['at_0.7']:.0f}% |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
