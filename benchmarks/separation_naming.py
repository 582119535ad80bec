"""How well the instrument namer beside the shipped separator names the pictures, and how sure it may be trusted.

Two kinds of pictures:
- ``draw``: every instrument of ``avkit.data.synthetic.instruments.INSTRUMENTS`` drawn by ``draw`` (4.5 s, 8 fps,
  64 px, moving at a 0.5 s note grid) with seeds 100-219, which neither training nor the separation benchmark
  uses (it draws seeds 0-5): one instrument filling the picture, as ``separate`` is given them;
- ``--crops DIR``: the pictures ``naming.write_naming_crops`` cuts from a gm_instruments set (around each
  player and around parts of it, grown by ``naming.naming_box``, as ``--regions auto`` gives the namer), e.g.
  of ``runs/gm/gm_val`` to choose, of ``runs/gm/gm_test`` (held out: its clips, seeds and duet pairs) to report.
For each candidate run and set: top-1 accuracy, and at each probability threshold how many names are that sure
and how many of those are wrong. The shipped threshold (``naming.CONFIDENT``) was first the lowest one with no
wrong name, or nearly none, on the validation sets (0.9); since the separator checks that the sound bears the
names out (``inference.UNHEARD_SHARE``), it is 0.8, chosen on separated validation items by
benchmarks/separation_unheard.py. The separator takes the timbre path only above it.

    python benchmarks/separation_naming.py --runs assets/separation/instrument_names runs/names_crops \
        --crops runs/gm/gm_names_crops_val
"""
from __future__ import annotations

import argparse
import collections
import time
from pathlib import Path

import numpy as np
import torch

THRESHOLDS = (0.8, 0.9, 0.95, 0.99, 0.999)


def namer_of(path: str):
    """The namer of a run directory, or of a shipped folder (config.yaml + model.safetensors)."""
    from avkit.apps.separation import SHIPPED_WEIGHTS, _from_shipped_folder
    from avkit.apps.separation.naming import InstrumentNamer
    from avkit.engine.checkpoint import open_run

    if (Path(path) / SHIPPED_WEIGHTS).is_file():
        return _from_shipped_folder(Path(path), InstrumentNamer.from_run, "cpu")
    return InstrumentNamer.from_run(open_run(path), "cpu")


def main(argv: list[str] | None = None) -> int:
    from avkit.data.synthetic import read_manifest
    from avkit.data.synthetic.instruments import INSTRUMENTS, draw
    from avkit.io import read_clip

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", nargs="+", required=True)
    p.add_argument("--seeds", type=int, default=120, help="pictures per instrument (seeds 100, 101, ...)")
    p.add_argument("--crops", nargs="*", default=[], help="datasets written by naming.write_naming_crops")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    sets = {"draw": ([], [])}
    for name in INSTRUMENTS:
        for seed in range(100, 100 + args.seeds):
            sets["draw"][0].append(draw(name, 4.5, fps=8, size=64, onsets=[0.5 * k for k in range(8)], seed=seed))
            sets["draw"][1].append(name)
    for root in args.crops:
        rows = read_manifest(root)
        sets[root] = ([read_clip(Path(root) / r["path"], audio=False).frames.numpy() for r in rows],
                      [r["label"] for r in rows])
    print(f"# python benchmarks/separation_naming.py --runs {' '.join(args.runs)}"
          + (f" --crops {' '.join(args.crops)}" if args.crops else "")
          + f"; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; draw: {len(sets['draw'][0])} pictures "
          f"({len(INSTRUMENTS)} instruments x {args.seeds} seeds)"
          + "".join(f"; {root}: {len(v[0])} pictures" for root, v in sets.items() if root != "draw"))
    print("| run | pictures | top-1 | " + " | ".join(f"p >= {t}: named (wrong)" for t in THRESHOLDS)
          + " | most confused |")
    print("|---|---|---:|" + "---:|" * len(THRESHOLDS) + "---|")
    for run in args.runs:
        namer = namer_of(run)
        for which, (pictures, truth) in sets.items():
            said = [x for k in range(0, len(pictures), 256) for x in namer.name(pictures[k:k + 256])]
            right = np.array([n == t for (n, _), t in zip(said, truth)])
            probs = np.array([q for _, q in said])
            cells = [f"{int((probs >= t).sum())} ({int(((probs >= t) & ~right).sum())})" for t in THRESHOLDS]
            confused = collections.Counter(f"{t} as {n}" for (n, _), t in zip(said, truth) if n != t).most_common(3)
            print(f"| {run} | {which} | {right.mean():.3f} | " + " | ".join(cells) + " | "
                  + ", ".join(f"{k} {v}" for k, v in confused) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
