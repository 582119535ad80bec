"""Audio features and augmentations: log-mel spectrograms, gain and time shift.

:class:`LogMel` is a plain config dataclass that is also callable: ``LogMel()(waveform)`` turns a
mono ``float [S]`` waveform into ``[1, F, T]`` (``[B, S]`` into ``[B, 1, F, T]``). It is
``torchaudio.transforms.MelSpectrogram`` followed by ``AmplitudeToDB`` (``log="db"``) or a
natural log (``log="log"``), and matches ``librosa.feature.melspectrogram`` +
``librosa.power_to_db`` (or ``np.log(S + eps)``) called with the same parameters
(``htk = mel_scale == "htk"``, ``norm``, ``center``, ``pad_mode``, ``power``):

- float64 input is computed in float64 and agrees with librosa to ~1e-9 dB;
- float32 input (the default for training) agrees to float32 rounding, which matters only far
  below the loudest bin (use ``top_db`` to floor those).

For that the Hann window and the mel filterbank are computed in float64 here (torchaudio makes
them in float32, whose rounding shows up as spectral leakage 60 dB down).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from avkit.data.sampling import as_rng
from avkit.environment import import_module
from avkit.errors import AvkitError

if TYPE_CHECKING:  # only for annotations: torchaudio is imported lazily, where it is used
    import torchaudio


def hz_to_mel(freq: np.ndarray | float, mel_scale: str = "slaney") -> np.ndarray:
    """Hertz to mels, HTK formula or Slaney's (linear below 1 kHz, log above), as librosa."""
    f = np.asarray(freq, dtype=np.float64)
    if mel_scale == "htk":
        return 2595.0 * np.log10(1.0 + f / 700.0)
    f_sp = 200.0 / 3
    min_log_hz, logstep = 1000.0, math.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, min_log_hz) / min_log_hz) / logstep,
                    f / f_sp)


def mel_to_hz(mels: np.ndarray | float, mel_scale: str = "slaney") -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    m = np.asarray(mels, dtype=np.float64)
    if mel_scale == "htk":
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    f_sp = 200.0 / 3
    min_log_hz, logstep = 1000.0, math.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, f_min: float = 0.0, f_max: float | None = None,
                   mel_scale: str = "slaney", norm: str | None = "slaney") -> np.ndarray:
    """Triangular mel filters ``float64 [n_fft // 2 + 1, n_mels]`` (librosa's ``filters.mel``, transposed)."""
    if mel_scale not in ("slaney", "htk"):
        raise AvkitError(f"mel_scale must be 'slaney' or 'htk', got {mel_scale!r}")
    if norm not in (None, "slaney"):
        raise AvkitError(f"norm must be None or 'slaney', got {norm!r}")
    f_max = sample_rate / 2 if f_max is None else float(f_max)
    freqs = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    m_pts = np.linspace(hz_to_mel(f_min, mel_scale), hz_to_mel(f_max, mel_scale), n_mels + 2)
    f_pts = mel_to_hz(m_pts, mel_scale)
    f_diff = np.diff(f_pts)
    ramps = f_pts[None, :] - freqs[:, None]  # [n_freqs, n_mels + 2]
    lower = -ramps[:, :-2] / f_diff[:-1]
    upper = ramps[:, 2:] / f_diff[1:]
    fb = np.maximum(0.0, np.minimum(lower, upper))
    if norm == "slaney":
        fb *= 2.0 / (f_pts[2:n_mels + 2] - f_pts[:n_mels])[None, :]
    return fb


@dataclass
class LogMel:
    """Log-mel spectrogram settings; call it on a waveform to get ``[1, n_mels, frames]``.

    ``frames = 1 + samples // hop_length`` with ``center=True``. Waveforms shorter than
    ``n_fft`` are zero-padded to ``n_fft`` first (so silence-length clips still work).
    ``log="db"``: ``10 * log10(max(S, amin))`` then, if ``top_db``, floored at ``max - top_db``;
    ``log="log"``: ``ln(S + eps)``.
    """

    sample_rate: int = 16000
    n_fft: int = 400
    win_length: int | None = None
    hop_length: int = 160
    n_mels: int = 64
    f_min: float = 0.0
    f_max: float | None = None
    power: float = 2.0
    center: bool = True
    pad_mode: str = "reflect"
    mel_scale: str = "slaney"
    norm: str | None = "slaney"
    log: str = "db"
    top_db: float | None = None
    amin: float = 1e-10
    eps: float = 1e-6
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.log not in ("db", "log"):
            raise AvkitError(f"LogMel.log must be 'db' or 'log', got {self.log!r}")
        if self.f_max is not None and self.f_max > self.sample_rate / 2:
            raise AvkitError(f"LogMel.f_max {self.f_max} is above Nyquist ({self.sample_rate / 2})")
        mel_filterbank(self.sample_rate, self.n_fft, 2, self.f_min, self.f_max, self.mel_scale, self.norm)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("_cache", None)
        return d

    def num_frames(self, num_samples: int) -> int:
        """Spectrogram frames for a waveform of ``num_samples``."""
        n = max(num_samples, self.n_fft)
        return 1 + n // self.hop_length if self.center else 1 + (n - self.n_fft) // self.hop_length

    def module(self, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"
               ) -> torchaudio.transforms.MelSpectrogram:
        """The ``MelSpectrogram`` module with float64-accurate window and filterbank, cast to ``dtype``."""
        key = (dtype, str(device))
        if key not in self._cache:
            win = self.win_length or self.n_fft
            fb = mel_filterbank(self.sample_rate, self.n_fft, self.n_mels, self.f_min, self.f_max,
                                self.mel_scale, self.norm)
            if (fb.max(axis=0) == 0).any():
                warnings.warn(f"LogMel: {int((fb.max(axis=0) == 0).sum())} of {self.n_mels} mel filters are "
                              f"empty (n_mels too high for n_fft={self.n_fft}); those bands are always silent",
                              stacklevel=2)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torchaudio's float32 filterbank is replaced below
                # imported here so that avkit.data loads (and says what to fix) without torchaudio
                m = import_module("torchaudio.transforms").MelSpectrogram(
                    sample_rate=self.sample_rate, n_fft=self.n_fft, win_length=win, hop_length=self.hop_length,
                    f_min=self.f_min, f_max=self.f_max, n_mels=self.n_mels, power=self.power, center=self.center,
                    pad_mode=self.pad_mode, norm=self.norm, mel_scale=self.mel_scale,
                ).to(dtype)
            with torch.no_grad():
                m.spectrogram.window.copy_(torch.hann_window(win, periodic=True, dtype=torch.float64))
                m.mel_scale.fb.copy_(torch.from_numpy(fb))
            self._cache[key] = m.to(device)
        return self._cache[key]

    def __call__(self, waveform: torch.Tensor | np.ndarray) -> torch.Tensor:
        x = torch.as_tensor(waveform)
        if x.ndim not in (1, 2):
            raise AvkitError(f"LogMel expects a mono waveform [S] or [B, S], got {tuple(x.shape)}")
        dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
        x = x.to(dtype)
        if x.shape[-1] < self.n_fft:
            x = torch.nn.functional.pad(x, (0, self.n_fft - x.shape[-1]))
        with torch.no_grad():
            mel = self.module(dtype, x.device)(x)  # [F, T] or [B, F, T]
            if self.log == "db":
                out = 10.0 * torch.log10(mel.clamp(min=self.amin))
                if self.top_db is not None:
                    floor = out.amax(dim=(-2, -1), keepdim=True) - self.top_db
                    out = torch.maximum(out, floor)
            else:
                out = torch.log(mel + self.eps)
        return out.unsqueeze(-3)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_cache"] = {}
        return state


def gain(waveform: torch.Tensor, db: float) -> torch.Tensor:
    """Scale a waveform by ``db`` decibels (amplitude factor ``10 ** (db / 20)``)."""
    return waveform * (10.0 ** (db / 20.0))


def time_shift(waveform: torch.Tensor, shift: int, mode: str = "roll") -> torch.Tensor:
    """Shift a waveform by ``shift`` samples along its last axis (positive = later).

    ``mode="roll"`` wraps the samples that fall off one end around to the other;
    ``mode="pad"`` fills the gap with silence and drops what falls off.
    """
    if mode == "roll":
        return torch.roll(waveform, shifts=int(shift), dims=-1)
    if mode != "pad":
        raise AvkitError(f"time_shift mode must be 'roll' or 'pad', got {mode!r}")
    n = waveform.shape[-1]
    shift = int(shift)
    out = torch.zeros_like(waveform)
    if abs(shift) >= n:
        return out
    if shift >= 0:
        out[..., shift:] = waveform[..., :n - shift]
    else:
        out[..., :n + shift] = waveform[..., -shift:]
    return out


class RandomGain:
    """Random gain, uniform in ``[min_db, max_db]`` decibels."""

    takes_rng = True

    def __init__(self, min_db: float = -6.0, max_db: float = 6.0) -> None:
        if min_db > max_db:
            raise AvkitError(f"RandomGain: min_db {min_db} > max_db {max_db}")
        self.min_db, self.max_db = float(min_db), float(max_db)

    def __call__(self, waveform: torch.Tensor, rng: np.random.Generator | int | None = None) -> torch.Tensor:
        return gain(waveform, float(as_rng(rng).uniform(self.min_db, self.max_db)))

    def __repr__(self) -> str:
        return f"RandomGain({self.min_db}, {self.max_db})"


class RandomTimeShift:
    """Random shift of up to ``max_shift`` seconds either way (``mode`` as in :func:`time_shift`)."""

    takes_rng = True

    def __init__(self, max_shift: float, sample_rate: int = 16000, mode: str = "roll") -> None:
        self.max_samples = int(round(max_shift * sample_rate))
        self.mode = mode
        time_shift(torch.zeros(1), 0, mode)  # validates mode

    def __call__(self, waveform: torch.Tensor, rng: np.random.Generator | int | None = None) -> torch.Tensor:
        shift = int(as_rng(rng).integers(-self.max_samples, self.max_samples + 1))
        return time_shift(waveform, shift, self.mode)

    def __repr__(self) -> str:
        return f"RandomTimeShift(max_samples={self.max_samples}, mode={self.mode!r})"
