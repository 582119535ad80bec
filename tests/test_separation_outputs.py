"""``avkit separate``'s output videos on a picture larger than the outputs' 360 px: drawn and encoded a few
frames at a time (memory flat over the video's length), each source's video dimmed outside its box, and the
boxes and ``--regions`` pixels in the input picture's own pixels, whatever size the outputs are."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import avkit.apps.separation.video as video_module
from avkit.apps.separation import separate_video
from avkit.apps.separation.plots import highlight
from avkit.io import VideoReader, write_video

RATE = 16000


@pytest.fixture(scope="module")
def large_video(tmp_path_factory) -> Path:
    """2.5 s of a 640x480 picture at 12 fps, left half bright, right half mid-grey, with a tone and a noise."""
    path = tmp_path_factory.mktemp("large") / "large.mp4"
    frames = np.full((30, 480, 640, 3), 128, np.uint8)
    frames[:, :, :320] = 220
    frames[:, 200:280, 100:220] = np.arange(30, dtype=np.uint8)[:, None, None, None] * 7  # something that moves
    t = np.arange(int(2.5 * RATE)) / RATE
    audio = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * np.random.default_rng(0).standard_normal(len(t))
    return write_video(path, frames, 12, audio.astype(np.float32), RATE)


def test_pixel_regions_and_boxes_are_the_input_pictures(large_video: Path, tmp_path: Path, monkeypatch) -> None:
    """``--regions`` in the 640x480 input's pixels (the outputs are 480x360): accepted, the boxes come back as
    given, and the videos written 7 frames at a time are the frames dimmed outside each box (the left source's
    right half at 30%), every frame there, with their sound."""
    monkeypatch.setattr(video_module, "OUTPUT_CHUNK", 7)  # 30 frames: four chunks and a short one
    steps: list[str] = []
    result = separate_video(large_video, None, tmp_path / "out", regions="0,0,320,480;320,0,640,480",
                            progress=steps.append)
    assert [m for m in steps if m.startswith("writing the videos")] == [
        f"writing the videos ({k}/30 frames)" for k in (0, 7, 14, 21, 28, 30)]  # what the spinner shows
    record = json.loads((tmp_path / "out" / "separation.json").read_text())
    assert record["frame_size"] == [480, 640]
    assert [s["box"] for s in record["sources"]] == [[0, 0, 320, 480], [320, 0, 640, 480]]
    with VideoReader(large_video) as r:
        source, _ = r.frames_between(0, None, size=360)
    expected = highlight(source.numpy(), (0, 0, 320, 480), (480, 640))
    with VideoReader(tmp_path / "out" / "source_0.mp4") as r:
        got, stamps = r.frames_between(0, None)
        assert r.audio is not None
    assert got.shape == (30, 360, 480, 3) and len(stamps) == 30
    err = np.abs(got.numpy().astype(int) - expected.astype(int))
    assert err.mean() < 2.0, err.mean()  # the same picture, but for H.264's loss
    assert got[:, 100, 400].float().mean() < 45 and got[:, 100, 100].float().mean() > 210  # 128 dimmed; 220 as it is
    for name in ("residual.mp4", "soundmap.mp4", "source_1.mp4"):
        with VideoReader(tmp_path / "out" / name) as r:
            assert len(r.frames_between(0, None)[1]) == 30, name
    assert result.duration == pytest.approx(2.5, abs=0.05)


def test_dimming_is_the_float_formula() -> None:
    """The table look-up that dims a source's video gives what ``uint8(frame * 0.3)`` in float32 gives."""
    frames = np.arange(256, dtype=np.uint8).reshape(1, 1, 256, 1).repeat(3, axis=3)
    out = highlight(frames, (0, 0, 0, 0), (10, 10))  # an empty box: every pixel dimmed
    np.testing.assert_array_equal(out, (frames.astype(np.float32) * 0.3).astype(np.uint8))


def test_a_rotated_videos_regions_and_boxes_are_in_its_displayed_pixels(tmp_path: Path) -> None:
    """A phone video stored 640x480 and displayed 480x640 (rotation 90): ``--regions`` in the displayed
    pixels, with and without the output videos, give the same boxes and the displayed frame size."""
    import av

    shown = np.full((640, 480, 3), 128, np.uint8)
    shown[:, :240] = 220  # the displayed left half is bright
    path = tmp_path / "rotated.mp4"
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = 640, 480, "yuv420p"
        s.set_display_rotation(90)  # counterclockwise: the stored picture is the shown one turned clockwise
        a = c.add_stream("aac", rate=RATE, layout="mono")
        for k in range(20):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(np.rot90(shown, k=-1)), format="rgb24")
            frame.pts = k
            c.mux(s.encode(frame))
        c.mux(s.encode())
        wave = (0.3 * np.sin(2 * np.pi * 330 * np.arange(2 * RATE) / RATE)).astype(np.float32)
        for i in range(0, len(wave), 1024):
            chunk = av.AudioFrame.from_ndarray(wave[None, i:i + 1024], format="flt", layout="mono")
            chunk.sample_rate, chunk.pts = RATE, i
            c.mux(a.encode(chunk))
        c.mux(a.encode())
    with VideoReader(path) as r:
        assert r.frames_at([0.0])[0].shape[1:3] == (640, 480)  # the reader shows it upright
    regions = "0,0,240,640;240,0,480,640"
    for videos in (True, False):
        out = tmp_path / f"out_{videos}"
        separate_video(path, None, out, regions=regions, videos=videos)
        record = json.loads((out / "separation.json").read_text())
        assert record["frame_size"] == [640, 480], videos
        assert [s["box"] for s in record["sources"]] == [[0, 0, 240, 640], [240, 0, 480, 640]]
    with VideoReader(tmp_path / "out_True" / "source_0.mp4") as r:
        got = r.frames_at([0.5])[0][0].numpy().astype(int)
    assert got.shape == (480, 360, 3)  # portrait, the short side at 360
    assert got[240, 60].mean() > 210 and got[240, 300].mean() < 45  # its own half as it is, the other dimmed


def test_a_note_says_when_no_source_looks_like_a_known_instrument(capsys) -> None:
    """On camera footage the namer is sure of nothing: the summary says so and what to give instead; one
    sure name is enough to leave the note out."""
    from avkit.apps.separation.video import SeparationResult
    from avkit.cli.separate import _print

    def result(p: float) -> SeparationResult:
        named = {"instrument": "xylophone", "probability": p, "not_by_timbre": "not sure enough to separate by timbre"}
        sources = [{"label": f"found {k}", "box": [0, 0, 8, 8], "energy": 0.4, "wav": f"source_{k}.wav",
                    "named": dict(named, probability=q)} for k, q in enumerate((0.5, p))]
        return SeparationResult(Path("out"), sources, [], {"separate": 0.1, "total": 0.2}, None, 2.0)

    _print(result(0.69))
    assert "note: no source looks surely like an instrument" in capsys.readouterr().out
    _print(result(0.95))
    assert "note:" not in capsys.readouterr().out
