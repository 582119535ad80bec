"""Decode benchmark: clips per second for 8-frame clips at random positions of a long H.264 file.

The clip: 8 frames at 5 fps (a 1.4 s span, the usual action-recognition sampling) starting at a
random time. The file: 60 s of 640x360 30 fps H.264 (x264 veryfast, B-frames, a keyframe every
2 s like typical camera/web files) with moving texture, generated here with PyAV.

Every method reads the same list of clip positions, in the same order, with 1 decoder thread and
with FFmpeg's automatic thread count ("auto": cores + 1 for H.264 frame threading). Methods:

  decode-all    open the file, decode every frame to RGB, index the frames at the clip's times
                (what the old ``torchvision.io.read_video(path)`` + indexing did)
  seek baseline open the file, seek to the keyframe at or before the clip start, decode until the
                first frame past its end, convert every frame in that span to RGB, then index
                (what the old ``torchvision.io.read_video(path, start_pts, end_pts)`` did)
  avkit         ``VideoReader(path, threads=N).read_clip(times=...)``: seek, decode to the clip end,
                convert only the 8 wanted frames; "per clip" opens the file for every clip (this
                is what ``avkit.io.read_clip`` does, with threads=auto), "kept open" reuses one reader
  torchcodec    ``VideoDecoder(path, seek_mode=MODE, num_ffmpeg_threads=N).get_frames_played_at(seconds=...)``
                for each of ``--seek-modes`` (exact, approximate), per clip and kept open, if it is installed;
                the last column compares every method with the first mode's decoder kept open

A method times the positions in order (cycling through them again if it is fast) until it has done
every position and run ``--min-time`` seconds, or has done ``--min-clips`` clips and used its
``--budget`` seconds (so the slow decode-all baseline times the first positions only; its cost
does not depend on the position). Ratios are against decode-all and the seek baseline with the
same thread setting, in the same round. ``--repeat R`` runs R rounds and reports the median and
the range. Frames are checked against decode-all's ("same pixels").

    python benchmarks/decode.py --quick               # 20 s file, a few clips: a check, ~1 min
    python benchmarks/decode.py --repeat 3            # the table in README.md / docs/decoding.md
    python benchmarks/decode.py --video my.mp4 --threads 1
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np

from avkit.io import VideoReader

NUM_FRAMES, CLIP_FPS = 8, 5.0
EPS = 1e-6


def make_video(path: Path, seconds: float, fps: int = 30, width: int = 640, height: int = 360,
               gop_seconds: float | None = 2.0, seed: int = 0) -> Path:
    """A textured, moving H.264 mp4 (so the decoder does real work), keyframe every gop_seconds
    (None: x264's default interval, 250 frames, and its scene-cut keyframes); ``seed`` picks the texture."""
    # smooth blobs (noise at 1/8 resolution, upsampled and blurred): a natural-image-like bit rate
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (height // 4 + 1, width // 4 + 1, 3)).astype(np.float32)
    texture = np.repeat(np.repeat(coarse, 8, axis=0), 8, axis=1)
    for axis in (0, 1):
        for shift in (1, 2, 4):
            texture = (texture + np.roll(texture, shift, axis)) / 2
    texture = texture[: height * 2, : width * 2].astype(np.uint8)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        s.options = {"preset": "veryfast", "crf": "23"}
        if gop_seconds is not None:
            gop = int(round(gop_seconds * fps))
            s.codec_context.gop_size = gop
            s.options = {**s.options, "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0"}
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
    """The 8 frame times of one clip, starting at a uniform random time."""
    span = (NUM_FRAMES - 1) / CLIP_FPS
    start = rng.uniform(0, duration - span - 0.1)
    return start + np.arange(NUM_FRAMES) / CLIP_FPS


def pick(stamps: list[float], times: np.ndarray) -> np.ndarray:
    """Index of the frame displayed at each time: the last frame with pts <= t."""
    idx = np.searchsorted(np.array(stamps), times + EPS, side="right") - 1
    return np.clip(idx, 0, len(stamps) - 1)


class Counter:
    """Frames decoded by a PyAV baseline, and the decoder thread count FFmpeg resolved."""

    def __init__(self) -> None:
        self.frames = 0
        self.threads = 0


def _open_video(path: Path, threads: int):
    c = av.open(str(path))
    s = c.streams.video[0]
    s.thread_type = "AUTO"  # frame + slice threads, as avkit's reader
    s.codec_context.thread_count = threads
    return c, s


def decode_all_clip(path: Path, times: np.ndarray, threads: int, count: Counter) -> np.ndarray:
    """Decode every frame of the file to RGB, then pick the frame displayed at each time."""
    c, s = _open_video(path, threads)
    with c:
        frames, stamps = [], []
        for f in c.decode(s):
            frames.append(f.to_ndarray(format="rgb24"))
            stamps.append(float(f.pts * s.time_base))
        count.frames += len(frames)
        count.threads = s.codec_context.thread_count
    return np.stack([frames[i] for i in pick(stamps, times)])


def seek_baseline_clip(path: Path, times: np.ndarray, threads: int, count: Counter) -> np.ndarray:
    """read_video(start_pts, end_pts) style: seek to the keyframe before the start, decode past the
    end, convert every frame of the span to RGB (and the one on screen at the start), then pick."""
    start, end = float(times[0]), float(times[-1])
    c, s = _open_video(path, threads)
    with c:
        tb = s.time_base
        c.seek(int(start / tb), stream=s, backward=True, any_frame=False)
        decoded = []  # (seconds, frame) in presentation order
        for f in c.decode(s):
            decoded.append((float(f.pts * tb), f))
            if decoded[-1][0] > end + EPS:
                break
        count.frames += len(decoded)
        count.threads = s.codec_context.thread_count
        stamps = [t for t, _ in decoded]
        first = int(pick(stamps, times[:1])[0])  # the frame on screen at the start
        span = [(t, f) for t, f in decoded[first:] if t <= end + EPS]
        rgb = [f.to_ndarray(format="rgb24") for _, f in span]
    return np.stack([rgb[i] for i in pick([t for t, _ in span], times)])


@dataclass
class Method:
    """One row of the table: a name, the decoder threads (0 = auto) and a clip function."""

    name: str
    threads: int
    file: str  # "per clip" or "kept open"
    clip: Callable[[np.ndarray], np.ndarray]
    frames_decoded: Callable[[], int] | None = None  # total so far, where the method can tell
    resolved_threads: Callable[[], int] | None = None
    close: Callable[[], None] | None = None
    rates: list[float] = field(default_factory=list)
    ratios_all: list[float] = field(default_factory=list)
    ratios_seek: list[float] = field(default_factory=list)
    ratios_tc: list[float] = field(default_factory=list)  # against torchcodec kept open, same threads
    clips_timed: list[int] = field(default_factory=list)
    frames_per_clip: float | None = None
    max_diff: int | None = None


def pyav_methods(path: Path, threads: int) -> list[Method]:
    """The two PyAV baselines with ``threads`` decoder threads."""
    out = []
    for name, fn in (("decode-all", decode_all_clip), ("seek baseline", seek_baseline_clip)):
        count = Counter()
        out.append(Method(name, threads, "per clip", lambda t, fn=fn, count=count: fn(path, t, threads, count),
                          frames_decoded=lambda count=count: count.frames,
                          resolved_threads=lambda count=count: count.threads))
    return out


def avkit_methods(path: Path, threads: int) -> list[Method]:
    """avkit's VideoReader, opened for every clip and kept open, with ``threads`` decoder threads."""
    total = {"frames": 0}

    def per_clip(t: np.ndarray) -> np.ndarray:
        with VideoReader(path, threads=threads) as r:
            frames = r.read_clip(times=t, audio=False).frames.numpy()
            total["frames"] += r.frames_decoded
        return frames

    reader = VideoReader(path, threads=threads)
    return [
        Method("avkit VideoReader.read_clip", threads, "per clip", per_clip,
               frames_decoded=lambda: total["frames"]),
        Method("avkit VideoReader.read_clip", threads, "kept open",
               lambda t: reader.read_clip(times=t, audio=False).frames.numpy(),
               frames_decoded=lambda: reader.frames_decoded,
               resolved_threads=lambda: reader.video.codec_context.thread_count, close=reader.close),
    ]


def torchcodec_methods(path: Path, threads: int, seek_mode: str) -> tuple[list[Method], str]:
    """torchcodec's VideoDecoder in ``seek_mode``, per clip and kept open; [] and why if unusable."""
    try:
        import torchcodec  # type: ignore
        from torchcodec.decoders import VideoDecoder  # type: ignore

        decoder = VideoDecoder(str(path), seek_mode=seek_mode, num_ffmpeg_threads=threads)
    except Exception as err:  # noqa: BLE001 - not installed, or its FFmpeg libraries are missing
        return [], f"{type(err).__name__}: {str(err).strip().splitlines()[-1][:160] if str(err) else ''}"

    def nhwc(batch) -> np.ndarray:
        return batch.data.permute(0, 2, 3, 1).numpy()

    def per_clip(t: np.ndarray) -> np.ndarray:
        dec = VideoDecoder(str(path), seek_mode=seek_mode, num_ffmpeg_threads=threads)
        return nhwc(dec.get_frames_played_at(seconds=t.tolist()))

    name = f"torchcodec {torchcodec.__version__.split('+')[0]} VideoDecoder ({seek_mode})"
    return [Method(name, threads, "per clip", per_clip),
            Method(name, threads, "kept open", lambda t: nhwc(decoder.get_frames_played_at(seconds=t.tolist())))], ""


def time_method(m: Method, positions: list[np.ndarray], min_clips: int, min_time: float,
                budget: float, keep: int) -> tuple[float, int, list[np.ndarray]]:
    """Clips/s over the positions in order (cycled); also the outputs for the first ``keep``."""
    before = m.frames_decoded() if m.frames_decoded else 0
    kept: list[np.ndarray] = []
    n, t0 = 0, time.perf_counter()
    while True:
        out = m.clip(positions[n % len(positions)])
        if n < keep:
            kept.append(out)
        n += 1
        elapsed = time.perf_counter() - t0
        if (n >= len(positions) and elapsed >= min_time) or (n >= min_clips and elapsed >= budget):
            break
    if m.frames_decoded:
        m.frames_per_clip = (m.frames_decoded() - before) / n
    return n / elapsed, n, kept


def fmt_threads(m: Method) -> str:
    if m.threads:
        return str(m.threads)
    resolved = m.resolved_threads() if m.resolved_threads else 0
    return f"auto ({resolved})" if resolved else "auto"


def spread(values: list[float], digits: int) -> str:
    """Median, and the range when there is more than one value."""
    med = statistics.median(values)
    if len(values) == 1:
        return f"{med:.{digits}f}"
    return f"{med:.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="20 s file, 6 positions, short budgets (a check)")
    ap.add_argument("--clips", type=int, default=None, help="clip positions (default 40, quick 6)")
    ap.add_argument("--min-clips", type=int, default=None, help="fewest clips a method times (default 10, quick 3)")
    ap.add_argument("--min-time", type=float, default=None, help="least seconds a fast method runs (default 3, quick 0.5)")
    ap.add_argument("--budget", type=float, default=None,
                    help="seconds after which a slow method stops once it has --min-clips (default 30, quick 3)")
    ap.add_argument("--repeat", type=int, default=1, help="rounds of the whole table (median and range reported)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 0], help="decoder thread settings (0 = auto)")
    ap.add_argument("--video", type=Path, default=None, help="use this file instead of generating one")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None, help="also write the rows to this JSON file")
    ap.add_argument("--seek-modes", nargs="+", default=["exact", "approximate"], choices=["exact", "approximate"],
                    help="torchcodec's seek modes to time (exact scans the file when it opens it)")
    args = ap.parse_args()
    seconds = 20.0 if args.quick else 60.0
    n_pos = args.clips or (6 if args.quick else 40)
    min_clips = args.min_clips or (3 if args.quick else 10)
    min_time = args.min_time if args.min_time is not None else (0.5 if args.quick else 3.0)
    budget = args.budget if args.budget is not None else (3.0 if args.quick else 30.0)
    keep = min(min_clips, n_pos)  # positions every method does: their frames are compared

    with tempfile.TemporaryDirectory() as tmp:
        path = args.video
        if path is None:
            t0 = time.perf_counter()
            path = make_video(Path(tmp) / "bench.mp4", seconds)
            print(f"generated {path.name}: {seconds:.0f} s 640x360 30 fps H.264, keyframe every 2 s "
                  f"({path.stat().st_size / 1e6:.1f} MB, {time.perf_counter() - t0:.1f} s)")
        with VideoReader(path) as r:
            duration, total_frames = r.duration, len(r.frame_times())
        rng = np.random.default_rng(args.seed)
        positions = [clip_times(rng, duration) for _ in range(n_pos)]
        print(f"clip: {NUM_FRAMES} frames at {CLIP_FPS:g} fps from a random start; {n_pos} positions, "
              f"each method >= {min_clips} clips, fast ones >= {min_time:g} s, slow ones stop after "
              f"{budget:g} s; {args.repeat} round(s)")

        tc_note = ""
        methods: list[Method] = []
        for threads in args.threads:
            methods += pyav_methods(path, threads) + avkit_methods(path, threads)
            for mode in args.seek_modes:
                tc, tc_note = torchcodec_methods(path, threads, mode)
                methods += tc
        try:
            reference: list[np.ndarray] | None = None
            for rnd in range(args.repeat):
                base: dict[tuple[str, int], float] = {}
                for m in methods:
                    rate, n, out = time_method(m, positions, min_clips, min_time, budget, keep)
                    if m.name in ("decode-all", "seek baseline"):
                        base[(m.name, m.threads)] = rate
                    if reference is None:
                        reference = out  # the first method is decode-all
                    diff = max(int(np.abs(a.astype(np.int16) - b).max()) for a, b in zip(out, reference))
                    m.max_diff = max(diff, m.max_diff or 0)
                    m.rates.append(rate)
                    m.clips_timed.append(n)
                    print(f"  round {rnd + 1}: {m.name:<36} threads {fmt_threads(m):<9} {m.file:<10} "
                          f"{n:4d} clips {rate:8.2f} clips/s", flush=True)
                for m in methods:  # ratios against this round's baselines with the same threads
                    m.ratios_all.append(m.rates[-1] / base[("decode-all", m.threads)])
                    m.ratios_seek.append(m.rates[-1] / base[("seek baseline", m.threads)])
                    tc_open = next((o for o in methods if o.name.startswith("torchcodec") and o.file == "kept open"
                                    and o.threads == m.threads and o.name.endswith(f"({args.seek_modes[0]})")), None)
                    if tc_open is not None:
                        m.ratios_tc.append(m.rates[-1] / tc_open.rates[-1])
        finally:
            for m in methods:
                if m.close:
                    m.close()

    tc_col = f"vs torchcodec ({args.seek_modes[0]}, kept open)"
    print(f"\n| method | threads | file | clips timed | clips/s | vs decode-all | vs seek baseline | {tc_col} "
          "| frames decoded per clip | same pixels |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---|")
    for m in methods:
        same = "yes" if m.max_diff == 0 else f"no (max diff {m.max_diff})"
        fpc = "-" if m.frames_per_clip is None else f"{m.frames_per_clip:.0f}"
        print(f"| {m.name} | {fmt_threads(m)} | {m.file} | {'/'.join(map(str, m.clips_timed))} "
              f"| {spread(m.rates, 2)} | {spread(m.ratios_all, 1)}x | {spread(m.ratios_seek, 1)}x "
              f"| {spread(m.ratios_tc, 2) + 'x' if m.ratios_tc else '-'} | {fpc} | {same} |")
    if tc_note:
        print(f"\ntorchcodec rows skipped: {tc_note}")
    print(f"\nThe file has {total_frames} frames. clips/s and ratios: median over {args.repeat} round(s)"
          f"{', (min-max) in brackets' if args.repeat > 1 else ''}; ratios are against the baselines "
          f"with the same threads in the same round.")
    if args.json:
        rows = [{"method": m.name, "threads": fmt_threads(m), "file": m.file, "clips_timed": m.clips_timed,
                 "clips_per_s": m.rates, "vs_decode_all": m.ratios_all, "vs_seek_baseline": m.ratios_seek,
                 "frames_decoded_per_clip": m.frames_per_clip, "max_pixel_diff": m.max_diff} for m in methods]
        args.json.write_text(json.dumps({"seconds": seconds, "positions": n_pos, "rounds": args.repeat,
                                         "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
