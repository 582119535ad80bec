"""``avkit info``: table, JSON, and one-line errors with exit code 2."""
from __future__ import annotations

import json
import subprocess
import sys

import av
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


# -- damaged files: the cheap end check and --verify ---------------------------------------------

@pytest.fixture(scope="session")
def damaged(tmp_path_factory):
    """A faststart mp4 cut to 40% (its index still says 6 s), and an mkv with bytes flipped in the
    middle of its data (its structure and length intact)."""
    d = tmp_path_factory.mktemp("cli_info_damaged")
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (36, 48, 64, 3), dtype=np.uint8)
    whole = write_video(d / "whole.mp4", frames, fps=6, audio=np.zeros(6 * 8000, np.float32), sample_rate=8000)
    data = whole.read_bytes()
    (d / "cut.mp4").write_bytes(data[: len(data) * 2 // 5])
    mkv = d / "whole.mkv"
    with av.open(str(whole)) as src, av.open(str(mkv), "w", format="matroska") as dst:
        out = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.size:
                packet.stream = out
                dst.mux(packet)
    flipped = bytearray(mkv.read_bytes())
    for pos in rng.integers(len(flipped) // 3, len(flipped) * 2 // 3, 40):
        flipped[pos] ^= 0xFF
    (d / "flipped.mkv").write_bytes(bytes(flipped))
    return {"whole": whole, "mkv": mkv, "cut": d / "cut.mp4", "flipped": d / "flipped.mkv"}


def one_line_error(capsys, path) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("avkit info: error: ") and str(path) in lines[0]
    assert captured.out == ""
    return lines[0]


@pytest.mark.parametrize("name", ["whole", "mkv"])
def test_intact_files_pass_both_checks(damaged, capsys, name):
    assert cli.main(["info", str(damaged[name])]) == 0
    assert cli.main(["info", str(damaged[name]), "--verify"]) == 0


def test_truncated_mp4_exits_2(damaged, capsys):
    assert cli.main(["info", str(damaged["cut"])]) == 2
    line = one_line_error(capsys, damaged["cut"])
    assert "truncated" in line and "lasts until 6.00 s" in line
    assert cli.main(["info", str(damaged["cut"]), "--verify"]) == 2
    one_line_error(capsys, damaged["cut"])
    assert cli.main(["info", str(damaged["cut"]), "--no-check"]) == 0  # the header alone is readable


def test_bit_flips_need_verify(damaged, capsys):
    """The cheap check reads no picture data, so flipped bytes inside frames pass it; --verify
    decodes them and fails with the time of the damage."""
    assert cli.main(["info", str(damaged["flipped"])]) == 0
    capsys.readouterr()
    assert cli.main(["info", str(damaged["flipped"]), "--verify"]) == 2
    line = one_line_error(capsys, damaged["flipped"])
    assert "corrupt" in line and " s (" in line


def test_verify_again_and_again_does_not_hang(damaged):
    """FFmpeg's decoder threads logging through PyAV while the main thread waits for them
    deadlocked the second --verify of a damaged file in one process (and hung CI)."""
    code = ("import sys\nfrom avkit.errors import MediaError\nfrom avkit.io.verify import verify_decode\n"
            "for _ in range(10):\n    try:\n        verify_decode(sys.argv[1])\n"
            "    except MediaError:\n        pass\n")
    subprocess.run([sys.executable, "-c", code, str(damaged["flipped"])], check=True, timeout=120)


def test_real_files_pass_both_checks(media_dir, capsys):
    from conftest import shared_videos
    for path in shared_videos():
        assert cli.main(["info", str(path), "--verify"]) == 0, capsys.readouterr().err
        assert cli.main(["info", str(path)]) == 0, capsys.readouterr().err
