"""Decode benchmark: clips per second for 8-frame clips at random positions of a long H.264 file.

The clip: 8 frames at 5 fps (a 1.4 s span, the usual action-recognition sampling) starting at a
random time. The file: 60 s of 640x360 30 fps H.264 (x264 veryfast, B-frames, a keyframe every
2 s like typical camera/web files) with moving texture, generated here with PyAV.

Methods, all measured in this run on this machine:
  baseline      decode every frame of the file to RGB, then index (torchvision.io.read_video style)
  avkit         avkit.io.read_clip: seek to the keyframe before the clip, decode only to its end
  avkit reader  avkit.io.VideoReader kept open across clips (what a dataset worker does)
  torchcodec    torchcodec VideoDecoder(seek_mode="approximate").get_frames_played_at, if installed

Usage: python benchmarks/decode.py [--quick] [--clips N] [--video PATH] [--seed S]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from avkit.io import VideoReader, read_clip

NUM_FRAMES, CLIP_FPS = 8, 5.0


def make_video(path: Path, seconds: float, fps: int = 30, width: int = 640, height: int = 360,
               gop_seconds: float = 2.0) -> Path:
    """A textured, moving H.264 mp4 (so the decoder does real work), keyframe every gop_seconds."""
    # smooth blobs (noise at 1/8 resolution, upsampled and blurred): a natural-image-like bit rate
    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 256, (height // 4 + 1, width // 4 + 1, 3)).astype(np.float32)
    texture = np.repeat(np.repeat(coarse, 8, axis=0), 8, axis=1)
    for axis in (0, 1):
        for shift in (1, 2, 4):
            texture = (texture + np.roll(texture, shift, axis)) / 2
    texture = texture[: height * 2, : width * 2].astype(np.uint8)
    gop = int(round(gop_seconds * fps))
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        s.codec_context.gop_size = gop
        s.options = {"preset": "veryfast", "crf": "23",
                     "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0"}
        for k in range(int(seconds * fps)):
            y, x = (3 * k) % height, (5 * k) % width
            img = texture[y:y + height, x:x + width].copy()
            img[:, :, 0] = (img[:, :, 0].astype(np.int32) + 2 * k).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = k
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def clip_times(rng: np.random.Generator, duration: float) -> np.ndarray:
    span = (NUM_FRAMES - 1) / CLIP_FPS
    start = rng.uniform(0, duration - span - 0.1)
    return start + np.arange(NUM_FRAMES) / CLIP_FPS


def baseline_clip(path: Path, times: np.ndarray) -> np.ndarray:
    """Decode every frame to RGB, then pick the frame displayed at each time."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        frames, stamps = [], []
        for f in c.decode(s):
            frames.append(f.to_ndarray(format="rgb24"))
            stamps.append(float(f.pts * s.time_base))
    idx = np.searchsorted(np.array(stamps), times + 1e-6, side="right") - 1
    return np.stack([frames[i] for i in np.clip(idx, 0, len(frames) - 1)])


def run_method(fn, clips: list[np.ndarray]) -> tuple[float, list]:
    out = []
    t0 = time.perf_counter()
    for times in clips:
        out.append(fn(times))
    return len(clips) / (time.perf_counter() - t0), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="20 s file and fewer clips (about 15 s total)")
    ap.add_argument("--clips", type=int, default=None, help="clips per fast method (default 100, quick 20)")
    ap.add_argument("--baseline-clips", type=int, default=None, help="clips for the baseline (default 3, quick 2)")
    ap.add_argument("--video", type=Path, default=None, help="use this file instead of generating one")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    seconds = 20.0 if args.quick else 60.0
    n_fast = args.clips or (20 if args.quick else 100)
    n_base = args.baseline_clips or (2 if args.quick else 3)

    with tempfile.TemporaryDirectory() as tmp:
        path = args.video
        if path is None:
            t0 = time.perf_counter()
            path = make_video(Path(tmp) / "bench.mp4", seconds)
            print(f"generated {path.name}: {seconds:.0f} s 640x360 30 fps H.264, keyframe every 2 s "
                  f"({path.stat().st_size / 1e6:.1f} MB, {time.perf_counter() - t0:.1f} s)")
        with VideoReader(path) as r:
            duration = r.duration
        rng = np.random.default_rng(args.seed)
        clips = [clip_times(rng, duration) for _ in range(max(n_fast, n_base))]
        print(f"clip: {NUM_FRAMES} frames at {CLIP_FPS:g} fps from a random start; "
              f"{n_fast} clips per method, {n_base} for the baseline\n")

        rows = []
        base_rate, base_out = run_method(lambda t: baseline_clip(path, t), clips[:n_base])
        rows.append(("baseline: decode all + index", base_rate))

        rate, out = run_method(lambda t: read_clip(path, times=t, audio=False).frames.numpy(), clips[:n_fast])
        for a, b in zip(out, base_out):  # same pixels as the full decode
            assert np.array_equal(a, b), "avkit frames differ from the full decode"
        rows.append(("avkit read_clip (seek)", rate))

        with VideoReader(path) as reader:
            rate, out = run_method(lambda t: reader.frames_at(t)[0].numpy(), clips[:n_fast])
            decoded = reader.frames_decoded
        for a, b in zip(out, base_out):
            assert np.array_equal(a, b), "VideoReader frames differ from the full decode"
        rows.append(("avkit VideoReader (kept open)", rate))

        try:
            from torchcodec.decoders import VideoDecoder  # type: ignore

            def tc_clip(t):
                dec = VideoDecoder(str(path), seek_mode="approximate")
                return dec.get_frames_played_at(seconds=t.tolist()).data

            rate, _ = run_method(tc_clip, clips[:n_fast])
            rows.append(("torchcodec (approximate seek)", rate))
        except ImportError:
            rows.append(("torchcodec (approximate seek)", None))

    print(f"{'method':<34}{'clips/s':>10}{'vs baseline':>14}")
    for name, rate in rows:
        if rate is None:
            print(f"{name:<34}{'not installed':>10}{'-':>14}")
        else:
            print(f"{name:<34}{rate:>10.2f}{rate / base_rate:>13.1f}x")
    print(f"\nVideoReader decoded {decoded / n_fast:.0f} frames per clip on average "
          f"(the whole file has {int(seconds * 30)}).")


if __name__ == "__main__":
    main()
