"""Train torchvision's RAFT-small on synthetic image pairs with known flow (the weights avkit ships).

torchvision's released RAFT weights are downloaded from the internet, which avkit never does, so
``build_raft("small")`` would otherwise be a randomly initialised network. This module draws pairs
whose flow is known exactly, in the spirit of FlyingChairs (Dosovitskiy et al. 2015): a textured
background under a random affine motion (translation, rotation, scale) and one or two textured
objects moving with their own affine motions in front of it. The flow of a pixel of the first
image is the motion of the layer visible there. The network is trained with RAFT's sequence loss.

    python -m avkit.flow.raft_synthetic --steps 2000 --out assets/flow/raft_small_synthetic.safetensors

The result is a small flow network for simple scenes (translations and rigid moving objects), not a
replacement for RAFT trained on FlyingChairs, FlyingThings and Sintel; ``assets/flow/MODEL_CARD.md``
has its data, recipe and figures.
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F

SIZE = 128  # RAFT's minimum side (see raft.py)
MAX_SHIFT = 6.0  # pixels per frame, per axis, of the background's translation


def _texture(gen: torch.Generator, n: int, side: int) -> torch.Tensor:
    """``[n, 3, side, side]`` random colour textures in [-1, 1]: smooth noise over several scales plus
    a few sharp-edged blobs, so there is structure at every scale for the matching to find."""
    out = torch.zeros(n, 3, side, side)
    for cells in (4, 8, 16, 32, 64):
        noise = torch.rand(n, 3, cells, cells, generator=gen) * 2 - 1
        out += F.interpolate(noise, size=(side, side), mode="bicubic", align_corners=False) * (8 / cells) ** 0.5
    yy, xx = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
    for _ in range(6):
        cx, cy, r = (torch.rand(3, n, 1, 1, generator=gen) * torch.tensor([side, side, side / 6]).view(3, 1, 1, 1))
        blob = ((xx - cx) ** 2 + (yy - cy) ** 2 < (r + 2) ** 2).float().unsqueeze(1)
        colour = torch.rand(n, 3, 1, 1, generator=gen) * 2 - 1
        out = out * (1 - blob) + colour * blob
    out = out - out.mean(dim=(2, 3), keepdim=True)
    return (out / out.abs().amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-6)).clamp(-1, 1)


def _affine(gen: torch.Generator, n: int, shift: float, angle: float, scale: float) -> torch.Tensor:
    """``[n, 2, 3]`` affine maps of pixel coordinates about the image centre: x -> A x + t."""
    a = (torch.rand(n, generator=gen) * 2 - 1) * math.radians(angle)
    s = 1 + (torch.rand(n, generator=gen) * 2 - 1) * scale
    t = (torch.rand(n, 2, generator=gen) * 2 - 1) * shift
    rot = torch.stack([torch.stack([torch.cos(a), -torch.sin(a)], -1), torch.stack([torch.sin(a), torch.cos(a)], -1)], 1)
    return torch.cat([rot * s.view(n, 1, 1), t.unsqueeze(-1)], dim=2)


def _sample(image: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Bilinear sample of ``image [n, c, H, W]`` at pixel coordinates ``coords [n, h, w, 2]``
    (x, y) measured from the centre of ``image``."""
    h, w = image.shape[-2:]
    grid = torch.stack([coords[..., 0] / (w / 2), coords[..., 1] / (h / 2)], dim=-1)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _shape_mask(p: torch.Tensor, centre: torch.Tensor, radii: torch.Tensor, square: torch.Tensor) -> torch.Tensor:
    """``[n, 1, h, w]`` soft-edged (one pixel) ellipse, or rectangle where ``square`` is 1, at points ``p``."""
    d = ((p - centre) / radii).abs()
    inside = square * (1 - d.amax(-1)) + (1 - square) * (1 - d.pow(2).sum(-1).sqrt())
    return (inside * radii.amin(-1)).clamp(0, 1).unsqueeze(1)


def synthetic_pairs(n: int, seed: int, size: int = SIZE) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n`` pairs ``(img1, img2, flow)``: images ``[n, 3, size, size]`` in [-1, 1], flow ``[n, 2, size,
    size]`` in pixels, from img1 to img2 (``img1(x) == img2(x + flow(x))`` where nothing is occluded).
    Deterministic in ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    canvas = size * 2  # textures larger than the view, so moved content is real texture, not border
    ys, xs = torch.meshgrid(torch.arange(size) + 0.5 - size / 2, torch.arange(size) + 0.5 - size / 2, indexing="ij")
    pos = torch.stack([xs, ys], -1).expand(n, size, size, 2)  # pixel centres of the view, about its centre

    def moved(m: torch.Tensor) -> torch.Tensor:  # where each view pixel goes under m
        return torch.einsum("nij,nhwj->nhwi", m[:, :, :2], pos) + m[:, None, None, :, 2]

    def source(m: torch.Tensor) -> torch.Tensor:  # which view pixel lands on each pixel under m
        inv = torch.linalg.inv(m[:, :, :2])
        return torch.einsum("nij,nhwj->nhwi", inv, pos - m[:, None, None, :, 2])

    background = _texture(gen, n, canvas)
    motion = _affine(gen, n, MAX_SHIFT, 4.0, 0.04)
    img1, img2 = _sample(background, pos), _sample(background, source(motion))
    flow = moved(motion) - pos
    for _ in range(2):
        present = (torch.rand(n, generator=gen) < 0.7).float().view(n, 1, 1, 1)
        tex = _texture(gen, n, canvas)
        centre = (torch.rand(n, 1, 1, 2, generator=gen) * 2 - 1) * size * 0.3
        radii = (torch.rand(n, 1, 1, 2, generator=gen) * 0.15 + 0.1) * size
        square = (torch.rand(n, 1, 1, generator=gen) < 0.5).float()
        obj = _affine(gen, n, MAX_SHIFT * 1.5, 10.0, 0.08)
        back = source(obj)
        m1, m2 = (_shape_mask(p, centre, radii, square) * present for p in (pos, back))
        img1 = img1 * (1 - m1) + _sample(tex, pos) * m1
        img2 = img2 * (1 - m2) + _sample(tex, back) * m2
        flow = flow * (1 - m1.squeeze(1).unsqueeze(-1)) + (moved(obj) - pos) * m1.squeeze(1).unsqueeze(-1)
    # photometric jitter between the frames: brightness, contrast, noise
    gain = 1 + (torch.rand(n, 1, 1, 1, generator=gen) * 2 - 1) * 0.1
    bias = (torch.rand(n, 1, 1, 1, generator=gen) * 2 - 1) * 0.05
    img2 = img2 * gain + bias + torch.randn(img2.shape, generator=gen) * 0.02
    img1 = img1 + torch.randn(img1.shape, generator=gen) * 0.02
    return img1.clamp(-1, 1), img2.clamp(-1, 1), flow.permute(0, 3, 1, 2).contiguous()


def sequence_loss(predictions: list[torch.Tensor], flow: torch.Tensor, gamma: float = 0.8) -> torch.Tensor:
    """RAFT's loss: L1 of every refinement's flow, later ones weighted more (``gamma`` per step back)."""
    n = len(predictions)
    return sum(gamma ** (n - i - 1) * (p - flow).abs().mean() for i, p in enumerate(predictions))  # type: ignore[return-value]


def end_point_error(pred: torch.Tensor, flow: torch.Tensor) -> float:
    """Mean Euclidean distance between predicted and true flow vectors, in pixels."""
    return float((pred - flow).norm(dim=1).mean())


def train(steps: int, out: Path, *, batch_size: int = 4, lr: float = 4e-4, updates: int = 8, seed: int = 0,
          device: str | None = None, log_every: int = 50, eval_pairs: int = 64,
          init: Path | None = None) -> dict[str, float]:
    """Train raft_small on ``synthetic_pairs``, from scratch or from the weights file ``init`` (a further
    stage: give it another ``seed``, so it sees new pairs); save fp16 safetensors to ``out``.

    Returns the end-point error of the saved weights on ``eval_pairs`` held-out pairs (their own seed)."""
    from safetensors.torch import save_file

    from avkit.engine.device import resolve_device
    from avkit.flow.raft import build_raft, raft_pairs
    from avkit.utils import atomic_path

    dev = resolve_device(device)
    torch.manual_seed(seed)
    model = build_raft("small", init).to(dev).train()  # init=None: random initialisation
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4, eps=1e-8)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.05,
                                                anneal_strategy="linear")
    start = time.perf_counter()
    for step in range(steps):
        img1, img2, flow = (t.to(dev) for t in synthetic_pairs(batch_size, seed=seed * 1_000_003 + step))
        loss = sequence_loss(model(img1, img2, num_flow_updates=updates), flow)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % log_every == 0 or step == steps - 1:
            print(f"step {step + 1}/{steps}  loss {loss.item():.3f}  {time.perf_counter() - start:.0f} s", flush=True)
    model.eval()
    state = {k: v.detach().half().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(out) as tmp:
        save_file(state, str(tmp), metadata={"model": "raft_small", "recipe": "avkit.flow.raft_synthetic",
                                             "steps": str(steps), "batch_size": str(batch_size)})
    model.load_state_dict({k: v.float() for k, v in state.items()})
    img1, img2, flow = synthetic_pairs(eval_pairs, seed=HELD_OUT_SEED)
    pred = torch.cat([raft_pairs(model, img1[i:i + 8].to(dev), img2[i:i + 8].to(dev)).cpu()
                      for i in range(0, eval_pairs, 8)])
    return {"epe": end_point_error(pred, flow), "epe_zero": end_point_error(torch.zeros_like(flow), flow),
            "seconds": time.perf_counter() - start}


HELD_OUT_SEED = 999_999_937  # never a training step's seed (those are seed * 1_000_003 + step)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="example: python -m avkit.flow.raft_synthetic --steps 2000 "
                                        "--out assets/flow/raft_small_synthetic.safetensors")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--lr", type=float, default=4e-4)
    ap.add_argument("--updates", type=int, default=8, help="RAFT refinements per training step")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default=None)
    ap.add_argument("--init", type=Path, default=None, help="start from these weights (a further stage)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    result = train(args.steps, args.out, batch_size=args.batch_size, lr=args.lr, updates=args.updates,
                   seed=args.seed, device=args.device, init=args.init)
    print(f"saved {args.out}: held-out end-point error {result['epe']:.3f} px (zero flow {result['epe_zero']:.3f} px), "
          f"{result['seconds']:.0f} s")


if __name__ == "__main__":
    main()
