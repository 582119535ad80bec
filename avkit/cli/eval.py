"""``avkit eval``: multi-view clip and video accuracy of a trained run."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

REQUIRES = ("torch", "torchvision", "torchaudio", "av")  # loaded (or reported in one line) before the command runs

EPILOG = """examples:
  avkit eval runs/motion_c3d                      # 10 clips x 3 crops (recipe defaults)
  avkit eval runs/motion_c3d --clips 4 --crops 1 --json
  avkit eval runs/motion_c3d --split train --checkpoint last
  avkit eval runs/motion_c3d --clips 2 --crops 1   # 15x cheaper than 10 x 3: a quick look on a CPU
  avkit eval runs/motion_c3d --split test --overwrite   # replace the earlier RUN/eval.json

Clip metrics score every view alone; video metrics average the views' softmax first.
A separation run (task: separation) is scored with SDR/SIR/SAR and SI-SDR per number of sources,
beside the unprocessed mixture and the ideal-mask oracles (RUN/eval.json and RUN/eval.md).
Results (top-1, top-5, mean class accuracy, mAP) are written to RUN/eval.json; an earlier
evaluation there is replaced only with --overwrite (refused before any scoring). Unreadable videos are not scored: they are listed after the table
(and under "skipped" in --json / eval.json), and the video count is of the videos read.
Videos without an audio stream (runs that use sound) are listed too ("without_audio").
Before scoring, the cost is printed to stderr: videos x views, and after the first batch an
estimate of the whole with the flags that make it cheaper.
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
    p.add_argument("--overwrite", action="store_true", help="replace an earlier evaluation (RUN/eval.json, eval.md)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    import sys

    from avkit.engine.checkpoint import run_checkpoint
    from avkit.engine.config import load_config
    from avkit.engine.task import make_task
    from avkit.utils import check_output

    run_checkpoint(args.run_dir, args.checkpoint)  # one-line errors for a missing or unfinished run
    for name in ("eval.json", "eval.md"):  # before the work, not after it
        check_output(Path(args.run_dir) / name, args.overwrite)
    task = make_task(load_config(args.run_dir))
    result = task.evaluate(args.run_dir, checkpoint=args.checkpoint, split=args.split, device=args.device,
                           progress=not args.json, clips=args.clips, crops=args.crops, batch_size=args.batch_size,
                           log=lambda line: print(line, file=sys.stderr, flush=True))
    if args.json:
        print(json.dumps({k: v for k, v in result.items() if k != "mixtures"}, indent=2))
    else:
        print(task.format_evaluation(result))
    return 0
