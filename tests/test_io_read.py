"""read_clip / read_audio / VideoReader: right frames after seeking, real files against a full
PyAV decode, rotation and pixel aspect, audio sync, truncated and broken files."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from conftest import shared_videos

from avkit.errors import AvkitError, MediaError
from avkit.io import VideoReader, probe, read_audio, read_clip
from avkit.io.probe import SQUARE_PIXELS_WITHIN

FPS = 24
N = 72  # 3 s
# Frame k shows k in base 8 as two gray levels (bottom-left half: k // 8, bottom-right: k % 8),
# robust to compression and resizing; the top-left corner is a red marker for orientation.
STEP = 30
H, W = 32, 48
SR = 16000
BURST = (1.0, 1.5)  # the generated audio is a tone only in this span, silence elsewhere


def index_image(k: int) -> np.ndarray:
    img = np.empty((H, W, 3), np.uint8)
    img[:, : W // 2] = 10 + STEP * (k // 8)
    img[:, W // 2:] = 10 + STEP * (k % 8)
    img[: H // 4, : W // 4] = (255, 0, 0)
    return img


def level_to_index(frame: np.ndarray) -> int:
    """Frame number encoded by ``index_image`` (read away from the edges)."""
    h, w = frame.shape[:2]
    rows = frame[h * 5 // 8: h * 7 // 8].astype(float)
    hi = rows[:, w // 16: w * 7 // 16].mean()
    lo = rows[:, w * 9 // 16: w * 15 // 16].mean()
    return int(round((hi - 10) / STEP)) * 8 + int(round((lo - 10) / STEP))


def write_test_video(path: Path, *, n: int = N, fps: int = FPS, gop: int = 12, bframes: int = 2,
                     rotation: int = 0, sar: str | None = None, faststart: bool = False,
                     pts_ms: list[int] | None = None, audio: bool = False) -> Path:
    """H.264 mp4 whose frame k shows ``index_image(k)``; optional mono AAC tone burst in BURST."""
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = W, H, "yuv420p"
        s.codec_context.gop_size = gop
        s.options = {"crf": "6", "preset": "veryfast", "bf": str(bframes),
                     "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0"}
        if sar:
            s.codec_context.sample_aspect_ratio = Fraction(sar)
        if pts_ms is not None:
            s.codec_context.time_base = Fraction(1, 1000)
        if rotation:
            s.set_display_rotation(rotation)
        a = c.add_stream("aac", rate=SR, layout="mono") if audio else None
        for k in range(n):
            f = av.VideoFrame.from_ndarray(index_image(k), format="rgb24")
            if pts_ms is not None:
                f.pts, f.time_base = pts_ms[k], Fraction(1, 1000)
            else:
                f.pts = k
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
        if a is not None:
            t = np.arange(int(n / fps * SR)) / SR
            wave = np.where((t >= BURST[0]) & (t < BURST[1]), 0.5 * np.sin(2 * np.pi * 440 * t), 0.0)
            wave = wave.astype(np.float32)
            for i in range(0, len(wave), 1024):
                fr = av.AudioFrame.from_ndarray(wave[None, i:i + 1024], format="flt", layout="mono")
                fr.sample_rate, fr.pts = SR, i
                for p in a.encode(fr):
                    c.mux(p)
            for p in a.encode():
                c.mux(p)
    return path


VFR_PTS = [int(x) for x in np.cumsum(np.r_[0, np.random.default_rng(0).integers(10, 100, N - 1)])]


@pytest.fixture(scope="session")
def gen(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("io_read")
    files = {
        "bright": write_test_video(d / "bright.mp4", audio=True),
        "noaudio": write_test_video(d / "noaudio.mp4", n=24),
        "rot90": write_test_video(d / "rot90.mp4", n=12, rotation=90),
        "rot-90": write_test_video(d / "rotm90.mp4", n=12, rotation=-90),
        "sar": write_test_video(d / "sar.mp4", n=12, sar="2/1"),
        "vfr": write_test_video(d / "vfr.mp4", pts_ms=VFR_PTS),
        "faststart": write_test_video(d / "faststart.mp4", faststart=True, audio=True),
    }
    data = files["faststart"].read_bytes()
    files["truncated"] = d / "truncated.mp4"
    files["truncated"].write_bytes(data[: len(data) // 2])
    data = files["bright"].read_bytes()
    files["truncated_moov_at_end"] = d / "cut.mp4"
    files["truncated_moov_at_end"].write_bytes(data[: len(data) // 2])
    files["empty"] = d / "empty.mp4"
    files["empty"].write_bytes(b"")
    files["random"] = d / "random.mp4"
    files["random"].write_bytes(np.random.default_rng(1).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    files["text"] = d / "notes.mp4"
    files["text"].write_text("this is not a video\n" * 200)
    files["missing"] = d / "missing.mp4"
    return files


def ids(frames: torch.Tensor) -> list[int]:
    return [level_to_index(f) for f in frames.numpy()]


# -- generated files: the right frames after seeking ---------------------------------------------

def test_times_pick_the_displayed_frame(gen):
    rng = np.random.default_rng(0)
    times = rng.uniform(0, N / FPS, 40)  # unsorted, far apart: several seeks, backwards too
    clip = read_clip(gen["bright"], times=times, audio=False)
    expected = np.minimum(np.floor(times * FPS + 1e-9), N - 1).astype(int)
    assert clip.frames.dtype == torch.uint8 and clip.frames.shape == (40, H, W, 3)
    assert ids(clip.frames) == expected.tolist()
    assert torch.allclose(clip.timestamps, torch.tensor(expected / FPS), atol=1e-9)
    assert clip.timestamps.dtype == torch.float64
    assert clip.audio is None


def test_each_time_alone_matches_batch(gen):
    with VideoReader(gen["bright"]) as r:
        for t in [2.9, 0.0, 1.26, 0.51, 2.0]:
            frames, ts = r.frames_at([t])
            assert ids(frames) == [int(np.floor(t * FPS + 1e-9))]


def test_exact_frame_time_and_out_of_range_times(gen):
    clip = read_clip(gen["bright"], times=[10 / FPS, -1.0, 99.0], audio=False)
    assert ids(clip.frames) == [10, 0, N - 1]


def test_range_returns_every_frame_in_half_open_span(gen):
    clip = read_clip(gen["bright"], 1.0, 1.5, audio=False)
    assert ids(clip.frames) == list(range(24, 36))
    assert np.allclose(clip.timestamps.numpy(), np.arange(24, 36) / FPS)
    whole = read_clip(gen["bright"], audio=False)
    assert ids(whole.frames) == list(range(N))


def test_fps_resampling(gen):
    clip = read_clip(gen["bright"], 0.5, 1.5, fps=8, audio=False)
    assert ids(clip.frames) == [int(np.floor((0.5 + k / 8) * FPS + 1e-9)) for k in range(8)]
    assert clip.start == 0.5 and clip.end == 1.5


def test_frame_indices(gen):
    clip = read_clip(gen["bright"], frame_indices=[5, 70, 0, 33, -1], audio=False)
    assert ids(clip.frames) == [5, 70, 0, 33, N - 1]
    with pytest.raises(AvkitError, match="out of range"):
        read_clip(gen["bright"], frame_indices=[N], audio=False)


def test_decodes_only_what_is_needed(gen):
    with VideoReader(gen["bright"]) as r:
        frames, _ = r.frames_at(2.0 + np.arange(8) / FPS)
        assert ids(frames) == list(range(48, 56))
        # keyframe every 12 frames: at most one GOP before + the 8 frames + decoder lookahead
        assert r.frames_decoded <= 12 + 8 + 8, r.frames_decoded


def test_reader_reuse_matches_read_clip(gen):
    with VideoReader(gen["bright"]) as r:
        for start in [2.0, 0.25, 1.1]:
            a = r.read_clip(start, start + 0.5, fps=6)
            b = read_clip(gen["bright"], start, start + 0.5, fps=6)
            assert torch.equal(a.frames, b.frames) and torch.equal(a.audio, b.audio)


def test_vfr_selection_by_timestamp(gen):
    pts = np.array(VFR_PTS) / 1000.0
    rng = np.random.default_rng(2)
    times = rng.uniform(0, pts[-1], 25)
    clip = read_clip(gen["vfr"], times=times, audio=False)
    expected = np.searchsorted(pts, times + 1e-9, side="right") - 1
    assert ids(clip.frames) == expected.tolist()
    assert np.allclose(clip.timestamps.numpy(), pts[expected])
    with VideoReader(gen["vfr"]) as r:
        assert np.allclose(r.frame_times(), pts)


# -- size, rotation, pixel aspect ----------------------------------------------------------------

def test_size_short_side_and_exact(gen):
    clip = read_clip(gen["bright"], times=[1.0], size=16, audio=False)
    assert clip.frames.shape == (1, 16, 24, 3)
    clip = read_clip(gen["bright"], times=[1.0], size=(20, 10), audio=False)
    assert clip.frames.shape == (1, 20, 10, 3)
    assert ids(clip.frames) == [24]


@pytest.mark.parametrize("name,corner", [("rot90", (-1, 0)), ("rot-90", (0, -1))])
def test_rotation_metadata_is_applied(gen, name, corner):
    """Display matrix rotation: +90 = counterclockwise (red top-left marker ends bottom-left)."""
    assert probe(gen[name]).video.rotation == int(name[3:])
    frame = read_clip(gen[name], times=[0.2], audio=False).frames[0].numpy()
    assert frame.shape == (W, H, 3)  # portrait after rotation
    r, g, b = frame[corner].astype(int)
    assert r > 200 and g < 60 and b < 60
    assert read_clip(gen[name], times=[0.2], size=16, audio=False).frames.shape == (1, 24, 16, 3)


def test_non_square_pixels_are_stretched(gen):
    info = probe(gen["sar"])
    assert info.video.sample_aspect_ratio == 2.0
    frame = read_clip(gen["sar"], times=[0.2], audio=False).frames[0].numpy()
    assert frame.shape == (H, 2 * W, 3)
    # the marker covers the left quarter of the width, whatever the stretch
    assert frame[2, 2 * W // 4 - 3, 0] > 200 and frame[2, 2 * W // 4 + 3, 0] < 200


# -- audio ----------------------------------------------------------------------------------------

def rms(x: torch.Tensor) -> float:
    return float(x.pow(2).mean().sqrt())


def test_audio_covers_the_clip_span_in_sync(gen):
    inside = read_clip(gen["bright"], 1.05, 1.45)
    before = read_clip(gen["bright"], 0.4, 0.9)
    assert inside.audio.dtype == torch.float32 and inside.audio.shape == (int(round(0.4 * SR)),)
    assert inside.sample_rate == SR
    assert rms(inside.audio) > 0.2 and rms(before.audio) < 0.02
    # the tone starts at 1.0 s: a clip around it is silent then loud, at the right sample
    edge = read_clip(gen["bright"], 0.8, 1.2, sample_rate=8000).audio
    assert edge.shape == (3200,)
    assert rms(edge[:1500]) < 0.02 and rms(edge[1700:]) > 0.2


def test_audio_for_times_spans_first_to_last_plus_a_frame(gen):
    clip = read_clip(gen["bright"], times=[1.0, 1.25])
    assert clip.start == 1.0 and clip.end == pytest.approx(1.25 + 1 / FPS)
    assert clip.audio.shape == (int(round((0.25 + 1 / FPS) * SR)),)


def test_read_audio_matches_full_decode(gen):
    wave, sr = read_audio(gen["bright"], sample_rate=SR)
    assert sr == SR
    assert wave.shape == (int(round(probe(gen["bright"]).audio.duration * SR)),)
    part, _ = read_audio(gen["bright"], 1.1, 1.3, sample_rate=SR)
    ref = wave[int(1.1 * SR): int(1.1 * SR) + len(part)]
    assert np.corrcoef(part.numpy(), ref.numpy())[0, 1] > 0.99


def test_missing_audio(gen):
    with pytest.raises(MediaError, match="no audio stream"):
        read_clip(gen["noaudio"], 0, 0.5)
    clip = read_clip(gen["noaudio"], 0, 0.5, allow_missing_audio=True, sample_rate=8000)
    assert clip.audio.shape == (4000,) and float(clip.audio.abs().max()) == 0.0
    assert read_clip(gen["noaudio"], 0, 0.5, audio=False).audio is None


# -- broken input ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name,reason", [
    ("missing", "no such file"), ("empty", "empty"), ("random", "not a media file"),
    ("text", "not a media file"), ("truncated_moov_at_end", "corrupt/truncated"),
])
def test_bad_files_raise_media_error(gen, name, reason):
    with pytest.raises(MediaError, match=reason) as err:
        read_clip(gen[name], 0, 1)
    assert str(gen[name]) in str(err.value)
    with pytest.raises(MediaError):
        read_audio(gen[name])


def test_truncated_file_strict_and_lenient(gen):
    with pytest.raises(MediaError, match="truncated") as err:
        read_clip(gen["truncated"], audio=False)
    assert str(gen["truncated"]) in str(err.value)
    with pytest.raises(MediaError, match="truncated"):
        read_clip(gen["truncated"], times=[2.5], audio=False)
    clip = read_clip(gen["truncated"], lenient=True, audio=False)
    n = len(clip.frames)
    assert 0 < n < N
    assert ids(clip.frames) == list(range(n))  # the frames that exist, in order
    late = read_clip(gen["truncated"], times=[0.1, 2.9], lenient=True)
    assert ids(late.frames) == [2, n - 1]  # past the cut: the last frame there is
    assert late.audio.shape == (int(round((2.8 + 1 / FPS) * SR)),)


def test_argument_errors(gen):
    with pytest.raises(AvkitError, match="only one"):
        read_clip(gen["bright"], 0.0, 1.0, times=[0.5])
    with pytest.raises(AvkitError, match="fps"):
        read_clip(gen["bright"], times=[0.5], fps=4)
    with pytest.raises(MediaError, match="stream 5"):
        read_clip(gen["bright"], 0, 1, video_stream=5)
    with pytest.raises(MediaError, match="not video"):
        read_clip(gen["bright"], 0, 1, video_stream=1)


# -- real recorded files against PyAV's own full decode ------------------------------------------

_REF_CACHE: dict[Path, dict] = {}


def reference(path: Path, keep: int = 5) -> dict:
    """Full PyAV decode of the default video stream: all timestamps + a few frames' pixels."""
    if path in _REF_CACHE:
        return _REF_CACHE[path]
    info = probe(path)
    with av.open(str(path)) as c:
        s = c.streams[info.video_index]
        s.thread_type = "AUTO"
        origin = c.start_time / av.time_base if c.start_time is not None else 0.0
        n = info.video.frame_count
        pts, kept = [], {}
        wanted = None if n is None else set(np.linspace(0, n - 1, keep).round().astype(int).tolist() + [1, n // 2 + 1])
        for k, f in enumerate(c.decode(s)):
            pts.append(f.pts)
            if wanted is None or k in wanted:
                kept[k] = f.to_ndarray(format="rgb24")
        if wanted is None:  # frame count unknown up front: keep a spread of what was decoded
            chosen = set(np.linspace(0, len(pts) - 1, keep).round().astype(int).tolist() + [1])
            kept = {k: v for k, v in kept.items() if k in chosen}
        # decoder output is in presentation order; AVI attaches scrambled pts, so sort them
        times = np.array([float(p * s.time_base) for p in sorted(pts)]) - origin
    _REF_CACHE[path] = {"times": times, "frames": kept, "info": info}
    return _REF_CACHE[path]


@pytest.mark.parametrize("path", shared_videos(), ids=lambda p: p.name)
def test_real_file_frames_match_full_decode(media_dir, path):
    ref = reference(path)
    info = ref["info"]
    with VideoReader(path) as r:
        assert r.video.index == info.video_index
        table = r.frame_times()
        assert len(table) == len(ref["times"])
        if info.video.frame_count:
            assert len(table) == info.video.frame_count
        assert np.allclose(table, ref["times"], atol=1e-6)
        # frame indices: same pixels as the full decode (frames need not be square/rotated here)
        idx = sorted(ref["frames"])
        frames, ts = r.frames_at_indices(idx)
        assert np.allclose(ts.numpy(), ref["times"][idx])
        sar = info.video.sample_aspect_ratio
        for k, frame in zip(idx, frames.numpy()):
            want = ref["frames"][k]
            if abs(sar - 1) <= SQUARE_PIXELS_WITHIN:  # shown as stored (the 399:400 WebM too)
                assert np.array_equal(frame, want), (path.name, k)
            else:
                assert frame.shape[0] == want.shape[0]
        # times between frames pick the frame displayed then
        fps = info.video.fps
        times = ref["times"][idx] + 0.4 / fps
        frames2, ts2 = r.frames_at(times)
        assert np.allclose(ts2.numpy(), ref["times"][idx])
        assert torch.equal(frames2, frames)


@pytest.mark.parametrize("path", shared_videos(), ids=lambda p: p.name)
def test_real_file_audio_length_and_alignment(media_dir, path):
    info = probe(path)
    wave, sr = read_audio(path, sample_rate=SR)
    assert wave.shape == (int(round(info.audio.duration * SR)),)
    assert rms(wave) > 1e-3
    # A clip of audio equals the same span of the whole-file read, to within the container's
    # timestamp accuracy: Matroska stores milliseconds; Vorbis-in-Matroska timestamps disagree
    # with the decoded sample count by up to one long block (~23 ms at 44.1 kHz).
    tolerance = 0.025 if info.audio.codec == "vorbis" else 0.0015
    part = read_clip(path, 2.0, 3.0, fps=2).audio.numpy()
    assert part.shape == (SR,)
    if rms(wave[2 * SR: 3 * SR]) > 1e-3:
        lag, corr = best_lag(wave.numpy(), part, 2 * SR, max_lag=int(tolerance * SR) + 8)
        assert abs(lag) <= tolerance * SR and corr > 0.98, (lag, corr)


def best_lag(wave: np.ndarray, part: np.ndarray, at: int, max_lag: int) -> tuple[int, float]:
    """Shift (samples) at which ``part`` best matches ``wave[at:]``, and the correlation there."""
    corrs = [np.corrcoef(part, wave[at + d: at + d + len(part)])[0, 1] for d in range(-max_lag, max_lag + 1)]
    i = int(np.argmax(corrs))
    return i - max_lag, float(corrs[i])


def test_multistream_choice_and_selection(media_dir):
    path = media_dir / "video" / "nasa_multistream.mp4"
    info = probe(path)
    assert [s.type for s in info.streams] == ["video", "audio", "subtitle"] * 2
    assert info.video_index == 3  # 480x270 beats 320x180
    assert info.audio_index == 1  # both stereo: the first
    default = read_clip(path, times=[1.0])
    assert default.frames.shape[1:] == (270, 480, 3)
    small = read_clip(path, times=[1.0], video_stream=0, audio_stream=4)
    assert small.frames.shape[1:] == (180, 320, 3)
    # the two audio streams carry the same sound at 8 and 16 kHz
    a8 = read_clip(path, 3.0, 4.0, fps=1, sample_rate=8000).audio
    a16 = read_clip(path, 3.0, 4.0, fps=1, sample_rate=8000, audio_stream=4).audio
    assert np.corrcoef(a8.numpy(), a16.numpy())[0, 1] > 0.9


def test_audio_as_stream_zero(media_dir):
    path = media_dir / "video" / "friday_h264_aac.mp4"
    info = probe(path)
    assert info.audio_index == 0 and info.video_index == 1
    clip = read_clip(path, 1.0, 2.0, fps=4, size=32)
    assert clip.frames.shape == (4, 32, 43, 3) and clip.audio.shape == (SR,)
    assert rms(clip.audio) > 1e-3


def test_no_reseek_between_a_keyframes_decode_and_presentation_times(gen):
    """With B-frames the mp4 index holds decode times, a few frames before a keyframe is shown.
    Reading forward to a frame in that gap must decode on, not seek back and decode a GOP again."""
    with VideoReader(gen["bright"]) as r:
        # keyframes every 12 frames: 36 and 48 (shown at 48, decoded two frames earlier)
        frames, _ = r.frames_at(np.array([41.0, 47.0]) / FPS)
        assert ids(frames) == [41, 47]
        assert r.frames_decoded <= 12 + 6, r.frames_decoded  # 36..47 once, plus decoder lookahead


@pytest.mark.parametrize("codec, fmt, layout", [
    ("pcm_u8", "u8", "mono"), ("pcm_s16le", "s16", "stereo"), ("pcm_s32le", "s32", "stereo"),
    ("pcm_f32le", "flt", "5.1"), ("flac", "s16", "stereo"), ("aac", "fltp", "stereo"),
])
def test_read_audio_scales_every_sample_format(tmp_path, codec, fmt, layout):
    """Each sample format comes back in [-1, 1] at the same level (swresample's scaling: u8 around
    128, integers over 2^(bits-1)), every channel layout averaged to mono, resampled to the rate
    asked. A 440 Hz tone at 0.5 in channel 0 and -0.25 in the others must read as its mean."""
    sr, seconds = 22050, 1.0
    n = int(sr * seconds)
    tone = np.sin(2 * np.pi * 440 * np.arange(n) / sr)
    channels = av.AudioLayout(layout).nb_channels
    gains = np.array([0.5] + [-0.25] * (channels - 1))
    wave = (gains[:, None] * tone[None]).astype(np.float32)
    path = tmp_path / ("tone.m4a" if codec == "aac" else "tone.mkv")
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=sr)
        stream.layout = layout
        for i in range(0, n, 1024):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(wave[:, i:i + 1024]), format="fltp", layout=layout)
            frame.sample_rate, frame.pts = sr, i
            for f in av.AudioResampler(format=fmt, layout=layout, rate=sr).resample(frame):
                out.mux(stream.encode(f))
        out.mux(stream.encode(None))
    got, rate = read_audio(path, sample_rate=16000)
    assert rate == 16000 and abs(len(got) - 16000) <= 1100  # the AAC priming may add up to a frame
    expected = float(gains.mean()) * np.sin(2 * np.pi * 440 * np.arange(len(got)) / 16000)
    lag = int(np.argmax([np.dot(got[2000:12000].numpy(), np.roll(expected, k)[2000:12000]) for k in range(-40, 41)])) - 40
    err = np.abs(got[2000:12000].numpy() - np.roll(expected, lag)[2000:12000]).max()
    lossy = 0.15 if codec == "aac" else 0.02  # AAC at its default bit rate, and the whole-sample lag
    assert err < lossy * abs(gains.mean()) + 0.004, (codec, fmt, layout, err)


@pytest.mark.parametrize("second_at", [1.5, 0.7])
def test_read_audio_follows_timestamp_jumps(tmp_path, second_at):
    """Where the audio timestamps jump (a cut file), samples follow the timestamps, as ffmpeg's
    ``aresample=async`` does: a gap is filled with silence, an overlap drops the tail before it.
    A 440 Hz second is followed by an 880 Hz second stamped at ``second_at`` (1.5: a 0.5 s gap;
    0.7: 0.3 s overlap)."""
    sr = 16000
    t = np.arange(sr) / sr
    parts = [(0.0, 0.5 * np.sin(2 * np.pi * 440 * t)), (second_at, 0.3 * np.sin(2 * np.pi * 880 * t))]
    path = tmp_path / "jump.mkv"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("pcm_s16le", rate=sr)
        stream.layout = "mono"
        for at, wave in parts:
            pcm = np.round(wave * 32767).astype(np.int16)
            for i in range(0, sr, sr // 2):  # half-second frames keep the overlapped stamps increasing
                frame = av.AudioFrame.from_ndarray(pcm[None, i:i + sr // 2], format="s16", layout="mono")
                frame.sample_rate, frame.pts = sr, int(round(at * sr)) + i
                frame.time_base = Fraction(1, sr)
                out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    got = read_audio(path, sample_rate=sr)[0].numpy()
    cut = int(min(second_at, 1.0) * sr)
    expected = np.concatenate([parts[0][1][:cut], np.zeros(max(0, int(second_at * sr) - sr)), parts[1][1]])
    assert len(expected) == int((second_at + 1.0) * sr)
    assert len(expected) <= len(got) <= len(expected) + sr // 1000  # Matroska keeps whole milliseconds
    assert np.abs(got[:len(expected)] - expected).max() < 1e-3 and not got[len(expected):].any()
