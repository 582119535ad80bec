"""Separation metrics agree with the reference implementation (mir_eval's bss_eval_sources) and behave
as their definitions say."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from avkit.apps.separation.metrics import (
    bss_eval,
    bss_eval_sets,
    evaluate_mixture,
    format_table,
    oracle_estimates,
    si_sdr,
    summarize,
)
from avkit.apps.separation.stft import Spectral
from avkit.errors import AvkitError


def random_case(n: int, samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    refs = rng.standard_normal((n, samples))
    mixing = np.eye(n) + 0.3 * rng.uniform(-1, 1, (n, n))
    est = mixing @ refs + 0.2 * rng.standard_normal((n, samples))
    est[0] = np.convolve(est[0], [1.0, 0.5, -0.2])[:samples]  # a filtered estimate: allowed distortion
    return refs, est


@pytest.mark.parametrize("n,seed", [(2, 0), (3, 1)])
def test_bss_eval_equals_mir_eval(n: int, seed: int) -> None:
    # mir_eval is a dev dependency (pip install -e ".[dev]"): an incomplete dev install fails here, never skips
    from mir_eval import separation

    refs, est = random_case(n, 2000, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # mir_eval 0.8 deprecates bss_eval_sources (still the reference)
        sdr, sir, sar, perm = separation.bss_eval_sources(refs, est, compute_permutation=False)
    ours = bss_eval(refs, est)
    np.testing.assert_allclose(ours["sdr"], sdr, atol=1e-6)
    np.testing.assert_allclose(ours["sir"], sir, atol=1e-6)
    np.testing.assert_allclose(ours["sar"], sar, atol=1e-6)


def test_several_estimate_sets_share_one_factorisation() -> None:
    refs, est = random_case(2, 2000, 3)
    together = bss_eval_sets(refs, [est, est[::-1].copy()])
    for got, e in zip(together, [est, est[::-1].copy()]):
        alone = bss_eval(refs, e)
        for k in ("sdr", "sir", "sar"):
            np.testing.assert_allclose(got[k], alone[k], atol=1e-9)


def test_si_sdr_is_scale_invariant_and_sdr_is_not_fooled_by_filtering() -> None:
    refs, est = random_case(2, 4000, 4)
    base = si_sdr(refs, est)
    np.testing.assert_allclose(si_sdr(refs, 3.7 * est), base, atol=1e-9)
    np.testing.assert_allclose(si_sdr(refs, 0.01 * est), base, atol=1e-9)
    assert np.all(si_sdr(refs, 0.5 * refs) > 100)  # a scaled copy is perfect
    # the definition: 10 log10(|a s|^2 / |a s - s_hat|^2) with the optimal a (zero-mean signals)
    s, e = refs[1] - refs[1].mean(), est[1] - est[1].mean()
    a = e @ s / (s @ s)
    assert si_sdr(refs, est)[1] == pytest.approx(10 * np.log10(np.sum((a * s) ** 2) / np.sum((a * s - e) ** 2)))
    # BSS-eval allows a short filter: a delayed, filtered copy still scores high
    filtered = np.stack([np.convolve(r, [0.0, 0.9, 0.3])[:4000] for r in refs])
    assert bss_eval(refs, filtered)["sdr"].min() > 40
    assert si_sdr(refs, filtered).max() < 10


def test_sir_sees_the_other_source_and_sar_the_noise() -> None:
    rng = np.random.default_rng(5)
    refs = rng.standard_normal((2, 4000))
    leaky = refs + 0.1 * refs[::-1]
    noisy = refs + 0.1 * rng.standard_normal((2, 4000))
    a, b = bss_eval(refs, leaky), bss_eval(refs, noisy)
    assert a["sir"].min() == pytest.approx(20, abs=0.5) and a["sar"].min() > 60
    # the 2 x 512 filter taps absorb a quarter of the noise of a 4000-sample signal: SAR a little above 20
    assert 20 < b["sar"].min() < 22 and b["sir"].min() > 25  # (chance correlations of noise and the other source)


def test_the_mixture_and_the_oracles() -> None:
    sr = 11025
    t = np.arange(sr) / sr
    refs = np.stack([0.5 * np.sin(2 * np.pi * 300 * t), 0.4 * np.sign(np.sin(2 * np.pi * 37 * t)) * 0.3
                     + 0.01 * np.random.default_rng(0).standard_normal(sr)])
    r = evaluate_mixture(Spectral(), refs, oracle_estimates(Spectral(), refs)["irm"])
    assert set(r) == {"model", "mixture", "irm", "ibm", "psm"}
    mix = np.repeat(refs.sum(0, keepdims=True), 2, 0)
    np.testing.assert_allclose(r["mixture"]["sdr"], bss_eval(refs, mix)["sdr"])
    np.testing.assert_allclose(r["model"]["sdr"], r["irm"]["sdr"])
    assert min(r["irm"]["sdr"]) > max(r["mixture"]["sdr"]) + 10
    # the phase-sensitive mask is the best real mask in [0, 1] on the mixture's phase: at least the IRM's SDR
    assert min(r["psm"]["sdr"]) > max(r["mixture"]["sdr"]) + 10 and np.mean(r["psm"]["sdr"]) >= np.mean(r["irm"]["sdr"])
    r["num_sources"] = 2
    s = summarize([r, dict(r, num_sources=3)])
    assert list(s) == ["2", "3", "all"]
    assert s["2"]["model"]["sdri"] == pytest.approx(np.mean(np.subtract(r["model"]["sdr"], r["mixture"]["sdr"])))
    assert s["all"]["irm"]["count"] == 4
    assert "IRM" in format_table(s) and "sdri" in format_table(s)


def test_bad_metric_inputs() -> None:
    with pytest.raises(AvkitError, match="silent"):
        bss_eval(np.zeros((2, 100)), np.ones((2, 100)))
    with pytest.raises(AvkitError, match="same shape"):
        bss_eval(np.ones((2, 100)), np.ones((2, 99)))
    with pytest.raises(AvkitError, match="finite"):
        bss_eval(np.ones((1, 100)), np.full((1, 100), np.nan))
    assert si_sdr(torch.ones(1, 10), torch.ones(1, 10)).shape == (1,)


def test_a_silent_estimate_scores_minus_infinity_never_perfect() -> None:
    """A silent estimate holds none of its source: BSS-eval and SI-SDR give it -inf (0/0 read as a perfect +inf
    would be a silent wrong answer), the summary's mean keeps it, and the table prints it."""
    rng = np.random.default_rng(0)
    refs = rng.standard_normal((2, 4000))
    est = refs + 0.1 * rng.standard_normal((2, 4000))
    est[1] = 0.0
    bss = bss_eval(refs, est)
    assert np.isfinite(bss["sdr"][0]) and bss["sdr"][1] == -np.inf and bss["sir"][1] == -np.inf
    assert si_sdr(refs, est)[1] == -np.inf and si_sdr(refs, refs)[0] == np.inf  # a perfect one is still +inf
    row = {"num_sources": 2, "model": {"sdr": list(bss["sdr"]), "si_sdr": list(si_sdr(refs, est))},
           "mixture": {"sdr": [0.0, 0.0], "si_sdr": [0.0, 0.0]}}
    table = summarize([row])["2"]["model"]
    assert table["sdr"] == -np.inf and table["sdri"] == -np.inf
    assert "-inf" in format_table(summarize([row]))
