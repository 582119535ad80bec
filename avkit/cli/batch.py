"""``avkit batch``: a trained run over a whole corpus on Ray Data, written to resumable Parquet."""
from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from avkit.apps.batch.pipeline import Progress

REQUIRES = ("torch", "torchvision", "torchaudio", "av", "ray", "pyarrow")  # loaded (or reported) before the run

TASKS = ("classify", "embed", "caption", "select", "separate")  # = avkit.apps.batch.TASKS (tested)
LOG_SECONDS = 30.0  # without a terminal (a log file, a cluster job), a progress line on stderr this often

EPILOG = """examples:
  avkit batch classify data/motion --run runs/motion_c3d --out labels
  avkit batch embed "videos/**/*.mp4" --run runs/motion_c3d --out feats --stride 0.5    per-window features
  avkit batch embed corpus.jsonl --run runs/motion_c3d --out clipfeats --clips 10      pooled per video
  avkit batch caption clips/ --run runs/caption_av_s2 --out captions
  avkit batch select long/ --run runs/longvideo_c3d --out picks --budget 2 --preview runs/longvideo_preview
  avkit batch separate duets/ --run runs/separation --out stems                      stems in OUT/stems/
  avkit batch separate duets/ --out stems                         the separation model shipped with avkit
  avkit batch embed clips/ --run runs/motion_c3d --out feats --address auto --gpus-per-worker 1   on a cluster

SOURCE is a folder (every video under it, or its manifest.jsonl/.csv), a glob pattern (quote it)
or a manifest. OUT/results/*.parquet holds one row per video (per window with --stride), the
probabilities or features as fixed-size lists: pandas.read_parquet("OUT/results"). Files that could
not be processed are rows of OUT/errors/*.parquet with the reason. Rerunning the same command skips
the videos already done (path, size and mtime) and appends; a killed run loses the work since the
last commit (every 10 s) and what is in flight. Progress goes to stderr (a line every 30 s without
a terminal). Without --address a local Ray starts on this machine; see docs/batch.md for a cluster.
"""


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("batch", help="run a trained model over a corpus (Ray Data, Parquet out)",
                              description="Classify, embed, caption, select clips of or separate every video of "
                                          "a corpus with a trained run, on a local Ray or a cluster; "
                                          "resumable Parquet output.",
                              epilog=EPILOG)
    p.add_argument("task", choices=TASKS, help="what to compute for each video")
    p.add_argument("source", help="folder, glob pattern or manifest (.jsonl/.csv)")
    p.add_argument("--run", default=None, help="run directory written by 'avkit train' for TASK "
                                               "(required, except for separate: default the shipped model)")
    p.add_argument("--out", required=True, help="output folder (created; a rerun continues it)")
    p.add_argument("--clips", type=int, default=None,
                   help="classify/embed: uniform clips per video averaged (default: recipe's data.test_clips)")
    p.add_argument("--stride", type=float, default=None,
                   help="embed: one row per window, windows every STRIDE seconds (localisation features)")
    p.add_argument("--beams", type=int, default=1, help="caption: beam width")
    p.add_argument("--budget", type=int, default=3, help="select: clips for the heavy model")
    p.add_argument("--policy", default="audio", help="select: dense, uniform, random, audio or learned")
    p.add_argument("--preview", default=None, help="select: preview run (default: analytic energy preview)")
    p.add_argument("--videos", action="store_true", help="separate: also write a video per stem")
    p.add_argument("--checkpoint", default="best", choices=["best", "last"], help="which weights")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (per worker)")
    p.add_argument("--address", default=None,
                   help="Ray cluster to join: auto or ray://HOST:PORT (default: a local Ray on this machine)")
    p.add_argument("--workers", type=int, default=1, help="model actors (each loads the weights once)")
    p.add_argument("--gpus-per-worker", type=float, default=0.0, help="GPUs each model actor reserves")
    p.add_argument("--batch-size", type=int, default=4, help="chunks of clips (or videos) per model call")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run)
    return p


def task_options(args: argparse.Namespace) -> dict[str, Any]:
    """The options of ``args.task`` (stored in OUT/batch.json: a rerun must give the same)."""
    if args.task in ("classify", "embed"):
        opts = {"clips": args.clips}
        if args.task == "embed":
            opts["stride"] = args.stride
        return {k: v for k, v in opts.items() if v is not None}
    if args.task == "caption":
        return {"beams": args.beams}
    if args.task == "select":
        return {"budget": args.budget, "policy": args.policy, "preview": args.preview}
    return {"videos": bool(args.videos)}


def run(args: argparse.Namespace) -> int:
    from avkit.apps.batch.pipeline import BatchJob, run_batch
    from avkit.errors import AvkitError

    if args.stride is not None and args.task != "embed":
        raise AvkitError(f"--stride is for embed, not {args.task}")
    if args.clips is not None and args.task not in ("classify", "embed"):
        raise AvkitError(f"--clips is for classify and embed, not {args.task}")
    job = BatchJob(task=args.task, source=args.source, run=args.run, out=args.out, options=task_options(args),
                   checkpoint=args.checkpoint, device=args.device, address=args.address, workers=args.workers,
                   gpus_per_worker=args.gpus_per_worker, batch_size=args.batch_size)
    quiet = not getattr(args, "debug", False)
    if args.json:
        progress = run_batch(job, quiet=quiet)
    elif not sys.stderr.isatty():
        progress = run_batch(job, on_progress=_log_every(LOG_SECONDS), quiet=quiet)
    else:
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
        from rich.progress import Progress as Bar

        with Bar(TextColumn("avkit batch"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
                 TimeRemainingColumn(), TextColumn("{task.fields[errors]}"), transient=True) as bar:
            bar_id = bar.add_task("videos", total=None, rate="", errors="")

            def show(p: Progress) -> None:
                bar.update(bar_id, total=p.total, completed=p.done, rate=f"{p.rate or 0.0:.2f} videos/s",
                           errors=f"{p.errors} error(s)" if p.errors else "")

            progress = run_batch(job, on_progress=show, quiet=quiet)
    summary = progress.to_dict()
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    rate = f", {summary['videos_per_second']} videos/s" if summary["videos_per_second"] else ""
    print(f"avkit batch {args.task}: {progress.done} video(s) processed in {progress.seconds:.1f} s{rate}, "
          f"{progress.errors} error(s), {progress.skipped} already done; {progress.rows} result row(s) in "
          f"{args.out}/results" + (f", errors in {args.out}/errors" if progress.errors else ""))
    return 0


def progress_line(p: Progress) -> str:
    """``avkit batch: 1200/50000 videos, 6.85 videos/s, about 1 h 59 min left, 3 error(s)``."""
    rate = p.rate or 0.0
    left = ""
    if rate > 0 and p.total > p.done:
        minutes = max(1, round((p.total - p.done) / rate / 60))
        left = f", about {minutes // 60} h {minutes % 60} min left" if minutes >= 60 else f", about {minutes} min left"
    return f"avkit batch: {p.done}/{p.total} videos, {rate:.2f} videos/s{left}, {p.errors} error(s)"


def _log_every(seconds: float) -> Callable[[Progress], None]:
    """An ``on_progress`` that prints :func:`progress_line` to stderr at most every ``seconds``."""
    import time

    last = -math.inf

    def log(p: Progress) -> None:
        nonlocal last
        if p.total and time.monotonic() - last >= seconds:
            last = time.monotonic()
            print(progress_line(p), file=sys.stderr, flush=True)

    return log
