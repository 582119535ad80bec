"""The engine trains any :class:`~avkit.engine.task.Task`: a toy regression task with its own loss,
CSV columns and a lower-is-better best checkpoint, and exact resume, through the same loop as
classification."""
from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn as nn
from safetensors.torch import load_file
from torch.utils.data import Dataset

from avkit.engine.checkpoint import read_meta
from avkit.engine.config import config_from_dict
from avkit.engine.task import ClassificationTask, Task, make_task
from avkit.engine.timing import TIMING_COLUMNS
from avkit.engine.trainer import train
from avkit.errors import AvkitError


class Line(Dataset):
    """y = 3 x - 1 plus noise; items as dicts, like every avkit dataset."""

    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 1, generator=g)
        self.y = 3 * self.x - 1 + 0.05 * torch.randn(n, 1, generator=g)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict:
        return {"x": self.x[i], "y": self.y[i], "index": i}


class Regression(Task):
    name = "regression"
    train_columns = ("loss", "abs_err")
    val_columns = ("loss", "abs_err")
    best_key = "val_abs_err"
    higher_is_better = False

    def datasets(self) -> tuple[Any, Any]:
        return Line(64, 0), Line(32, 1)

    def build_model(self, log=None) -> nn.Module:
        return nn.Sequential(nn.Linear(1, 8), nn.Tanh(), nn.Dropout(0.1), nn.Linear(8, 1))

    def train_step(self, model: nn.Module, batch: Mapping[str, Any]):
        pred = model(batch["x"])
        loss = nn.functional.mse_loss(pred, batch["y"])
        n = len(pred)
        return loss, {"loss": float(loss.detach()) * n, "abs_err": float((pred.detach() - batch["y"]).abs().sum())}, n

    def val_outputs(self, model: nn.Module, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        return {"err": (model(batch["x"]) - batch["y"])[:, 0]}

    def val_metrics(self, outputs: dict[str, torch.Tensor]):
        err = outputs["err"]
        return {"val_loss": float(err.pow(2).mean()), "val_abs_err": float(err.abs().mean())}, {"n": len(err)}

    def val_collate(self, items):  # a plain dataset: every item is readable
        batch = self.collate(items)
        batch["kept"] = torch.ones(len(items), dtype=torch.bool)
        return batch


def _cfg(out: Path, **train_opts: Any):
    return config_from_dict({"data": {"batch_size": 8}, "optim": {"optimizer": "adamw", "lr": 0.05, "warmup_epochs": 0},
                             "train": {"output_dir": str(out), "epochs": 12, "progress": False,
                                       "tensorboard": False, **train_opts}})


def test_a_custom_task_trains_and_keeps_its_best_by_its_own_metric(tmp_path: Path) -> None:
    result = train(_cfg(tmp_path / "run"), task=Regression(_cfg(tmp_path / "run")), quiet=True)
    history = result.history
    assert history[-1]["val_abs_err"] < 0.5 * history[0]["val_abs_err"]  # it learned
    best = min(history, key=lambda r: r["val_abs_err"])
    assert (result.best_key, result.best_epoch, result.best_value) == ("val_abs_err", best["epoch"], best["val_abs_err"])
    assert result.best_val_acc is None  # not a classification run
    rows = list(csv.DictReader((tmp_path / "run" / "metrics.csv").open()))
    assert Regression.csv_columns() == ["epoch", "step", "train_loss", "train_abs_err", "val_loss", "val_abs_err",
                                        "lr", "seconds"]
    assert list(rows[0]) == Regression.csv_columns() + list(TIMING_COLUMNS)  # every task: where the time went
    meta = read_meta(tmp_path / "run" / "best.safetensors")
    assert meta["task"] == "regression" and meta["val_abs_err"] == pytest.approx(best["val_abs_err"])
    report = (tmp_path / "run" / "report.md").read_text()
    assert "Best val_abs_err" in report and (tmp_path / "run" / "abs_err.png").is_file()


def test_a_custom_task_resumes_at_the_same_step_with_the_same_weights(tmp_path: Path) -> None:
    full = train(_cfg(tmp_path / "full"), task=Regression(_cfg(tmp_path / "full")), quiet=True)
    cfg = _cfg(tmp_path / "part", stop_after_epoch=2)
    part = train(cfg, task=Regression(cfg), quiet=True)
    assert part.stopped and part.epochs_done == 2
    cfg = _cfg(tmp_path / "part")
    resumed = train(cfg, task=Regression(cfg), resume=True, quiet=True)
    assert resumed.steps == full.steps and resumed.history[2]["step"] == full.history[2]["step"]
    a, b = load_file(tmp_path / "full" / "last.safetensors"), load_file(tmp_path / "part" / "last.safetensors")
    for key in (k for k in a if k.startswith("model.")):
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    assert [r["val_abs_err"] for r in resumed.history] == [r["val_abs_err"] for r in full.history]


def test_make_task_by_name() -> None:
    assert isinstance(make_task(config_from_dict({})), ClassificationTask)
    with pytest.raises(AvkitError, match="unknown task 'nope'"):
        make_task(config_from_dict({"task": "nope"}))


class OneThread(Regression):
    """A task asking for one torch thread on CPU; it records the count each step sees, and can fail."""

    cpu_threads = 1

    def __init__(self, cfg: Any, fail: bool = False) -> None:
        super().__init__(cfg)
        self.fail, self.seen = fail, set()

    def train_step(self, model: nn.Module, batch: Mapping[str, Any]):
        self.seen.add(torch.get_num_threads())
        if self.fail:
            raise RuntimeError("planted failure")
        return super().train_step(model, batch)


@pytest.mark.skipif(torch.cuda.is_available(), reason="cpu_threads applies without a GPU")
def test_cpu_threads_hold_for_training_only_however_it_ends(tmp_path: Path) -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        task = OneThread(_cfg(tmp_path / "ok", epochs=1))
        train(_cfg(tmp_path / "ok", epochs=1), task=task, quiet=True)
        assert task.seen == {1} and torch.get_num_threads() == 2
        failing = OneThread(_cfg(tmp_path / "bad", epochs=1), fail=True)
        with pytest.raises(RuntimeError, match="planted"):
            train(_cfg(tmp_path / "bad", epochs=1), task=failing, quiet=True)
        assert failing.seen == {1} and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
