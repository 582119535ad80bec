"""Many clips of one video: avkit's one-pass reader (``read_clips``) against its per-clip reader, TorchCodec
and a plain PyAV full decode, clips per second for K = 1, 4, 10, 16 clips per video.

The videos: 10 s, 456x256 (a Kinetics-like short side of 256), 30 fps H.264 with B-frames (x264
veryfast), moving texture (``decode.make_video``), once with x264's default keyframe interval (250
frames: a keyframe at 0 s and one at 8.3 s) and once with a keyframe every 2 s; plus the real
Kinetics-style clip ../shared/media/video/pancake_h264_opus.mkv (426x240, 10.4 s) when present.
The clips: K uniform clips of 8 frames at 5 fps (``avkit.data.sampling.uniform_clips``, the
multi-view test sampling); K >= 8 clips of 1.4 s overlap on 10 s.

Methods, each given the same clip times, one decoder thread each, full resolution (no resizing),
the file opened once per video (its opening is timed):

  avkit read_clips        ``VideoReader(path, threads=1).clips_at(clips)``: one sorted pass, leaving out the
                          non-reference frames that no clip time shows (H.264 / HEVC)
  read_clips, every frame decoded   the same with ``skip_unwanted = False`` (the reader before that change)
  avkit per clip          the same reader, ``frames_at(clip)`` for every clip (what ``read_clip(times=...)``
                          does, with the file kept open)
  torchcodec              ``VideoDecoder(path, num_ffmpeg_threads=1, seek_mode=...)``
                          ``.get_frames_played_at(seconds=all times)`` (its batch call), if it imports
  pyav decode-all         decode every frame to RGB, pick the frame displayed at each time

A method reads each video ``--repeat`` times, the methods taking turns; the table shows the median clips/s
by wall time and, in brackets, by this process's CPU time (less disturbed by other jobs on a busy
machine), and both ratios against TorchCodec and the per-clip reader. Pixels are checked: the per-clip reader's and PyAV's frames must
equal read_clips' exactly (asserted); for TorchCodec the table counts the frames that differ, and
asserts that each is a tie: a time that float rounding puts a hair (< 1e-6 s) before a frame's
timestamp, where avkit takes that frame (its rule: a frame within 1e-6 s counts as at t) and
TorchCodec the one before it; every other frame is identical.

    python benchmarks/decode_clips.py                  # the table in docs/batch.md
    PYTHONPATH=/tmp/tc python benchmarks/decode_clips.py   # with a torchcodec installed outside the venv
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from decode import Counter, decode_all_clip, make_video  # noqa: E402

from avkit.data.sampling import uniform_clips  # noqa: E402
from avkit.io import VideoReader  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PANCAKE = ROOT.parent / "shared" / "media" / "video" / "pancake_h264_opus.mkv"
NUM_FRAMES, CLIP_FPS = 8, 5.0


def avkit_once(path: Path, clips: list[np.ndarray]) -> np.ndarray:
    with VideoReader(path, threads=1) as r:
        return r.clips_at(clips)[0].numpy()


def avkit_once_all_frames(path: Path, clips: list[np.ndarray]) -> np.ndarray:
    with VideoReader(path, threads=1) as r:
        r.skip_unwanted = False  # decode every frame, as before the reader left out unwanted non-reference ones
        return r.clips_at(clips)[0].numpy()


def avkit_per_clip(path: Path, clips: list[np.ndarray]) -> np.ndarray:
    with VideoReader(path, threads=1) as r:
        return np.stack([r.frames_at(c)[0].numpy() for c in clips])


def pyav_all(path: Path, clips: list[np.ndarray]) -> np.ndarray:
    frames = decode_all_clip(path, np.concatenate(clips), 1, Counter())
    return frames.reshape(len(clips), NUM_FRAMES, *frames.shape[1:])


def torchcodec_method(seek_mode: str) -> tuple[Callable[[Path, list[np.ndarray]], np.ndarray] | None, str]:
    try:
        import torchcodec
        from torchcodec.decoders import VideoDecoder
    except Exception as err:  # not installed, or built for another torch
        return None, f"torchcodec unusable: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"

    def read(path: Path, clips: list[np.ndarray]) -> np.ndarray:
        dec = VideoDecoder(str(path), num_ffmpeg_threads=1, seek_mode=seek_mode)
        frames = dec.get_frames_played_at(seconds=np.concatenate(clips).tolist()).data  # [N, 3, H, W]
        return frames.permute(0, 2, 3, 1).numpy().reshape(len(clips), NUM_FRAMES, *frames.shape[2:], 3)

    return read, f"torchcodec {torchcodec.__version__}"


def timed(methods: dict[str, Callable[[Path, list[np.ndarray]], np.ndarray]], path: Path, clips: list[np.ndarray],
          repeat: int) -> tuple[dict[str, float], dict[str, float], dict[str, np.ndarray]]:
    """Median clips/s of each method over ``repeat`` reads, by wall time and by this process's CPU time
    (``time.process_time``, all threads: less disturbed by other jobs on a busy machine), the methods
    taking turns so that a change of load falls on all; and the frames of each method's last read."""
    wall: dict[str, list[float]] = {name: [] for name in methods}
    cpu: dict[str, list[float]] = {name: [] for name in methods}
    out: dict[str, np.ndarray] = {}
    for _ in range(repeat):
        for name, fn in methods.items():
            t, c = time.perf_counter(), time.process_time()
            out[name] = fn(path, clips)
            wall[name].append(time.perf_counter() - t)
            cpu[name].append(time.process_time() - c)
    return ({n: len(clips) / statistics.median(v) for n, v in wall.items()},
            {n: len(clips) / statistics.median(v) for n, v in cpu.items()}, out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ks", default="1,4,10,16", help="clips per video")
    ap.add_argument("--repeat", type=int, default=5, help="reads of each video per method (median)")
    ap.add_argument("--seek-mode", default="exact", choices=["exact", "approximate"], help="torchcodec's")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="avkit_decode_clips_"))
    videos = {"H.264 default GOP": make_video(work / "default.mp4", 10, width=456, height=256, gop_seconds=None),
              "H.264 2 s GOP": make_video(work / "gop2.mp4", 10, width=456, height=256, gop_seconds=2.0)}
    if PANCAKE.is_file():
        videos["real: pancake (mkv)"] = PANCAKE
    tc, tc_name = torchcodec_method(args.seek_mode)
    methods: dict[str, Callable[[Path, list[np.ndarray]], np.ndarray]] = {
        "avkit read_clips": avkit_once, "read_clips, every frame decoded": avkit_once_all_frames,
        "avkit per clip": avkit_per_clip}
    if tc is not None:
        methods[f"torchcodec ({args.seek_mode})"] = tc
    methods["pyav decode-all"] = pyav_all
    print(f"# clips/s by wall time (by CPU time in brackets), 8 frames at 5 fps per clip, 1 decoder thread, full "
          f"resolution; torch {torch.__version__}, {tc_name}; {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f} at start; median of {args.repeat} reads, methods taking turns")
    names = list(methods)
    tc_key = next((n for n in names if n.startswith("torchcodec")), None)
    print(f"| video | K | {' | '.join(names)} | leaving frames out | read_clips vs per clip |"
          + (" read_clips vs torchcodec | frames unlike torchcodec's (all ties) |" if tc_key else ""))
    print("|---|--:|" + "--:|" * (len(names) + 2) + ("--:|--:|" if tc_key else ""))
    for label, path in videos.items():
        with VideoReader(path) as r:
            duration = float(r.duration or 0)
        for k in [int(x) for x in args.ks.split(",")]:
            clips = [w.times for w in uniform_clips(duration, NUM_FRAMES, CLIP_FPS, k)]
            rates, cpu, frames = timed(methods, path, clips, args.repeat)
            ref = frames["avkit read_clips"]
            assert np.array_equal(ref, frames["avkit per clip"]), f"{label} K={k}: read_clips != per-clip reader"
            assert np.array_equal(ref, frames["read_clips, every frame decoded"]), f"{label} K={k}: left-out frames"
            assert np.array_equal(ref, frames["pyav decode-all"]), f"{label} K={k}: read_clips != PyAV decode-all"
            cells = " | ".join(f"{rates[n]:.1f} ({cpu[n]:.1f})" for n in names)

            def ratio(a: str, b: str) -> str:
                return f"{rates[a] / rates[b]:.2f}x ({cpu[a] / cpu[b]:.2f}x)"  # noqa: B023 - used at once
            row = (f"| {label} | {k} | {cells} | {ratio('avkit read_clips', 'read_clips, every frame decoded')} | "
                   f"{ratio('avkit read_clips', 'avkit per clip')} |")
            if tc_key:
                with VideoReader(path) as r:
                    stamps = r.clips_at(clips)[1].numpy().reshape(-1)
                ties = stamps > np.concatenate(clips)  # avkit took a frame a hair after t (within 1e-6 s)
                ref_flat, tc_flat = ref.reshape(-1, *ref.shape[2:]), frames[tc_key].reshape(-1, *ref.shape[2:])
                differ = np.array([not np.array_equal(a, b) for a, b in zip(ref_flat, tc_flat)])
                assert not (differ & ~ties).any(), f"{label} K={k}: torchcodec differs away from a tie"
                row += f" {ratio('avkit read_clips', tc_key)} | {int(differ.sum())}/{differ.size} |"
            print(row, flush=True)
    print(f"load average at end: {os.getloadavg()[0]:.1f}; read_clips, the per-clip reader and PyAV decode-all: "
          "identical pixels in every row (asserted)")


if __name__ == "__main__":
    main()
