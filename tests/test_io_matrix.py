"""Frame-accurate reads in every container: MP4, MOV, MKV, WebM, AVI, MPEG-TS and OGG, files that
start at 0, late (1000 s) or early (negative, where the container keeps it), with a keyframe on
every frame or every 12th, checked against PyAV's decode of every frame.

Each frame is painted with its index, so a wrong frame shows up as a wrong number as well as wrong
pixels. The files are made once per session, 64x48 and 2.5 s, so the whole matrix takes seconds.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from avkit.io import VideoReader, check_data, probe, read_clip, verify_decode

H, W = 48, 64
FPS = 12
N = 30  # 2.5 s
STEP = 30

# container -> (muxer, video encoder, start offsets in seconds the container keeps)
CONTAINERS = {
    "mp4": ("mp4", "libx264", (0.0, 1000.0, -0.5)),  # negative: an edit list hides the early frames
    "mov": ("mov", "libx264", (0.0, 1000.0, -0.5)),
    "mkv": ("matroska", "libx264", (0.0, 1000.0)),  # FFmpeg's muxer loses H.264 pts below zero
    "webm": ("webm", "libvpx", (0.0, 1000.0, -0.5)),
    "avi": ("avi", "mpeg4", (0.0, 1000.0)),  # no start time: a late start is 1000 s of nothing
    "ts": ("mpegts", "libx264", (0.0, 1000.0, -0.5)),
    "ogg": ("ogg", "libvpx", (0.0, 1000.0)),  # granule positions cannot go below zero
}
GOPS = (1, 12)


def paint(k: int) -> np.ndarray:
    """Frame ``k``: left half gray level k // 8, right half k % 8, a red corner for orientation."""
    img = np.empty((H, W, 3), np.uint8)
    img[:, : W // 2] = 10 + STEP * (k // 8)
    img[:, W // 2:] = 10 + STEP * (k % 8)
    img[: H // 4, : W // 4] = (255, 0, 0)
    return img


def painted_index(frame: np.ndarray) -> int:
    rows = frame[H * 5 // 8: H * 7 // 8].astype(float)
    hi = rows[:, W // 16: W * 7 // 16].mean()
    lo = rows[:, W * 9 // 16: W * 15 // 16].mean()
    return int(round((hi - 10) / STEP)) * 8 + int(round((lo - 10) / STEP))


def make_video(path: Path, muxer: str, codec: str, gop: int, offset: float, n: int = N) -> Path:
    """Frame k at ``offset + k / FPS`` seconds, a keyframe every ``gop`` frames (B-frames when gop > 1)."""
    options = {"avoid_negative_ts": "disabled"} if offset < 0 else {}
    with av.open(str(path), "w", format=muxer, options=options) as c:
        s = c.add_stream(codec, rate=FPS)
        s.width, s.height, s.pix_fmt = W, H, "yuv420p"
        s.codec_context.gop_size = gop
        s.codec_context.time_base = Fraction(1, FPS)
        if codec == "libx264":
            s.options = {"crf": "4", "preset": "veryfast", "bf": "2" if gop > 2 else "0",
                         "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0"}
        elif codec == "libvpx":
            s.codec_context.bit_rate = 2_000_000
            s.options = {"crf": "4", "kf-min-dist": str(gop), "kf-max-dist": str(gop),
                         "auto-alt-ref": "0", "lag-in-frames": "0"}
        else:  # mpeg4 part 2, packed B-frames in AVI
            s.codec_context.bit_rate = 2_000_000
            s.codec_context.max_b_frames = 2 if gop > 2 else 0
        shift = int(round(offset * FPS))
        for k in range(n):
            f = av.VideoFrame.from_ndarray(paint(k), format="rgb24")
            f.pts, f.time_base = k + shift, Fraction(1, FPS)
            c.mux(s.encode(f))
        c.mux(s.encode())
    return path


@dataclass
class Reference:
    """Every frame as PyAV decodes the whole file, with its time in seconds from the file start."""

    path: Path
    times: np.ndarray  # float64 [n], increasing
    frames: np.ndarray  # uint8 [n, H, W, 3]

    def at(self, t: float) -> int:
        """Index of the frame displayed at ``t``: the last with time <= t, else the first."""
        return max(0, int(np.searchsorted(self.times, t + 1e-6, side="right")) - 1)

    def between(self, start: float, end: float) -> np.ndarray:
        return np.flatnonzero((self.times >= start - 1e-6) & (self.times < end - 1e-6))


def reference(path: Path) -> Reference:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        if c.start_time is not None:
            origin = c.start_time / av.time_base
        else:
            origin = min(float(x.start_time * x.time_base) for x in c.streams if x.start_time is not None)
        frames, pts = [], []
        for f in c.decode(s):
            frames.append(f.to_ndarray(format="rgb24"))
            pts.append(f.pts)
        # Decoder output is in presentation order; AVI attaches scrambled pts to it: sort them.
        times = np.array([float(p * s.time_base) for p in sorted(pts)]) - origin
    return Reference(path, times, np.stack(frames))


CASES = [(ext, offset, gop) for ext, (_, _, offsets) in CONTAINERS.items() for offset in offsets
         for gop in GOPS]


def case_id(case) -> str:
    ext, offset, gop = case
    return f"{ext}-start{offset:+g}-gop{gop}"


@pytest.fixture(scope="session")
def matrix(tmp_path_factory) -> dict[tuple, Reference]:
    d = tmp_path_factory.mktemp("io_matrix")
    refs = {}
    for ext, offset, gop in CASES:
        muxer, codec, _ = CONTAINERS[ext]
        path = make_video(d / f"{case_id((ext, offset, gop))}.{ext}", muxer, codec, gop, offset)
        refs[(ext, offset, gop)] = reference(path)
    # A TS shorter than one keyframe interval that starts below zero (issue #26).
    path = make_video(d / "short.ts", "mpegts", "libx264", 12, -0.5, n=8)
    refs["short_ts"] = reference(path)
    return refs


def check(ref: Reference, frames, stamps, want: np.ndarray, what: str) -> None:
    got = frames.numpy()
    assert [painted_index(f) for f in got] == [painted_index(f) for f in ref.frames[want]], what
    assert np.allclose(stamps.numpy(), ref.times[want], atol=1e-6), what
    assert np.array_equal(got, ref.frames[want]), what


def test_reference_is_sound(matrix):
    """The generated files hold what was painted; otherwise the matrix would check nothing."""
    for case, ref in matrix.items():
        n = 8 if case == "short_ts" else N
        kept = [painted_index(f) for f in ref.frames]
        assert kept == list(range(n - len(kept), n)), case  # an edit list may cut the first frames
        assert np.all(np.diff(ref.times) > 0), case


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_whole_file_and_spans(matrix, case):
    ref = matrix[case]
    clip = read_clip(ref.path, audio=False)
    check(ref, clip.frames, clip.timestamps, np.arange(len(ref.times)), "whole file")
    first, last = ref.times[0], ref.times[-1]
    for start, end in [(0.0, 1.0), (first, first + 1.0), (first + 0.55, first + 1.3), (last - 0.4, last + 1.0)]:
        clip = read_clip(ref.path, start, end, audio=False)
        check(ref, clip.frames, clip.timestamps, ref.between(start, end), f"[{start}, {end})")


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_times_in_one_reader_and_alone(matrix, case):
    ref = matrix[case]
    first, last = ref.times[0], ref.times[-1]
    gaps = np.diff(ref.times)
    times = np.concatenate([ref.times, ref.times[:-1] + gaps / 2, [first - 0.3, 0.0, last + 0.5]])
    times = np.random.default_rng(0).permutation(times)
    with VideoReader(ref.path) as r:
        frames, stamps = r.frames_at(times)
    check(ref, frames, stamps, np.array([ref.at(t) for t in times]), "shuffled times")
    for t in (0.0, first, first + 0.1, first + 1.0, first + 1.45, last):
        clip = read_clip(ref.path, times=[t], audio=False)
        check(ref, clip.frames, clip.timestamps, np.array([ref.at(t)]), f"t={t}")
    several = [first, first + 0.1, first + 1.0]
    clip = read_clip(ref.path, times=several, audio=False)
    check(ref, clip.frames, clip.timestamps, np.array([ref.at(t) for t in several]), f"times={several}")


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_frame_indices_and_probe(matrix, case):
    ref = matrix[case]
    n = len(ref.times)
    clip = read_clip(ref.path, frame_indices=[0, n // 2, n - 1, -1], audio=False)
    check(ref, clip.frames, clip.timestamps, np.array([0, n // 2, n - 1, n - 1]), "frame indices")
    info = probe(ref.path)
    assert (info.video.width, info.video.height) == (W, H)
    # The stream lasts from its first frame to the end of its last; AVI has no start time, so
    # there a late start is a stream that begins at 0 with 1000 s of nothing.
    begin = 0.0 if case[0] == "avi" else ref.times[0]
    assert info.video.duration == pytest.approx(ref.times[-1] + 1 / FPS - begin, abs=1.5 / FPS)
    check_data(ref.path)  # the data reaches the end the header states
    verify_decode(ref.path)  # and decodes without an error


def test_ts_shorter_than_a_keyframe_interval(matrix):
    ref = matrix["short_ts"]
    info = probe(ref.path)
    assert info.video.width == W
    check_data(ref.path)
    clip = read_clip(ref.path, audio=False)
    check(ref, clip.frames, clip.timestamps, np.arange(len(ref.times)), "short TS")
    clip = read_clip(ref.path, times=[0.0, 0.3], audio=False)
    check(ref, clip.frames, clip.timestamps, np.array([ref.at(0.0), ref.at(0.3)]), "short TS times")
