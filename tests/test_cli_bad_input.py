"""Every command on a table of bad inputs: exit code 2, one line on stderr naming the problem, no traceback.

Runs the CLI in this process (``avkit.cli.main.main``), so an unexpected exception fails the test
with its traceback instead of being hidden; stdout must stay empty so scripts reading ``--json``
never get half an answer.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import avkit.cli.main as cli
from avkit.io import write_video


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bad_input")
    clip = write_video(d / "ok.mp4", np.full((4, 32, 32, 3), 90, np.uint8), fps=4,
                       audio=np.zeros(4000, np.float32), sample_rate=8000)
    (d / "empty.mp4").write_bytes(b"")
    (d / "text.mp4").write_text("not a video\n")
    (d / "truncated.mp4").write_bytes(clip.read_bytes()[:300])
    (d / "bad.yaml").write_text("data: {source: x\n  bad: [\n")
    (d / "list.yaml").write_text("- 1\n- 2\n")
    (d / "binary.yaml").write_bytes(b"\xff\xfe\x00\x81")
    (d / "unknown_key.yaml").write_text("data: {source: x}\nmodel: {vidoe: c3d}\n")
    (d / "missing_source.yaml").write_text(f"data: {{source: {d / 'no_such_data'}}}\n")
    (d / "not_a_run").mkdir()
    (d / "full").mkdir()
    (d / "full" / "keep.txt").write_text("user data\n")
    (d / "a_file").write_text("x\n")
    files = {p.name.split(".")[0]: p for p in d.iterdir()}
    return files | {"dir": d, "missing": d / "missing"}


# (command line with {name} placeholders from `files`, text the one line must contain)
CASES = [
    ("info {missing}", "no such file"),
    ("info {empty}", "empty.mp4"),
    ("info {text}", "text.mp4"),
    ("info {truncated}", "truncated.mp4"),
    ("info {dir}", "directory"),
    ("generate motion /proc/avkit_test_x", "/proc/avkit_test_x"),
    ("generate motion {a_file}", "a_file"),
    ("generate motion {full}", "already exists"),
    ("generate motion {dir}/g --num 0", "--num"),
    ("generate nokind {dir}/g", "invalid choice"),
    ("generate motion {dir}/g --num many", "invalid int"),
    ("models --flops --input 3x16", "CxTxHxW"),
    ("models --flops --input axbxcxd", "CxTxHxW"),
    ("models --family nope", "nope"),
    ("train {missing}", "recipe not found"),
    ("train {bad}", "line 2, column 6"),
    ("train {list}", "list.yaml"),
    ("train {binary}", "binary.yaml"),
    ("train {unknown_key}", "vidoe"),
    ("train {missing_source}", "no_such_data"),
    ("train {missing_source} train.epochs=many", "train.epochs"),
    ("train {missing_source} nokey=1", "nokey"),
    ("eval {not_a_run}", "not_a_run"),
    ("eval {missing}", "missing"),
    ("classify {text} --run {not_a_run}", "not_a_run"),
    ("quickstart --num 0 --out {dir}/qs", "--num"),
    ("quickstart --models nomodel --out {dir}/qs", "nomodel"),
    ("quickstart --out {a_file}", "a_file"),
    ("quickstart --out {full}", "full"),
    ("quickstart --jobs -1 --out {dir}/qs", "--jobs"),
    ("generate motion {dir}/g --jobs -1", "--jobs"),
    ("nocommand", "invalid choice"),
]


@pytest.mark.parametrize("line,expected", CASES, ids=[c[0].split()[0] + ":" + c[1] for c in CASES])
def test_bad_input_is_one_line_and_exit_2(files, capsys, monkeypatch, tmp_path, line: str, expected: str) -> None:
    monkeypatch.chdir(tmp_path)  # default outputs (runs/run, avkit_runs/...) land here, if anywhere
    argv = line.format(**{k: str(v) for k, v in files.items()}).split()
    try:
        code = cli.main(argv)
    except SystemExit as exit_:  # argparse's usage errors
        code = exit_.code
    out, err = capsys.readouterr()
    assert code == 2, (argv, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("avkit") and expected in lines[0], lines[0]
    assert "Traceback" not in err and out == ""
    assert (files["full"] / "keep.txt").read_text() == "user data\n"  # nothing of the user's was touched
    assert list(tmp_path.iterdir()) == [], "a command that failed on bad input left files behind"
