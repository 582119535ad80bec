"""probe(): streams, default stream choice, rotation/aspect fields, and clear errors."""
from __future__ import annotations

import json

import av
import numpy as np
import pytest
from conftest import shared_audio, shared_videos

from avkit.errors import MediaError
from avkit.io import probe, write_video


@pytest.fixture(scope="session")
def small_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("io_probe")
    frames = np.zeros((10, 32, 48, 3), np.uint8)
    frames[:, :, :, 1] = np.arange(10, dtype=np.uint8)[:, None, None] * 20
    wave = np.sin(np.linspace(0, 200, 8000)).astype(np.float32) * 0.3
    files = {
        "av": write_video(d / "av.mp4", frames, fps=10, audio=wave, sample_rate=8000),
        "video_only": write_video(d / "v.mp4", frames, fps=5),
    }
    (d / "empty.mp4").write_bytes(b"")
    (d / "random.bin").write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    (d / "notes.txt").write_text("plain text, not media\n" * 50)
    data = files["av"].read_bytes()
    (d / "cut.mp4").write_bytes(data[: len(data) // 2])
    files.update(empty=d / "empty.mp4", random=d / "random.bin", text=d / "notes.txt",
                 cut=d / "cut.mp4", missing=d / "nope.mp4", directory=d)
    return files


def test_generated_file(small_files):
    info = probe(small_files["av"])
    assert info.container.startswith("mov,mp4")
    assert [s.type for s in info.streams] == ["video", "audio"]
    v, a = info.video, info.audio
    assert (v.width, v.height, v.fps, v.frame_count) == (48, 32, 10.0, 10)
    assert v.rotation == 0 and v.sample_aspect_ratio == 1.0 and v.codec == "h264"
    assert v.duration == pytest.approx(1.0, abs=0.05)
    assert (a.sample_rate, a.channels, a.codec) == (8000, 1, "aac")
    assert info.duration == pytest.approx(1.0, abs=0.2)
    assert info.size_bytes == small_files["av"].stat().st_size
    d = json.loads(json.dumps(info.to_dict()))  # plain JSON types only
    assert d["video_index"] == 0 and d["streams"][1]["sample_rate"] == 8000


def test_video_without_audio(small_files):
    info = probe(small_files["video_only"])
    assert info.audio_index is None and info.audio is None and info.video.fps == 5.0


@pytest.mark.parametrize("name,reason", [
    ("missing", "no such file"), ("empty", "empty file"), ("random", "not a media file"),
    ("text", "not a media file"), ("cut", "truncated"), ("directory", "directory"),
])
def test_bad_input_names_file_and_reason(small_files, name, reason):
    with pytest.raises(MediaError, match=reason) as err:
        probe(small_files[name])
    assert str(small_files[name]) in str(err.value)
    assert isinstance(err.value, ValueError)


EXPECTED = {  # file: (streams by type, default video index, default audio index, WxH of default video)
    "friday_h264_aac.mp4": (["audio", "video"], 1, 0, (640, 480)),
    "nasa_multistream.mp4": (["video", "audio", "subtitle"] * 2, 3, 1, (480, 270)),
    "pancake_h264_opus.mkv": (["video", "audio"], 0, 1, (426, 240)),
    "tears_of_steel_vp8_vorbis.webm": (["video", "audio"], 0, 1, (800, 332)),
    "test_mpeg4_mp3.avi": (["video", "audio"], 0, 1, (320, 240)),
}


@pytest.mark.parametrize("path", shared_videos(), ids=lambda p: p.name)
def test_shared_videos(media_dir, path):
    info = probe(path)
    assert info.duration and info.duration > 1
    assert info.video.fps and 20 <= info.video.fps <= 31
    assert info.video.rotation == 0
    assert info.audio.sample_rate in (8000, 16000, 44100, 48000) and info.audio.channels in (1, 2)
    if path.name in EXPECTED:
        types, vi, ai, wh = EXPECTED[path.name]
        assert [s.type for s in info.streams] == types
        assert (info.video_index, info.audio_index) == (vi, ai)
        assert (info.video.width, info.video.height) == wh


def test_nasa_streams(media_dir):
    info = probe(media_dir / "video" / "nasa_multistream.mp4")
    assert [s.frame_count for s in info.streams if s.type == "video"] == [325, 390]
    assert [s.sample_rate for s in info.streams if s.type == "audio"] == [8000, 16000]
    assert info.streams[3].fps == pytest.approx(30000 / 1001)


@pytest.mark.parametrize("path", shared_audio()[:3], ids=lambda p: p.name)
def test_audio_only_files(media_dir, path):
    info = probe(path)
    assert info.video_index is None and info.audio.sample_rate > 0 and info.duration > 0.5


def write_mp3(path, bit_rate: int, seconds: float = 5.0):
    """A 440 Hz mono mp3 without a Xing header: its header gives no length."""
    t = np.arange(int(16000 * seconds)) / 16000
    wave = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    with av.open(str(path), "w", format="mp3", options={"write_xing": "0", "id3v2_version": "0"}) as c:
        s = c.add_stream("libmp3lame", rate=16000, layout="mono")
        s.codec_context.bit_rate = bit_rate
        for i in range(0, len(wave), 1152):
            f = av.AudioFrame.from_ndarray(wave[None, i:i + 1152], format="flt", layout="mono")
            f.sample_rate, f.pts = 16000, i
            c.mux(s.encode(f))
        c.mux(s.encode())
    return path


def test_duration_estimated_from_bitrate_is_not_truncation(tmp_path):
    """5 s at 8 kb/s then 5 s at 160 kb/s, no Xing header: FFmpeg guesses ~107 s from the first
    frames' bit rate. probe says it is a guess; reading and checking do not call the file cut."""
    from avkit.io import check_data, read_audio, verify_decode

    path = tmp_path / "vbr.mp3"
    path.write_bytes(write_mp3(tmp_path / "a.mp3", 8000).read_bytes()
                     + write_mp3(tmp_path / "b.mp3", 160000).read_bytes())
    info = probe(path)
    assert info.duration_estimated and info.duration > 50
    wave, sr = read_audio(path)
    assert abs(len(wave) / sr - 10.0) < 0.3
    check_data(path)
    verify_decode(path)
