"""Issue #22's silent traps of a user's own videos: clips without sound, a root of split folders,
loader workers beyond the cores, the cost of evaluation, and where the training time goes."""
from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from torch.utils.data import Dataset

from avkit.engine.build import build_datasets, data_notes, loader_workers
from avkit.engine.config import Config, config_from_dict, load_config
from avkit.engine.evaluate import cost_note
from avkit.engine.timing import TIMING_COLUMNS
from avkit.engine.trainer import train
from avkit.errors import AvkitError
from avkit.fusion import build_fusion
from avkit.models.audiovisual import AudioVisualModel

ROOT = Path(__file__).resolve().parents[1]


def _video(path: Path, shade: int, sound: bool, seconds: float = 1.0) -> None:
    """A tiny clip: a flat colour (the class) with a tone, or without an audio stream."""
    from avkit.io.write import write_video

    fps, sr = 8, 16000
    frames = np.full((int(seconds * fps), 32, 32, 3), shade, dtype=np.uint8)
    frames[:, :, :, 1] = (np.arange(len(frames)) * 20 % 255)[:, None, None]
    audio = (0.3 * np.sin(2 * np.pi * 440 * np.arange(int(seconds * sr)) / sr)).astype(np.float32) if sound else None
    path.parent.mkdir(parents=True, exist_ok=True)
    write_video(path, frames, fps, audio=audio, sample_rate=sr if sound else None)


def _folders(root: Path, splits: dict[str, int], silent: tuple[str, ...] = ()) -> Path:
    """``root/<split>/<class>/<n>.mp4`` for classes a and b (``split`` "" = class folders at the root)."""
    for split, n in splits.items():
        for c, shade in (("a", 40), ("b", 200)):
            for i in range(n):
                name = f"{c}{i}.mp4"
                _video(root / split / c / name, shade, sound=name not in silent)
    return root


@pytest.fixture(scope="module")
def split_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _folders(tmp_path_factory.mktemp("splits") / "data", {"train": 3, "val": 2, "test": 1})


def _cfg(source: Path, out: Path, **data: object) -> Config:
    return config_from_dict({
        "data": {"source": str(source), "num_frames": 8, "fps": 8.0, "size": 32, "resize": 32, "batch_size": 4,
                 "test_clips": 1, "test_crops": 1, **data},
        "model": {"video": "c3d", "video_options": {"width": 4, "fc_dim": None}},
        "train": {"output_dir": str(out), "epochs": 1, "progress": False, "tensorboard": False}})


# -- a root of split folders -------------------------------------------------------------------

def test_split_folders_are_splits_not_classes(split_root: Path, tmp_path: Path) -> None:
    cfg = _cfg(split_root, tmp_path / "run")
    train_set, val_set = build_datasets(cfg.data)
    assert train_set.classes == ["a", "b"] and val_set.classes == ["a", "b"]  # not "train", "val", "test"
    assert len(train_set) == 6 and len(val_set) == 4
    assert all("/train/" in r.path for r in train_set.records) and all("/val/" in r.path for r in val_set.records)
    notes = data_notes(cfg, train_set, val_set)
    assert any("split folders train/, val/, test/" in n and "validating on val/ (4 videos)" in n for n in notes)


def test_split_folders_without_val_train_and_say_so(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = _folders(tmp_path / "data", {"train": 2})
    result = train(_cfg(root, tmp_path / "run"))
    out = capsys.readouterr().out
    assert "no validation data" in out and "split folders train/" in out
    assert result.epochs_done == 1 and (tmp_path / "run" / "best.safetensors").is_file()


# -- clips without sound ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def silent_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Class folders a/ and b/, where b1.mp4 has no audio stream."""
    return _folders(tmp_path_factory.mktemp("silent") / "data", {"": 3}, silent=("b1.mp4",))


def test_missing_audio_policies(silent_root: Path) -> None:
    from avkit.data import VideoDataset

    with pytest.raises(AvkitError, match=r"1 of 6 videos have no audio stream \(b/b1.mp4\).*data.missing_audio=zeros"):
        VideoDataset(silent_root, audio="waveform", missing_audio="error", num_frames=4, size=32)
    with pytest.raises(AvkitError, match="have no audio stream"):  # the Python default, as in recipes
        VideoDataset(silent_root, audio="spectrogram", num_frames=4, size=32)
    kept = VideoDataset(silent_root, audio="waveform", missing_audio="zeros", num_frames=4, size=32)
    assert len(kept) == 6 and [Path(p).name for p in kept.without_audio] == ["b1.mp4"]
    silent_index = next(i for i, r in enumerate(kept.records) if r.path.endswith("b1.mp4"))
    assert kept[silent_index]["has_audio"] is False and kept[0]["has_audio"] is True
    dropped = VideoDataset(silent_root, audio="waveform", missing_audio="drop", num_frames=4, size=32)
    assert len(dropped) == 5 and not any(r.path.endswith("b1.mp4") for r in dropped.records)
    assert VideoDataset(silent_root, num_frames=4, size=32).without_audio == []  # no sound read: nothing to check


def test_a_labelled_subset_reports_only_its_own_silent_videos(silent_root: Path) -> None:
    from avkit.engine.build import build_datasets
    from avkit.engine.config import config_from_dict

    dropped_it = 0
    for seed in range(8):
        data = config_from_dict({"data": {"source": str(silent_root), "audio": True, "missing_audio": "zeros",
                                          "num_frames": 4, "size": 32, "label_fraction": 0.34,
                                          "label_seed": seed}}).data
        train, _ = build_datasets(data)
        kept = {r.path for r in train.records}
        assert len(kept) == 2 and set(train.without_audio) <= kept, seed
        dropped_it += not train.without_audio
    assert dropped_it  # some seed leaves the silent video out, and then it is not reported


def test_missing_audio_in_train_eval_and_classify(silent_root: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    from avkit.engine.classify import classify_video
    from avkit.engine.evaluate import evaluate, format_table

    av = {"audio": "audio_cnn", "audio_options": {"width": 4}, "fusion": "concat", "modality_dropout": 0.3}
    with pytest.raises(AvkitError, match="b/b1.mp4.*data.missing_audio"):  # the default: a run using sound stops
        train(_cfg(silent_root, tmp_path / "refused", audio=True).to_dict() | {"model": {"video": "c3d", **av}})
    assert not (tmp_path / "refused").exists()

    cfg = _cfg(silent_root, tmp_path / "run", audio=True, missing_audio="zeros", val_source=str(silent_root))
    cfg.model.video_options = {"width": 4, "fc_dim": None}
    cfg.model.audio, cfg.model.audio_options, cfg.model.fusion = "audio_cnn", {"width": 4}, "concat"
    cfg.model.modality_dropout = 0.3
    train(cfg)
    out = capsys.readouterr().out
    assert "sound: 1 of 6 training video(s) have no audio stream (b/b1.mp4)" in out
    assert "## Data" in (tmp_path / "run" / "report.md").read_text()

    result = evaluate(tmp_path / "run")
    assert result["without_audio"] == {"policy": "zeros", "videos": [str(silent_root / "b" / "b1.mp4")]}
    assert json.loads((tmp_path / "run" / "eval.json").read_text())["without_audio"]["videos"]
    assert "1 video(s) without an audio stream, scored with their sound marked absent" in format_table(result)

    silent = classify_video(silent_root / "b" / "b1.mp4", tmp_path / "run", top=1)
    assert silent.has_audio is False and "no audio stream" in silent.note and "marked absent" in silent.note
    heard = classify_video(silent_root / "b" / "b0.mp4", tmp_path / "run", top=1)
    assert heard.has_audio is True and heard.note == ""
    with pytest.raises(AvkitError, match="no audio stream.*--missing-audio zeros"):
        classify_video(silent_root / "b" / "b1.mp4", tmp_path / "run", missing_audio="error")


# -- presence-aware fusion ------------------------------------------------------------------------

class _Enc(nn.Module):
    def __init__(self, dim_in: int, out_dim: int = 16) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(dim_in, out_dim), nn.ReLU())
        self.out_dim = out_dim

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _av(modality_dropout: float = 0.0, fusion: str = "concat") -> AudioVisualModel:
    return AudioVisualModel(_Enc(3), _Enc(16), build_fusion(fusion, {"video": 16, "audio": 16}, 3),
                            modality_dropout=modality_dropout)


def _toy_av(n: int, g: torch.Generator, classes: tuple[int, ...], silent: tuple[int, ...]) -> dict:
    """Video says the class (noisily); audio is noise with no class in it, except that the ``silent``
    classes have none (zeros, ``has_audio`` False)."""
    y = torch.tensor(classes).repeat(n)
    batch = {"video": torch.randn(len(y), 3, generator=g) + 2.0 * nn.functional.one_hot(y, 3),
             "spectrogram": torch.rand(len(y), 1, 4, 4, generator=g) + 0.5,
             "has_audio": torch.ones(len(y), dtype=torch.bool), "label": y}
    for c in silent:
        batch["spectrogram"][y == c] = 0.0
        batch["has_audio"][y == c] = False
    return batch


def _share_put_in_silent_class(presence_aware: bool) -> float:
    """Train on 3 classes where class 0's clips all lack sound; the share of silent clips of classes
    1 and 2 the model then puts into class 0."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    model = _av(modality_dropout=0.5 if presence_aware else 0.0)
    data = _toy_av(64, g, (0, 1, 2), silent=(0,))
    test = _toy_av(100, g, (1, 2), silent=(1, 2))
    if not presence_aware:  # the old behaviour: silence is just a quiet sound
        del data["has_audio"], test["has_audio"]
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    model.train()
    for _ in range(200):
        loss = nn.functional.cross_entropy(model(data), data["label"])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        return float((model(test).argmax(1) == 0).float().mean())


def test_silence_is_not_a_class_cue_with_presence_aware_fusion() -> None:
    assert _share_put_in_silent_class(presence_aware=False) > 0.8  # the trap: silence means class 0
    assert _share_put_in_silent_class(presence_aware=True) < 0.35  # the picture decides


def test_absent_sound_is_not_heard() -> None:
    torch.manual_seed(0)
    model = _av().eval()
    g = torch.Generator().manual_seed(1)
    batch = _toy_av(2, g, (0, 1), silent=())
    loud = dict(batch, spectrogram=batch["spectrogram"] * 5)
    absent = torch.tensor([False, True, False, True])
    with torch.no_grad():
        a = model(dict(batch, has_audio=absent))
        b = model(dict(loud, has_audio=absent))
        heard = model(loud)
    assert torch.equal(a[~absent], b[~absent]) and not torch.allclose(a[absent], b[absent])  # present: heard
    assert not torch.allclose(heard[~absent], a[~absent])  # absent clips ignore their (louder) sound
    present = model.train().presence({"has_audio": absent}, 4, torch.device("cpu"))
    assert torch.equal(present["audio"], absent)


def test_modality_dropout_keeps_a_modality_per_clip() -> None:
    torch.manual_seed(0)
    model = _av(modality_dropout=0.9).train()
    present = model.presence({"has_audio": torch.rand(4000) < 0.5}, 4000, torch.device("cpu"))
    both = torch.stack([present["video"], present["audio"]])
    assert both.any(dim=0).all() and 0.2 < (~both).float().mean() < 0.6
    assert all(v.all() for v in model.eval().presence({}, 8, torch.device("cpu")).values())


# -- defaults that are slow on a CPU -------------------------------------------------------------

def test_loader_workers_from_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    import avkit.engine.build as build

    for cores, expected in ((1, 0), (2, 1), (4, 3), (64, 8)):
        monkeypatch.setattr(build, "cpu_cores", lambda c=cores: c)
        assert loader_workers("auto") == expected
    assert loader_workers("auto", cache=True) == 0 and loader_workers(3) == 3
    with pytest.raises(AvkitError, match="num_workers"):
        loader_workers("many")
    cfg = load_config(ROOT / "recipes" / "finetune_r2plus1d_ucf.yaml")
    assert cfg.data.num_workers == "auto"
    monkeypatch.setattr(build, "cpu_cores", lambda: 2)
    notes = data_notes(config_from_dict({"data": {"num_workers": 8}}), [], [])
    assert any("data.num_workers=8 with 2 CPU core(s)" in n and "auto picks 1" in n for n in notes)


def test_eval_cost_is_estimated_with_cheaper_flags() -> None:
    note = cost_note(4.0, done=2, total=100, clips=10, crops=3)
    assert note is not None and "about 3.3 min" in note and "--clips 2 --crops 1 is about 15x cheaper" in note
    assert cost_note(0.1, done=2, total=100, clips=10, crops=3) is None  # 5 s: not worth a word


# -- where the time goes ------------------------------------------------------------------------

class _Toy(Dataset):
    classes = ["a", "b"]

    def __init__(self, n: int = 16, delay: float = 0.0) -> None:
        g = torch.Generator().manual_seed(0)
        self.y = torch.arange(n) % 2
        self.x = torch.randn(n, 3, 2, 4, 4, generator=g)
        self.delay = delay

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> dict:
        time.sleep(self.delay)  # a slow loader
        return {"video": self.x[i], "label": int(self.y[i])}


class _Net(nn.Module):
    def __init__(self, delay: float = 0.0) -> None:
        super().__init__()
        self.head = nn.Linear(3 * 2 * 4 * 4, 2)
        self.delay = delay

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(self.delay)  # a slow model
        return self.head(x.flatten(1))


def _timed_run(out: Path, data_delay: float, model_delay: float) -> tuple[list[dict[str, str]], str]:
    cfg = {"data": {"batch_size": 4}, "train": {"output_dir": str(out), "epochs": 2, "progress": False,
                                                "tensorboard": False}}
    train(cfg, model=_Net(model_delay), train_set=_Toy(delay=data_delay), val_set=_Toy(4), quiet=True)
    with (out / "metrics.csv").open() as f:
        return list(csv.DictReader(f)), (out / "report.md").read_text()


def test_timing_columns_and_the_bottleneck(tmp_path: Path) -> None:
    rows, report = _timed_run(tmp_path / "slow_loader", data_delay=0.1, model_delay=0.0)
    assert len(rows) == 2
    for row in rows:
        assert set(TIMING_COLUMNS) <= set(row)
        assert float(row["data_wait"]) > 0.6  # each batch takes 0.4 s to load, the model microseconds (near 0.9 on an idle CPU)
        assert 0.4 < float(row["step_seconds"]) < 4 and 0 < float(row["clips_per_second"]) < 10
        assert float(row["peak_rss_mb"]) > 50 and row["gpu_peak_mb"] == ""
    assert "## Where the time goes" in report and "The loader is the bottleneck" in report

    rows, report = _timed_run(tmp_path / "slow_model", data_delay=0.0, model_delay=0.1)
    assert all(0.0 <= float(r["data_wait"]) < 0.3 and float(r["step_seconds"]) >= 0.1 for r in rows)
    assert "The model is the bottleneck" in report
