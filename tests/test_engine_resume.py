"""Checkpoints and --resume: a run stopped after N steps or epochs and resumed ends bitwise equal
to an uninterrupted run (CPU, num_workers=0), with dropout, BatchNorm, AdamW and warm-up in play."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch.utils.data import Dataset

from avkit.engine.checkpoint import load_into, load_train_state, load_weights, match_state_dict, save_train_state
from avkit.engine.config import OptimConfig
from avkit.engine.optim import build_optimizer, build_scheduler
from avkit.engine.trainer import train
from avkit.errors import AvkitError


class Toy(Dataset):
    """Learnable clips: class c has +1 on channel c; a little random noise per access (global RNG)."""

    classes = ["a", "b", "c"]

    def __init__(self, n: int = 20, seed: int = 0, noise: bool = True) -> None:
        g = torch.Generator().manual_seed(seed)
        self.y = torch.arange(n) % 3
        self.x = torch.randn(n, 3, 2, 4, 4, generator=g) * 0.5
        self.x[torch.arange(n), self.y] += 1.0
        self.noise = noise

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> dict:
        v = self.x[i] + (0.1 * torch.randn_like(self.x[i]) if self.noise else 0)
        return {"video": v, "label": int(self.y[i]), "index": i}


class ToyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv3d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm3d(4)
        self.drop = nn.Dropout(0.3)
        self.head = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(torch.relu(self.bn(self.conv(x))).mean((2, 3, 4))))


def _cfg(out: Path, **train: object) -> dict:
    return {"data": {"batch_size": 4}, "optim": {"optimizer": "adamw", "lr": 0.01, "warmup_epochs": 0.5},
            "train": {"output_dir": str(out), "epochs": 3, "progress": False, "tensorboard": False, **train}}


def _run(cfg: dict, **kw: object):
    torch.manual_seed(123)  # the toy model is built outside the engine
    return train(cfg, model=ToyNet(), train_set=Toy(), val_set=Toy(9, seed=1), quiet=True, **kw)


def _same_state(a: Path, b: Path) -> None:
    x, y = load_file(str(a / "last.safetensors")), load_file(str(b / "last.safetensors"))
    keys = [k for k in x if k.startswith(("model.", "optimizer."))]
    assert keys and set(keys) <= set(y)
    for k in keys:
        assert torch.equal(x[k], y[k]), k


def _same_history(h1: list, h2: list) -> None:
    """Equal rows but for the wall-clock figures (seconds and the timing columns)."""
    from avkit.engine.timing import TIMING_COLUMNS

    clock = {"seconds", *TIMING_COLUMNS}
    assert len(h1) == len(h2)
    for r1, r2 in zip(h1, h2):
        assert {k: v for k, v in r1.items() if k not in clock} == {k: v for k, v in r2.items() if k not in clock}


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("resume") / "full"
    return _run(_cfg(out))


@pytest.mark.parametrize("stop", [{"max_steps": 7}, {"stop_after_epoch": 1}, {"max_steps": 10}],
                         ids=["mid-epoch", "after-epoch", "epoch-boundary"])
def test_resume_is_bitwise_equal(full_run, tmp_path: Path, stop: dict) -> None:
    out = tmp_path / "part"
    first = _run(_cfg(out, **stop))
    assert first.stopped and first.steps == stop.get("max_steps", 5) and first.epochs_done < 3
    again = _run(_cfg(out), resume=True)
    assert not again.stopped and again.steps == full_run.steps == 15
    _same_state(full_run.run_dir, out)
    _same_history(full_run.history, again.history)
    assert (out / "metrics.csv").read_text().count("\n") == 4  # header + 3 epochs, no duplicates
    a, b = load_file(str(full_run.run_dir / "best.safetensors")), load_file(str(out / "best.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_checks(full_run, tmp_path: Path) -> None:
    with pytest.raises(AvkitError, match="nothing to resume"):
        _run(_cfg(tmp_path / "none"), resume=True)
    changed = _cfg(full_run.run_dir)
    changed["optim"]["lr"] = 0.5
    with pytest.raises(AvkitError, match="different config.*optim.lr"):
        _run(changed, resume=True)
    # Longer training is allowed: epochs may change on resume (the schedule is per run though).
    assert (full_run.run_dir / "config.yaml").is_file()


def test_train_state_roundtrip_restores_optimizer_scheduler_rng(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = ToyNet()
    opt = build_optimizer(model, OptimConfig(optimizer="sgd", lr=0.1, momentum=0.9))
    sched = build_scheduler(opt, OptimConfig(lr=0.1, warmup_epochs=1), steps_per_epoch=4, epochs=3)
    for _ in range(3):
        model(torch.randn(2, 3, 2, 4, 4)).sum().backward()
        opt.step(), sched.step(), opt.zero_grad()
    path = save_train_state(tmp_path / "s.safetensors", model, opt, sched, {"step": 3, "note": "x"})
    expected_next = torch.rand(3)
    lr = opt.param_groups[0]["lr"]

    torch.manual_seed(99)
    model2 = ToyNet()
    opt2 = build_optimizer(model2, OptimConfig(optimizer="sgd", lr=0.1, momentum=0.9))
    sched2 = build_scheduler(opt2, OptimConfig(lr=0.1, warmup_epochs=1), steps_per_epoch=4, epochs=3)
    state = load_train_state(path, model2, opt2, sched2)
    assert state == {"step": 3, "note": "x"}
    assert torch.equal(torch.rand(3), expected_next)  # RNG restored
    assert opt2.param_groups[0]["lr"] == lr and sched2.last_epoch == 3
    for p, q in zip(opt.state.values(), opt2.state.values()):
        assert torch.equal(p["momentum_buffer"], q["momentum_buffer"])
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), model2.state_dict().values()))
    with safe_open(str(path), framework="pt") as f:  # one self-describing safetensors file, no pickle
        assert json.loads(f.metadata()["avkit"])["state"]["step"] == 3


def test_weights_sources_and_prefix_matching(tmp_path: Path) -> None:
    torch.manual_seed(0)
    src = ToyNet()
    # A torchvision-style .pth state_dict wrapped in a "state_dict" key, with a "module." prefix.
    torch.save({"state_dict": {f"module.{k}": v for k, v in src.state_dict().items()}}, tmp_path / "w.pth")
    # A Hugging Face style folder.
    (tmp_path / "hf").mkdir()
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(tmp_path / "hf" / "model.safetensors"))
    (tmp_path / "hf" / "config.json").write_text("{}")

    class Wrapped(nn.Module):  # the same network one level deeper, with a different head size
        def __init__(self) -> None:
            super().__init__()
            self.backbone = ToyNet()
            self.backbone.head = nn.Linear(4, 5)

    for source in (tmp_path / "w.pth", tmp_path / "hf"):
        dst = Wrapped()
        info = load_into(dst, load_weights(source))
        assert torch.equal(dst.backbone.conv.weight, src.conv.weight)
        assert sorted(info["skipped"])[0].endswith("head.bias") and len(info["skipped"]) == 2
        assert set(info["missing"]) == {"backbone.head.weight", "backbone.head.bias"}
    matched, _ = match_state_dict(nn.Linear(2, 2), {"x.weight": torch.zeros(3, 3)})
    assert matched == {}
    with pytest.raises(AvkitError, match="no tensor matches"):
        load_into(nn.Linear(2, 2), {"foo": torch.zeros(1)})
    # Arbitrary pickled objects are refused (weights_only=True).
    torch.save({"state_dict": {"w": torch.zeros(1)}, "obj": Toy(2)}, tmp_path / "evil.pth")
    with pytest.raises(AvkitError, match="cannot read weights safely"):
        load_weights(tmp_path / "evil.pth")
