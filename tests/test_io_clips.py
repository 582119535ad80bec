"""Many clips of one video in one pass (``VideoReader.clips_at`` / ``read_clips``): the same pixels and
timestamps as the per-clip reader, each frame decoded at most once, one seek per run of keyframe intervals.

Files: 6 s of moving texture in H.264 with B-frames (x264's default keyframe interval, which puts one
keyframe in the file, and a keyframe every 2 s), and the real Kinetics-style clip of ../shared/media.
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from avkit.errors import AvkitError
from avkit.io import VideoReader, read_clip, read_clips

FPS, SECONDS = 30, 6.0
PANCAKE = Path(__file__).resolve().parents[1].parent / "shared" / "media" / "video" / "pancake_h264_opus.mkv"


def _h264(path: Path, gop_seconds: float | None, bframes: bool = True) -> Path:
    """Moving coloured noise, 96x64, x264 with B-frames (unless not ``bframes``); ``gop_seconds=None``: the
    encoder's keyframe interval."""
    rng = np.random.default_rng(0)
    texture = np.repeat(np.repeat(rng.integers(0, 256, (40, 64, 3), dtype=np.uint8), 4, 0), 4, 1)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=FPS)
        s.width, s.height, s.pix_fmt = 96, 64, "yuv420p"
        s.options = {"preset": "veryfast", "crf": "28"}
        params = [] if bframes else ["bframes=0"]
        if gop_seconds is not None:
            gop = int(gop_seconds * FPS)
            params.append(f"keyint={gop}:min-keyint={gop}:scenecut=0")
        if params:
            s.options = {**s.options, "x264-params": ":".join(params)}
        for k in range(int(SECONDS * FPS)):
            img = np.ascontiguousarray(texture[k % 96:k % 96 + 64, (2 * k) % 160:(2 * k) % 160 + 96])
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = k
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("clips")
    return {"default": _h264(d / "default.mp4", None), "gop2": _h264(d / "gop2.mp4", 2.0)}


def _clips(duration: float, k: int, seed: int) -> list[np.ndarray]:
    """``k`` clips of 8 frames at 5 fps: uniform overlapping starts, shuffled, plus one before the start and
    one past the end (the first and the last frame), with a repeated time inside one clip."""
    starts = np.linspace(0.0, duration - 1.5, k)
    np.random.default_rng(seed).shuffle(starts)
    clips = [s + np.arange(8) / 5.0 for s in starts]
    clips.append(np.linspace(-0.5, 0.2, 8))
    clips.append(duration - 0.3 + np.arange(8) / 5.0)
    clips[0][3] = clips[0][2]
    return clips


def _per_clip(path: Path, clips: list[np.ndarray], size: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """What the per-clip reader gives: ``read_clip`` (a fresh reader) for every clip."""
    read = [read_clip(path, times=c.tolist(), size=size, audio=False) for c in clips]
    return torch.stack([r.frames for r in read]), torch.stack([r.timestamps for r in read])


@pytest.mark.parametrize("name", ["default", "gop2"])
@pytest.mark.parametrize("k", [1, 10])
def test_same_pixels_as_the_per_clip_reader(videos: dict[str, Path], name: str, k: int) -> None:
    path = videos[name]
    clips = _clips(SECONDS, k, seed=k)
    frames, stamps = read_clips(path, clips, size=48)
    want_frames, want_stamps = _per_clip(path, clips, size=48)
    assert frames.shape == (k + 2, 8, 48, 72, 3) and frames.dtype == torch.uint8
    assert torch.equal(frames, want_frames) and torch.equal(stamps, want_stamps)
    assert torch.equal(frames[-2, 0], frames[-2, 1]) and float(stamps[-1, -1]) == pytest.approx(SECONDS - 1 / FPS)


@pytest.mark.parametrize("name", ["default", "gop2"])
def test_each_frame_is_decoded_once_and_runs_of_keyframe_intervals_seek_once(
        videos: dict[str, Path], name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    seeks: list[float] = []
    original = VideoReader._seek

    def counted(self: VideoReader, stream: object, t: float) -> bool:
        seeks.append(t)
        return original(self, stream, t)

    monkeypatch.setattr(VideoReader, "_seek", counted)
    clips = _clips(SECONDS, 16, seed=0)[:16]  # overlapping clips over the whole file
    with VideoReader(videos[name], threads=1) as reader:
        reader.clips_at(clips)
        once = reader.frames_decoded
    assert once <= SECONDS * FPS + 2 and len(seeks) == 1  # the whole file, forward, once
    with VideoReader(videos[name], threads=1) as reader:
        for c in clips:
            reader.frames_at(c)
        assert reader.frames_decoded > 2 * once  # the per-clip reader decodes the overlaps again

    # Two clips 4 s apart with a keyframe every 2 s: a seek each, the keyframe interval between them skipped.
    seeks.clear()
    with VideoReader(videos["gop2"], threads=1) as reader:
        reader.clips_at([np.arange(8) / 10.0 + 0.1, np.arange(8) / 10.0 + 4.1])
        assert len(seeks) == 2 and reader.frames_decoded < 2 * 2 * FPS


def test_a_real_clip(tmp_path: Path) -> None:
    if not PANCAKE.is_file():
        pytest.skip("../shared/media is absent")
    with VideoReader(PANCAKE) as reader:
        duration = float(reader.duration or 0)
    clips = _clips(duration, 10, seed=1)
    frames, stamps = read_clips(PANCAKE, clips, size=112)
    want_frames, want_stamps = _per_clip(PANCAKE, clips, size=112)
    assert frames.shape[:2] == (12, 8) and torch.equal(frames, want_frames) and torch.equal(stamps, want_stamps)


def test_clips_of_different_lengths_are_one_line(videos: dict[str, Path]) -> None:
    with pytest.raises(AvkitError, match=r"default\.mp4: clips_at needs one or more clips of the same number") as err:
        read_clips(videos["default"], [np.arange(8) / 5.0, np.arange(4) / 5.0])
    assert "\n" not in str(err.value)
    with pytest.raises(AvkitError, match="clips_at needs one or more clips"):
        read_clips(videos["default"], [])


@pytest.mark.parametrize("threads", [1, 2])
def test_unwanted_non_reference_frames_are_left_out_with_the_same_pixels(videos, threads: int) -> None:
    """``frames_at`` leaves out the B-frames no other frame is predicted from and no wanted time shows
    (FFmpeg's ``skip_frame = NONREF``, set packet by packet): the same frames and timestamps as decoding
    every frame, with fewer frames decoded, also with frame threads."""
    rng = np.random.default_rng(1)
    for name, path in videos.items():
        for times in (np.concatenate(_clips(SECONDS, 4, seed=2)), rng.uniform(-0.2, SECONDS + 0.2, 30)):
            read = {}
            for skip in (True, False):
                with VideoReader(path, threads=threads) as reader:
                    reader.skip_unwanted = skip
                    frames, stamps = reader.frames_at(times)
                    read[skip] = (frames, stamps, reader.frames_decoded)
            assert torch.equal(read[True][0], read[False][0]) and torch.equal(read[True][1], read[False][1])
            assert read[True][2] < 0.85 * read[False][2], (name, read[True][2], read[False][2])
        with VideoReader(path, threads=threads) as reader:  # a read after frames_at decodes every frame again
            reader.frames_at([1.0])
            assert len(reader.frames_between(0.0, 1.0)[0]) == FPS


def test_a_left_out_frame_that_shows_is_read_again(videos, monkeypatch) -> None:
    """The safety net: were a left-out frame the one displayed at a wanted time (``wants`` wrong, as it
    could be across a gap in variable-rate video), ``frames_at`` notices and reads again without leaving
    anything out, so the answer is never an earlier frame."""
    from avkit.io import read as read_module

    times = np.concatenate(_clips(SECONDS, 4, seed=3))
    with VideoReader(videos["gop2"], threads=1) as reader:
        reader.skip_unwanted = False
        expected = reader.frames_at(times)
    monkeypatch.setattr(read_module._SkipUnwanted, "wants", lambda self, t0, span: False)
    with VideoReader(videos["gop2"], threads=1) as reader:
        frames, stamps = reader.frames_at(times)
    assert torch.equal(frames, expected[0]) and torch.equal(stamps, expected[1])


def test_a_stream_with_nothing_to_leave_out_stops_asking(tmp_path: Path) -> None:
    """Without B-frames every packet is a reference frame that comes out at once: after a few dozen packets
    the reader stops asking the decoder to leave frames out (no per-packet cost), with the same frames."""
    path = _h264(tmp_path / "no_b.mp4", 2.0, bframes=False)
    times = np.concatenate(_clips(SECONDS, 4, seed=4))
    with VideoReader(path, threads=1) as reader:
        reader.skip_unwanted = False
        expected = reader.frames_at(times)
    with VideoReader(path, threads=1) as reader:
        frames, stamps = reader.frames_at(times)
        assert reader._nothing_to_skip and reader.skip_unwanted  # learnt; the user's setting left alone
    assert torch.equal(frames, expected[0]) and torch.equal(stamps, expected[1])


@pytest.mark.parametrize("threads", [0, 1, 2])
def test_decoding_stops_once_the_last_wanted_frame_is_out(videos, threads: int) -> None:
    """Past the last wanted time of each pass (the times between which no seek is worth it) the reader
    drains the decoder instead of feeding it the packets a B-frame or frame-threaded decoder waits for: the
    same frames and timestamps, fewer frames decoded, and the next read on the same reader (a drained
    decoder) is right too. Two sets of times found wrong once (a later pass read from the frames the
    drain of the one before gave) are among them."""
    rng = np.random.default_rng(5)
    found = [np.array([4.392, 3.686, 0.17, 4.315]), np.array([4.177, 1.968, 1.052, 4.049, 2.177])]
    clips = _clips(SECONDS, 3, seed=6)
    for path in videos.values():
        for k, times in enumerate([*clips, rng.uniform(0.0, SECONDS, 5), *found]):
            read = {}
            for stop in (True, False):
                with VideoReader(path, threads=threads) as reader:
                    reader.stop_early = stop
                    first = reader.frames_at(times)
                    second = reader.frames_at(times[::-1] * 0.5)
                    read[stop] = (*first, *second, reader.frames_decoded)
            assert all(torch.equal(a, b) for a, b in zip(read[True][:4], read[False][:4])), (path.name, times)
            if threads == 1 and k < len(clips):  # frames still inside a threaded decoder are not counted
                assert read[True][4] < read[False][4], (path.name, times, read[True][4], read[False][4])


def test_a_time_in_a_gap_of_a_stream_that_goes_on_is_not_its_end(tmp_path: Path) -> None:
    """Variable frame rate: frames at 0-1 s, then none until 3 s. At 2.5 s the frame of 0.9 s shows; the
    reader stops decoding at the first packet after 2.5 s, which is no reason to call the file cut short."""
    path = tmp_path / "gap.mp4"
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = 64, 64, "yuv420p"
        s.options = {"x264-params": "bframes=0"}  # decode times are the times shown: the stop comes at 3.0 s
        s.codec_context.time_base = s.time_base = Fraction(1, 1000)
        shown = [k / 10 for k in range(10)] + [3.0 + k / 10 for k in range(10)]
        for k, t in enumerate(shown):
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), 10 * k, np.uint8), format="rgb24")
            frame.pts = int(round(t * 1000))
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    with VideoReader(path, threads=1) as reader:
        frames, stamps = reader.frames_at([0.35, 2.5])
    assert stamps.tolist() == pytest.approx([0.3, 0.9], abs=1e-3)
    with VideoReader(path, threads=1) as reader:
        reader.stop_early = False
        assert torch.equal(reader.frames_at([0.35, 2.5])[0], frames)


@pytest.mark.parametrize("name", ["default", "gop2", "pancake"])
def test_frames_in_chunks_are_frames_at_in_one_pass(videos: dict[str, Path], name: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """``frames_in_chunks`` (for writing long videos): the same pixels and timestamps as ``frames_at`` of every
    time, in chunks of 7, at 24 fps over the whole file with a stretch of 3 s left out; decoded in one pass
    (a seek only past the stretch), where ``frames_at`` per chunk seeks again each time."""
    path = PANCAKE if name == "pancake" else videos[name]
    if not path.is_file():
        pytest.skip("../shared/media is absent")
    with VideoReader(path) as reader:
        duration = float(reader.duration or 0)
    times = np.arange(0.0, duration, 1 / 24)
    times = np.concatenate([times[times < 1.0], times[times >= 4.0]])
    seeks: list[float] = []
    original = VideoReader._seek
    monkeypatch.setattr(VideoReader, "_seek", lambda self, s, t: seeks.append(t) or original(self, s, t))
    with VideoReader(path, threads=1) as reader:
        chunks = list(reader.frames_in_chunks(times, size=48, chunk=7))
        in_chunks = seeks[:]
    with VideoReader(path, threads=1) as reader:
        want, want_stamps = reader.frames_at(times, size=48)
    assert [len(f) for f, _ in chunks[:-1]] == [7] * (len(chunks) - 1) and 1 <= len(chunks[-1][0]) <= 7
    assert torch.equal(torch.cat([f for f, _ in chunks]), want)
    assert torch.equal(torch.cat([s for _, s in chunks]), want_stamps)
    assert len(in_chunks) <= 2  # from the start, and past the stretch left out when a keyframe allows
    seeks.clear()
    with VideoReader(path, threads=1) as reader:
        for start in range(0, len(times), 7):
            reader.frames_at(times[start:start + 7], size=48)
    assert len(seeks) >= len(times) // 7  # what chunked writing did before: a seek per chunk


def test_frames_in_chunks_refuses_times_out_of_order(videos: dict[str, Path]) -> None:
    with VideoReader(videos["gop2"]) as reader, pytest.raises(AvkitError, match="increasing times"):
        next(reader.frames_in_chunks([0.5, 0.2]))
