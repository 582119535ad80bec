"""``avkit caption``: write a caption of a video with a trained captioning run."""
from __future__ import annotations

import argparse
import json
import sys

REQUIRES = ("torch", "av", "transformers")  # loaded (or reported in one line) before the command runs

EPILOG = """examples:
  avkit caption clip.mp4 --run runs/caption_av_s2
  avkit caption clip.mp4 --run runs/caption_av_s2 --beams 3 --json
  avkit caption long.mp4 --run runs/caption_av_s2 --start 12.5          the window starting at 12.5 s
  avkit caption clip.mp4 --run runs/caption_av_s2 -o clip.txt           write it to a file (--overwrite to replace)

The run is a directory written by 'avkit train' with a captioning recipe (recipes/caption_*.yaml,
stage 1 or 2; see docs/captioning.md). The video is read the way the run was trained: its frame
count, fps and size (centre crop), and, when the run has an audio encoder, the sound of the same
window. The window is the centre of the video, or starts at --start. Decoding is greedy
(--beams 1) or beam search; it stops at the end-of-caption token or after --max-new-tokens.
"""


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("caption", help="caption a video with a trained captioning run",
                              description="Write a caption of a video file with a trained captioning run "
                                          "(avkit's captioner: encoder tokens -> projector -> language model).",
                              epilog=EPILOG)
    p.add_argument("video", help="video file")
    p.add_argument("--run", required=True, help="captioning run directory written by 'avkit train'")
    p.add_argument("--start", type=float, default=None,
                   help="start of the window in seconds (%(default)s = the centre of the video)")
    p.add_argument("--beams", type=int, default=1, help="beam width; 1 = greedy decoding")
    p.add_argument("--max-new-tokens", type=int, default=40, help="longest caption in tokens")
    p.add_argument("--checkpoint", default="best", choices=["best", "last"], help="which weights")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("-o", "--output", default=None, help="write the caption (or the JSON) to this file")
    p.add_argument("--overwrite", action="store_true", help="replace --output if it exists")
    p.add_argument("--json", action="store_true", help="print JSON: caption, frame times, modalities")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from avkit.errors import AvkitError
    from avkit.utils import atomic_write_text, check_output

    if args.beams < 1 or args.max_new_tokens < 1:
        raise AvkitError(f"--beams and --max-new-tokens must be >= 1, got {args.beams} and {args.max_new_tokens}")
    if args.output is not None:
        check_output(args.output, args.overwrite)  # before anything loads
    from avkit.apps.video_llm.hub import quiet_transformers

    quiet_transformers()
    from avkit.apps import captioning

    captioner = captioning.load(args.run, args.checkpoint, args.device)
    result = captioner.caption(args.video, start=args.start, num_beams=args.beams,
                               max_new_tokens=args.max_new_tokens)
    text = json.dumps(result, indent=2) + "\n" if args.json else result["caption"] + "\n"
    if args.output is not None:
        atomic_write_text(args.output, text)
        print(f"avkit caption: wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
