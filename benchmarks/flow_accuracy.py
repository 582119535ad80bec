"""Optical flow accuracy: avkit's flow methods on image pairs whose flow is known, end-point error in pixels.

Cases (none of them is training data of the shipped RAFT, which saw only ``synthetic_pairs`` of its own
training seeds):

  synthetic (held out)   64 ``avkit.flow.raft_synthetic.synthetic_pairs`` of a seed no training step used:
                         the training distribution (textured background under an affine motion, one or two
                         objects moving on their own), 128x128
  real frames, shifted   one frame of each shared real video (../shared/media/video, when present), a
                         160x160 crop, moved by a known sub-pixel step (7 steps from (0.5, 0) to (-5.5, 3.25)
                         px): real textures the network never saw, one motion; scored 12 px inside the border
  smooth texture, shifted  blurred random noise (Gaussian sigma 6 px, the scale of the training textures) moved
                         by the same 7 steps, 136x144, scored 12 px inside the border (tests/test_flow.py)
  moving square          the flow tests' scene (tests/test_flow.py): a textured square moving (2, -1) px/frame
                         on a flat background, 64x80; scored inside the square

Methods: OpenCV DIS and Farneback, TV-L1 when opencv-contrib is there, avkit's Lucas-Kanade, RAFT-small
with the weights avkit ships (12 refinements), and the same RAFT randomly initialised (what the weights add).
The zero-flow row is the error of predicting no motion. One torch thread.

    python benchmarks/flow_accuracy.py | tee docs/benchmarks/flow_accuracy.log
"""
from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch

from avkit.flow import build_raft, compute_flow
from avkit.flow.raft_synthetic import HELD_OUT_SEED, synthetic_pairs
from avkit.io import read_clip

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "media" / "video"
STEPS = [(0.5, 0.0), (-1.25, 0.75), (2.0, -1.5), (0.0, 3.0), (-3.5, -2.25), (4.25, 1.0), (-5.5, 3.25)]
Case = tuple[np.ndarray, np.ndarray, np.ndarray]  # frames [2, H, W, 3] uint8, true flow [2, H, W], scored mask [H, W]


def synthetic_cases(n: int = 64) -> list[Case]:
    img1, img2, flow = synthetic_pairs(n, seed=HELD_OUT_SEED)
    to_u8 = lambda x: ((x.permute(0, 2, 3, 1) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()  # noqa: E731
    a, b = to_u8(img1), to_u8(img2)
    mask = np.ones(flow.shape[-2:], bool)
    return [(np.stack([a[i], b[i]]), flow[i].numpy(), mask) for i in range(n)]


def shifted_real_cases() -> list[Case]:
    cases = []
    for path in sorted(SHARED.glob("*")) if SHARED.is_dir() else []:
        frame = read_clip(path, times=[2.0], audio=False).frames[0].numpy()
        h, w = frame.shape[:2]
        side = min(160, h, w)
        y0, x0 = (h - side) // 2, (w - side) // 2
        cases += _shifted(np.ascontiguousarray(frame[y0:y0 + side, x0:x0 + side]), STEPS)
    return cases


def _shifted(img1: np.ndarray, steps: list[tuple[float, float]]) -> list[Case]:
    """``img1`` moved by each step (content at x goes to x + step), scored 12 px inside the border."""
    h, w = img1.shape[:2]
    mask = np.zeros((h, w), bool)
    mask[12:-12, 12:-12] = True
    cases = []
    for dx, dy in steps:
        img2 = cv2.warpAffine(img1, np.float32([[1, 0, dx], [0, 1, dy]]), (w, h), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REFLECT)
        flow = np.stack([np.full((h, w), dx, np.float32), np.full((h, w), dy, np.float32)])
        cases.append((np.stack([img1, img2]), flow, mask))
    return cases


def smooth_cases() -> list[Case]:
    rng = np.random.default_rng(3)
    base = cv2.GaussianBlur(rng.uniform(0, 255, (136, 144, 3)).astype(np.float32), (0, 0), 6.0)
    return _shifted(cv2.normalize(base, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8), STEPS)


def square_cases() -> list[Case]:
    rng = np.random.default_rng(0)
    size, h, w, dx, dy = 24, 64, 80, 2, -1
    tex = cv2.GaussianBlur(rng.uniform(0, 255, (size, size, 3)).astype(np.float32), (0, 0), 1.5)
    tex = cv2.normalize(tex, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    frames = np.full((2, h, w, 3), 90, np.uint8)
    for i in range(2):
        frames[i, 30 + dy * i:30 + dy * i + size, 10 + dx * i:10 + dx * i + size] = tex
    mask = np.zeros((h, w), bool)
    mask[33:30 + size - 3, 13:10 + size - 3] = True
    flow = np.stack([np.full((h, w), dx, np.float32), np.full((h, w), dy, np.float32)])
    return [(frames, flow, mask)]


def methods() -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    torch.manual_seed(0)  # the random-init row
    shipped, random_init = build_raft("small"), build_raft("small", weights=None)
    out: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "zero flow": lambda f: np.zeros((2, *f.shape[1:3]), np.float32),
        "dis": lambda f: compute_flow(f, "dis")[0].numpy(),
        "farneback": lambda f: compute_flow(f, "farneback")[0].numpy(),
        "lk": lambda f: compute_flow(f, "lk")[0].numpy(),
        "raft_small, avkit's weights": lambda f: compute_flow(f, "raft", model=shipped)[0].numpy(),
        "raft_small, random init": lambda f: compute_flow(f, "raft", model=random_init)[0].numpy(),
    }
    if hasattr(cv2, "optflow"):
        out["tvl1"] = lambda f: compute_flow(f, "tvl1")[0].numpy()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--synthetic", type=int, default=64, help="held-out synthetic pairs")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cases = {"synthetic (held out)": synthetic_cases(args.synthetic), "real frames, shifted": shifted_real_cases(),
             "smooth texture, shifted": smooth_cases(), "moving square": square_cases()}
    print(f"# python benchmarks/flow_accuracy.py; torch {torch.__version__}, opencv {cv2.__version__}; 1 thread; "
          f"load average {os.getloadavg()[0]:.1f}")
    print("# pairs: " + ", ".join(f"{name} {len(c)}" for name, c in cases.items()))
    names = list(cases)
    print("| method | " + " | ".join(f"{n}: EPE px" for n in names) + " | ms per pair (real frames) |")
    print("|---|" + "--:|" * (len(names) + 1))
    for method, fn in methods().items():
        cells, ms = [], "-"
        for name in names:
            errors = []
            start = time.perf_counter()
            for frames, flow, mask in cases[name]:
                pred = fn(frames)
                errors.append(float(np.linalg.norm(pred - flow, axis=0)[mask].mean()))
            if name == "real frames, shifted" and cases[name]:
                ms = f"{1000 * (time.perf_counter() - start) / len(cases[name]):.0f}"
            cells.append(f"{np.mean(errors):.3f}" if errors else "-")
        print(f"| {method} | " + " | ".join(cells) + f" | {ms} |", flush=True)


if __name__ == "__main__":
    main()
