"""RAFT optical flow from torchvision (``raft_small`` / ``raft_large``), torch-only so it runs on GPU.

Weights are never downloaded. ``weights="shipped"`` (the default for ``raft_small``) is the small
RAFT avkit ships, trained briefly on synthetic moving scenes (``avkit.flow.raft_synthetic``; its card:
``assets/flow/MODEL_CARD.md``): accurate on smooth, large-scale texture, about a pixel off on fine real
texture, where OpenCV's DIS does better. For RAFT trained on FlyingChairs, FlyingThings and Sintel, pass
``weights=`` a local file holding a RAFT ``state_dict`` (``.pth``/``.pt`` from ``torch.save`` or
``.safetensors``), e.g. torchvision's released weights saved once on a machine with internet.
``weights=None`` is a randomly initialised network, for training or testing shapes.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.models.optical_flow import RAFT, raft_large, raft_small

from avkit.errors import AvkitError
from avkit.utils import REINSTALL, shipped_asset

# RAFT works at 1/8 resolution and its correlation pyramid needs feature maps of at least 16x16.
_MULTIPLE = 8
_MIN_SIDE = 128


SHIPPED_RAFT = shipped_asset("flow", "raft_small_synthetic.safetensors")


def build_raft(size: str = "small", weights: str | Path | None = "shipped") -> RAFT:
    """torchvision RAFT in eval mode: ``weights`` is ``"shipped"`` (avkit's raft_small), a local
    state_dict file, or None (random initialisation)."""
    builders = {"small": raft_small, "large": raft_large}
    if size not in builders:
        raise AvkitError(f"unknown RAFT size {size!r} (choose 'small' or 'large')")
    model = builders[size](weights=None)
    if weights == "shipped":
        if size != "small":
            raise AvkitError("avkit ships RAFT weights for raft_small only: pass weights=FILE for raft_large "
                             "(torchvision's Raft_Large_Weights saved on a machine with internet)")
        if not SHIPPED_RAFT.is_file():
            raise AvkitError(f"{SHIPPED_RAFT}: the RAFT weights shipped with avkit are missing; {REINSTALL}")
        weights = SHIPPED_RAFT
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise AvkitError(f"{path}: RAFT weights file not found")
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            try:
                state = load_file(str(path))
            except Exception as err:  # noqa: BLE001 - safetensors raises several types for a damaged file
                raise AvkitError(f"{path}: unreadable RAFT weights ({str(err).splitlines()[0]})") from None
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
        try:
            model.load_state_dict({k: v.float() for k, v in state.items()})  # the shipped file is fp16
        except (RuntimeError, AttributeError) as err:
            raise AvkitError(f"{path}: not a raft_{size} state_dict ({str(err).splitlines()[0]})") from None
    return model.eval()


@torch.no_grad()
def raft_pairs(model: RAFT, img1: torch.Tensor, img2: torch.Tensor, num_flow_updates: int = 12) -> torch.Tensor:
    """Flow from ``img1`` to ``img2`` (``float [N, 3, H, W]`` in [-1, 1]) -> ``float [N, 2, H, W]``.

    Images are edge-padded to RAFT's size constraints and the flow is cropped back, so any
    size works and the flow stays in pixels of the input.
    """
    h, w = img1.shape[-2:]
    ph = max(_MIN_SIDE, -(-h // _MULTIPLE) * _MULTIPLE) - h
    pw = max(_MIN_SIDE, -(-w // _MULTIPLE) * _MULTIPLE) - w
    if ph or pw:
        img1 = F.pad(img1, (0, pw, 0, ph), mode="replicate")
        img2 = F.pad(img2, (0, pw, 0, ph), mode="replicate")
    flow = model(img1.contiguous(), img2.contiguous(), num_flow_updates=num_flow_updates)[-1]
    return flow[..., :h, :w]


def raft_flow(frames: torch.Tensor | np.ndarray, model: RAFT | None = None, *, size: str = "small",
              weights: str | Path | None = "shipped", num_flow_updates: int = 12, batch_size: int = 8,
              device: str | torch.device | None = None) -> torch.Tensor:
    """RAFT flow of ``uint8 [T, H, W, 3]`` frames -> ``float32 [T-1, 2, H, W]`` (pixels/frame, on CPU).

    Pass a prebuilt ``model`` (see ``build_raft``) to avoid rebuilding it per call.
    """
    frames = torch.as_tensor(np.asarray(frames)) if not isinstance(frames, torch.Tensor) else frames
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != torch.uint8:
        raise AvkitError(f"flow needs uint8 frames [T, H, W, 3], got {frames.dtype} {list(frames.shape)}")
    if frames.shape[0] < 2:
        raise AvkitError(f"flow needs at least 2 frames, got {frames.shape[0]}")
    model = model if model is not None else build_raft(size, weights)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model = model.to(device)
    images = frames.permute(0, 3, 1, 2).to(device, torch.float32) / 127.5 - 1.0
    n = images.shape[0] - 1
    out = [raft_pairs(model, images[i:min(i + batch_size, n)], images[i + 1:min(i + batch_size, n) + 1],
                      num_flow_updates) for i in range(0, n, batch_size)]
    return torch.cat(out).float().cpu()
