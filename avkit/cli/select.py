"""``avkit select``: audio-guided clip selection in front of a trained classifier run."""
from __future__ import annotations

import argparse
import json

REQUIRES = ("torch", "torchvision", "torchaudio", "av")  # loaded (or reported in one line) before the command runs

# Kept equal to avkit.apps.clip_selection.policies.POLICIES (tested); not imported here so --help stays light.
POLICIES = ("dense", "uniform", "random", "audio", "learned")

EPILOG = """examples:
  avkit select long.mp4 --run runs/longvideo_c3d --budget 2 --policy audio --preview runs/longvideo_preview
  avkit select long.mp4 --run runs/longvideo_c3d --preview runs/longvideo_preview_audio --consensus
  avkit select long.mp4 --run runs/longvideo_c3d --budget 3 --policy learned --sampler runs/longvideo_sampler
  avkit select long.mp4 --run runs/longvideo_c3d --policy audio          # analytic energy preview, no training
  avkit select long.mp4 --run runs/longvideo_c3d --policy uniform --budget 10 --json
  avkit select long.mp4 --run runs/longvideo_c3d --preview runs/longvideo_preview --plot timeline.png

Candidates are clips of the run's length (num_frames / fps) every --stride seconds. The preview
scores every candidate (audio on every window, plus one 16x16 frame per window when the preview
has a visual branch; without --preview an analytic onset-energy saliency); the policy picks at
most --budget clips, kept apart in time by NMS (--min-gap, default one clip); only those clips
go through the heavy model, whose softmax is averaged (--weighted: by saliency). Audio-guided
policies (audio, learned) fall back to uniform sampling when the audio is missing or silent.
The compute line counts GFLOPs of the preview, sampler and heavy model on the shapes they ran
on, against dense processing (the heavy model on 10 uniform clips). --plot draws saliency over
time with the chosen clips (and the true segments for a generated video).
"""


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("select", help="classify a long video from a few audio-chosen clips",
                              description="Choose a few clips of a long video with a cheap audio(-visual) preview, "
                                          "classify only those with a trained run, and report the compute "
                                          "spent against dense processing.",
                              epilog=EPILOG)
    p.add_argument("video", help="video file")
    p.add_argument("--run", required=True, help="classifier run directory written by 'avkit train'")
    p.add_argument("--budget", "-k", type=int, default=3, help="at most this many clips for the heavy model")
    p.add_argument("--policy", default="audio", choices=POLICIES, help="how clips are chosen")
    p.add_argument("--preview", default=None,
                   help="preview run (recipes/longvideo_preview.yaml); default: analytic onset-energy saliency")
    p.add_argument("--sampler", default=None, help="learned-sampler run (recipes/longvideo_sampler.yaml), "
                                                   "for --policy learned")
    p.add_argument("--stride", type=float, default=0.5, help="seconds between candidate clip starts")
    p.add_argument("--min-gap", type=float, default=None,
                   help="NMS: chosen clip centres at least this many seconds apart (default: one clip length)")
    p.add_argument("--consensus", action="store_true",
                   help="re-rank the preview's saliency by agreement with the whole video's sound class "
                        "(needs --preview; drops one-off loud sounds of another class)")
    p.add_argument("--weighted", action="store_true", help="weight the clips' probabilities by their saliency")
    p.add_argument("--top", type=int, default=5, help="how many labels to print")
    p.add_argument("--seed", type=int, default=0, help="seed of --policy random")
    p.add_argument("--checkpoint", default="best", choices=["best", "last"], help="which weights of --run")
    p.add_argument("--device", default="cpu", help="cpu, auto, cuda or cuda:N")
    p.add_argument("--plot", default=None, metavar="PNG", help="write a timeline figure of the selection")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --plot file")
    p.add_argument("--json", action="store_true", help="print the selection as JSON")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from avkit.errors import AvkitError
    from avkit.utils import check_output

    if args.budget < 1:
        raise AvkitError(f"--budget must be >= 1, got {args.budget}")
    if args.top < 1:
        raise AvkitError(f"--top must be >= 1, got {args.top}")
    if not args.stride > 0:
        raise AvkitError(f"--stride must be positive seconds, got {args.stride}")
    if args.policy == "learned" and not args.sampler:
        raise AvkitError("--policy learned needs --sampler RUN (trained with recipes/longvideo_sampler.yaml)")
    if args.plot:
        check_output(args.plot, args.overwrite)  # refuse before any work

    from rich.console import Console

    from avkit.apps import clip_selection
    from avkit.apps.clip_selection.inference import format_selection

    console = Console(stderr=True)
    with console.status("loading models") as status:
        selector = clip_selection.load(args.run, preview=args.preview, sampler=args.sampler,
                                       checkpoint=args.checkpoint, device=args.device, stride=args.stride,
                                       min_gap=args.min_gap, consensus=args.consensus)
        result = selector.select(args.video, budget=args.budget, policy=args.policy, weighted=args.weighted,
                                 seed=args.seed, top=args.top, on_stage=lambda text: status.update(text))
        if args.plot:
            from avkit.apps.clip_selection.plots import plot_timeline

            status.update("plotting")
            plot_timeline(result, args.plot)
    if args.json:
        out = result.to_dict()
        if args.plot:
            out["plot"] = str(args.plot)
        print(json.dumps(out, indent=2))
        return 0
    print(format_selection(result))
    if args.plot:
        print(f"plot: {args.plot}")
    return 0
