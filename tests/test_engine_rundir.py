"""The run directory's traps (issues #22, #26): a lock against two trainings into one run, stale
temporary files, a moved run, resuming with more epochs, a max_steps stop mid-epoch, overrides
after a flag. Each test failed before its fix."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
import torch
from test_safety_train import Net, Toy

from avkit.cli.main import main
from avkit.engine.config import load_config
from avkit.engine.trainer import train
from avkit.errors import AvkitError
from avkit.utils import TEMP_MARK


def _cfg(out: Path, epochs: int = 2, **train_kw) -> dict:
    return {"data": {"batch_size": 4}, "optim": {"lr": 0.05},
            "train": {"output_dir": str(out), "epochs": epochs, "progress": False, "tensorboard": False, **train_kw}}


def _train(config, **kw):
    torch.manual_seed(0)
    return train(config, model=Net(), train_set=Toy(), val_set=Toy(6), quiet=True, **kw)


def _lock_of(run: Path) -> Path:
    return run.parent / f".{run.name}.avkit-lock"


def test_a_second_training_into_a_locked_run_refuses_and_a_stale_lock_is_taken_over(tmp_path: Path) -> None:
    run = tmp_path / "run"
    other = subprocess.Popen(["sleep", "60"])  # a live process of this host "trains" into run
    try:
        _lock_of(run).write_text(json.dumps({"pid": other.pid, "host": socket.gethostname()}))
        with pytest.raises(AvkitError, match=rf"another training \(pid {other.pid} on .*\) is writing this run") as err:
            _train(_cfg(run, 1))
        assert "\n" not in str(err.value) and not run.exists()  # one line; nothing written
    finally:
        other.kill()
        other.wait()
    result = _train(_cfg(run, 1))  # its process is gone: the lock is stale and taken over
    assert result.epochs_done == 1 and not _lock_of(run).exists()  # released at the end
    # Another host's lock is never taken over (its pid means nothing here).
    _lock_of(run).write_text(json.dumps({"pid": 1, "host": "elsewhere"}))
    with pytest.raises(AvkitError, match="on elsewhere"):
        _train(_cfg(run, 2), resume=True)
    assert _lock_of(run).exists()


def test_lock_is_held_while_training(tmp_path: Path) -> None:
    run = tmp_path / "run"
    seen = {}

    class Peek(Toy):
        def __getitem__(self, i: int) -> dict:
            lock = _lock_of(run)
            seen["lock"] = json.loads(lock.read_text()) if lock.exists() else None
            return super().__getitem__(i)

    torch.manual_seed(0)
    train(_cfg(run, 1), model=Net(), train_set=Peek(), quiet=True)
    assert seen["lock"] == {"pid": os.getpid(), "host": socket.gethostname()}


def test_stale_temporary_files_are_removed_at_start(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _train(_cfg(run, 2, stop_after_epoch=1))
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = run / f".last{TEMP_MARK}{dead.pid}.x.safetensors"  # a process killed while writing
    stale.write_bytes(b"half")
    live = run / f".metrics{TEMP_MARK}{os.getpid()}.y.csv"
    live.write_text("being written")
    _train(_cfg(run, 2), resume=True)
    assert not stale.exists() and live.exists()


def test_resume_of_a_moved_run_directory_resumes_where_it_is(tmp_path: Path) -> None:
    first = _train(_cfg(tmp_path / "old", 2, stop_after_epoch=1))
    assert first.stopped
    moved = tmp_path / "moved"
    shutil.move(str(tmp_path / "old"), moved)
    result = _train(load_config(moved), resume=True)
    assert result.run_dir == moved and [r["epoch"] for r in result.history] == [1, 2]
    assert not (tmp_path / "old").exists()
    assert load_config(moved / "config.yaml").train.output_dir == str(moved)
    # An explicit override still wins over where the recipe was read from.
    assert load_config(moved, ["train.output_dir=elsewhere"]).train.output_dir == "elsewhere"


def test_resume_with_more_epochs_continues_the_longer_schedule(tmp_path: Path) -> None:
    run = tmp_path / "run"
    done = _train(_cfg(run, 1))
    assert done.history[-1]["lr"] == pytest.approx(0.0, abs=1e-9)  # the 1-epoch cosine ended at 0
    longer = _train(_cfg(run, 3), resume=True)
    lrs = [r["lr"] for r in longer.history]
    # Epoch 2 of a 3-epoch cosine ends at lr * (1 + cos(2pi/3)) / 2 = 0.0125, not at the old schedule's 0.
    assert lrs[1] == pytest.approx(0.05 * 0.25, rel=1e-6) and lrs[2] == pytest.approx(0.0, abs=1e-9)
    fresh = tmp_path / "fresh"
    planned = _train(_cfg(fresh, 3))  # the same lr as a run planned for 3 epochs from the start
    assert [r["lr"] for r in planned.history][1] == pytest.approx(lrs[1])


def test_max_steps_mid_epoch_writes_metrics_and_report(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = tmp_path / "run"
    result = _train(_cfg(run, 2, max_steps=2))  # 16 items / batch 4 = 4 steps an epoch: stops in epoch 1
    assert result.stopped and result.steps == 2 and result.epochs_done == 0
    rows = (run / "metrics.csv").read_text().splitlines()
    assert len(rows) == 2 and rows[1].startswith("1,2,")  # the unfinished epoch so far: epoch 1, step 2
    assert (run / "report.md").is_file() and (run / "last.safetensors").is_file()
    assert not (run / "best.safetensors").exists()
    assert main(["eval", str(run)]) == 2
    assert "pass --checkpoint last" in capsys.readouterr().err
    resumed = _train(_cfg(run, 2), resume=True)  # and it continues from there
    assert resumed.epochs_done == 2 and len((run / "metrics.csv").read_text().splitlines()) == 3


def test_overrides_may_follow_a_flag(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("data:\n  size: 32\n")
    assert main(["train", str(recipe), "--print-config", "data.size=64"]) == 0
    printed = capsys.readouterr().out
    assert "  size: 64\n" in printed
    assert main(["train", str(recipe), "optim.lr=0.5", "--print-config", "data.size=48"]) == 0
    printed = capsys.readouterr().out
    assert "  size: 48\n" in printed and "  lr: 0.5\n" in printed
    with pytest.raises(SystemExit):
        main(["train", str(recipe), "--print-config", "--bogus"])
