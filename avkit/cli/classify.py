"""``avkit classify``: top-k labels of a video file with a trained run."""
from __future__ import annotations

import argparse
import json

REQUIRES = ("torch", "torchvision", "torchaudio", "av")  # loaded (or reported in one line) before the command runs

EPILOG = """examples:
  avkit classify clip.mp4 --run runs/motion_c3d
  avkit classify clip.mp4 --run runs/motion_c3d --top 3 --clips 4 --json

The video is read at the run's frame count, fps and size; class probabilities are
averaged over --clips uniformly spaced clips (centre crop). A file without an audio stream,
for a run that uses sound, follows the run's data.missing_audio: refused (error, drop) or, with
--missing-audio zeros, classified with the sound marked absent; the output says which.
"""


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("classify", help="top-k labels of a video with a trained run",
                              description="Classify one video file with a trained run directory, "
                                          "averaging class probabilities over clips.",
                              epilog=EPILOG)
    p.add_argument("video", help="video file")
    p.add_argument("--run", required=True, help="run directory written by 'avkit train'")
    p.add_argument("--top", type=int, default=5, help="how many labels to print")
    p.add_argument("--clips", type=int, default=None, help="clips to average (default: recipe's data.test_clips)")
    p.add_argument("--checkpoint", default="best", choices=["best", "last"], help="which weights")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--missing-audio", default=None, choices=["error", "zeros"],
                   help="a file without sound: refuse it, or classify it with the sound marked absent "
                        "(default: the run's data.missing_audio)")
    p.add_argument("--json", action="store_true", help="print the labels as JSON")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from avkit.engine.classify import classify_video

    result = classify_video(args.video, args.run, top=args.top, clips=args.clips, checkpoint=args.checkpoint,
                            device=args.device, missing_audio=args.missing_audio)
    labels = result.labels
    if args.json:
        print(json.dumps({"video": args.video, "run": args.run, "labels": labels, "has_audio": result.has_audio,
                          "note": result.note}, indent=2))
        return 0
    width = max(len(x["label"]) for x in labels)
    print(f"{args.video}:" + (f" ({result.note})" if result.note else ""))
    for x in labels:
        print(f"  {x['label']:<{width}}  {x['score']:.4f}")
    return 0
