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
from cli_helpers import run_cli

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
    assert rows[0].startswith("epoch,step,train_loss,val_loss,val_sdr,val_sir,val_sar,val_sdri,val_si_sdr,val_si_sdri,"
                              "lr,seconds")  # then the engine's timing columns (s/step, clips/s, memory)
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
    assert code == 0, err
    assert (tmp_path / "auto" / "soundmap.png").is_file() and not (tmp_path / "auto" / "source_0.mp4").exists()
    found = json.loads((tmp_path / "auto" / "separation.json").read_text())
    assert found["regions"] == "auto" and 1 <= len(found["sources"]) <= 4
    assert found["sources"][0]["label"] == "found 0"  # what the model found (or the whole picture)
    assert set(found["files"]) == {p.name for p in (tmp_path / "auto").iterdir()}


def test_separate_replaces_only_what_an_earlier_separate_wrote(run_dir: Path, data: Path, tmp_path: Path,
                                                               capsys) -> None:
    duet = data / "duet" / read_manifest(data / "duet")[0]["path"]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine\n")
    code, stdout, err = run_cli(capsys, "separate", duet, "--run", run_dir, "--out", mine, "--overwrite")
    assert code == 2 and "not an 'avkit separate' output folder" in err and len(err.strip().splitlines()) == 1
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
    # an earlier separation.json lists what it wrote: a stale stem goes, a name outside the folder is never touched
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (tmp_path / "precious.wav").write_text("keep\n")
    (earlier / "source_7.wav").write_text("stale\n")
    (earlier / "notes.txt").write_text("mine\n")
    (earlier / "separation.json").write_text(json.dumps({"files": ["source_7.wav", "../precious.wav", "separation.json"]}))
    code, stdout, err = run_cli(capsys, "separate", duet, "--run", run_dir, "--out", earlier, "--overwrite",
                                "--regions", "whole", "--no-video")
    assert code == 0, err
    assert (tmp_path / "precious.wav").read_text() == "keep\n" and (earlier / "notes.txt").read_text() == "mine\n"
    assert not (earlier / "source_7.wav").exists()
    assert sorted(p.name for p in earlier.iterdir()) == sorted(["mixture.wav", "source_0.wav", "residual.wav",
                                                                "soundmap.png", "separation.json", "notes.txt"])
    assert not [p.name for p in tmp_path.iterdir() if "avkit-" in p.name]  # no staging folder or journal left


def test_load_and_separate_arrays_at_any_sample_rate(run_dir: Path, data: Path) -> None:
    from avkit.apps import separation
    from avkit.apps.separation.data import SoloLibrary

    sep = separation.load(run_dir, device="cpu")
    assert isinstance(sep, separation.Separator) and not sep.net.training and sep.sample_rate == SR
    lib = SoloLibrary.from_options(data / "val", "", sep.opts)
    first = lib.clips[0]
    second = next(c for c in lib.clips if c.label != first.label)
    n = min(len(first.audio), len(second.audio))
    mixture = (first.audio[:n] + second.audio[:n]).numpy()
    frames = [first.frames.numpy(), second.frames.numpy()]
    stems = separation.separate(mixture, SR, frames, run=sep)
    assert [s.shape for s in stems] == [(n,), (n,)] and all(s.dtype == np.float32 for s in stems)
    assert np.abs(stems[0] - stems[1]).max() > 1e-4  # the two pictures ask for different sounds
    swapped = separation.separate(mixture, SR, frames[::-1], run=sep)
    np.testing.assert_array_equal(swapped[0], stems[1])  # one output per source, in the order given
    np.testing.assert_array_equal(swapped[1], stems[0])
    # the same as separating at the model's rate from the run directory (loaded on the way)
    np.testing.assert_array_equal(separation.separate(mixture, SR, frames, run=run_dir)[0], stems[0])
    # another sample rate and another picture size: resampled and scaled to the model's, returned at the caller's
    import torchaudio.functional as AF

    mixture_16k = AF.resample(torch.from_numpy(mixture), SR, 16000).numpy()
    bigger = [np.repeat(np.repeat(f, 2, axis=1), 2, axis=2) for f in frames]
    stems_16k = separation.separate(mixture_16k, 16000, bigger, run=sep)
    assert [s.shape for s in stems_16k] == [mixture_16k.shape] * 2
    back = AF.resample(torch.from_numpy(stems_16k[0]), 16000, SR).numpy()[:n]
    assert np.corrcoef(back[: len(back)], stems[0][: len(back)])[0, 1] > 0.9


@pytest.mark.parametrize("call,expected", [
    (lambda s, m, f: s.separate(m[None], SR, f), "mixture: need mono"),
    (lambda s, m, f: s.separate(m, 0, f), "sample_rate must be a positive integer"),
    (lambda s, m, f: s.separate(m, SR, []), "sources: need one frame array"),
    (lambda s, m, f: s.separate(m, SR, [f[0], f[0].astype(np.float32)]), "sources[1]: need frames uint8"),
    (lambda s, m, f: s.separate(m[:100], SR, f), "mixture: too short"),
])
def test_separate_refuses_bad_arrays_in_one_line(run_dir: Path, call, expected: str) -> None:
    from avkit.apps import separation
    from avkit.errors import AvkitError

    sep = separation.load(run_dir, device="cpu")
    mixture = np.zeros(SR, np.float32)
    frames = [np.zeros((8, 32, 32, 3), np.uint8)]
    with pytest.raises(AvkitError) as err:
        call(sep, mixture, frames)
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_importing_the_package_loads_no_torch() -> None:
    import subprocess
    import sys

    code = "import sys, avkit.apps.separation as s; assert callable(s.load); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_recipe_options_are_read_one_way(data: Path, tmp_path: Path) -> None:
    from avkit.errors import AvkitError

    def task(**changes) -> SeparationTask:
        recipe = tiny_recipe(data, tmp_path / "unused")
        for section, values in changes.items():
            recipe[section] = {**recipe[section], **values}
        return SeparationTask(config_from_dict(recipe))

    with pytest.raises(AvkitError, match=r"unknown config key 'task_options.segment_frame' \(did you mean segment_frames"):
        task(task_options={"segment_frame": 8})
    with pytest.raises(AvkitError, match=r"'task_options.stft.nfft' \(did you mean n_fft"):
        task(task_options={"stft": {"nfft": 512}})
    with pytest.raises(AvkitError, match=r"'model.audio_options/video_options.unet_widht' \(did you mean unet_width"):
        task(model={"audio_options": {"unet_widht": 4}})
    with pytest.raises(AvkitError, match="task_options.weight must be log1p, magnitude or none"):
        task(task_options={"weight": "loud"})
    with pytest.raises(AvkitError, match="task_options.mask must be 'ratio' or 'binary'"):
        task(task_options={"mask": "soft"})
    t = task(task_options={"num_mix": "2,3", "fps": "6", "stft": {"hop": "128"}})  # strings as on a command line
    assert t.opts.num_mix == [2, 3] and t.opts.fps == 6.0 and t.stft.hop == 128 and t.net.channels == 8
    assert t.build_model().spectral.cfg.hop == 128


def test_eval_refuses_classification_settings_on_a_separation_run(run_dir: Path, capsys) -> None:
    code, stdout, err = run_cli(capsys, "eval", run_dir, "--clips", "4")
    assert code == 2 and stdout == "" and len(err.strip().splitlines()) == 1
    assert "--clips" in err and "only for classification runs" in err


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
    assert set(m) == {"model", "mixture", "irm", "ibm", "psm"} and m["irm"]["sdr"] > m["mixture"]["sdr"]
    assert (tmp_path / "mix" / "source_1.mp4").is_file() and (tmp_path / "mix" / "mixture.wav").is_file()


def test_eval_dispatches_to_the_separation_evaluation(run_dir: Path, capsys) -> None:
    code, stdout, err = run_cli(capsys, "eval", run_dir)
    assert code == 0, err
    assert "IRM" in stdout and "sdri" in stdout
    result = json.loads((run_dir / "eval.json").read_text())
    assert result["task"] == "separation" and set(result["summary"]) == {"2", "3", "all"}
    assert result["num_mixtures"] == 4 and len(result["mixtures"]) == 4  # the recipe's val_length
    assert stdout.strip() in (run_dir / "eval.md").read_text()  # the table printed is the table written
    code, stdout, err = run_cli(capsys, "eval", run_dir, "--json", "--overwrite")
    assert code == 0, err
    printed = json.loads(stdout)
    assert "mixtures" not in printed and set(printed["summary"]) == {"2", "3", "all"} and printed["num_mixtures"] == 4


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
