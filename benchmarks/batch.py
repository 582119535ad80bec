"""``avkit batch embed`` on a local Ray against a plain single-process loop, same videos, same run.

    python benchmarks/batch.py                       # 200 generated + real-derived videos, 1/2/4 workers
    python benchmarks/batch.py --num 60 --workers 1  # quicker
    python benchmarks/batch.py --memory 50,500       # + peak RSS of the whole process tree per corpus size
    python benchmarks/batch.py --num 0 --kinetics 200  # 200 Kinetics-like 10 s videos + the real-derived ones
    python benchmarks/batch.py --num 0 --kinetics 200 --times 5 --workers 1   # the same listed 5 times: 1060 videos

The corpus: ``--num`` generated motion clips (2 s, 32 px: little work per video, so Ray's cost per task
and its start weigh most), ``--kinetics`` Kinetics-like videos (10 s, 456x256, 30 fps H.264: decoding is the
work) and segments cut from ../shared/media (when present), written with avkit; ``--times K`` lists each
K times. The run: a tiny C3D trained for two steps here. Both sides compute the same per-window features
(``--stride``): the loop with VideoReader + clip_batch + forward_features (torch on every core),
``avkit batch`` through Ray Data (CPU decode tasks + model actors). Ray's
start is timed apart; the batch time includes the actors' start and the Parquet commits. The
features of both sides are checked equal. Prints a table of videos/s and ratios to the loop.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from decode import make_video  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MEDIA = ROOT.parent / "shared" / "media" / "video"


def tree_rss() -> int:
    """Resident bytes of this process and all its descendants (Ray's raylet and workers), from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            status = (d / "status").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(d.name))
        line = next((x for x in status.splitlines() if x.startswith("VmRSS:")), "VmRSS: 0 kB")
        rss[int(d.name)] = int(line.split()[1]) * 1024
    total, todo = 0, [os.getpid()]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo.extend(children.get(pid, []))
    return total


class PeakRss:
    """Samples :func:`tree_rss` every 0.5 s in a thread while the block runs."""

    def __enter__(self) -> PeakRss:
        self.peak, self._stop = tree_rss(), threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self.peak = max(self.peak, tree_rss())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def make_corpus(folder: Path, num: int, real: int, kinetics: int = 0) -> list[Path]:
    """``num`` generated 2 s motion clips, ``kinetics`` Kinetics-like videos (10 s, 456x256, 30 fps, H.264 with
    x264's default keyframe interval, each its own texture) and up to ``real`` 2 s segments of the shared media."""
    from avkit.data.synthetic import generate
    from avkit.io import read_clip, write_video

    clips = max(num, 4)  # the run trains on them
    if len(list((folder / "gen" / "clips").glob("*.mp4"))) != clips:  # a kept work folder reuses its corpus
        generate("motion", folder / "gen", clips, seed=0, duration=2.0, overwrite=True)
    videos = sorted((folder / "gen" / "clips").glob("*.mp4"))[:num]
    for i in range(kinetics):
        path = folder / "kinetics" / f"k{i:04d}.mp4"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            make_video(path, 10, width=456, height=256, gop_seconds=None, seed=i)
        videos.append(path)
    sources = sorted(p for p in MEDIA.glob("*") if p.suffix in (".mp4", ".mkv", ".webm")) if MEDIA.is_dir() else []
    k = 0
    for src in sources:
        for start in (1.0, 4.0, 7.0):
            if k >= real:
                break
            try:
                clip = read_clip(src, start, start + 2.0, fps=16, size=128, sample_rate=16000,
                                 allow_missing_audio=True)
            except Exception as err:  # a source shorter than the segment: skip it
                print(f"  skip {src.name} at {start} s: {err}", file=sys.stderr)
                continue
            out = folder / "real" / f"{src.stem}_{k}.mp4"
            out.parent.mkdir(parents=True, exist_ok=True)
            if out.is_file():
                videos.append(out)
                k += 1
                continue
            write_video(out, clip.frames, 16, clip.audio, clip.sample_rate if clip.audio is not None else None)
            videos.append(out)
            k += 1
    return videos


def train_run(folder: Path) -> Path:
    from avkit.engine.config import load_config
    from avkit.engine.trainer import train

    out = folder / "run"
    if (out / "last.safetensors").is_file():
        return out
    cfg = load_config(ROOT / "recipes" / "motion_c3d.yaml", [
        f"data.source={folder / 'gen'}", f"train.output_dir={out}", "train.epochs=1", "train.max_steps=2",
        "train.progress=false", "train.tensorboard=false", "data.batch_size=4", "data.num_frames=8", "data.fps=8",
        "data.val_split=", "model.video_options.fc_dim=16"])
    train(cfg, quiet=True)
    return out


def loop(videos: list[Path], run: Path, stride: float) -> tuple[float, dict[str, object]]:
    """The single-process baseline: seconds and the features of each video."""
    import torch

    from avkit.apps.batch.workers import BatchSpec, read_windows, windows_of
    from avkit.engine.evaluate import load_run
    from avkit.io import VideoReader

    model, cfg, _ = load_run(run, "last", device="cpu")
    spec = BatchSpec(task="embed", run=str(run), options={"stride": stride}, data=cfg.data)
    feats = {}
    t0 = time.perf_counter()
    with torch.inference_mode():
        for v in videos:
            with VideoReader(v) as reader:
                duration = reader.duration
            windows = windows_of(float(duration), spec)
            batch = read_windows(str(v), windows, cfg.data)
            feats[str(v.absolute())] = model.forward_features(batch["video"]).numpy()
    return time.perf_counter() - t0, feats


def ray_batch(source: Path, count: int, run: Path, out: Path, stride: float, workers: int) -> float:
    """Seconds of ``avkit batch embed`` over the videos of folder ``source`` (the Ray already started)."""
    from avkit.apps.batch.pipeline import BatchJob, run_batch

    t0 = time.perf_counter()
    job = BatchJob("embed", str(source), str(run), str(out), options={"stride": stride}, workers=workers,
                   checkpoint="last", device="cpu")
    progress = run_batch(job)
    assert progress.done == count and progress.errors == 0, progress
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--num", type=int, default=200, help="generated videos")
    ap.add_argument("--real", type=int, default=12, help="segments cut from ../shared/media")
    ap.add_argument("--kinetics", type=int, default=0, help="Kinetics-like videos (10 s, 456x256, 30 fps)")
    ap.add_argument("--times", type=int, default=1, help="list each video this many times (a bigger corpus)")
    ap.add_argument("--stride", type=float, default=0.5, help="seconds between windows")
    ap.add_argument("--workers", default="1,2,4", help="Ray model actors to try")
    ap.add_argument("--memory", default="", help="corpus sizes for the peak-RSS runs, e.g. 50,500")
    ap.add_argument("--keep", default="", help="work folder to keep (default: a temporary one)")
    args = ap.parse_args()

    import numpy as np
    import pyarrow.parquet as pq
    import torch

    from avkit.apps.batch.pipeline import connect
    from avkit.utils import cpu_cores

    work = Path(args.keep or tempfile.mkdtemp(prefix="avkit_batch_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"# avkit batch embed vs a single-process loop; {cpu_cores()} cores, torch {torch.__version__}, "
          f"load average {os.getloadavg()[0]:.1f} at start")
    t = time.perf_counter()
    videos = make_corpus(work, args.num, args.real, args.kinetics)
    links = work / "links"
    shutil.rmtree(links, ignore_errors=True)
    links.mkdir()
    for k in range(args.times):
        for i, v in enumerate(videos):
            (links / f"{k:02d}_{i:05d}_{v.name}").symlink_to(v.resolve())
    videos = sorted(links.iterdir())
    run = train_run(work)
    print(f"corpus: {len(videos)} videos ({args.num} generated 2 s clips, {args.kinetics} Kinetics-like, "
          f"{args.real} real-derived at most" + (f", each listed {args.times} times" if args.times > 1 else "")
          + "), run trained in "
          f"{time.perf_counter() - t:.0f} s")

    torch.set_num_threads(cpu_cores())
    base_s, base_feats = loop(videos, run, args.stride)
    t = time.perf_counter()
    connect(None, cpus=cpu_cores())
    ray_start = time.perf_counter() - t
    rows = [("loop (1 process, torch on all cores)", base_s, 1.0)]
    for w in [int(x) for x in args.workers.split(",") if x]:
        out = work / f"out_w{w}"
        shutil.rmtree(out, ignore_errors=True)
        seconds = ray_batch(links, len(videos), run, out, args.stride, w)
        rows.append((f"avkit batch, {w} model worker(s)", seconds, base_s / seconds))
        table = pq.read_table(out / "results").to_pandas()
        for path, group in table.groupby("path"):
            got = np.stack(group.sort_values("window")["features"].to_list())
            np.testing.assert_allclose(got, base_feats[path], rtol=1e-3, atol=1e-4)
    print(f"Ray start (once per command): {ray_start:.1f} s; features equal to the loop's for every window\n")
    print(f"| {'':40s} | seconds | videos/s | vs loop |")
    print(f"|{'-' * 42}|--------:|---------:|--------:|")
    for name, s, ratio in rows:
        print(f"| {name:40s} | {s:7.1f} | {len(videos) / s:8.2f} | {ratio:6.2f}x |")
    print(f"load average at end: {os.getloadavg()[0]:.1f}")

    for n in [int(x) for x in args.memory.split(",") if x]:
        sub = work / f"mem{n}"
        shutil.rmtree(sub, ignore_errors=True)
        (sub / "links").mkdir(parents=True)
        for i in range(n):
            (sub / "links" / f"{i:05d}.mp4").symlink_to(videos[i % len(videos)].resolve())
        with PeakRss() as peak:
            ray_batch(sub / "links", n, run, sub / "out", args.stride, 1)
        print(f"peak RSS of the process tree, {n} videos: {peak.peak / 2**20:.0f} MiB")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
