"""How much faster training reads clips made by ``avkit prepare`` than the original files.

Two corpora, each read as it is and after ``prepare`` (same videos, one clip per video):

- ``long-GOP HD``: H.264 videos made here at 960x540, 30 fps, 10 s, one keyframe per video (as
  many downloads are: every random clip decodes from the start of the file), with sound;
- ``shared real``: the real clips in ../shared/media/video (mixed codecs and sizes), when present.

The loader is a ``VideoDataset`` in train mode (8 frames at 8 fps, 112 px crops, waveform at 16 kHz),
items read in order, one process, one torch thread, decoder threads as the dataset sets them. Rounds
alternate original and prepared (each round a new epoch: other clip starts), so a machine shared
with other jobs loads both alike; the table gives the clips/s of all rounds together and the ratio.

    python benchmarks/prepare.py --rounds 3 | tee docs/benchmarks/prepare_cpu.txt
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from avkit.data import VideoDataset
from avkit.data.prepare import PrepareSettings, prepare
from avkit.io.write import open_video_writer
from avkit.utils import cpu_cores

ROOT = Path(__file__).resolve().parents[1]
MEDIA = Path(os.environ.get("AVKIT_MEDIA_DIR", ROOT.parent / "shared" / "media")) / "video"


def make_long_gop(folder: Path, num: int, seconds: float = 10.0, fps: int = 30, size: tuple[int, int] = (540, 960)
                  ) -> list[Path]:
    """``num`` H.264 videos with one keyframe each: a random texture drifting, a tone."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    n = int(seconds * fps)
    for v in range(num):
        rng = np.random.default_rng(v)
        texture = rng.integers(0, 256, (size[0] + n, size[1] + n, 3), dtype=np.uint8)
        t = np.arange(int(seconds * 16000)) / 16000
        tone = (0.2 * np.sin(2 * np.pi * (220 + 40 * v) * t)).astype(np.float32)
        path = folder / f"hd_{v}.mp4"
        with open_video_writer(path, fps, tone, 16000, gop=n, preset="ultrafast") as writer:
            for k in range(0, n, fps):
                writer.write(np.stack([texture[j:j + size[0], j:j + size[1]] for j in range(k, min(n, k + fps))]))
        paths.append(path)
    return paths


def manifest(folder: Path, videos: list[Path]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = [{"path": str(p), "label": p.stem} for p in videos]
    (folder / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder / "manifest.jsonl"


def loader_rate(ds: VideoDataset, epoch: int) -> tuple[int, float]:
    """(clips, seconds) to read every item of ``ds`` once in epoch ``epoch``."""
    ds.set_epoch(epoch)
    start = time.perf_counter()
    for i in range(len(ds)):
        item = ds[i]
        assert item["video"].shape == (3, 8, 112, 112)
    return len(ds), time.perf_counter() - start


def size_mb(paths: list[Path]) -> float:
    return sum(p.stat().st_size for p in paths) / 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3, help="alternating passes over original and prepared clips")
    ap.add_argument("--num", type=int, default=4, help="long-GOP HD videos to make")
    ap.add_argument("--short-side", type=int, default=128)
    ap.add_argument("--fps", type=float, default=15.0)
    ap.add_argument("--keyframe-interval", type=float, default=0.5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    settings = PrepareSettings(short_side=args.short_side, fps=args.fps, keyframe_interval=args.keyframe_interval)
    load = os.getloadavg()[0]
    print(f"# python benchmarks/prepare.py --rounds {args.rounds} --num {args.num}  ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"{cpu_cores()} CPU cores, load average {load:.1f} at the start; torch {torch.__version__})")
    print(f"prepare settings: short side {settings.short_side}, {settings.fps:g} fps, a keyframe every "
          f"{settings.keyframe_interval:g} s, mono AAC at the source's rate; jobs {cpu_cores()}")
    print("loader: VideoDataset train mode, 8 frames at 8 fps, 112 px crop, waveform 16 kHz, one process, one torch thread")
    table = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        start = time.perf_counter()
        corpora = {"long-GOP HD (made here)": make_long_gop(tmp / "hd", args.num)}
        print(f"made {args.num} long-GOP videos: 960x540, 30 fps, 10 s, one keyframe each, "
              f"{size_mb(corpora['long-GOP HD (made here)']):.1f} MB, {time.perf_counter() - start:.1f} s")
        real = sorted(p for p in MEDIA.glob("*") if p.suffix in (".mp4", ".mkv", ".webm", ".avi")) if MEDIA.is_dir() else []
        if real:
            corpora["shared real clips"] = real
        else:
            print(f"no shared real clips at {MEDIA}: that row is left out")
        for name, videos in corpora.items():
            folder = tmp / name.split()[0]
            source = manifest(folder / "orig", videos)
            result = prepare(source, folder / "prep", settings, jobs=cpu_cores(), allow_outside=True)
            assert not result.errors, result.errors
            prepared = sorted((folder / "prep" / "clips").glob("*.mp4"))
            print(f"{name}: prepared {result.clips} clips in {result.seconds:.1f} s")
            kw = dict(num_frames=8, fps=8.0, size=112, audio="waveform", missing_audio="zeros", seed=0)
            original_ds = VideoDataset(source, allow_outside=True, **kw)
            prepared_ds = VideoDataset(folder / "prep", **kw)
            totals = {"original": [0, 0.0], "prepared": [0, 0.0]}
            for r in range(args.rounds):
                for which, ds in (("original", original_ds), ("prepared", prepared_ds)):
                    clips, seconds = loader_rate(ds, r)
                    totals[which][0] += clips
                    totals[which][1] += seconds
                    print(f"  round {r + 1}: {which:9s} {clips} clips in {seconds:6.2f} s  {clips / seconds:7.2f} clips/s")
            orig = totals["original"][0] / totals["original"][1]
            prep = totals["prepared"][0] / totals["prepared"][1]
            table.append((name, len(videos), size_mb(videos), size_mb(prepared), result.seconds, orig, prep))
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    print()
    print("| corpus | videos | originals MB | prepared MB | prepare s | original clips/s | prepared clips/s | speed-up |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, n, mb, pmb, secs, orig, prep in table:
        print(f"| {name} | {n} | {mb:.1f} | {pmb:.1f} | {secs:.1f} | {orig:.2f} | {prep:.2f} | {prep / orig:.1f}x |")


if __name__ == "__main__":
    main()
