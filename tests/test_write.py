"""write_video: round trip through PyAV, exact timestamps, odd sizes, overwrite guard, atomicity."""
from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
import torch

from avkit.errors import MediaError, OutputExistsError
from avkit.io.write import write_video

SR = 16000


def _decode(path):
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        frames, times = [], []
        for f in c.decode(video=0):
            frames.append(f.to_ndarray(format="rgb24"))
            times.append(float(f.time))
        has_audio = bool(c.streams.audio)
    audio, sr = None, None
    if has_audio:
        with av.open(str(path)) as c:
            sr = c.streams.audio[0].sample_rate
            audio = np.concatenate([f.to_ndarray()[0] for f in c.decode(audio=0)])
    return np.stack(frames), np.array(times), audio, sr, vs


def _pattern(t=10, h=32, w=48):
    """Smooth colour ramps plus a moving block: each frame differs and is compressible."""
    y, x = np.mgrid[0:h, 0:w]
    frames = np.zeros((t, h, w, 3), np.uint8)
    for k in range(t):
        frames[k, ..., 0] = (x * 255 // (w - 1))
        frames[k, ..., 1] = (y * 255 // (h - 1))
        frames[k, ..., 2] = (40 + 15 * k) % 256
        frames[k, 8:20, 2 * k:2 * k + 10] = 255
    return frames


def test_round_trip(tmp_path):
    frames = _pattern()
    t = np.arange(int(1.5 * SR)) / SR
    audio = (0.4 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    path = write_video(tmp_path / "a.mp4", frames, 8, audio, SR)
    assert path == tmp_path / "a.mp4" and path.stat().st_size > 0
    got, times, wave, sr, vs = _decode(path)
    assert got.shape == frames.shape
    np.testing.assert_allclose(times, np.arange(10) / 8, atol=1e-9)  # frame k at k / fps
    assert vs.codec_context.name == "h264" and vs.codec_context.pix_fmt == "yuv420p"
    assert np.abs(got.astype(int) - frames).mean() < 4
    # The moving block is where it was written, in every frame.
    for k in (0, 5, 9):
        assert got[k, 10:18, 2 * k + 2:2 * k + 8].min() > 200
    assert sr == SR
    # AAC pads to whole 1024-sample frames; the start is aligned (encoder delay trimmed).
    assert len(audio) <= len(wave) < len(audio) + 1024
    assert np.corrcoef(wave[: len(audio)], audio)[0, 1] > 0.99


def test_torch_input_odd_size_and_no_audio(tmp_path):
    frames = torch.from_numpy(_pattern(6, 31, 45))
    path = write_video(tmp_path / "odd.mp4", frames, 10)
    got, times, wave, _, _ = _decode(path)
    assert got.shape == (6, 32, 46, 3)  # padded by one edge row and column
    assert wave is None
    assert np.abs(got[:, :31, :45].astype(int) - frames.numpy()).mean() < 4
    # The pad repeats the edge rather than adding a black line.
    assert np.abs(got[:, 31].astype(int) - got[:, 30]).mean() < 6


def test_fractional_fps_timestamps(tmp_path):
    path = write_video(tmp_path / "ntsc.mp4", _pattern(12), Fraction(30000, 1001))
    _, times, _, _, _ = _decode(path)
    np.testing.assert_allclose(times, np.arange(12) * 1001 / 30000, atol=1e-6)


def test_stereo_audio(tmp_path):
    t = np.arange(SR) / SR
    stereo = np.stack([np.sin(2 * np.pi * 300 * t), np.zeros_like(t)]).astype(np.float32) * 0.3
    path = write_video(tmp_path / "st.mp4", _pattern(8), 8, stereo, SR)
    with av.open(str(path)) as c:
        assert c.streams.audio[0].channels == 2


def test_overwrite_refused(tmp_path):
    path = tmp_path / "x.mp4"
    path.write_bytes(b"keep me")
    with pytest.raises(OutputExistsError):
        write_video(path, _pattern(4), 8, overwrite=False)
    assert path.read_bytes() == b"keep me"
    with pytest.raises(OutputExistsError):
        write_video(path, _pattern(4), 8)  # refusing is the default
    assert path.read_bytes() == b"keep me"
    write_video(path, _pattern(4), 8, overwrite=True)
    assert path.read_bytes() != b"keep me"


def test_failure_mid_encode_keeps_the_old_file_and_leaves_no_partial_file(tmp_path, monkeypatch):
    """The encoder fails once it has written part of the new file (a disk that fills up mid-way):
    the old file is as it was and nothing partial is left, for a replacement and for a new file."""
    path = tmp_path / "old.mp4"
    path.write_bytes(b"previous")
    real = av.VideoFrame.from_ndarray
    partial = []

    def fails_once_written(*args, **kwargs):
        written = [p.stat().st_size for p in tmp_path.iterdir()
                   if p.is_file() and p.stat().st_size > 0 and (p != path or p.read_bytes() != b"previous")]
        if written and max(written) > 4096:  # encoded video (not just the header) is on disk: now it fails
            partial.append(max(written))
            raise RuntimeError("disk on fire")
        return real(*args, **kwargs)

    noise = np.random.default_rng(0).integers(0, 256, (120, 96, 96, 3), dtype=np.uint8)  # big packets
    monkeypatch.setattr(av.VideoFrame, "from_ndarray", fails_once_written)
    with pytest.raises(RuntimeError, match="disk on fire"):
        write_video(path, noise, 8, overwrite=True)
    with pytest.raises(RuntimeError, match="disk on fire"):
        write_video(tmp_path / "new.mp4", noise, 8)
    assert len(partial) == 2  # each failed after encoded video had reached the disk
    assert path.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.mp4"]  # no temp files, no new.mp4


@pytest.mark.parametrize("frames, audio, sr, match", [
    (np.zeros((4, 16, 16, 3), np.float32), None, None, "uint8"),
    (np.zeros((4, 16, 16), np.uint8), None, None, "shape"),
    (np.zeros((0, 16, 16, 3), np.uint8), None, None, "no pixels"),
    (np.zeros((4, 16, 16, 3), np.uint8), np.zeros(100, np.float32), None, "sample_rate"),
    (np.zeros((4, 16, 16, 3), np.uint8), np.full(100, np.nan, np.float32), SR, "NaN"),
    (np.zeros((4, 16, 16, 3), np.uint8), np.zeros((3, 100), np.float32), SR, "audio must be"),
])
def test_bad_input(tmp_path, frames, audio, sr, match):
    with pytest.raises(MediaError, match=match):
        write_video(tmp_path / "bad.mp4", frames, 8, audio, sr)
    assert not (tmp_path / "bad.mp4").exists()


def test_bad_fps(tmp_path):
    with pytest.raises(MediaError, match="fps"):
        write_video(tmp_path / "bad.mp4", _pattern(2), 0)
