"""Choosing the shipped model's audio-only network on validation data, end to end.

Each audio-only run is attached to the shipped pictured network (``Separator.attach_stems``) and scored on
two-source mixtures of the validation set (gm_instruments generator seed 2; neither the training clips nor
the benchmark's held-out seed 3 or real recordings), as the separator runs: stems ordered by the pictured
network's estimates; and on the validation set's same-instrument duet videos (``--regions 2x1``, each half
against its player's stem, as benchmarks/separation.py scores the held-out ones). Beside it, in the same run:
the pictured network alone, and each audio-only network with the order given. Mean SDRi (dB) over sources.

    python benchmarks/separation_stems_validation.py --runs runs/separation_gm_audio_unison_eq \\
        runs/separation_gm_audio_unison_eq_seed1 ...          # the log docs/benchmarks/separation_stems_validation.log
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import separation as bench  # noqa: E402  (the benchmark's duet scoring)


def main(argv: list[str] | None = None) -> int:
    from avkit.apps.separation import load
    from avkit.apps.separation.evaluate import mixtures_of, score_mixtures
    from avkit.apps.separation.metrics import summarize

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", nargs="+", required=True, help="audio-only separation runs (visual: none)")
    p.add_argument("--val", default="runs/gm/gm_val", help="the validation set (gm_instruments, seed 2)")
    p.add_argument("--mixtures", type=int, default=100, help="two-source mixtures scored")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    pictured = load(None, device="cpu")
    pictured.detach_stems()
    mixtures = mixtures_of(args.val, pictured.opts, num_mix=[2], length=args.mixtures, seed=1)
    items = [mixtures[i] for i in range(len(mixtures))]

    def sdri(separator) -> float:
        return summarize(score_mixtures(separator, items, oracles=False))["2"]["model"]["sdri"]

    def duets(separator) -> str:
        result = bench.same_duets_part(separator, None, Path(args.val), 1000)
        return f"{result['summary']['model']['sdri']:.2f} ({result['duets']})"

    print(f"# python benchmarks/separation_stems_validation.py; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
          f"{len(items)} two-source mixtures of {args.val}; mean SDRi (dB)")
    print("| audio-only run | mixtures: pictures + stems | mixtures: audio only, order given | duets (videos): pictures"
          " + stems |\n|---|---:|---:|---:|")
    print(f"| (none: the pictured network alone) | {sdri(pictured):.2f} | - | {duets(pictured)} |", flush=True)
    for run in args.runs:
        separator = load(None, device="cpu")
        separator.attach_stems(load(run, device="cpu"))
        print(f"| {run} | {sdri(separator):.2f} | {sdri(load(run, device='cpu')):.2f} | {duets(separator)} |",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
