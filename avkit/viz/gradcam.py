"""Grad-CAM (Selvaraju et al. 2017) over space and time, for 3D and per-frame 2D networks.

For a chosen layer with activations ``A`` (channels ``k``), the class score's gradient averaged
over the layer's positions gives one weight per channel, ``alpha_k = mean(dS/dA_k)``; the map is
``ReLU(sum_k alpha_k A_k)``, upsampled to the clip and scaled to [0, 1] over the whole clip (so
quiet moments stay dark).

- 3D networks (activations ``[1, C, t, h, w]``): one space-time map, the weights averaged over
  ``t, h, w``, upsampled trilinearly to ``[T, H, W]``.
- 2D per-frame networks (single-frame, two-stream's spatial stream, CNN+LSTM: activations
  ``[T, C, h, w]``, frames folded into the batch): one map per frame, with per-frame weights.
- 2D networks that see the whole clip at once (early fusion, ``[1, C, h, w]``): one spatial map,
  the same for every frame.

``write_cam_video`` blends the map (a matplotlib colormap) on the frames and writes an mp4 with
``avkit.io.write_video``.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from avkit.errors import AvkitError


def find_layer(model: nn.Module, layer: str | nn.Module | None = None) -> nn.Module:
    """``layer`` as a module: given, a dotted submodule name, or (None) the model's last Conv2d/Conv3d."""
    if isinstance(layer, nn.Module):
        return layer
    if isinstance(layer, str):
        try:
            return model.get_submodule(layer)
        except AttributeError:
            raise AvkitError(f"{type(model).__name__} has no layer {layer!r}") from None
    convs = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Conv3d))]
    if not convs:
        raise AvkitError(f"{type(model).__name__} has no convolution; pass target_layer=")
    return convs[-1]


def grad_cam(model: nn.Module, clip: torch.Tensor, target_layer: str | nn.Module | None = None,
             class_idx: int | None = None, forward: Callable[[torch.Tensor], torch.Tensor] | None = None
             ) -> torch.Tensor:
    """Grad-CAM of ``class_idx`` (default: the top class) for one clip ``[3, T, H, W]``: ``float [T, H, W]`` in [0, 1].

    ``target_layer`` is a module or its dotted name (default: the last convolution); ``forward``
    maps the batched clip to logits (default ``model``; e.g. ``lambda x: model(x, flow)``). The
    model runs in eval mode and its parameters' ``.grad`` are left untouched.
    """
    x = clip[None] if clip.dim() == 4 else clip
    if x.dim() != 5 or x.shape[0] != 1:
        raise AvkitError(f"grad_cam takes one clip [3, T, H, W] (or [1, 3, T, H, W]), got {tuple(clip.shape)}")
    _, _, t, h, w = x.shape
    layer = find_layer(model, target_layer)
    saved: dict[str, torch.Tensor] = {}

    def hook(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        saved["a"] = output
        return output.clone()  # later in-place ops (ReLU(inplace=True)) then leave the saved tensor intact

    handle = layer.register_forward_hook(hook)
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            device = next((p.device for p in model.parameters()), x.device)
            logits = (forward or model)(x.detach().float().to(device))
            if logits.dim() != 2:
                raise AvkitError(f"grad_cam needs logits [1, C] from the model, got {tuple(logits.shape)}")
            idx = int(logits[0].argmax()) if class_idx is None else int(class_idx)
            if "a" not in saved:
                raise AvkitError(f"target layer {type(layer).__name__} was not used by the forward pass")
            grads = torch.autograd.grad(logits[0, idx], saved["a"])[0]
    finally:
        handle.remove()
        model.train(was_training)
    a, g = saved["a"].detach().float(), grads.float()
    if a.dim() == 5:  # [1, C, t', h', w']: space-time map
        cam = F.relu((g.mean(dim=(2, 3, 4), keepdim=True) * a).sum(1, keepdim=True))
        cam = F.interpolate(cam, size=(t, h, w), mode="trilinear", align_corners=False)[0, 0]
    elif a.dim() == 4 and a.shape[0] in (t, 1):  # [T, C, h', w'] per frame, or [1, C, h', w'] for the clip
        cam = F.relu((g.mean(dim=(2, 3), keepdim=True) * a).sum(1, keepdim=True))
        cam = F.interpolate(cam, size=(h, w), mode="bilinear", align_corners=False)[:, 0]
        cam = cam.expand(t, h, w) if cam.shape[0] == 1 else cam
    else:
        raise AvkitError(f"grad_cam needs convolutional activations [1,C,t,h,w], [T,C,h,w] or [1,C,h,w]; "
                         f"layer {type(layer).__name__} gave {tuple(a.shape)}")
    lo, hi = cam.min(), cam.max()
    return ((cam - lo) / (hi - lo)) if hi > lo else torch.zeros_like(cam)


def to_uint8_frames(frames: torch.Tensor | np.ndarray) -> np.ndarray:
    """uint8 ``[T, H, W, 3]`` as given, or a float model clip ``[3, T, H, W]`` rescaled to 0..255 over the clip."""
    x = torch.as_tensor(frames).detach().cpu()
    if x.dtype == torch.uint8:
        if x.dim() != 4 or x.shape[-1] != 3:
            raise AvkitError(f"frames must be uint8 [T, H, W, 3], got {tuple(x.shape)}")
        return x.numpy()
    if x.dim() != 4 or x.shape[0] != 3:
        raise AvkitError(f"float frames must be a clip [3, T, H, W], got {tuple(x.shape)}")
    x = x.float().permute(1, 2, 3, 0)
    lo, hi = x.min(), x.max()
    x = (x - lo) / (hi - lo) if hi > lo else torch.zeros_like(x)
    return (x * 255).round().to(torch.uint8).numpy()


def overlay_cam(frames: torch.Tensor | np.ndarray, cam: torch.Tensor, alpha: float = 0.5,
                colormap: str = "jet") -> np.ndarray:
    """Blend ``cam [T, H, W]`` (in [0, 1], resized to the frames if needed) as a heatmap on the frames.

    Returns uint8 ``[T, H, W, 3]``.
    """
    import matplotlib

    rgb = to_uint8_frames(frames)
    t, h, w, _ = rgb.shape
    cam = torch.as_tensor(cam).detach().float().cpu()
    if cam.dim() != 3 or cam.shape[0] != t:
        raise AvkitError(f"cam must be [T, H, W] with T={t} frames, got {tuple(cam.shape)}")
    if tuple(cam.shape[1:]) != (h, w):
        cam = F.interpolate(cam[:, None], size=(h, w), mode="bilinear", align_corners=False)[:, 0]
    heat = matplotlib.colormaps[colormap](cam.clamp(0, 1).numpy())[..., :3] * 255.0
    return np.clip((1 - alpha) * rgb + alpha * heat, 0, 255).round().astype(np.uint8)


def write_cam_video(path: str | Path, frames: torch.Tensor | np.ndarray, cam: torch.Tensor, fps: float,
                    alpha: float = 0.5, colormap: str = "jet", overwrite: bool = False) -> Path:
    """Write the Grad-CAM overlay of ``cam`` on ``frames`` as an mp4 (atomic; no overwrite unless asked)."""
    from avkit.io.write import write_video

    return write_video(path, overlay_cam(frames, cam, alpha, colormap), fps, overwrite=overwrite)
