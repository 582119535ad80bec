"""Clip transforms: the same spatial operation on every frame of a clip.

Input is what the reader gives, ``uint8 [T, H, W, 3]``; the geometric transforms keep that
layout (and any leading view dimension, e.g. ``[K, T, H, W, 3]`` after :class:`ThreeCrop`),
:class:`ToFloat` turns it into the model layout ``float [..., 3, T, H, W]`` in ``[0, 1]`` and
:class:`Normalize` subtracts the mean and divides by the std per channel.

A random transform draws once per clip, never per frame, so motion is not destroyed by
jittering crops. Random transforms take an optional ``rng`` (``numpy.random.Generator``);
:class:`Compose` passes its ``rng`` to the transforms that have ``takes_rng = True``.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from avkit.data.sampling import as_rng
from avkit.errors import AvkitError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _check_frames(frames: torch.Tensor, name: str) -> None:
    if not isinstance(frames, torch.Tensor) or frames.ndim < 4 or frames.shape[-1] != 3:
        shape = tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
        raise AvkitError(f"{name} expects frames [..., T, H, W, 3], got {shape}")


def _crop(frames: torch.Tensor, top: int, left: int, h: int, w: int) -> torch.Tensor:
    return frames[..., top:top + h, left:left + w, :]


def _crop_size(size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    h, w = size
    return int(h), int(w)


def _fits(frames: torch.Tensor, h: int, w: int, name: str) -> None:
    H, W = frames.shape[-3], frames.shape[-2]
    if h > H or w > W:
        raise AvkitError(f"{name}: crop {h}x{w} is larger than the frames {H}x{W}; resize first")


class Compose:
    """Apply transforms in order; ``rng`` goes to those with ``takes_rng = True``."""

    def __init__(self, transforms: Sequence[Callable]) -> None:
        self.transforms = list(transforms)

    def __call__(self, frames: torch.Tensor, rng: np.random.Generator | int | None = None) -> torch.Tensor:
        rng = as_rng(rng)
        for t in self.transforms:
            frames = t(frames, rng=rng) if getattr(t, "takes_rng", False) else t(frames)
        return frames

    def __repr__(self) -> str:
        inner = "".join(f"\n    {t!r}," for t in self.transforms)
        return f"Compose([{inner}\n])"


class ResizeShortSide:
    """Resize so the shorter side is ``size`` pixels, keeping the aspect ratio (bilinear, antialiased)."""

    def __init__(self, size: int, antialias: bool = True) -> None:
        self.size = int(size)
        self.antialias = antialias

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        _check_frames(frames, "ResizeShortSide")
        H, W = frames.shape[-3], frames.shape[-2]
        if min(H, W) == self.size:
            return frames
        if H <= W:
            h, w = self.size, max(1, round(W * self.size / H))
        else:
            h, w = max(1, round(H * self.size / W)), self.size
        import torchvision.transforms.v2.functional as TF  # here: importing torchvision costs 1-2 s

        lead = frames.shape[:-3]
        x = frames.reshape(-1, H, W, 3).permute(0, 3, 1, 2)
        # torchvision resizes uint8 directly (fast path) and float tensors alike.
        y = TF.resize(x, [h, w], interpolation=TF.InterpolationMode.BILINEAR, antialias=self.antialias)
        y = y.permute(0, 2, 3, 1).contiguous()
        return y.reshape(*lead, h, w, 3)

    def __repr__(self) -> str:
        return f"ResizeShortSide({self.size})"


class CenterCrop:
    """The central ``size`` crop (int for square, or ``(h, w)``)."""

    def __init__(self, size: int | tuple[int, int]) -> None:
        self.size = _crop_size(size)

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        _check_frames(frames, "CenterCrop")
        h, w = self.size
        _fits(frames, h, w, "CenterCrop")
        H, W = frames.shape[-3], frames.shape[-2]
        return _crop(frames, (H - h) // 2, (W - w) // 2, h, w)

    def __repr__(self) -> str:
        return f"CenterCrop({self.size})"


class RandomCrop:
    """One random ``size`` crop, the same position for every frame of the clip."""

    takes_rng = True

    def __init__(self, size: int | tuple[int, int]) -> None:
        self.size = _crop_size(size)

    def __call__(self, frames: torch.Tensor, rng: np.random.Generator | int | None = None) -> torch.Tensor:
        _check_frames(frames, "RandomCrop")
        h, w = self.size
        _fits(frames, h, w, "RandomCrop")
        H, W = frames.shape[-3], frames.shape[-2]
        g = as_rng(rng)
        top = int(g.integers(0, H - h + 1))
        left = int(g.integers(0, W - w + 1))
        return _crop(frames, top, left, h, w)

    def __repr__(self) -> str:
        return f"RandomCrop({self.size})"


class RandomHorizontalFlip:
    """Mirror the whole clip left-right with probability ``p``."""

    takes_rng = True

    def __init__(self, p: float = 0.5) -> None:
        self.p = float(p)

    def __call__(self, frames: torch.Tensor, rng: np.random.Generator | int | None = None) -> torch.Tensor:
        _check_frames(frames, "RandomHorizontalFlip")
        if as_rng(rng).random() < self.p:
            return frames.flip(-2)
        return frames

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class HorizontalFlip:
    """Mirror the whole clip left-right (always; e.g. for flip test-time augmentation)."""

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        _check_frames(frames, "HorizontalFlip")
        return frames.flip(-2)

    def __repr__(self) -> str:
        return "HorizontalFlip()"


class ThreeCrop:
    """Three ``size`` crops along the long side: left/centre/right (landscape) or top/centre/bottom.

    The usual test recipe resizes the short side to ``size`` first, so the three square crops
    together cover the whole frame. Output gains a leading view axis: ``[3, ..., T, h, w, 3]``.
    """

    def __init__(self, size: int | tuple[int, int]) -> None:
        self.size = _crop_size(size)

    def positions(self, height: int, width: int) -> list[tuple[int, int]]:
        """``(top, left)`` of the three crops for frames of ``height x width``."""
        h, w = self.size
        if width >= height:
            top = (height - h) // 2
            return [(top, 0), (top, (width - w) // 2), (top, width - w)]
        left = (width - w) // 2
        return [(0, left), ((height - h) // 2, left), (height - h, left)]

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        _check_frames(frames, "ThreeCrop")
        h, w = self.size
        _fits(frames, h, w, "ThreeCrop")
        H, W = frames.shape[-3], frames.shape[-2]
        return torch.stack([_crop(frames, top, left, h, w) for top, left in self.positions(H, W)])

    def __repr__(self) -> str:
        return f"ThreeCrop({self.size})"


class ToFloat:
    """``uint8 [..., T, H, W, 3]`` -> ``float32 [..., 3, T, H, W]`` in ``[0, 1]``."""

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        _check_frames(frames, "ToFloat")
        x = frames.movedim(-1, -4)
        if x.dtype == torch.uint8:
            return x.float().div_(255.0)
        return x.float()

    def __repr__(self) -> str:
        return "ToFloat()"


class Normalize:
    """Per-channel ``(x - mean) / std`` on ``float [..., 3, T, H, W]`` (ImageNet statistics by default)."""

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> None:
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise AvkitError(f"Normalize needs 3 means and 3 positive stds, got {mean}, {std}")
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim < 4 or x.shape[-4] != 3 or not x.is_floating_point():
            raise AvkitError(f"Normalize expects float [..., 3, T, H, W], got {x.dtype} {tuple(x.shape)}")
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(3, 1, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(3, 1, 1, 1)
        return (x - mean) / std

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean}, std={self.std})"


def train_transform(
    size: int,
    short_side: int | None = None,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    flip: bool = True,
) -> Compose:
    """Training preset: resize short side (default ``size * 8 / 7``, as 256 for 224), random crop, flip.

    Output ``float [3, T, size, size]``, normalized. ``flip=False`` for classes a mirror image
    changes (``move_left`` flipped is ``move_right``).
    """
    short_side = short_side or round(size * 8 / 7)
    steps: list[Callable] = [ResizeShortSide(short_side), RandomCrop(size)]
    if flip:
        steps.append(RandomHorizontalFlip())
    return Compose([*steps, ToFloat(), Normalize(mean, std)])


def eval_transform(
    size: int,
    num_crops: int = 1,
    short_side: int | None = None,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> Compose:
    """Evaluation preset, deterministic.

    ``num_crops=1``: resize short side (default ``size * 8 / 7``) + centre crop -> ``[3, T, size, size]``.
    ``num_crops=3``: resize short side to ``size`` + :class:`ThreeCrop` -> ``[3 crops, 3, T, size, size]``.
    """
    if num_crops == 1:
        short_side = short_side or round(size * 8 / 7)
        crops: list[Callable] = [ResizeShortSide(short_side), CenterCrop(size)]
    elif num_crops == 3:
        crops = [ResizeShortSide(short_side or size), ThreeCrop(size)]
    else:
        raise AvkitError(f"num_crops must be 1 or 3, got {num_crops!r}")
    return Compose([*crops, ToFloat(), Normalize(mean, std)])
