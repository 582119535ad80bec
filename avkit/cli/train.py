"""``avkit train``: train a YAML recipe into a run directory (checkpoints, metrics, report)."""
from __future__ import annotations

import argparse
import json
import os
from typing import Any

REQUIRES = ("torch", "torchvision", "torchaudio", "av")  # loaded (or reported in one line) before the command runs

EPILOG = """examples:
  avkit train recipes/motion_c3d.yaml
  avkit train recipes/motion_c3d.yaml optim.lr=0.01 train.epochs=3 train.output_dir=runs/try
  avkit train recipes/motion_c3d.yaml model.video_options.width=16 --overwrite
  avkit train recipes/motion_c3d.yaml --resume           # continue from RUN/last.safetensors
  torchrun --nproc_per_node 2 -m avkit.cli.main train recipes/motion_c3d.yaml   # DDP

Overrides are key.sub=value (types converted, unknown keys rejected). data.batch_size is the
global batch, split between the processes of a distributed run. The run directory gets
config.yaml, best/last.safetensors, metrics.csv, tensorboard/ and report.md. See docs/training.md.
"""


class OverridesAnywhere(argparse.ArgumentParser):
    """``avkit train``'s parser: ``KEY=VALUE`` overrides may also follow the flags
    (``avkit train R --print-config data.size=64``). argparse fills the ``overrides`` positional
    from the words right after the recipe only; words of the form ``key=value`` it leaves over
    are overrides too, in the order given. Anything else left over is still an error."""

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> tuple[Any, list[str]]:
        namespace, extras = super().parse_known_args(args, namespace)
        late = [a for a in extras if "=" in a and not a.startswith("-")]
        if late:
            namespace.overrides = list(namespace.overrides or []) + late
        return namespace, [a for a in extras if a not in late]


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("train", help="train a recipe (YAML) into a run directory",
                              description="Train a model from a YAML recipe, with key.sub=value overrides; "
                                          "write checkpoints, metrics and a report into the run directory.",
                              epilog=EPILOG)
    p.add_argument("recipe", help="YAML recipe (or a run directory: its config.yaml)")
    p.__class__ = OverridesAnywhere  # the sub-parser main.py made, with overrides accepted after the flags too
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="config overrides, e.g. optim.lr=0.01 (before or after the flags)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--overwrite", action="store_true",
                       help="replace an existing run directory once the new run has trained (it trains beside "
                            "the old one, which stays as it was if training fails)")
    group.add_argument("--resume", action="store_true", help="continue the run from its last checkpoint")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("--json", action="store_true", help="print the result as JSON (no progress bar)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from avkit.engine.config import dump_config, load_config

    cfg = load_config(args.recipe, args.overrides)
    if args.print_config:
        print(dump_config(cfg), end="")
        return 0
    from avkit.engine.trainer import train

    if args.json:
        cfg.train.progress = False
    result = train(cfg, overwrite=args.overwrite, resume=args.resume, quiet=args.json)
    if args.json and os.environ.get("RANK", "0") == "0":
        print(json.dumps({"run_dir": str(result.run_dir), "epochs_done": result.epochs_done, "steps": result.steps,
                          "best_epoch": result.best_epoch, "best_key": result.best_key,
                          "best_value": result.best_value, "best_val_acc": result.best_val_acc,
                          "stopped": result.stopped, "history": result.history}, indent=2))
    return 0
