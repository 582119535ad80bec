"""``avkit quickstart``: the main job, on data avkit generates itself."""
from __future__ import annotations

import argparse
import json

from avkit.quickstart import QuickstartConfig, default_models, run_quickstart

REQUIRES = ("torch", "torchvision", "torchaudio", "av")  # loaded (or reported in one line) before the command runs


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    names = ", ".join(m.name for m in default_models())
    p = sub.add_parser(
        "quickstart",
        help="the main job: generate motion data, train and compare the video model families (~3.5-8 min on 2 cores)",
        description="Generate the synthetic 'motion' set (6 motion-only classes + 2 of its 4 appearance-only classes), read it "
                    "back through VideoDataset with the clip sampler, then train tiny single-frame, late fusion, "
                    "early fusion, C3D, two-stream and audio-visual models with the engine of 'avkit train', "
                    "evaluate each with multi-clip averaging and print a comparison table plus a plot "
                    f"(models: {names}). Everything goes into --out.",
        epilog="examples:\n  avkit quickstart\n  avkit quickstart --out runs/qs --overwrite\n"
               "  avkit quickstart --models single_frame c3d --epochs 10\n"
               "  avkit quickstart --no-train                # data + read-back summary only (~1 min)\n"
               "  avkit quickstart --json > results.json",
    )
    d = QuickstartConfig()
    p.add_argument("--out", default=d.out, help="run directory (data, one run per model, results)")
    p.add_argument("--num", type=int, default=d.num, help="number of generated clips")
    p.add_argument("--epochs", type=int, default=d.epochs, help="training epochs per model (late_fusion_concat trains 2/3 of them, early_fusion twice, "
                   "c3d and c3d+audio 1.5x)")
    p.add_argument("--no-train", action="store_true", help="stop after generating and reading back the data")
    p.add_argument("--models", nargs="+", default=None, metavar="NAME", help="train only these models")
    p.add_argument("--workers", type=int, default=d.num_workers, help="DataLoader worker processes; 0 keeps the decoded clips cached in this process, "
                        "workers would decode them again every epoch")
    p.add_argument("--jobs", type=int, default=d.jobs,
                   help="models trained side by side, each in its own one-thread process "
                        "(0 = auto: one per CPU core on CPU, 1 on a GPU or with --workers)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--overwrite", action="store_true",
                   help="replace an earlier quickstart's output in --out, once the new one is complete (a folder "
                        "without its .avkit-quickstart marker is never deleted; other files in it are kept)")
    p.add_argument("--json", action="store_true", help="print the results as JSON (no progress output)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from avkit.errors import AvkitError

    known = {m.name for m in default_models()}
    unknown = sorted(set(args.models or []) - known)
    if unknown:
        raise AvkitError(f"unknown quickstart model(s) {unknown}; choose from {sorted(known)}")
    cfg = QuickstartConfig(out=args.out, num=args.num, epochs=args.epochs, seed=args.seed, num_workers=args.workers, jobs=args.jobs,
                           models=list(args.models or []), compare=not args.no_train, overwrite=args.overwrite)
    summary = run_quickstart(cfg, quiet=args.json)
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    return 0
