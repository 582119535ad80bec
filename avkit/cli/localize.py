"""``avkit localize``: where in a long video each action starts and ends (a trained localiser run)."""
from __future__ import annotations

import argparse
import json

REQUIRES = ("torch", "torchvision", "torchaudio", "av")  # loaded (or reported in one line) before the command runs

EPILOG = """examples:
  avkit localize long.mp4 --run runs/localize_onestage
  avkit localize long.mp4 --run runs/localize_onestage --json
  avkit localize long.mp4 --run runs/localize_sliding --min-score 0.3 --plot timeline.png
  avkit eval runs/localize_onestage          # mAP at tIoU 0.3..0.7 on the run's validation videos

The run (avkit train recipes/localize_{sliding,proposals,onestage}.yaml) says how the video is cut
into windows and which encoders turn them into features; its network turns those into segments
(label, start, end, score), best first. --plot draws them on a timeline, with the ground truth
when a manifest.jsonl beside the video lists its segments. See docs/localization.md.
"""


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("localize", help="find where each action starts and ends in a long video",
                              description="Temporal action localisation with a trained localiser run: segments "
                                          "with label, start, end and score.", epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("video", help="video file")
    p.add_argument("--run", required=True, help="localiser run directory written by 'avkit train' (task: localization)")
    p.add_argument("--min-score", type=float, default=0.1, help="print segments scoring at least this (0-1)")
    p.add_argument("--checkpoint", default="best", choices=["best", "last"], help="which weights of --run")
    p.add_argument("--device", default="cpu", help="cpu, auto, cuda or cuda:N")
    p.add_argument("--plot", default=None, metavar="PNG", help="write a timeline figure of the segments")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --plot file")
    p.add_argument("--json", action="store_true", help="print the segments as JSON")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from avkit.errors import AvkitError, MediaError
    from avkit.utils import check_output

    if not 0 <= args.min_score <= 1:
        raise AvkitError(f"--min-score must be in [0, 1], got {args.min_score}")
    if not Path(args.video).is_file():
        raise MediaError(args.video, "no such file")
    if args.plot:
        check_output(args.plot, args.overwrite)  # refuse before any work

    from rich.console import Console

    from avkit.apps import localization
    from avkit.apps.localization.inference import plot_timeline, truth_of

    console = Console(stderr=True)
    with console.status("loading the run"):
        loc = localization.load(args.run, checkpoint=args.checkpoint, device=args.device)
    with console.status("extracting window features and localising"):
        feat = loc.extractor(args.video)
        segments = [s for s in loc.detect_features(feat) if s["score"] >= args.min_score]
    if args.plot:
        plot_timeline(segments, feat.duration, Path(args.plot), loc.class_names, truth_of(args.video), args.min_score)
    if args.json:
        out: dict = {"video": args.video, "duration": feat.duration, "method": loc.method, "segments": segments}
        if args.plot:
            out["plot"] = str(args.plot)
        print(json.dumps(out, indent=2))
        return 0
    print(f"{args.video}: {feat.duration:.1f} s, {len(segments)} segments ({loc.method}, score >= {args.min_score:g})")
    for s in sorted(segments, key=lambda s: s["start"]):
        print(f"  {s['start']:7.2f} - {s['end']:7.2f} s  {s['label']:<16} {s['score']:.3f}")
    if args.plot:
        print(f"plot: {args.plot}")
    return 0
