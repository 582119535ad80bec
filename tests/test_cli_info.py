"""``avkit info``: table, JSON, and one-line errors with exit code 2."""
from __future__ import annotations

import json

import numpy as np
import pytest

import avkit.cli.main as cli
from avkit.io import write_video


@pytest.fixture(autouse=True)
def only_info(monkeypatch):
    """Build the CLI with just this command, so the test does not depend on the others."""
    monkeypatch.setattr(cli, "COMMANDS", ["info"])


@pytest.fixture(scope="session")
def clip(tmp_path_factory):
    frames = np.full((6, 32, 32, 3), 90, np.uint8)
    wave = np.zeros(4000, np.float32)
    return write_video(tmp_path_factory.mktemp("cli_info") / "c.mp4", frames, fps=6, audio=wave,
                       sample_rate=8000)


def test_table(clip, capsys):
    assert cli.main(["info", str(clip)]) == 0
    out = capsys.readouterr().out
    assert "h264" in out and "32x32" in out and "8000 Hz" in out and "0*" in out


def test_json(clip, capsys):
    assert cli.main(["info", str(clip), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["video_index"] == 0 and info["audio_index"] == 1
    assert info["streams"][0]["frame_count"] == 6


@pytest.mark.parametrize("content", [None, b"", b"not a video at all\n" * 20])
def test_bad_file_one_line_exit_2(tmp_path, capsys, content):
    path = tmp_path / "bad.mp4"
    if content is not None:
        path.write_bytes(content)
    assert cli.main(["info", str(path)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("avkit info: error: ") and str(path) in lines[0]
    assert "Traceback" not in captured.err and captured.out == ""


def test_multistream_marks_defaults(media_dir, capsys):
    assert cli.main(["info", str(media_dir / "video" / "nasa_multistream.mp4")]) == 0
    out = capsys.readouterr().out
    assert "3*" in out and "1*" in out and "0*" not in out
