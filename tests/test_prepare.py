"""``avkit prepare`` (issue #22): clips made frame-accurately, a broken file an error row, a rerun
does no work, the CLI's summary and exit codes."""
from __future__ import annotations

import json
import os
from pathlib import Path

import av
import numpy as np
import pytest

from avkit.cli import main as cli
from avkit.data import VideoDataset
from avkit.data.prepare import PrepareSettings, prepare
from avkit.io import probe, read_clip
from avkit.io.write import write_video

FPS = 10


def _ramp(path: Path, seconds: float = 4.0, size: tuple[int, int] = (48, 64)) -> Path:
    """Frame ``k`` is grey level ``4 * k`` (so a frame's brightness says which it is), a keyframe every
    5 s (longer than the video: every read decodes from the start), a 440 Hz tone."""
    n = int(seconds * FPS)
    frames = np.stack([np.full((*size, 3), 4 * k, np.uint8) for k in range(n)])
    t = np.arange(int(seconds * 16000)) / 16000
    write_video(path, frames, FPS, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16000,
                overwrite=True, gop=5 * FPS)
    return path


@pytest.fixture
def corpus(tmp_path) -> Path:
    """Class folders: three ramps (one longer) and one file that is not a video."""
    root = tmp_path / "corpus"
    for name, cls in (("a", "up"), ("b", "up"), ("c", "down")):
        (root / cls).mkdir(parents=True, exist_ok=True)
        _ramp(root / cls / f"{name}.mp4")
    (root / "down" / "broken.mp4").write_text("not a video\n" * 10)
    return root


def test_broken_file_is_an_error_row_and_a_rerun_does_no_work(corpus, tmp_path):
    out = tmp_path / "prep"
    settings = PrepareSettings(short_side=24, fps=5, keyframe_interval=0.4)
    first = prepare(corpus, out, settings, jobs=2)
    assert (first.sources, first.clips, first.encoded, first.reused) == (4, 3, 3, 0)
    assert [Path(e["source"]).name for e in first.errors] == ["broken.mp4"]
    assert [json.loads(line)["source"] for line in (out / "errors.jsonl").read_text().splitlines()] == [
        str(corpus / "down" / "broken.mp4")]
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert [(Path(r["meta"]["source"]).name, r["label"]) for r in rows] == [("c.mp4", "down"), ("a.mp4", "up"),
                                                                          ("b.mp4", "up")]
    assert json.loads((out / "classes.json").read_text()) == ["down", "up"]
    mtimes = {p: p.stat().st_mtime_ns for p in (out / "clips").iterdir()}
    again = prepare(corpus, out, settings, jobs=2)
    assert (again.clips, again.encoded, again.reused) == (3, 0, 3)
    assert {p: p.stat().st_mtime_ns for p in (out / "clips").iterdir()} == mtimes  # nothing rewritten
    # A source that changes, or other settings, make new clips; the old ones are reported, not listed.
    os.utime(corpus / "up" / "a.mp4", ns=(1, 1))
    changed = prepare(corpus, out, settings, jobs=1)
    assert (changed.encoded, changed.reused, len(changed.stale)) == (1, 2, 1)
    # The prepared folder trains as it is.
    ds = VideoDataset(out, num_frames=4, fps=5.0, size=16, audio="waveform")
    item = ds[0]
    assert item["video"].shape == (3, 4, 16, 16) and item["audio"].abs().max() > 0.1


def test_prepared_frames_are_the_source_frames_at_the_clip_times(tmp_path):
    """A manifest row's segment [1.0, 3.0) at 5 fps: prepared frame k is the source frame shown at
    1.0 + k / 5 s (source frame 10 + 2k, grey 4 * (10 + 2k)), read back frame-accurately by time."""
    data = tmp_path / "data"
    data.mkdir()
    _ramp(data / "ramp.mp4")
    (data / "manifest.jsonl").write_text(json.dumps({"path": "ramp.mp4", "label": "x", "start": 1.0, "end": 3.0,
                                                     "segments": [{"label": "x", "start": 2.5, "end": 3.5}]}) + "\n")
    out = tmp_path / "prep"
    result = prepare(data, out, PrepareSettings(short_side=24, fps=5, keyframe_interval=0.4))
    assert result.errors == [] and result.clips == 1
    row = json.loads((out / "manifest.jsonl").read_text())
    assert row["duration"] == 2.0 and row["segments"] == [{"label": "x", "start": 1.5, "end": 2.0}]
    clip_path = out / row["path"]
    info = probe(clip_path)
    video = info.streams[info.video_index]
    assert (video.height, video.width) == (24, 32) and video.fps == 5 and video.frame_count == 10
    assert info.streams[info.audio_index].sample_rate == 16000
    times = [0.0, 0.2, 0.6, 1.4, 1.8, 0.4]  # out of order: seeks backwards too
    clip = read_clip(clip_path, times=times, audio=False)
    grey = clip.frames.float().mean(dim=(1, 2, 3)).numpy()
    expected = [4 * (10 + round(t * 5) * 2) for t in times]
    # Two H.264 round trips shift greys by up to 3 levels; a neighbouring frame is 8 away.
    assert np.abs(grey - expected).max() < 4, (grey, expected)
    assert np.allclose(clip.timestamps.numpy(), times)
    # A keyframe at least every 0.4 s (2 frames), so a read decodes at most one frame before the one asked.
    keys: list[float] = []
    with av.open(str(clip_path)) as container:
        for packet in container.demux(video=0):
            if packet.is_keyframe and packet.pts is not None:
                keys.append(float(packet.pts * packet.time_base))
    assert keys[0] == 0 and np.diff(keys + [2.0]).max() <= 0.4 + 1e-6, keys  # (x264 may add more at scene cuts)


def test_clip_seconds_cuts_pieces(tmp_path):
    data = tmp_path / "data"
    (data / "k").mkdir(parents=True)
    _ramp(data / "k" / "long.mp4", seconds=4.0)
    out = tmp_path / "prep"
    result = prepare(data, out, PrepareSettings(short_side=16, fps=5, clip_seconds=1.5), jobs=1)
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    # 4 s -> 1.5 + 1.5 + 1.0 (the last piece is at least half a clip, so it is kept)
    assert [(r["meta"]["source_start"], r["meta"]["source_end"]) for r in rows] == [(0, 1.5), (1.5, 3.0), (3.0, 4.0)]
    assert result.encoded == 3


def test_cli_json_and_refusals(corpus, tmp_path, capsys):
    out = tmp_path / "prep"
    assert cli.main(["prepare", str(corpus), str(out), "--short-side", "16", "--fps", "4", "--jobs", "1",
                     "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["clips"] == 3 and summary["encoded"] == 3 and len(summary["errors"]) == 1
    assert cli.main(["prepare", str(corpus), str(out), "--short-side", "16", "--fps", "4", "--jobs", "1"]) == 0
    text = capsys.readouterr().out
    assert "3 clips from 4 videos (0 made, 3 already there)" in text and "broken.mp4" in text
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    assert cli.main(["prepare", str(corpus), str(other)]) == 2
    assert "not an avkit prepare output" in capsys.readouterr().err
    assert cli.main(["prepare", str(corpus), str(tmp_path / "x"), "--keyframe-interval", "0"]) == 2
    assert "keyframe interval must be > 0" in capsys.readouterr().err
