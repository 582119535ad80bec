"""`avkit train --overwrite` trains the new run beside the old one and swaps it in only when it is
complete: a crash mid-training leaves the old run intact (and resumable) and no temporary folder."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn as nn
from torch.utils.data import Dataset

from avkit.engine.trainer import train
from avkit.errors import AvkitError


class Toy(Dataset):
    classes = ["a", "b"]

    def __init__(self, n: int = 16, fail_after: int | None = None) -> None:
        g = torch.Generator().manual_seed(0)
        self.y = torch.arange(n) % 2
        self.x = torch.randn(n, 3, 2, 4, 4, generator=g)
        self.x[torch.arange(n), self.y] += 2.0
        self.fail_after = fail_after  # raise on the item read after this many (a bad batch mid-training)
        self.reads = 0

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> dict:
        self.reads += 1
        if self.fail_after is not None and self.reads > self.fail_after:
            raise RuntimeError("bad batch")
        return {"video": self.x[i], "label": int(self.y[i]), "index": i}


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv3d(3, 4, 3, padding=1)
        self.head = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.conv(x)).mean((2, 3, 4)))


def _cfg(out: Path, epochs: int = 2, **train_kw) -> dict:
    return {"data": {"batch_size": 4}, "optim": {"lr": 0.05},
            "train": {"output_dir": str(out), "epochs": epochs, "progress": False, "tensorboard": True, **train_kw}}


def _train(out: Path, train_set: Dataset | None = None, **kw):
    torch.manual_seed(0)
    epochs = kw.pop("epochs", 2)
    train_kw = kw.pop("train_kw", {})
    return train(_cfg(out, epochs, **train_kw), model=Net(), train_set=train_set or Toy(), val_set=Toy(6),
                 quiet=True, **kw)


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_crash_during_overwrite_keeps_the_old_run(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _train(run)
    before = _tree(run)
    assert {"config.yaml", "best.safetensors", "last.safetensors", "metrics.csv", "report.md"} <= before.keys()
    # 16 items a epoch: fails in the second epoch, after the new run saved its first checkpoint.
    with pytest.raises(RuntimeError, match="bad batch"):
        _train(run, train_set=Toy(fail_after=20), overwrite=True, epochs=3)
    assert _tree(run) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no temporary run left beside it


def test_interrupted_overwrite_keeps_the_old_run_resumable(tmp_path: Path) -> None:
    run = tmp_path / "run"
    first = _train(run, epochs=3, train_kw={"stop_after_epoch": 1})
    assert first.stopped and first.epochs_done == 1
    with pytest.raises(RuntimeError, match="bad batch"):
        _train(run, train_set=Toy(fail_after=4), overwrite=True, epochs=3)
    resumed = _train(run, epochs=3, resume=True)
    assert resumed.epochs_done == 3 and [r["epoch"] for r in resumed.history] == [1, 2, 3]


def test_overwrite_swaps_in_the_finished_run(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _train(run)
    (run / "stale.txt").write_text("from the old run")
    # A staging folder a killed overwrite left behind is cleared, not mixed into the new run.
    leftover = tmp_path / ".run.avkit-new"
    leftover.mkdir()
    (leftover / "config.yaml").write_text("old: true\n")
    (leftover / "junk.txt").write_text("x")
    result = _train(run, overwrite=True, epochs=1)
    assert result.run_dir == run and result.epochs_done == 1
    assert not (run / "stale.txt").exists()
    assert (run / "last.safetensors").is_file() and len((run / "metrics.csv").read_text().splitlines()) == 2
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_overwrite_refuses_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = tmp_path / "run"
    _train(run, epochs=1)
    monkeypatch.chdir(run)
    before = _tree(run)
    with pytest.raises(AvkitError, match="working directory"):
        torch.manual_seed(0)
        train(_cfg(Path("."), 1), model=Net(), train_set=Toy(), quiet=True, overwrite=True)
    assert _tree(run) == before
