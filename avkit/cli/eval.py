"""``avkit eval``: multi-view clip and video accuracy of a trained run."""
from __future__ import annotations

import argparse
import json

REQUIRES = ("torch", "torchvision", "torchaudio", "av")  # loaded (or reported in one line) before the command runs

EPILOG = """examples:
  avkit eval runs/motion_c3d                      # 10 clips x 3 crops (recipe defaults)
  avkit eval runs/motion_c3d --clips 4 --crops 1 --json
  avkit eval runs/motion_c3d --split train --checkpoint last

Clip metrics score every view alone; video metrics average the views' softmax first.
A separation run (task: separation) is scored with SDR/SIR/SAR and SI-SDR per number of sources,
beside the unprocessed mixture and the ideal-mask oracles (RUN/eval.json and RUN/eval.md).
Results (top-1, top-5, mean class accuracy, mAP) are written to RUN/eval.json, replacing
the previous evaluation. Unreadable videos are not scored: they are listed after the table
(and under "skipped" in --json / eval.json), and the video count is of the videos read.
"""


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("eval", help="evaluate a run: clip and video accuracy over clips x crops",
                              description="Evaluate a trained run directory on its validation data, "
                                          "averaging predictions over uniformly spaced clips and crops.",
                              epilog=EPILOG)
    p.add_argument("run_dir", help="run directory written by 'avkit train'")
    p.add_argument("--clips", type=int, default=None, help="clips per video (default: recipe's data.test_clips)")
    p.add_argument("--crops", type=int, default=None, choices=[1, 3],
                   help="spatial crops per clip (default: recipe's data.test_crops)")
    p.add_argument("--split", default=None, help="manifest split (default: recipe's data.val_split)")
    p.add_argument("--checkpoint", default="best", choices=["best", "last"], help="which weights")
    p.add_argument("--batch-size", type=int, default=None, help="videos per batch")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from avkit.engine.config import load_config

    if (Path(args.run_dir) / "config.yaml").is_file() and load_config(args.run_dir).task == "separation":
        from avkit.apps.separation.evaluate import eval_command  # SDR/SIR/SAR per number of sources, with oracles

        return eval_command(args)
    from avkit.engine.evaluate import evaluate, format_table

    result = evaluate(args.run_dir, args.clips, args.crops, split=args.split, checkpoint=args.checkpoint,
                      batch_size=args.batch_size, device=args.device, progress=not args.json)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(format_table(result))
    return 0
