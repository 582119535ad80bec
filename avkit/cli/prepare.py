"""``avkit prepare``: cut, resize and re-encode a corpus into clips that train fast."""
from __future__ import annotations

import argparse
import json

REQUIRES = ("torch", "av")  # loaded (or reported in one line) before the command runs

EPILOG = """examples:
  avkit prepare data/ucf101 data/ucf101_128 --short-side 128
  avkit prepare k400/train.csv k400_prep --short-side 160 --fps 15 --jobs 8
  avkit prepare my_videos/ prep/ --clip-seconds 10 --json
  avkit prepare anet/activity_net.v1-3.min.json anet_prep --video-root anet/videos

SOURCE is anything 'avkit train' reads as data.source: a manifest (.jsonl/.csv), class folders,
or a standard layout (UCF-101, HMDB-51, Kinetics, Something-Something v2, VGGSound, ActivityNet,
AVA-ActiveSpeaker; see docs/training.md). Each row becomes one clip (its start/end segment or the
whole video), or with --clip-seconds consecutive clips of that length.

OUT gets clips/*.mp4 (H.264 at --short-side, --fps, a keyframe every --keyframe-interval seconds
so a random training clip decodes little; mono AAC sound), manifest.jsonl, classes.json,
errors.jsonl (the files that could not be read, and why) and prepare.json. Train on it with
data.source: OUT. Run it again to resume: clips already made (same source file, same settings)
are not made again. Exit code 0 even when some files could not be read: they are listed.
"""


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("prepare", help="cut, resize and re-encode videos into training clips",
                              description="Cut, resize and re-encode a corpus into short clips that "
                                          "training reads fast, with a manifest; resumable and parallel.",
                              epilog=EPILOG)
    p.add_argument("source", help="dataset source: manifest, class folders or a standard layout")
    p.add_argument("out", help="output folder (new, empty, or an earlier prepare output to resume)")
    p.add_argument("--short-side", type=int, default=256, help="pixels of the shorter side (0 = keep)")
    p.add_argument("--fps", type=float, default=0.0, help="frames per second (0 = the source's rate)")
    p.add_argument("--keyframe-interval", type=float, default=0.5, help="seconds between keyframes")
    p.add_argument("--clip-seconds", type=float, default=0.0,
                   help="cut each video into clips this long (0 = one clip per row)")
    p.add_argument("--sample-rate", type=int, default=0, help="Hz of the mono sound (0 = the source's)")
    p.add_argument("--crf", type=int, default=20, help="x264 quality: lower is better and larger")
    p.add_argument("--format", default="auto", help="the source's layout (auto, manifest, folder, ucf101, ...)")
    p.add_argument("--split-number", type=int, default=1, help="UCF-101 / HMDB-51 official split")
    p.add_argument("--path-pattern", default="", help="Kinetics / VGGSound file-name pattern")
    p.add_argument("--video-root", default="", help="where a layout's videos are (default: beside its files)")
    p.add_argument("--allow-outside-paths", action="store_true",
                   help="accept manifest rows naming files outside the manifest's folder")
    p.add_argument("--jobs", type=int, default=0, help="processes (0 = one per CPU core)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from avkit.data.formats import FormatOptions
    from avkit.data.prepare import PrepareSettings, prepare
    from avkit.errors import AvkitError
    from avkit.utils import cpu_cores

    if args.jobs < 0:
        raise AvkitError(f"--jobs must be >= 0 (0 = one per CPU core), got {args.jobs}")
    settings = PrepareSettings(short_side=args.short_side, fps=args.fps, keyframe_interval=args.keyframe_interval,
                               clip_seconds=args.clip_seconds, sample_rate=args.sample_rate, crf=args.crf)
    options = dict(jobs=args.jobs or cpu_cores(), format=args.format,
                   format_options=FormatOptions(args.split_number, args.path_pattern, args.video_root),
                   allow_outside=args.allow_outside_paths)
    if args.json:
        result = prepare(args.source, args.out, settings, **options)
        print(json.dumps(result.to_dict(), indent=2))
        return 0

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("prepare"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  transient=True, console=Console(stderr=True)) as bar:
        task = bar.add_task("videos", total=None)
        result = prepare(args.source, args.out, settings,
                         progress=lambda done, total: bar.update(task, completed=done, total=total), **options)
    print(f"{result.clips} clips from {result.sources} videos ({result.encoded} made, {result.reused} already there) "
          f"in {result.seconds:.1f} s -> {result.manifest}")
    if result.errors:
        print(f"{len(result.errors)} video(s) could not be read (listed in {result.out / 'errors.jsonl'}):")
        for error in result.errors[:10]:
            print(f"  {error['source']}: {error['error']}")
        if len(result.errors) > 10:
            print(f"  ... and {len(result.errors) - 10} more")
    if result.stale:
        print(f"{len(result.stale)} clip(s) in {result.out / 'clips'} from earlier settings or sources are not in "
              "the manifest (delete them to save space)")
    return 0
