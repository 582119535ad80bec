"""A package that fails to load gives one line with the versions and the fix; doctor reports the stack.

The broken packages are simulated the way they break for real: a ``torchaudio`` whose native
library has an undefined symbol (torchaudio 2.11.1 beside torch 2.11.0), and a PyAV without its
FFmpeg libraries. A stand-in package that raises that error is put first on ``PYTHONPATH`` of an
``avkit`` subprocess, so the installed packages stay untouched.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from avkit.environment import avkit_bounds, failed_dependency, fix_command, installed_version, report
from avkit.errors import DependencyError
from avkit.io import write_video

TORCHAUDIO_ERROR = ("/venv/lib/python3.11/site-packages/torchaudio/lib/libtorchaudio.so: "
                    "undefined symbol: torch_exception_get_what_without_backtrace")
PYAV_ERROR = "libavformat.so.62: cannot open shared object file: No such file or directory"


@pytest.fixture(scope="module")
def broken(tmp_path_factory) -> dict[str, Path]:
    """Folders that shadow torchaudio / av with packages failing like the real breakages."""
    root = tmp_path_factory.mktemp("broken")
    dirs = {}
    for name, body in {"torchaudio": f"raise OSError({TORCHAUDIO_ERROR!r})",
                       "av": f"raise ImportError({PYAV_ERROR!r}, name='av._core')"}.items():
        pkg = root / name / name
        pkg.mkdir(parents=True)
        (pkg / "__init__.py").write_text(body + "\n")
        dirs[name] = root / name
    return dirs


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("env") / "c.mp4", np.full((4, 32, 32, 3), 90, np.uint8), fps=4,
                       audio=np.zeros(4000, np.float32), sample_rate=8000)


def avkit(*args: str, shadow: Path | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if shadow is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(shadow), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "avkit", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=300)


def test_broken_torchaudio_stops_training_with_one_line(broken, tmp_path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("data: {source: nowhere}\n")
    res = avkit("train", str(recipe), shadow=broken["torchaudio"])
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    line = lines[0]
    assert f"torchaudio {installed_version('torchaudio')} with torch {installed_version('torch')}" in line
    assert "undefined symbol: torch_exception_get_what_without_backtrace" in line
    assert "site-packages" not in line  # paths cut to the file name
    assert fix_command("torchaudio") in line and "'torch>=" in line


def test_broken_torchaudio_leaves_other_commands_working(broken, clip) -> None:
    assert avkit("--help", shadow=broken["torchaudio"]).returncode == 0
    info = avkit("info", str(clip), "--json", shadow=broken["torchaudio"])
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["streams"][0]["codec"] == "h264"
    doctor = avkit("doctor", "--json", shadow=broken["torchaudio"])
    assert doctor.returncode == 1  # the stack is broken, and doctor says so
    row = json.loads(doctor.stdout)["packages"]["torchaudio"]
    assert row["loads"] is False and "undefined symbol" in row["error"]


def test_python_api_raises_dependency_error_only_where_torchaudio_is_used(broken) -> None:
    code = ("import avkit.data, avkit.models\n"
            "from avkit.errors import DependencyError\n"
            "try:\n    avkit.data.LogMel()(__import__('torch').zeros(16000))\n"
            "except DependencyError as e:\n    print('DependencyError', e.package)\n")
    env = dict(os.environ, PYTHONPATH=str(broken["torchaudio"]))
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert res.stdout.strip() == "DependencyError torchaudio", res.stderr


def test_broken_pyav_names_pyav_and_its_ffmpeg(broken, clip) -> None:
    res = avkit("info", str(clip), shadow=broken["av"])
    assert res.returncode == 2
    line, = res.stderr.strip().splitlines()
    assert f"av {installed_version('av')} fails to load (libavformat.so.62: cannot open shared object" in line
    assert "pip install --force-reinstall 'av>=" in line
    assert avkit("--help", shadow=broken["av"]).returncode == 0
    assert avkit("doctor", shadow=broken["av"]).returncode == 1


def test_failed_dependency_recognises_loader_errors_only() -> None:
    err = failed_dependency(OSError(TORCHAUDIO_ERROR))
    assert isinstance(err, DependencyError) and err.package == "torchaudio"
    assert failed_dependency(ImportError(PYAV_ERROR, name="av._core")).package == "av"
    assert failed_dependency(ImportError("x", name="some_user_module")) is None
    # a user's file that happens to live in a folder called 'av' or 'torch' is not a dependency problem
    assert failed_dependency(FileNotFoundError(2, "No such file or directory", "/data/av/clip.mp4")) is None
    assert failed_dependency(OSError("/data/torch/libx.so: wrong ELF class")) is not None  # loader error


def test_bounds_come_from_the_installed_metadata() -> None:
    bounds = avkit_bounds()
    for dist in ("torch", "torchvision", "torchaudio"):
        assert bounds[dist].startswith(">=") and ",<" in bounds[dist], bounds


def test_doctor_reports_the_installed_set() -> None:
    info = report()
    for name in ("torch", "torchvision", "torchaudio", "av", "cv2", "transformers"):
        row = info["packages"][name]
        assert row["version"] == installed_version(row["distribution"]) and row["loads"], row
    assert info["torch_trio_ok"] and info["ok"]
    assert isinstance(info["torch"]["cuda_available"], bool)
    assert info["ffmpeg"]["libraries"]["libavcodec"] and info["ffmpeg"]["h264_encoder"]
    json.dumps(info)  # JSON-able as it is


def test_cli_kinds_match_the_generators() -> None:
    from avkit.cli.generate import KINDS
    from avkit.data.synthetic import GENERATORS

    assert KINDS == tuple(sorted(GENERATORS))
