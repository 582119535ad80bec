"""Light commands start without torch (issue #20): ``avkit --help``, ``avkit info FILE`` (PyAV only),
``avkit models`` without ``--flops`` (a listing generated from the registry) and ``avkit doctor
--help``. Each runs in a fresh interpreter that then reports which heavy packages it imported."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

import numpy as np
import pytest

from avkit.io import write_video

HEAVY = ("torch", "torchvision", "torchaudio", "transformers", "cv2")

WRAPPER = f"""
import sys
from avkit.cli.main import main
try:
    rc = main(sys.argv[1:])
except SystemExit as exit:
    rc = exit.code
print("HEAVY=" + ",".join(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)
sys.exit(rc or 0)
"""


def run_cli(*args: str) -> tuple[int, str, str, list[str]]:
    """(exit code, stdout, stderr without the report line, heavy modules imported)."""
    proc = subprocess.run([sys.executable, "-c", WRAPPER, *args], capture_output=True, text=True,
                          timeout=120)
    lines = proc.stderr.splitlines()
    report = [line for line in lines if line.startswith("HEAVY=")]
    assert report, proc.stderr
    heavy = [m for m in report[-1][len("HEAVY="):].split(",") if m]
    return proc.returncode, proc.stdout, "\n".join(line for line in lines if not line.startswith("HEAVY=")), heavy


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    frames = np.full((6, 32, 32, 3), 90, np.uint8)
    return write_video(tmp_path_factory.mktemp("cli_light") / "c.mp4", frames, fps=6,
                       audio=np.zeros(4000, np.float32), sample_rate=8000)


@pytest.mark.parametrize("args", [
    ["--help"], ["info", "--help"], ["doctor", "--help"], ["models", "--help"], ["train", "--help"],
])
def test_help_without_torch(args):
    rc, out, err, heavy = run_cli(*args)
    assert rc == 0 and "usage: avkit" in out, err
    assert heavy == []


def test_info_without_torch(clip):
    rc, out, err, heavy = run_cli("info", str(clip))
    assert rc == 0 and "h264" in out and "8000 Hz" in out, err
    assert heavy == []
    rc, out, err, heavy = run_cli("info", str(clip), "--json", "--verify")
    assert rc == 0 and json.loads(out)["streams"][0]["frame_count"] == 6, err
    assert heavy == []


def test_info_error_without_torch(tmp_path):
    rc, out, err, heavy = run_cli("info", str(tmp_path / "missing.mp4"))
    assert rc == 2 and err.startswith("avkit info: error: ") and "missing.mp4" in err
    assert heavy == []


def test_models_listing_without_torch():
    rc, out, err, heavy = run_cli("models", "--json")
    rows = json.loads(out)
    assert rc == 0 and heavy == [], err
    assert {"c3d", "i3d", "single_frame"} <= {r["name"] for r in rows}
    c3d = next(r for r in rows if r["name"] == "c3d")
    assert c3d["params"] > 1e6 and c3d["gflops"] is None and c3d["input"] == [3, 16, 112, 112]


def test_listing_matches_the_registry():
    """The listing ``avkit models`` prints without torch is the registry's, model for model.
    Fails after a model is added or changed: regenerate with
    ``python -c "from avkit.cli.models import write_listing; write_listing()"``."""
    from avkit.cli.model_listing import MODELS
    from avkit.cli.models import listing

    assert listing() == MODELS


@pytest.mark.parametrize("options", [
    {}, {"tiny": True}, {"input": "3x4x64x64"}, {"tiny": True, "input": "3x4x64x64"},
])
def test_listed_rows_equal_the_built_ones(options):
    """Listing and building give the same rows (one family, to keep it fast)."""
    from avkit.cli.models import _listed_rows, _live_rows

    args = argparse.Namespace(**{"family": "c3d", "tiny": False, "input": None, "flops": False,
                                 "json": True, **options})
    assert _listed_rows(args) == _live_rows(args)


def test_help_states_each_default_once(capsys: pytest.CaptureFixture) -> None:
    """Every command's help shows a default where there is one, once: never "(default: None)" or a flag's
    "(default: False)", nor a second "(default: ...)" after help text that already gives it."""
    from avkit.cli.main import COMMANDS, build_parser

    for name in COMMANDS:
        with pytest.raises(SystemExit):
            build_parser(only=name).parse_args([name, "--help"])
        text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines anywhere
        assert "(default: None)" not in text and "(default: False)" not in text, name
        assert text.count("(default: best)") <= 1, name
    with pytest.raises(SystemExit):
        build_parser(only="batch").parse_args(["batch", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: a local Ray on this machine)" in text and "(default: 1)" in text  # kept where given


def test_main_in_a_callers_process_leaves_the_collector_alone(clip, capsys: pytest.CaptureFixture) -> None:
    """Only the ``avkit`` program (``cli``, ``own_process``) turns the collector off and freezes what it imported;
    ``main`` called from Python (a notebook, these tests) must not: frozen objects are never freed."""
    import gc

    from avkit.cli.main import main

    frozen = gc.get_freeze_count()
    assert main(["info", str(clip)]) == 0
    assert gc.isenabled() and gc.get_freeze_count() == frozen
