"""Class model visualisation by gradient ascent on the input (Simonyan et al. 2014; for video
networks Feichtenhofer et al. 2018, "What have we learned from deep representations for action
recognition?").

Starting from small noise, the input ``x`` is changed to maximise

    S_c(x)  -  l2 * mean(x^2)  -  smooth * mean((x_{t+1} - x_t)^2)

where ``S_c`` is the class score before the softmax. The L2 term keeps the input bounded (without
it the score grows by scaling the input), the temporal term sets how fast the visualised pattern
may change over time: a large ``smooth`` shows what the class looks like when it is slow or
static, a small one lets fast motion patterns appear.

- ``kind="appearance"``: a clip ``[3, T, H, W]`` for a video network (or the spatial stream).
- ``kind="flow"``: a stacked optical-flow input ``[2L, H, W]`` (channels ``x_1, y_1, x_2, y_2, ...``)
  for a two-stream network's temporal stream; smoothness is taken between consecutive fields.

The ascent uses Adam on the input (plain gradient ascent works too but needs a step size per model).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from avkit.errors import AvkitError
from avkit.utils import atomic_path, check_output


@dataclass
class ClassVisualization:
    """The optimised input (no batch dim), its kind, and the class score before and after."""

    input: torch.Tensor
    kind: str
    class_idx: int
    start_score: float
    final_score: float
    scores: list[float] = field(default_factory=list)


def temporal_difference(x: torch.Tensor, kind: str) -> torch.Tensor:
    """Differences between consecutive time steps: frames of ``[3, T, H, W]`` or fields of ``[2L, H, W]``."""
    if kind == "appearance":
        return x[:, 1:] - x[:, :-1]
    fields = x.view(x.shape[0] // 2, 2, *x.shape[1:])
    return fields[1:] - fields[:-1]


def visualize_class(model: nn.Module, class_idx: int, shape: tuple[int, ...], *, kind: str = "appearance",
                    forward: Callable[[torch.Tensor], torch.Tensor] | None = None, steps: int = 100,
                    lr: float = 0.05, l2: float = 1e-3, smooth: float = 1e-2, init: torch.Tensor | None = None,
                    seed: int = 0) -> ClassVisualization:
    """Optimise an input of ``shape`` (no batch dim) to maximise ``class_idx``'s score, regularised as above.

    ``forward`` maps the batched input to logits ``[1, C]`` (default ``model``; for a two-stream
    temporal stream e.g. ``lambda f: model.temporal_head(model.temporal(f))``). The model runs in
    eval mode; its parameters are not changed and their ``.grad`` is left untouched.
    """
    if kind not in ("appearance", "flow"):
        raise AvkitError(f"kind must be 'appearance' or 'flow', got {kind!r}")
    if kind == "appearance" and len(shape) != 4:
        raise AvkitError(f"an appearance input is [3, T, H, W], got shape {shape}")
    if kind == "flow" and (len(shape) != 3 or shape[0] % 2):
        raise AvkitError(f"a flow input is stacked [2L, H, W], got shape {shape}")
    if init is not None:
        x = init.detach().clone().float()
    else:
        gen = torch.Generator().manual_seed(seed)
        x = 0.01 * torch.randn(shape, generator=gen)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    x = x.to(device).requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr)
    fn = forward or model
    scores: list[float] = []
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            for _ in range(steps + 1):
                score = fn(x[None])[0, class_idx]
                scores.append(float(score.detach()))
                if len(scores) > steps:
                    break
                objective = score - l2 * x.pow(2).mean() - smooth * temporal_difference(x, kind).pow(2).mean()
                opt.zero_grad()
                x.grad = torch.autograd.grad(-objective, x)[0]
                opt.step()
    finally:
        model.train(was_training)
    return ClassVisualization(x.detach().cpu(), kind, int(class_idx), scores[0], scores[-1], scores)


def _unit(x: np.ndarray) -> np.ndarray:
    """Rescale to [0, 1] symmetrically around 0 (so zero is mid-grey: flow sign), robust to a few outliers."""
    scale = np.percentile(np.abs(x), 99.5) or 1.0
    return np.clip(x / (2 * scale) + 0.5, 0, 1)


def _stretch(x: np.ndarray) -> np.ndarray:
    """Rescale the 0.5..99.5 percentile range to [0, 1] (appearance: use the whole grey range)."""
    lo, hi = np.percentile(x, [0.5, 99.5])
    return np.clip((x - lo) / (hi - lo), 0, 1) if hi > lo else np.zeros_like(x)


def _montage(images: list[np.ndarray], pad: int = 2) -> np.ndarray:
    """Images ``[H, W, 3]`` side by side with a white gap."""
    h, w = images[0].shape[:2]
    out = np.ones((h, len(images) * (w + pad) - pad, 3))
    for i, im in enumerate(images):
        out[:, i * (w + pad): i * (w + pad) + w] = im
    return out


def _flow_rgb(fx: np.ndarray, fy: np.ndarray) -> np.ndarray:
    """Flow field as colour: direction is the hue, magnitude the brightness."""
    from matplotlib.colors import hsv_to_rgb

    mag = np.hypot(fx, fy)
    hue = (np.arctan2(fy, fx) / (2 * np.pi)) % 1.0
    val = mag / (mag.max() or 1.0)
    return hsv_to_rgb(np.stack([hue, np.ones_like(hue), val], axis=-1))


def save_class_visualization(vis: ClassVisualization, out_dir: str | Path, name: str | None = None,
                             overwrite: bool = False) -> list[Path]:
    """Write ``vis`` as PNG images in ``out_dir``; returns the paths.

    Appearance: ``NAME.png`` (all frames side by side) and ``NAME_tXX.png`` per frame. Flow:
    ``NAME.png`` with three rows over the L fields: x component, y component (grey, mid-grey = 0)
    and the colour-coded field.
    """
    import matplotlib.image

    out_dir = Path(out_dir)
    name = name or f"class{vis.class_idx}_{vis.kind}"
    x = vis.input.float().numpy()
    images: dict[Path, np.ndarray] = {}
    if vis.kind == "appearance":
        x = _stretch(x)  # one scale for the whole clip, so frames compare
        frames = [x[:, t].transpose(1, 2, 0) for t in range(x.shape[1])]
        images[out_dir / f"{name}.png"] = _montage(frames)
        for t, frame in enumerate(frames):
            images[out_dir / f"{name}_t{t:02d}.png"] = frame
    else:
        fields = x.reshape(x.shape[0] // 2, 2, *x.shape[1:])
        grey = lambda c: np.repeat(_unit(c)[..., None], 3, axis=-1)  # noqa: E731
        rows = [_montage([grey(f[0]) for f in fields]), _montage([grey(f[1]) for f in fields]),
                _montage([_flow_rgb(f[0], f[1]) for f in fields])]
        gap = np.ones((2, rows[0].shape[1], 3))
        images[out_dir / f"{name}.png"] = np.concatenate([rows[0], gap, rows[1], gap, rows[2]], axis=0)
    for path in images:
        check_output(path, overwrite)
    for path, img in images.items():
        with atomic_path(path) as tmp:
            matplotlib.image.imsave(tmp, np.clip(img, 0, 1))
    return list(images)
