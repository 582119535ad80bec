"""Training-step time of the quickstart models with channels-last conv weights, against the default layout.

For each quickstart model (its exact ``model`` section, batch 16 of 3x8x32x32, AdamW), the mean
time of a forward + backward + optimizer step with the weights contiguous (the baseline) and
with ``avkit.engine.memory_format.to_channels_last`` (what ``train.channels_last: true`` does),
interleaved round by round in this one process, so both layouts see the same machine. Also the
share of two-stream's step spent computing its on-the-fly Lucas-Kanade flow.

    python benchmarks/channels_last.py                 # 2 threads, 5 rounds of 10 steps
    python benchmarks/channels_last.py --threads 1 --rounds 3
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from avkit.engine.build import build_model
from avkit.engine.config import ModelConfig
from avkit.engine.memory_format import to_channels_last
from avkit.quickstart import default_models


def _inputs(qm_model: dict, batch: int) -> tuple[object, torch.Tensor]:
    video = torch.randn(batch, 3, 8, 32, 32)
    if qm_model.get("audio"):
        return {"video": video, "spectrogram": torch.randn(batch, 1, 64, 101)}, torch.randint(0, 8, (batch,))
    return video, torch.randint(0, 8, (batch,))


def _step_ms(model: torch.nn.Module, opt: torch.optim.Optimizer, x: object, y: torch.Tensor, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return (time.perf_counter() - start) / steps * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=10, help="steps per round and layout")
    ap.add_argument("--batch", type=int, default=16)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, batch {args.batch} of 3x8x32x32, "
          f"{args.rounds} rounds x {args.steps} steps per layout (median of the rounds)\n")
    print("| model | contiguous ms/step | channels-last ms/step | speed-up |")
    print("|---|--:|--:|--:|")
    two_stream_flow = None  # (flow ms, whole step ms)
    for qm in default_models():
        cfg = ModelConfig(**qm.model)
        x, y = _inputs(qm.model, args.batch)
        torch.manual_seed(0)
        plain = build_model(cfg, 8).train()
        torch.manual_seed(0)
        fast = to_channels_last(build_model(cfg, 8)).train()
        runs = [(m, torch.optim.AdamW(m.parameters(), lr=1e-3), []) for m in (plain, fast)]
        for m, opt, _ in runs:
            _step_ms(m, opt, x, y, 3)  # warm-up: allocator, oneDNN kernels
        for _ in range(args.rounds):
            for m, opt, times in runs:
                times.append(_step_ms(m, opt, x, y, args.steps))
        a, b = (statistics.median(times) for _, _, times in runs)
        print(f"| {qm.name} | {a:.1f} | {b:.1f} | {a / b:.2f}x |")
        if qm.name == "two_stream":
            flow_ms = []
            with torch.no_grad():
                for _ in range(args.rounds):
                    t = time.perf_counter()
                    for _ in range(args.steps):
                        fast.compute_flow(x)
                    flow_ms.append((time.perf_counter() - t) / args.steps * 1000)
            two_stream_flow = (statistics.median(flow_ms), b)
    if two_stream_flow is not None:
        f, b = two_stream_flow
        print(f"\ntwo_stream: its Lucas-Kanade flow takes {f:.1f} ms of its {b:.1f} ms channels-last step "
              f"({100 * f / b:.0f}%)")


if __name__ == "__main__":
    main()
