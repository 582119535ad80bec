"""Faults end in one line (exit 2) naming the file, never a traceback (issue #26): a full disk during
``avkit train`` and ``avkit separate``, and weights that would run code when unpickled
(``model.video_options.weights``, ``model.init``, ``avkit ask --model`` with a pickle
``pytorch_model.bin``) -- which are refused without being run."""
from __future__ import annotations

import errno
import os
import sys
from pathlib import Path

import pytest
import torch
import yaml

import avkit.cli.main as cli
from avkit.data.synthetic import generate, read_manifest
from avkit.engine.config import config_from_dict
from avkit.engine.trainer import train
from avkit.utils import TEMP_MARK

sys.path.insert(0, str(Path(__file__).parent))
from test_separation_train import SR, tiny_recipe  # noqa: E402  (the tiny separation recipe)

NO_SPACE = "No space left on device"


def run_cli(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str]:
    """``avkit ARGV`` in this process: (exit code, its stderr)."""
    capsys.readouterr()  # what came before is not the command's
    code = cli.main([str(a) for a in argv])
    return code, capsys.readouterr().err


def temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if TEMP_MARK in p.name]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("faults")
    generate("instruments", root / "train", 15, seed=21, sample_rate=SR, duration=1.0)
    generate("instruments", root / "val", 6, seed=22, sample_rate=SR, duration=1.0)
    generate("instruments", root / "duet", 2, seed=23, sample_rate=SR, duration=1.0, duets=1.0)
    generate("motion", root / "motion", 10, seed=0, appearance=("stripes", "checker"))
    return root


@pytest.fixture(scope="module")
def run_dir(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("faults_run") / "run"
    train(config_from_dict(tiny_recipe(data, out, epochs=1)), quiet=True)
    return out


def disk_full_after(nbytes: int, raised: type[Exception] = OSError):
    """A writer ``f(*args, path-like at args[1]...)`` that writes ``nbytes`` of the file, then fails as a
    full disk does: an ``OSError(ENOSPC)`` that names no file, or safetensors' own error type."""
    def write(_data: object, path: str, *args: object, **kwargs: object) -> None:
        Path(path).write_bytes(b"\0" * nbytes)
        if raised is OSError:
            raise OSError(errno.ENOSPC, NO_SPACE)
        raise raised(f"Error while serializing: I/O error: {NO_SPACE} (os error 28)")
    return write


@pytest.mark.parametrize("raised", ["oserror", "safetensors"])
def test_a_full_disk_during_train_is_one_line_naming_the_file(data: Path, tmp_path: Path, capsys,
                                                               monkeypatch: pytest.MonkeyPatch, raised: str) -> None:
    from safetensors import SafetensorError

    import avkit.engine.checkpoint as checkpoint

    monkeypatch.setattr(checkpoint, "save_file",
                        disk_full_after(100, OSError if raised == "oserror" else SafetensorError))
    out = tmp_path / "run"
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe(data, out, epochs=1)))
    code, err = run_cli(capsys, "train", recipe)
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert NO_SPACE in err and str(out / "") in err and ".safetensors" in err, err
    assert temp_files(out) == []  # the partial file was removed


@pytest.mark.parametrize("raised", ["oserror", "libsndfile"])
def test_a_full_disk_during_separate_is_one_line_and_keeps_the_old_output(
        run_dir: Path, data: Path, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch, raised: str) -> None:
    import soundfile

    duet = data / "duet" / read_manifest(data / "duet")[0]["path"]
    out = tmp_path / "sep"
    assert run_cli(capsys, "separate", duet, "--run", run_dir, "--out", out, "--no-video")[0] == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def full(path: str, *args: object, **kwargs: object) -> None:
        Path(path).write_bytes(b"RIFF" + b"\0" * 60)
        if raised == "oserror":
            raise OSError(errno.ENOSPC, NO_SPACE)
        raise soundfile.LibsndfileError(2)  # what libsndfile raises on a full disk ("System error.")

    monkeypatch.setattr(soundfile, "write", full)
    code, err = run_cli(capsys, "separate", duet, "--run", run_dir, "--out", out, "--no-video", "--overwrite")
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert f"{out.parent}/.{out.name}" in err and "mixture.wav" in err, err  # the file it was writing (staged)
    assert (NO_SPACE if raised == "oserror" else "System error") in err, err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the earlier output as it was
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".sep")]  # no staging folder left


# ---------------------------------------------------------------------------------------------
# weights that would run code


class _Payload:
    """Unpickled, it creates the marker file: proof that the pickle ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mknod, (str(self.marker),))


def evil_pickle(path: Path, marker: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"weight": torch.zeros(2), "payload": _Payload(marker)}, path)
    return path


def one_line_refusal(code: int, err: str, file: Path, marker: Path) -> None:
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert str(file) in err, err
    assert not marker.exists()  # refused, never unpickled


@pytest.mark.parametrize("where", ["video_options.weights", "init"])
def test_pickled_code_as_model_weights_is_refused_in_one_line(data: Path, tmp_path: Path, capsys, where: str) -> None:
    marker = tmp_path / "MARKER"
    evil = evil_pickle(tmp_path / "evil.pth", marker)
    model = {"video": "r2plus1d_18", "video_options": {"weights": str(evil)}} if where == "video_options.weights" \
        else {"video": "c3d", "video_options": {"width": 4}, "init": str(evil)}
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"data": {"source": str(data / "motion"), "num_frames": 4, "size": 32,
                                               "batch_size": 4},
                                      "model": model,
                                      "train": {"output_dir": str(tmp_path / "run"), "epochs": 1,
                                                "tensorboard": False, "progress": False}}))
    code, err = run_cli(capsys, "train", recipe)
    one_line_refusal(code, err, evil, marker)


def test_ask_refuses_a_pickle_pytorch_model_bin_in_one_line(data: Path, tmp_path: Path, capsys) -> None:
    from tiny_vlm import build_tiny_vlm

    folder = build_tiny_vlm("qwen2_vl", tmp_path / "qwen")
    for f in folder.glob("*.safetensors"):
        f.unlink()
    marker = tmp_path / "MARKER"
    evil = evil_pickle(folder / "pytorch_model.bin", marker)
    clip = data / "motion" / read_manifest(data / "motion")[0]["path"]
    code, err = run_cli(capsys, "ask", clip, "what happens?", "--model", folder)
    one_line_refusal(code, err, evil, marker)
    assert "pickle" in err
