"""The separation front end: STFT magnitude, log-frequency warping, and the exact inverse path.

Defaults follow the standard mix-and-separate recipe (Sound of Pixels): mono audio at 11025 Hz,
``n_fft`` 1022 (512 frequency bins), hop 256, a Hann window, and the magnitude warped onto 256
log-spaced frequency bins for the network. The network predicts masks on the warped grid;
:meth:`Spectral.unwarp` maps them back to the 512 linear bins, and :meth:`Spectral.apply_mask`
multiplies them with the **mixture's complex STFT** (so the mixture's phase is kept) and inverts
the STFT. The oracles and the evaluation use the same :meth:`apply_mask`, so a mask means the same
thing everywhere (``tests/test_separation_stft.py``: ``istft(stft(x)) == x``, and the ideal ratio
mask of two tones that do not overlap in frequency recovers each tone).

Warping: warped bin ``i`` (of ``Fw``) sits at linear bin ``p_i = (21 ** (i / (Fw - 1)) - 1) / 20 * (F - 1)``
(the Sound of Pixels grid). Below ~600 Hz that is finer than the linear grid (interpolated); above it
coarser, and there each warped bin is a triangular average of the linear bins around it, so no
harmonic falls between two samples. Unwarping a mask interpolates linearly between warped bins.
Both are fixed matrices (``[Fw, F]`` and ``[F, Fw]``), applied with one matmul.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from avkit.errors import AvkitError

WARP_BASE = 21.0  # the log-frequency grid of Sound of Pixels (warpgrid: 21 ** u)


@dataclass(frozen=True)
class STFTConfig:
    """Parameters of the front end (``task_options.stft`` in a separation recipe; read with
    :func:`avkit.engine.config.parse_options`, ranges checked here)."""

    sample_rate: int = 11025
    n_fft: int = 1022
    hop: int = 256
    freq_bins: int = 256  # warped bins seen by the network; 0 = no warping (the linear n_fft // 2 + 1 bins)
    log_eps: float = 1e-3  # log(|X| + eps) is the network's input

    def __post_init__(self) -> None:
        if self.sample_rate < 1000 or self.n_fft < 16 or not 0 < self.hop <= self.n_fft:
            raise AvkitError(f"task_options.stft needs sample_rate >= 1000, n_fft >= 16 and 0 < hop <= n_fft, got "
                             f"sample_rate {self.sample_rate}, n_fft {self.n_fft}, hop {self.hop}")
        if self.freq_bins < 0:
            raise AvkitError(f"task_options.stft.freq_bins must be >= 0, got {self.freq_bins}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def linear_bins(self) -> int:
        return self.n_fft // 2 + 1

    @property
    def net_bins(self) -> int:
        return self.freq_bins or self.linear_bins


def warp_positions(linear_bins: int, warped_bins: int) -> np.ndarray:
    """Fractional linear-bin position of each warped bin (``[warped_bins]``, increasing, 0 to F-1)."""
    u = np.arange(warped_bins, dtype=np.float64) / max(warped_bins - 1, 1)
    return (WARP_BASE ** u - 1.0) / (WARP_BASE - 1.0) * (linear_bins - 1)


def warp_matrix(linear_bins: int, warped_bins: int) -> np.ndarray:
    """``[Fw, F]``: each row a triangle over the linear bins around ``p_i`` (width = the local spacing,
    at least one bin, so it is linear interpolation where the warped grid is finer), rows summing to 1."""
    p = warp_positions(linear_bins, warped_bins)
    spacing = np.gradient(p) if warped_bins > 1 else np.ones(1)
    width = np.maximum(spacing, 1.0)[:, None]
    k = np.arange(linear_bins, dtype=np.float64)[None, :]
    w = np.maximum(0.0, 1.0 - np.abs(k - p[:, None]) / width)
    return w / w.sum(axis=1, keepdims=True)


def unwarp_matrix(linear_bins: int, warped_bins: int) -> np.ndarray:
    """``[F, Fw]``: linear interpolation of a warped-grid signal at every linear bin."""
    p = warp_positions(linear_bins, warped_bins)
    k = np.arange(linear_bins, dtype=np.float64)
    j = np.clip(np.searchsorted(p, k, side="right") - 1, 0, warped_bins - 2) if warped_bins > 1 else np.zeros(
        linear_bins, int)
    out = np.zeros((linear_bins, warped_bins))
    if warped_bins == 1:
        out[:, 0] = 1.0
        return out
    frac = np.clip((k - p[j]) / (p[j + 1] - p[j]), 0.0, 1.0)
    out[np.arange(linear_bins), j] = 1.0 - frac
    out[np.arange(linear_bins), j + 1] += frac
    return out


class Spectral(torch.nn.Module):
    """STFT / inverse STFT / warp / unwarp for one :class:`STFTConfig` (a module so buffers follow ``.to``)."""

    window: torch.Tensor  # buffers, registered in __init__
    warp_m: torch.Tensor | None  # None without warping
    unwarp_m: torch.Tensor | None

    def __init__(self, cfg: STFTConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or STFTConfig()
        c = self.cfg
        self.register_buffer("window", torch.hann_window(c.n_fft, periodic=True), persistent=False)
        if c.freq_bins:
            self.register_buffer("warp_m", torch.from_numpy(warp_matrix(c.linear_bins, c.freq_bins)).float(),
                                 persistent=False)
            self.register_buffer("unwarp_m", torch.from_numpy(unwarp_matrix(c.linear_bins, c.freq_bins)).float(),
                                 persistent=False)
        else:
            self.warp_m = self.unwarp_m = None

    # -- time <-> frequency ----------------------------------------------------------------------

    def num_frames(self, samples: int) -> int:
        """STFT frames of ``samples`` samples (centred frames)."""
        return 1 + samples // self.cfg.hop

    def samples_for(self, frames: int) -> int:
        """The longest signal with exactly ``frames`` STFT frames."""
        return frames * self.cfg.hop - 1 if frames > 1 else self.cfg.hop - 1

    def stft(self, wave: torch.Tensor) -> torch.Tensor:
        """Complex STFT ``[..., F, T]`` (F = n_fft // 2 + 1) of ``wave [..., S]``."""
        shape = wave.shape
        flat = wave.reshape(-1, shape[-1]).float()
        spec = torch.stft(flat, self.cfg.n_fft, self.cfg.hop, window=self.window.to(flat.device), center=True,
                          pad_mode="constant", return_complex=True)
        return spec.reshape(*shape[:-1], *spec.shape[-2:])

    def istft(self, spec: torch.Tensor, length: int) -> torch.Tensor:
        """Inverse of :meth:`stft`: ``[..., F, T]`` complex -> ``[..., length]`` (exact for an unmodified STFT)."""
        shape = spec.shape
        flat = spec.reshape(-1, *shape[-2:])
        wave = torch.istft(flat, self.cfg.n_fft, self.cfg.hop, window=self.window.to(flat.real.device), center=True,
                           length=length)
        return wave.reshape(*shape[:-2], length)

    # -- frequency warping -----------------------------------------------------------------------

    def warp(self, linear: torch.Tensor) -> torch.Tensor:
        """``[..., F, T]`` (magnitude) -> ``[..., Fw, T]`` on the log-frequency grid (identity without warping)."""
        if self.warp_m is None:
            return linear
        return torch.einsum("wf,...ft->...wt", self.warp_m.to(linear.dtype), linear)

    def unwarp(self, warped: torch.Tensor) -> torch.Tensor:
        """``[..., Fw, T]`` (a mask) -> ``[..., F, T]`` on the linear grid."""
        if self.unwarp_m is None:
            return warped
        return torch.einsum("fw,...wt->...ft", self.unwarp_m.to(warped.dtype), warped)

    def log_magnitude(self, mag_warped: torch.Tensor) -> torch.Tensor:
        """The network's input: ``log(|X| + eps)`` on the warped grid."""
        return torch.log(mag_warped + self.cfg.log_eps)

    def features(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mixture STFT [..., F, T] complex, warped magnitude [..., Fw, T])`` of ``wave [..., S]``."""
        spec = self.stft(wave)
        return spec, self.warp(spec.abs())

    # -- the inverse path, shared by the model, the oracles and the tests ------------------------

    def apply_mask(self, mixture_spec: torch.Tensor, mask: torch.Tensor, length: int) -> torch.Tensor:
        """Waveforms ``[..., length]`` from the mixture STFT ``[..., F, T]`` (or ``[B, F, T]`` with masks
        ``[B, N, F, T]``) times a real mask on the **linear** grid: mixture phase, inverse STFT."""
        if mask.ndim == mixture_spec.ndim + 1:
            mixture_spec = mixture_spec.unsqueeze(-3)
        return self.istft(mixture_spec * mask.to(mixture_spec.real.dtype), length)

    def apply_warped_mask(self, mixture_spec: torch.Tensor, mask_warped: torch.Tensor, length: int) -> torch.Tensor:
        """:meth:`apply_mask` for a mask on the network's warped grid (unwarped first, clamped to [0, 1])."""
        return self.apply_mask(mixture_spec, self.unwarp(mask_warped).clamp(0.0, 1.0), length)


def ideal_masks(source_specs: torch.Tensor, kind: str = "ratio", eps: float = 1e-8) -> torch.Tensor:
    """Oracle masks ``[..., N, F, T]`` from the sources' STFTs ``[..., N, F, T]`` (complex or magnitudes).

    ``ratio`` (IRM): ``|S_i| / sum_j |S_j|``, in [0, 1], summing to 1 over the sources.
    ``binary`` (IBM): 1 where source ``i`` is the loudest, else 0.
    ``phase`` (PSM, complex STFTs only): ``Re(S_i / X)`` truncated to [0, 1], the phase-sensitive mask
    (``|S_i| / |X| cos(angle(S_i) - angle(X))``): the best real mask in [0, 1] on the mixture's phase.
    """
    if kind == "phase":
        if not source_specs.is_complex():
            raise AvkitError("the phase-sensitive mask needs the sources' complex STFTs")
        mix = source_specs.sum(dim=-3, keepdim=True)
        return ((source_specs * mix.conj()).real / (mix.abs() ** 2 + eps)).clamp(0.0, 1.0)
    mags = source_specs.abs() if source_specs.is_complex() else source_specs
    if kind == "ratio":
        return mags / (mags.sum(dim=-3, keepdim=True) + eps)
    if kind == "binary":
        return (mags >= mags.max(dim=-3, keepdim=True).values).to(mags.dtype) * (mags > 0).to(mags.dtype)
    raise AvkitError(f"mask kind must be 'ratio' or 'binary', got {kind!r}")
