"""Training beyond one machine: two ``torchrun`` launchers, one per "node", meet through the c10d
rendezvous on this machine (the way a real multi-node launch does, docs/training.md) and train a
tiny model for a few steps: both processes see one world of two ranks on two nodes, finish the same
steps, and only rank 0 writes the run (each node is given its own output folder; rank 1's stays absent)."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent('''
    import json
    import os
    import sys
    import torch
    import torch.nn as nn
    from torch.utils.data import Dataset

    from avkit.engine.distributed import all_gather_objects, init_distributed
    from avkit.engine.trainer import train

    class Toy(Dataset):
        classes = ["a", "b"]

        def __init__(self, n):
            self.y = torch.arange(n) % 2
            self.x = torch.randn(n, 3, 2, 4, 4, generator=torch.Generator().manual_seed(n))
            self.x[torch.arange(n), self.y] += 1.0

        def __len__(self):
            return len(self.y)

        def __getitem__(self, i):
            return {"video": self.x[i], "label": int(self.y[i]), "index": i}

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv3d(3, 4, 3, padding=1)
            self.head = nn.Linear(4, 2)

        def forward(self, x):
            return self.head(torch.relu(self.conv(x)).mean((2, 3, 4)))

    if __name__ == "__main__":
        torch.set_num_threads(1)
        torch.manual_seed(0)
        info = init_distributed("cpu")
        me = {"rank": info.rank, "world": info.world_size, "node": int(os.environ["GROUP_RANK"]),
              "local_rank": info.local_rank, "pid": os.getpid()}
        world = all_gather_objects(info, me)
        cfg = {"data": {"batch_size": 4}, "optim": {"optimizer": "sgd", "lr": 0.1},
               "train": {"output_dir": sys.argv[1], "epochs": 1, "max_steps": 3, "progress": False,
                         "tensorboard": False}}
        result = train(cfg, model=Net(), train_set=Toy(24), val_set=Toy(6), quiet=True)
        with open(sys.argv[2] + f".rank{me['rank']}.json", "w") as f:
            json.dump({"me": me, "world": world, "steps": result.steps}, f)
''')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_nodes_through_c10d_rendezvous(tmp_path: Path) -> None:
    script = tmp_path / "multinode_toy.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "GROUP_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    port = _free_port()
    nodes = []
    for node in (0, 1):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
               "--node-rank", str(node), "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}",
               "--rdzv-id", "avkit-multinode-test", "--local-addr", "127.0.0.1",
               str(script), str(tmp_path / f"run_node{node}"), str(tmp_path / "result")]
        nodes.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = []
    for p in nodes:
        try:
            outputs.append(p.communicate(timeout=300)[0])
        finally:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in nodes] == [0, 0], "\n".join(o[-3000:] for o in outputs)

    results = [json.loads(f.read_text()) for f in sorted(tmp_path.glob("result.rank*.json"))]
    assert [r["me"]["rank"] for r in results] == [0, 1]
    assert {r["me"]["world"] for r in results} == {2}
    assert sorted(r["me"]["node"] for r in results) == [0, 1]  # two nodes, one process each
    assert {r["me"]["local_rank"] for r in results} == {0}
    assert results[0]["world"] == results[1]["world"] == [r["me"] for r in results]  # the same world
    assert {r["steps"] for r in results} == {3}
    # Rank 0 wrote its node's run; the other rank wrote nothing into its own output folder.
    writer = tmp_path / f"run_node{results[0]['me']['node']}"
    other = tmp_path / f"run_node{results[1]['me']['node']}"
    assert (writer / "last.safetensors").is_file() and (writer / "metrics.csv").is_file()
    assert not other.exists()
