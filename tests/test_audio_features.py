"""Log-mel spectrograms match librosa; gain and time shift do what they say."""
from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
import torch

from avkit.data.audio_features import LogMel, RandomGain, RandomTimeShift, gain, mel_filterbank, time_shift
from avkit.errors import AvkitError
from avkit.io import read_audio

librosa = pytest.importorskip("librosa")

from conftest import shared_audio  # noqa: E402


def _chirp(sr: int = 16000, seconds: float = 1.5) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    f0, f1 = 100.0, 0.45 * sr
    return 0.5 * np.sin(2 * np.pi * (f0 * t + (f1 - f0) / (2 * seconds) * t**2))


def _librosa_logmel(y: np.ndarray, cfg: LogMel) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # empty-filter warnings for some settings
        S = librosa.feature.melspectrogram(
            y=y, sr=cfg.sample_rate, n_fft=cfg.n_fft, hop_length=cfg.hop_length, win_length=cfg.win_length,
            window="hann", center=cfg.center, pad_mode=cfg.pad_mode, power=cfg.power, n_mels=cfg.n_mels,
            fmin=cfg.f_min, fmax=cfg.f_max, htk=cfg.mel_scale == "htk", norm=cfg.norm, dtype=np.float64)
    if cfg.log == "db":
        return librosa.power_to_db(S, ref=1.0, amin=cfg.amin, top_db=cfg.top_db)
    return np.log(S + cfg.eps)


CONFIGS = [
    LogMel(),  # 16 kHz, n_fft 400, hop 160, 64 slaney mels, power dB
    LogMel(n_fft=512, n_mels=80, mel_scale="slaney", norm="slaney", top_db=80.0),
    LogMel(n_fft=512, n_mels=40, mel_scale="htk", norm=None, f_min=50.0, f_max=7000.0, pad_mode="constant"),
    LogMel(n_mels=64, power=1.0, log="log"),
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=["default", "slaney80_topdb", "htk_nonorm", "magnitude_ln"])
def test_logmel_matches_librosa_on_chirp(cfg):
    y = _chirp(cfg.sample_rate)
    ours = cfg(torch.from_numpy(y))
    ref = _librosa_logmel(y, cfg)
    assert ours.shape == (1, cfg.n_mels, cfg.num_frames(len(y))) == (1, *ref.shape)
    np.testing.assert_allclose(ours[0].numpy(), ref, atol=1e-4, rtol=0)
    # The chirp sweeps upward: the loudest mel band moves up over time.
    peak = ours[0].argmax(dim=0)
    assert peak[-5:].float().mean() > peak[:5].float().mean() + cfg.n_mels / 3


def test_logmel_float32_close_to_librosa_where_it_matters():
    cfg = LogMel(top_db=80.0)
    y = _chirp()
    ours = cfg(torch.from_numpy(y).float())
    assert ours.dtype == torch.float32
    np.testing.assert_allclose(ours[0].numpy(), _librosa_logmel(y, cfg), atol=5e-3, rtol=0)


def test_mel_filterbank_equals_librosa():
    for scale, norm in [("slaney", "slaney"), ("htk", None), ("htk", "slaney")]:
        ours = mel_filterbank(22050, 1024, 80, 20.0, 8000.0, scale, norm)
        ref = librosa.filters.mel(sr=22050, n_fft=1024, n_mels=80, fmin=20.0, fmax=8000.0,
                                  htk=scale == "htk", norm=norm, dtype=np.float64)
        np.testing.assert_allclose(ours.T, ref, atol=1e-12)


@pytest.mark.media
@pytest.mark.parametrize("wav", [p for p in shared_audio() if p.name in ("speech_16k.wav", "scale_violin.wav")],
                         ids=lambda p: p.name)
def test_logmel_matches_librosa_on_real_audio(wav):
    sr = 16000 if "16k" in wav.name else 22050
    wave, _ = read_audio(wav, 0.0, 4.0, sample_rate=sr)  # mono, resampled by avkit.io
    y = wave.numpy().astype(np.float64)
    cfg = LogMel(sample_rate=sr, n_fft=400 if sr == 16000 else 1024, hop_length=sr // 100, n_mels=64,
                 f_max=min(8000.0, sr / 2))
    ours = cfg(torch.from_numpy(y))
    np.testing.assert_allclose(ours[0].numpy(), _librosa_logmel(y, cfg), atol=1e-4, rtol=0)
    assert ours.max() > -20  # real sound, not silence


def test_logmel_batch_short_and_pickle():
    cfg = LogMel()
    batch = torch.from_numpy(np.stack([_chirp(), _chirp()[::-1].copy()])).float()
    out = cfg(batch)
    assert out.shape == (2, 1, 64, cfg.num_frames(batch.shape[1]))
    assert torch.allclose(out[0], cfg(batch[0]), atol=1e-4)
    short = cfg(torch.zeros(100))  # shorter than n_fft: zero-padded, floor value
    assert short.shape == (1, 64, cfg.num_frames(100)) and torch.all(short == -100.0)
    clone = pickle.loads(pickle.dumps(cfg))
    assert clone == cfg and torch.equal(clone(batch[0]), out[0])
    with pytest.warns(UserWarning, match="empty"):
        LogMel(n_fft=256, n_mels=128)(torch.zeros(1000))
    with pytest.raises(AvkitError):
        LogMel(log="log10")
    with pytest.raises(AvkitError):
        cfg(torch.zeros(2, 2, 100))


def test_gain_db():
    w = torch.ones(10)
    assert torch.allclose(gain(w, 20.0), torch.full((10,), 10.0))
    assert torch.allclose(gain(w, -6.0206), torch.full((10,), 0.5), atol=1e-4)
    # +6 dB gain raises a power dB spectrogram by 6 dB everywhere above the floor.
    y = torch.from_numpy(np.random.default_rng(0).normal(0, 0.1, 16000)).float()  # broadband
    base, louder = LogMel()(y), LogMel()(gain(y, 6.0))
    audible = base > base.max() - 60
    assert audible.float().mean() > 0.9
    assert torch.allclose(louder[audible] - base[audible], torch.tensor(6.0), atol=1e-3)


def test_time_shift_roll_and_pad():
    w = torch.arange(1, 6, dtype=torch.float32)
    assert time_shift(w, 2).tolist() == [4, 5, 1, 2, 3]
    assert time_shift(w, 2, mode="pad").tolist() == [0, 0, 1, 2, 3]
    assert time_shift(w, -2, mode="pad").tolist() == [3, 4, 5, 0, 0]
    assert time_shift(w, 9, mode="pad").tolist() == [0] * 5
    with pytest.raises(AvkitError):
        time_shift(w, 1, mode="wrap")


def test_random_audio_augmentations_deterministic_and_bounded():
    w = torch.randn(1600)
    g = RandomGain(-6, 6)
    a, b = g(w, rng=3), g(w, rng=3)
    assert torch.equal(a, b)
    ratio = (a.abs().max() / w.abs().max()).item()
    assert 10 ** (-6 / 20) - 1e-6 <= ratio <= 10 ** (6 / 20) + 1e-6
    s = RandomTimeShift(0.01, sample_rate=16000, mode="roll")
    shifted = s(w, rng=np.random.default_rng(0))
    k = [k for k in range(-160, 161) if torch.equal(torch.roll(w, k), shifted)]
    assert len(k) == 1
