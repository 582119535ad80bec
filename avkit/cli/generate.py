"""``avkit generate``: write a deterministic synthetic audio-visual dataset (mp4 + manifest)."""
from __future__ import annotations

import argparse
import json

# avkit.data.synthetic.GENERATORS, named here so that --help does not import torch (a test keeps
# the two in step)
KINDS = ("gm_instruments", "instruments", "longvideo", "motion")

REQUIRES = ("torch", "torchvision", "av")  # loaded (or reported in one line) before the command runs

EPILOG = """kinds:
  motion       6 motion-only classes (left/right/up/down/rotate cw/ccw) + 4 appearance classes
  instruments  5 solo synthetic instruments, a sprite pulsing with its own timbre
  gm_instruments  19 real sampled General MIDI instruments playing procedural music, pictures moving with the notes
  longvideo    40 s drifting backgrounds with a few 1-2 s action segments announced by a chime

examples:
  avkit generate motion data/motion --num 64 --seed 0
  avkit generate motion data/motion48 --num 200 --size 48 --fps 8 --duration 4
  avkit generate instruments data/solo --num 100 --json
  avkit generate gm_instruments data/gm --num 190 --seed 1
  avkit generate longvideo data/long --num 20 --duration 60 --overwrite
  avkit generate longvideo data/localize --num 40 --duration 30 --val-fraction 0.2 \\
      --actions move_left rotate_cw stripes still_low still_high --segments 3 4 --segment-duration 1.5 4
                           # several actions per video, for 'avkit train recipes/localize_*.yaml'

Writes OUT/clips/*.mp4 (H.264 + AAC), OUT/manifest.jsonl (label, caption, split, segments, meta)
and OUT/classes.json. The same --seed gives identical files. See docs/synthetic.md.
"""


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("generate", help="write a synthetic audio-visual dataset",
                              description="Write a deterministic synthetic audio-visual dataset: "
                                          "real mp4 clips (video + audio) and a manifest with labels, "
                                          "captions, segments and a stratified train/val split.",
                              epilog=EPILOG)
    p.add_argument("kind", choices=KINDS, help="which dataset to generate")
    p.add_argument("out", help="output folder (must be empty or absent unless --overwrite)")
    p.add_argument("--num", type=int, default=64, help="number of clips")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same files)")
    p.add_argument("--size", type=int, default=argparse.SUPPRESS,
                   help="frame height and width in pixels (kind default: 32)")
    p.add_argument("--fps", type=float, default=argparse.SUPPRESS, help="frames per second (kind default: 8)")
    p.add_argument("--duration", type=float, default=argparse.SUPPRESS,
                   help="clip length in seconds (kind default: 3, longvideo 40)")
    p.add_argument("--sample-rate", type=int, default=argparse.SUPPRESS,
                   help="audio sample rate in Hz (kind default: 16000)")
    p.add_argument("--val-fraction", type=float, default=0.25, help="fraction of each class in the val split")
    p.add_argument("--shapes", nargs="+", default=argparse.SUPPRESS, metavar="SHAPE",
                   help="motion, longvideo: what a moving object may be (bar ellipse triangle cross; default: the first three)")
    p.add_argument("--shape-labels", action="store_true", default=argparse.SUPPRESS,
                   help="motion: one class per motion and shape (move_left_cross, ...), for classifiers that must see the shape")
    p.add_argument("--sound-pair", action="store_true", default=argparse.SUPPRESS,
                   help="motion: add still_low / still_high, a look-alike pair that only the sound tells apart")
    p.add_argument("--actions", nargs="+", default=argparse.SUPPRESS, metavar="CLASS",
                   help="longvideo: each action segment draws its class from these (motion classes, still_low, "
                        "still_high), so one video holds several actions: data for temporal localisation")
    p.add_argument("--segments", nargs=2, type=int, default=argparse.SUPPRESS, metavar=("MIN", "MAX"),
                   help="longvideo: how many sounded action segments per video (kind default: 2 4)")
    p.add_argument("--segment-duration", nargs=2, type=float, default=argparse.SUPPRESS, metavar=("MIN", "MAX"),
                   help="longvideo: seconds per action segment (kind default: 1 2)")
    p.add_argument("--jobs", type=int, default=0, help="processes rendering clips (0 = one per CPU core)")
    p.add_argument("--overwrite", action="store_true", help="write into a non-empty OUT")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from avkit.data.synthetic import generate
    from avkit.errors import AvkitError
    from avkit.utils import cpu_cores

    # Options left out keep the kind's own defaults (e.g. 40 s for longvideo).
    names = ("size", "fps", "duration", "sample_rate", "shape_labels", "sound_pair")
    params = {k: getattr(args, k) for k in names if hasattr(args, k)}
    for name in ("shapes", "actions", "segments", "segment_duration"):
        if hasattr(args, name):
            params[name] = tuple(getattr(args, name))
    if args.jobs < 0:
        raise AvkitError(f"--jobs must be >= 0 (0 = one per CPU core), got {args.jobs}")
    params["jobs"] = args.jobs or cpu_cores()
    if args.json:
        result = generate(args.kind, args.out, args.num, args.seed, overwrite=args.overwrite,
                          val_fraction=args.val_fraction, **params)
        print(json.dumps(result.to_dict(), indent=2))
        return 0

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    # The bar goes to stderr, so stdout holds only the result.
    with Progress(TextColumn(f"generate {args.kind}"), BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), transient=True, console=Console(stderr=True)) as bar:
        task = bar.add_task("clips", total=args.num)
        result = generate(args.kind, args.out, args.num, args.seed, overwrite=args.overwrite,
                          val_fraction=args.val_fraction,
                          progress=lambda done, total: bar.update(task, completed=done), **params)
    print(f"{result.num} clips, {len(result.classes)} classes, {result.seconds:.1f} s "
          f"({result.clips_per_second:.1f} clips/s) -> {result.manifest}")
    return 0
