"""Pyramidal Lucas-Kanade flow in plain torch: no weights, no OpenCV, runs batched on GPU.

It is the fallback a model uses to compute flow on the fly from its RGB input. Coarse-to-fine
with warping, it follows motions of a few pixels per frame on textured regions; untextured
regions get ~0 (the 2x2 system is regularised). Use DIS or RAFT when accuracy matters.

Images may have several channels: the structure tensor and the mismatch are summed over them,
so an edge between two colours of the same brightness still moves (a grey image would lose it).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

_GRAY = (0.299, 0.587, 0.114)


def _gaussian_window(sigma: float, device, dtype) -> torch.Tensor:
    radius = max(1, int(round(2 * sigma)))
    x = torch.arange(-radius, radius + 1, device=device, dtype=dtype)
    g = torch.exp(-0.5 * (x / sigma) ** 2)
    return g / g.sum()


def _blur(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    # Separable Gaussian over [N, C, H, W], edge-replicated so borders are not pulled to zero. A sum
    # of shifted slices, not a grouped conv2d: on CPU that is several times faster at these sizes.
    taps = g.tolist()
    r = len(taps) // 2
    h, w = x.shape[-2:]
    x = F.pad(x, (r, r, 0, 0), mode="replicate")
    y = x[..., :w] * taps[0]
    for i in range(1, len(taps)):
        y.add_(x[..., i:i + w], alpha=taps[i])
    y = F.pad(y, (0, 0, r, r), mode="replicate")
    out = y[..., :h, :] * taps[0]
    for i in range(1, len(taps)):
        out.add_(y[..., i:i + h, :], alpha=taps[i])
    return out


def _gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    xp = F.pad(x, (1, 1, 1, 1), mode="replicate")
    return (xp[..., 1:-1, 2:] - xp[..., 1:-1, :-2]) / 2, (xp[..., 2:, 1:-1] - xp[..., :-2, 1:-1]) / 2


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample ``image [N, C, H, W]`` at ``x + flow`` (backward warp), edges replicated."""
    n, _, h, w = image.shape
    ys, xs = torch.meshgrid(torch.arange(h, device=image.device, dtype=image.dtype),
                            torch.arange(w, device=image.device, dtype=image.dtype), indexing="ij")
    gx = (xs + flow[:, 0]) * (2 / max(w - 1, 1)) - 1
    gy = (ys + flow[:, 1]) * (2 / max(h - 1, 1)) - 1
    return F.grid_sample(image, torch.stack([gx, gy], dim=-1), mode="bilinear", padding_mode="border",
                         align_corners=True)


@torch.no_grad()
def lk_pairs(img1: torch.Tensor, img2: torch.Tensor, levels: int = 3, iterations: int = 3,
             window_sigma: float = 2.0, reg: float = 1e-3) -> torch.Tensor:
    """Flow from ``img1`` to ``img2`` (``float [N, C, H, W]``, any intensity scale) -> ``[N, 2, H, W]``."""
    scale = torch.maximum(img1.amax(dim=(1, 2, 3), keepdim=True) - img1.amin(dim=(1, 2, 3), keepdim=True),
                          torch.full_like(img1[:, :1, :1, :1], 1e-6))
    lo = img1.amin(dim=(1, 2, 3), keepdim=True)
    img1, img2 = (img1 - lo) / scale, (img2 - lo) / scale
    pyr = [(img1, img2)]
    for _ in range(levels - 1):
        a, b = pyr[-1]
        if min(a.shape[-2:]) < 16:
            break
        pyr.append((F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)))
    g = _gaussian_window(window_sigma, img1.device, img1.dtype)
    flow: torch.Tensor | None = None
    for a, b in reversed(pyr):
        if flow is None:
            flow = a.new_zeros(a.shape[0], 2, *a.shape[-2:])
        else:
            flow = 2 * F.interpolate(flow, size=a.shape[-2:], mode="bilinear", align_corners=False)
        ix, iy = _gradients(a)
        products = [(ix * ix).sum(1, keepdim=True), (ix * iy).sum(1, keepdim=True), (iy * iy).sum(1, keepdim=True)]
        sxx, sxy, syy = _blur(torch.cat(products, 1), g).unbind(1)
        sxx, syy = sxx + reg * reg, syy + reg * reg
        det = sxx * syy - sxy * sxy
        for _ in range(iterations):
            it = warp(b, flow) - a
            bx, by = _blur(torch.cat([(ix * it).sum(1, keepdim=True), (iy * it).sum(1, keepdim=True)], 1), g).unbind(1)
            du = -(syy * bx - sxy * by) / det
            dv = -(sxx * by - sxy * bx) / det
            flow = flow + torch.stack([du, dv], 1)
    assert flow is not None  # pyr holds at least the full-size pair
    return flow


def lucas_kanade_flow(video: torch.Tensor, color: bool = True, **params) -> torch.Tensor:
    """Flow of a clip batch ``float [B, 3, T, H, W]`` -> ``float [B, T-1, 2, H, W]`` (pixels/frame).

    Any intensity normalisation works (each image is rescaled to [0, 1] before solving).
    ``color=True`` solves on the three channels together, ``False`` on grey (Rec. 601 luma).
    ``params`` go to ``lk_pairs`` (levels, iterations, window_sigma, reg).
    """
    b, _, t, h, w = video.shape
    frames = video.float()
    if not color:
        frames = (frames * video.new_tensor(_GRAY).view(1, 3, 1, 1, 1)).sum(1, keepdim=True)
    c = frames.shape[1]
    frames = frames.transpose(1, 2)  # [B, T, C, H, W]
    first = frames[:, :-1].reshape(-1, c, h, w)
    second = frames[:, 1:].reshape(-1, c, h, w)
    return lk_pairs(first, second, **params).view(b, t - 1, 2, h, w).to(video.dtype)
