"""Separation as an engine task, end to end on tiny data: a short training run lowers the loss, the
visual input decides which source comes out, and ``avkit separate`` / ``avkit eval`` use the run
(writing their files, refusing to overwrite, one-line errors for bad inputs)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import avkit.cli.main as cli
from avkit.apps.separation.data import collate
from avkit.apps.separation.task import SeparationTask
from avkit.data.synthetic import generate, read_manifest
from avkit.engine.config import config_from_dict
from avkit.engine.trainer import train
from avkit.io import write_video

SR = 11025


def tiny_recipe(data: Path, out: Path, **train_opts) -> dict:
    return {
        "task": "separation",
        "task_options": {"channels": 8, "num_mix": [2], "val_num_mix": [2, 3], "segment_frames": 16,
                         "train_length": 16, "val_length": 4, "num_frames": 2},
        "data": {"source": str(data / "train"), "val_source": str(data / "val"), "train_split": "", "val_split": "",
                 "batch_size": 8},
        "model": {"audio": "unet", "audio_options": {"unet_width": 4, "unet_depth": 3, "unet_blocks": 0},
                  "video": "cnn", "video_options": {"visual_width": 4}},
        "optim": {"lr": 0.003, "weight_decay": 0.0},
        "train": {"output_dir": str(out), "epochs": 2, "progress": False, "tensorboard": False, **train_opts},
    }


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sep_train")
    generate("instruments", root / "train", 15, seed=21, sample_rate=SR, duration=1.0)
    generate("instruments", root / "val", 6, seed=22, sample_rate=SR, duration=1.0)
    generate("instruments", root / "duet", 2, seed=23, sample_rate=SR, duration=1.0, duets=1.0)
    return root


@pytest.fixture(scope="module")
def run_dir(data: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sep_run") / "run"
    cfg = config_from_dict(tiny_recipe(data, out))
    result = train(cfg, quiet=True)
    assert result.best_key == "val_sdr" and result.epochs_done == 2
    return out


def test_a_short_training_run_lowers_the_loss_and_the_picture_picks_the_source(data: Path, tmp_path: Path) -> None:
    cfg = config_from_dict(tiny_recipe(data, tmp_path / "unused"))
    task = SeparationTask(cfg)
    train_set, _ = task.datasets()
    torch.manual_seed(0)
    model = task.build_model()
    batch = collate([train_set[i] for i in range(6)])
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for _ in range(25):
        model.train()
        loss, _, _ = task.train_step(model, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:3]), losses
    model.eval()
    spec, mag = model.spectral.features(batch["audio"].sum(1))
    log_mag = model.spectral.log_magnitude(mag).unsqueeze(1)
    with torch.no_grad():
        logits = model(log_mag, batch["frames"][:, :2])
        swapped = model(log_mag, batch["frames"][:, [1, 0]])
    torch.testing.assert_close(swapped, logits[:, [1, 0]])  # swapping the pictures swaps the outputs
    masks = torch.sigmoid(logits)
    assert (masks[:, 0] - masks[:, 1]).abs().mean() > 0.1  # and the two pictures ask for different sounds
    # the mask each picture asks for is closer to its own source's ideal mask than to the other's
    src = model.spectral.warp(model.spectral.stft(batch["audio"][:, :2]).abs())
    irm = src / src.sum(1, keepdim=True).clamp_min(1e-8)
    w = torch.log1p(mag).unsqueeze(1)
    own = ((masks - irm).abs() * w).sum()
    other = ((masks - irm[:, [1, 0]]).abs() * w).sum()
    assert own < 0.8 * other


def test_the_engine_trains_separation_with_its_own_metrics(run_dir: Path) -> None:
    rows = (run_dir / "metrics.csv").read_text().splitlines()
    assert rows[0] == ("epoch,step,train_loss,val_loss,val_sdr,val_sir,val_sar,val_sdri,val_si_sdr,val_si_sdri,"
                       "lr,seconds")
    assert len(rows) == 3
    report = (run_dir / "report.md").read_text()
    assert "per number of sources" in report and "| 3 |" in report and (run_dir / "sdr.png").is_file()
    from avkit.engine.checkpoint import read_meta

    meta = read_meta(run_dir / "best.safetensors")
    assert meta["task"] == "separation" and meta["separation"]["net"]["channels"] == 8


def test_resume_continues_the_same_run(data: Path, run_dir: Path, tmp_path: Path) -> None:
    import csv

    full = list(csv.DictReader((run_dir / "metrics.csv").open()))  # the same recipe, trained in one go
    cfg = config_from_dict(tiny_recipe(data, tmp_path / "part", stop_after_epoch=1))
    assert train(cfg, quiet=True).stopped
    resumed = train(config_from_dict(tiny_recipe(data, tmp_path / "part")), resume=True, quiet=True)
    assert [r["train_loss"] for r in resumed.history] == pytest.approx([float(r["train_loss"]) for r in full],
                                                                      rel=1e-5)


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def test_separate_writes_stems_videos_and_a_sound_map(run_dir: Path, data: Path, tmp_path: Path, capsys) -> None:
    duet = data / "duet" / read_manifest(data / "duet")[0]["path"]
    out = tmp_path / "sep"
    code, stdout, err = run_cli(capsys, "separate", duet, "--run", run_dir, "--out", out, "--regions", "2x1")
    assert code == 0, err
    record = json.loads((out / "separation.json").read_text())
    assert len(record["sources"]) == 2 and record["sources"][0]["box"] == [0, 0, 16, 32]
    for name in ("source_0.wav", "source_1.wav", "source_0.mp4", "source_1.mp4", "residual.wav", "residual.mp4",
                 "mixture.wav", "soundmap.png", "soundmap.mp4"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    from avkit.io import probe, read_audio

    stems = [read_audio(out / f"source_{k}.wav", sample_rate=SR)[0].numpy() for k in range(2)]
    mixture = read_audio(out / "mixture.wav", sample_rate=SR)[0].numpy()
    residual = read_audio(out / "residual.wav", sample_rate=SR)[0].numpy()
    np.testing.assert_allclose(stems[0] + stems[1] + residual, mixture, atol=1e-5)  # nothing is lost
    assert probe(out / "source_0.mp4").audio is not None and probe(out / "source_0.mp4").video.width >= 128
    assert "2 source(s)" in stdout and "real time" in stdout
    # never overwrite without --overwrite; with it, only its own files are replaced
    (out / "notes.txt").write_text("mine\n")
    code, stdout, err = run_cli(capsys, "separate", duet, "--run", run_dir, "--out", out)
    assert code == 2 and "already exists" in err and "--overwrite" in err and stdout == ""
    code, stdout, err = run_cli(capsys, "separate", duet, "--run", run_dir, "--out", out, "--overwrite",
                                "--regions", "whole", "--no-video", "--json")
    assert code == 0, err
    result = json.loads(stdout)
    assert len(result["sources"]) == 1 and result["real_time_factor"] > 0
    assert (out / "notes.txt").read_text() == "mine\n"
    assert not (out / "source_1.wav").exists() and not (out / "source_0.mp4").exists()  # stale outputs gone
    code, stdout, err = run_cli(capsys, "separate", duet, "--run", run_dir, "--out", tmp_path / "auto", "--no-video")
    assert code == 0, err and (tmp_path / "auto" / "soundmap.png").is_file()


def test_the_two_video_demo_prints_metrics(run_dir: Path, data: Path, tmp_path: Path, capsys) -> None:
    rows = read_manifest(data / "val")
    first = rows[0]
    second = next(r for r in rows if r["label"] != first["label"])
    a, b = data / "val" / first["path"], data / "val" / second["path"]
    code, stdout, err = run_cli(capsys, "separate", a, b, "--run", run_dir, "--out", tmp_path / "mix")
    assert code == 0, err
    assert "metrics" in stdout and "model" in stdout and "mixture" in stdout and "IRM" in stdout and "IBM" in stdout
    record = json.loads((tmp_path / "mix" / "separation.json").read_text())
    m = record["metrics"]["mean"]
    assert set(m) == {"model", "mixture", "irm", "ibm"} and m["irm"]["sdr"] > m["mixture"]["sdr"]
    assert (tmp_path / "mix" / "source_1.mp4").is_file() and (tmp_path / "mix" / "mixture.wav").is_file()


def test_eval_dispatches_to_the_separation_evaluation(run_dir: Path, capsys) -> None:
    code, stdout, err = run_cli(capsys, "eval", run_dir)
    assert code == 0, err
    assert "IRM" in stdout and "sdri" in stdout
    result = json.loads((run_dir / "eval.json").read_text())
    assert result["task"] == "separation" and set(result["summary"]) == {"2", "3", "all"}
    assert (run_dir / "eval.md").is_file()


@pytest.fixture(scope="module")
def bad(tmp_path_factory, data: Path) -> dict[str, Path]:
    import soundfile

    d = tmp_path_factory.mktemp("sep_bad")
    silent = write_video(d / "silent.mp4", np.full((8, 32, 32, 3), 120, np.uint8), fps=8)
    soundfile.write(str(d / "sound_only.wav"), np.zeros(SR, np.float32), SR)
    (d / "classification_run").mkdir()
    (d / "classification_run" / "config.yaml").write_text("task: classification\n")
    return {"silent": silent, "sound_only": d / "sound_only.wav", "not_sep": d / "classification_run",
            "missing": d / "no_such_run", "video": data / "val" / read_manifest(data / "val")[0]["path"], "dir": d}


@pytest.mark.parametrize("line,expected", [
    ("{silent} --out {dir}/o1", "no audio stream"),
    ("{sound_only} --out {dir}/o2", "no video stream"),
    ("{video} --out {dir}/o3 --run {missing}", "run directory not found"),
    ("{video} --out {dir}/o4 --run {not_sep}", "not a separation run"),
    ("{dir}/nothing.mp4 --out {dir}/o5", "no such file"),
    ("{video} --out {dir}/o6 --regions 3y2", "--regions"),
    ("{video} --out {dir}/o7 --regions 9,9,1,1", "--regions"),
    ("{video} {video} {video} --out {dir}/o8", "one video, or two"),
])
def test_bad_inputs_are_one_line_and_exit_2(bad, run_dir: Path, capsys, line: str, expected: str) -> None:
    argv = ["separate", *line.format(**{k: str(v) for k, v in bad.items()}).split()]
    if "--run" not in argv:
        argv += ["--run", str(run_dir)]
    code, stdout, err = run_cli(capsys, *argv)
    assert code == 2 and stdout == ""
    assert len(err.strip().splitlines()) == 1 and expected in err, err
    assert not any(p.name.startswith(".o") for p in bad["dir"].iterdir())  # no staging folder left behind
    shutil.rmtree(bad["dir"] / "o1", ignore_errors=True)
