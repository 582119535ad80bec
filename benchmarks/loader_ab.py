"""The quickstart's training loader in two source trees, measured alternately in one run.

Dated runs of ``train_throughput.py`` days apart differ by 2-3x on a shared machine, so a change in
the data path is judged here instead: each round runs the same measurement in a fresh process for
the old tree and for this one (one torch thread, the cached loader's best of ``--passes`` epochs and
the decoding loader's best of two), and the table gives the ratio per round.

    git worktree add /tmp/avkit_old bcc52bc
    python benchmarks/loader_ab.py --old /tmp/avkit_old --data DIR   # an `avkit generate motion` folder
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]

# Run inside each tree (its own benchmarks/train_throughput.py and avkit): prints one JSON line.
MEASURE = r"""
import json, sys, time, torch
sys.path.insert(0, "benchmarks")
torch.set_num_threads(1)
from pathlib import Path
import train_throughput as tt
from avkit.quickstart import QuickstartConfig, default_models
qs = QuickstartConfig()
model = [m for m in default_models() if m.name == "c3d"][0].model
cfg = tt._config(Path(sys.argv[1]), model, qs)
def best(cache, passes):
    ds, loader = tt._loader(cfg, cache=cache, workers=0)
    if cache:
        for _ in loader:
            pass
    out = float("inf")
    for rep in range(passes):
        ds.set_epoch(rep + 1)
        t, n = time.perf_counter(), 0
        for b in loader:
            n += len(b["label"])
        out = min(out, (time.perf_counter() - t) / n)
    return 1.0 / out
print(json.dumps({"cached": best(True, int(sys.argv[2])), "decode": best(False, 2)}))
"""


def measure(tree: Path, data: Path, passes: int) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=str(tree))
    out = subprocess.run([sys.executable, "-c", MEASURE, str(data), str(passes)], cwd=tree, env=env,
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old", type=Path, required=True, help="the other source tree (a git worktree)")
    parser.add_argument("--data", type=Path, required=True, help="an `avkit generate motion` folder")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--passes", type=int, default=15, help="cached-loader epochs per measurement (best kept)")
    args = parser.parse_args(argv)
    print(f"{'round':>5} {'old cached':>11} {'new cached':>11} {'ratio':>6} {'old decode':>11} "
          f"{'new decode':>11} {'ratio':>6}   (clips/s, best of the passes)")
    for r in range(1, args.rounds + 1):
        old, new = measure(args.old, args.data, args.passes), measure(HERE, args.data, args.passes)
        print(f"{r:>5} {old['cached']:>11.0f} {new['cached']:>11.0f} {new['cached'] / old['cached']:>5.2f}x "
              f"{old['decode']:>11.0f} {new['decode']:>11.0f} {new['decode'] / old['decode']:>5.2f}x", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
