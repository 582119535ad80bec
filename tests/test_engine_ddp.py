"""Distributed data parallel: two CPU processes (torchrun, gloo) on a global batch of 4 train to
the same weights and validation metrics as one process on the same global batch; with --overwrite,
rank 0 alone swaps the finished run in for the old one."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

SCRIPT = textwrap.dedent('''
    import os
    import sys
    import torch
    import torch.nn as nn
    from torch.utils.data import Dataset

    from avkit.engine.trainer import train

    class Toy(Dataset):
        classes = ["a", "b", "c"]

        def __init__(self, n, seed):
            g = torch.Generator().manual_seed(seed)
            self.y = torch.arange(n) % 3
            self.x = torch.randn(n, 3, 2, 4, 4, generator=g) * 0.5
            self.x[torch.arange(n), self.y] += 1.0

        def __len__(self):
            return len(self.y)

        def __getitem__(self, i):
            return {"video": self.x[i], "label": int(self.y[i]), "index": i}

    class Net(nn.Module):  # no BatchNorm, no dropout: DDP must then equal one big batch
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv3d(3, 4, 3, padding=1)
            self.head = nn.Linear(4, 3)

        def forward(self, x):
            return self.head(torch.relu(self.conv(x)).mean((2, 3, 4)))

    def main(out, overwrite=False):
        torch.manual_seed(0)
        cfg = {"data": {"batch_size": 4},
               "optim": {"optimizer": "sgd", "lr": 0.2, "momentum": 0.9, "weight_decay": 0.01, "warmup_epochs": 0.5},
               "train": {"output_dir": out, "epochs": 2, "progress": False, "tensorboard": False}}
        return train(cfg, model=Net(), train_set=Toy(20, 0), val_set=Toy(7, 1), quiet=True, overwrite=overwrite)

    if __name__ == "__main__":
        torch.set_num_threads(1)
        result = main(sys.argv[1], overwrite="--overwrite" in sys.argv)
        # One file per rank: two processes printing to one pipe can interleave their lines.
        with open(sys.argv[1] + f".result{os.environ['RANK']}", "w") as f:
            f.write(f"{os.environ['RANK']} {result.steps} {result.history[-1]['val_acc']}")
''')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_process_ddp_matches_single_process(tmp_path: Path) -> None:
    script = tmp_path / "ddp_toy.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    namespace: dict = {"__name__": "ddp_toy"}
    exec(compile(SCRIPT, str(script), "exec"), namespace)  # the single-process reference, in this process
    single = namespace["main"](str(tmp_path / "single"))
    shutil.copytree(tmp_path / "single", tmp_path / "ddp")  # an old run for the DDP run to replace
    (tmp_path / "ddp" / "old.txt").write_text("from the old run")
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                          "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
                          str(script), str(tmp_path / "ddp"), "--overwrite"], env=env, capture_output=True, text=True,
                         timeout=300)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    assert not (tmp_path / "ddp" / "old.txt").exists()  # replaced once, by rank 0, nothing left beside it
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]

    # Both ranks finish the same 10 optimiser steps with the same (gathered) validation accuracy.
    results = sorted(p.read_text().split() for p in tmp_path.glob("ddp.result*"))
    assert [r[0] for r in results] == ["0", "1"]
    assert {r[1] for r in results} == {str(single.steps)} == {"10"}
    assert {float(r[2]) for r in results} == {single.history[-1]["val_acc"]}
    a = load_file(str(tmp_path / "single" / "last.safetensors"))
    b = load_file(str(tmp_path / "ddp" / "last.safetensors"))
    weights = [k for k in a if k.startswith("model.")]
    assert weights
    for k in weights:
        torch.testing.assert_close(b[k], a[k], atol=1e-5, rtol=0)
    # The comparison means something only if training moved the weights.
    torch.manual_seed(0)
    net_init = torch.nn.Conv3d(3, 4, 3, padding=1).weight
    moved = not torch.allclose(net_init, a["model.conv.weight"], atol=1e-3)
    assert moved
    # Validation is sharded across ranks and gathered: identical metrics, every item seen once.
    import csv

    from avkit.engine.timing import TIMING_COLUMNS

    wall_clock = {"seconds", *TIMING_COLUMNS}
    rows_single = list(csv.DictReader((tmp_path / "single" / "metrics.csv").open()))
    rows_ddp = list(csv.DictReader((tmp_path / "ddp" / "metrics.csv").open()))
    assert len(rows_single) == len(rows_ddp) > 0
    for r1, r2 in zip(rows_single, rows_ddp):
        keys = [k for k in r1 if k not in wall_clock]
        # Equal up to float summation order (the all-reduce sums gradients in another order).
        assert [float(r2[k]) for k in keys] == pytest.approx([float(r1[k]) for k in keys], rel=1e-4, abs=1e-5)
