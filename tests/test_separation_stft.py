"""The separation front end: the STFT inverts exactly, warping is a proper resampling, and a known
mask through the shared inverse path recovers a known source."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from avkit.apps.separation.metrics import bss_eval, si_sdr
from avkit.apps.separation.stft import Spectral, STFTConfig, ideal_masks, unwarp_matrix, warp_matrix, warp_positions
from avkit.engine.config import parse_options
from avkit.errors import AvkitError

SR = 11025


def tone(freq: float, seconds: float = 1.0, amp: float = 0.5, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t) * np.minimum(1, 20 * t)).astype(np.float32)


@pytest.fixture(scope="module")
def sp() -> Spectral:
    return Spectral(STFTConfig())


def test_defaults_are_the_standard_recipe(sp: Spectral) -> None:
    c = sp.cfg
    assert (c.sample_rate, c.n_fft, c.hop, c.freq_bins, c.linear_bins) == (11025, 1022, 256, 256, 512)
    x = torch.zeros(65535)
    assert sp.stft(x).shape == (512, 256)  # 6 s of Sound of Pixels -> 256 frames
    assert sp.num_frames(65535) == 256 and sp.samples_for(128) == 32767 and sp.num_frames(32767) == 128


@pytest.mark.parametrize("length", [3000, 11025, 32767])
def test_istft_of_stft_is_the_signal(sp: Spectral, length: int) -> None:
    x = torch.from_numpy(np.random.default_rng(length).standard_normal((2, length)).astype(np.float32))
    y = sp.istft(sp.stft(x), length)
    assert y.shape == x.shape
    torch.testing.assert_close(y, x, atol=2e-5, rtol=0)
    # a mask of ones through the shared inverse path is the identity too
    torch.testing.assert_close(sp.apply_mask(sp.stft(x), torch.ones(2, 512, sp.num_frames(length)), length), x,
                               atol=2e-5, rtol=0)


def test_warp_resamples_the_frequency_axis() -> None:
    p = warp_positions(512, 256)
    assert p[0] == 0 and p[-1] == pytest.approx(511) and np.all(np.diff(p) > 0)
    assert np.diff(p)[0] < 1 < np.diff(p)[-1]  # finer than linear at the bottom, coarser at the top
    w, u = warp_matrix(512, 256), unwarp_matrix(512, 256)
    np.testing.assert_allclose(w.sum(1), 1)
    np.testing.assert_allclose(u.sum(1), 1)
    # a linear ramp (in bins) warps onto the grid positions, and comes back where the grid is fine
    ramp = np.arange(512.0)
    np.testing.assert_allclose((w @ ramp)[:-1], p[:-1], atol=0.6)  # the top row's triangle is cut at the edge
    np.testing.assert_allclose((u @ (w @ ramp))[:60], ramp[:60], atol=0.6)
    # every linear bin contributes: no harmonic falls between the samples of the coarse top octaves
    assert (w.sum(0) > 0).all()


def test_the_ideal_ratio_mask_of_two_tones_recovers_each(sp: Spectral) -> None:
    a, b = tone(440.0), tone(2500.0, amp=0.3)
    src = torch.from_numpy(np.stack([a, b]))
    mix_spec = sp.stft(src.sum(0))
    for kind in ("ratio", "binary"):
        masks = ideal_masks(sp.stft(src), kind)
        est = sp.apply_mask(mix_spec, masks, src.shape[-1]).numpy()
        sdr = bss_eval(src.numpy(), est)["sdr"]
        assert sdr.min() > 30, (kind, sdr)
        assert si_sdr(src.numpy(), est).min() > 30
    # swapped masks give the other source: the mask, not the path, decides what comes out
    est = sp.apply_mask(mix_spec, ideal_masks(sp.stft(src), "ratio").flip(0), src.shape[-1]).numpy()
    assert si_sdr(src.numpy(), est).max() < -20


def test_masks_on_the_warped_grid_go_through_the_same_path(sp: Spectral) -> None:
    a, b = tone(330.0), tone(1800.0)
    src = torch.from_numpy(np.stack([a, b]))
    warped = sp.warp(sp.stft(src).abs())
    masks = ideal_masks(warped, "ratio")
    est = sp.apply_warped_mask(sp.stft(src.sum(0)), masks, src.shape[-1]).numpy()
    assert bss_eval(src.numpy(), est)["sdr"].min() > 20


def test_ideal_masks_partition_the_mixture() -> None:
    mags = torch.rand(3, 10, 7)
    irm = ideal_masks(mags, "ratio")
    torch.testing.assert_close(irm.sum(0), torch.ones(10, 7))
    ibm = ideal_masks(mags, "binary")
    assert set(ibm.unique().tolist()) <= {0.0, 1.0} and (ibm.sum(0) == 1).all()
    with pytest.raises(AvkitError, match="ratio"):
        ideal_masks(mags, "soft")


def test_stft_options_are_read_like_the_recipe() -> None:
    section = "task_options.stft"
    with pytest.raises(AvkitError, match=r"unknown config key 'task_options.stft.nfft' \(did you mean n_fft"):
        parse_options(STFTConfig, {"nfft": 512}, section)
    with pytest.raises(AvkitError, match="0 < hop <= n_fft"):
        parse_options(STFTConfig, {"hop": 0}, section)
    with pytest.raises(AvkitError, match="freq_bins must be >= 0"):
        STFTConfig(freq_bins=-1)  # ranges are checked however the config is made
    with pytest.raises(AvkitError, match="task_options.stft.n_fft"):
        parse_options(STFTConfig, {"n_fft": "big"}, section)
    cfg = parse_options(STFTConfig, {"hop": "128", "log_eps": "1e-4"}, section)  # YAML / command-line strings
    assert cfg == STFTConfig(hop=128, log_eps=1e-4) and isinstance(cfg.hop, int)
    assert Spectral(STFTConfig(freq_bins=0)).cfg.net_bins == 512
