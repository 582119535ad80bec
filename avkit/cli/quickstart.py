"""``avkit quickstart``: the main job, on data avkit generates itself."""
from __future__ import annotations

import argparse
import json

from avkit.quickstart import QuickstartConfig, run_quickstart


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "quickstart",
        help="generate motion data, read it back, train and compare the model families",
        description="Generate the synthetic 'motion' set, read it back through VideoDataset with the clip "
                    "sampler, and print a summary (clips, classes, decode speed).",
        epilog="examples:\n  avkit quickstart\n  avkit quickstart --out runs/qs --num 96 --overwrite\n"
               "  avkit quickstart --json",
    )
    p.add_argument("--out", default=QuickstartConfig.out, help="run directory")
    p.add_argument("--num", type=int, default=QuickstartConfig.num, help="number of generated clips")
    p.add_argument("--seed", type=int, default=QuickstartConfig.seed)
    p.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    cfg = QuickstartConfig(out=args.out, num=args.num, seed=args.seed, overwrite=args.overwrite)
    summary = run_quickstart(cfg, quiet=args.json)
    if args.json:
        print(json.dumps(summary, indent=2))
    return 0
