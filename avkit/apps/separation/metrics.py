"""Separation metrics: BSS-eval SDR / SIR / SAR, SI-SDR, the mixture baseline and the mask oracles.

:func:`bss_eval` is the BSS-eval v3 definition of ``mir_eval.separation.bss_eval_sources`` (time-
invariant distortion filters of 512 taps, no permutation search: estimate ``i`` is scored against
reference ``i``). Each estimate is projected onto the delayed copies of its own reference (the
allowed distortion, ``s_target``) and of all references (``s_target + e_interf``); what is left is
``e_artif``:

- SDR = 10 log10(|s_target|^2 / |e_interf + e_artif|^2)
- SIR = 10 log10(|s_target|^2 / |e_interf|^2)
- SAR = 10 log10(|s_target + e_interf|^2 / |e_artif|^2)

Same numbers as mir_eval (``tests/test_separation_metrics.py`` checks random signals against it),
much faster: the Gram matrix of the delayed references is built once per mixture and solved for
every estimate at once. :func:`si_sdr` is scale-invariant SDR (Le Roux et al. 2019: zero-mean signals,
the reference scaled optimally). :func:`oracle_estimates` gives the ideal ratio and ideal binary mask
estimates through the same STFT path as the model (:meth:`avkit.apps.separation.stft.Spectral.apply_mask`).
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy.linalg import toeplitz

from avkit.errors import AvkitError

METRICS = ("sdr", "sir", "sar", "si_sdr")
FILTER_LENGTH = 512


def _db(num: np.ndarray | float, den: np.ndarray | float) -> np.ndarray:
    num, den = np.asarray(num, np.float64), np.asarray(den, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 10.0 * np.log10(num / den)
    # 0/0 is a silent estimate, which holds none of its source: -inf, never a perfect score (x/0 with x > 0 is one)
    return np.where(den == 0, np.where(num == 0, -np.inf, np.inf), out)


def _as_2d(x: Any, name: str) -> np.ndarray:
    a = x.detach().cpu().double().numpy() if hasattr(x, "detach") else np.asarray(x, dtype=np.float64)
    if a.ndim == 1:
        a = a[None]
    if a.ndim != 2:
        raise AvkitError(f"{name} must be [sources, samples], got shape {a.shape}")
    return a


def _one_blas_thread() -> Any:
    """BLAS on one thread while solving: on a busy 2-core machine OpenBLAS's threads fight (5x slower)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn (a librosa dependency)
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def bss_eval(references: Any, estimates: Any, filter_length: int = FILTER_LENGTH) -> dict[str, np.ndarray]:
    """BSS-eval v3 ``{"sdr", "sir", "sar"}`` (each ``[N]``, dB) of ``estimates [N, S]`` against ``references [N, S]``.

    Equal to ``mir_eval.separation.bss_eval_sources(references, estimates, compute_permutation=False)``.
    """
    with _one_blas_thread():
        return _bss_eval(references, estimates, filter_length)


def bss_eval_sets(references: Any, estimate_sets: Sequence[Any],
                  filter_length: int = FILTER_LENGTH) -> list[dict[str, np.ndarray]]:
    """:func:`bss_eval` of several estimate sets (each ``[N, S]``) against the same references, sharing
    the Gram matrix and its factorisation (the model, the mixture and the oracles in one go)."""
    with _one_blas_thread():
        return _bss_eval(references, estimate_sets, filter_length)


def _bss_eval(references: Any, estimate_sets: Sequence[Any] | Any, filter_length: int) -> Any:
    single = not isinstance(estimate_sets, (list, tuple))
    refs = _as_2d(references, "references")
    sets = [_as_2d(e, "estimates") for e in ([estimate_sets] if single else estimate_sets)]
    for ests in sets:
        if refs.shape != ests.shape:
            raise AvkitError(f"references {refs.shape} and estimates {ests.shape} must have the same shape")
        if not np.isfinite(ests).all():
            raise AvkitError("estimates must be finite")
    if not np.isfinite(refs).all():
        raise AvkitError("references must be finite")
    if (np.abs(refs).sum(axis=1) == 0).any():
        raise AvkitError("a reference source is all zeros (BSS-eval is undefined for a silent reference)")
    n, samples = refs.shape
    ests = np.stack(sets)  # [M, N, S]
    m_sets = len(sets)
    flen = int(filter_length)
    total = samples + flen - 1
    nfft = 1 << int(math.ceil(math.log2(total)))
    sf = np.fft.rfft(refs, n=nfft, axis=1)  # [N, nfft/2+1]
    ef = np.fft.rfft(ests, n=nfft, axis=2)  # [M, N, nfft/2+1]
    lags = np.concatenate([[0], np.arange(nfft - 1, nfft - flen, -1)])  # 0, -1, ..., -(flen-1)

    # Gram matrix of the delayed references: block (i, j) is toeplitz(r_ij)
    gram = np.zeros((n * flen, n * flen))
    for i in range(n):
        for j in range(i, n):
            r = np.fft.irfft(sf[i] * np.conj(sf[j]), n=nfft)
            block = toeplitz(r[lags], r[:flen])
            gram[i * flen:(i + 1) * flen, j * flen:(j + 1) * flen] = block
            gram[j * flen:(j + 1) * flen, i * flen:(i + 1) * flen] = block.T
    # inner products of every estimate with the delayed references: [N * flen, M * N]
    flat_ef = ef.reshape(m_sets * n, -1)
    d = np.zeros((n * flen, m_sets * n))
    for i in range(n):
        r = np.fft.irfft(sf[i][None] * np.conj(flat_ef), n=nfft, axis=1)
        d[i * flen:(i + 1) * flen] = r[:, lags].T

    def solve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        try:
            return np.linalg.solve(a, b)
        except np.linalg.LinAlgError:
            return np.linalg.lstsq(a, b, rcond=None)[0]

    # projection onto all references: sum_i conv(C[i], ref_i)
    coef = solve(gram, d).reshape(n, flen, m_sets * n)  # [ref, tap, estimate]
    cf = np.fft.rfft(coef, n=nfft, axis=1)  # [ref, freq, estimate]
    proj_all = np.fft.irfft(np.einsum("rfe,rf->ef", cf, sf), n=nfft, axis=1)[:, :total].reshape(m_sets, n, total)
    # projection onto its own reference only (estimate k of every set against reference k)
    proj_own = np.zeros((m_sets, n, total))
    for k in range(n):
        block = gram[k * flen:(k + 1) * flen, k * flen:(k + 1) * flen]
        cols = [s * n + k for s in range(m_sets)]
        c = solve(block, d[k * flen:(k + 1) * flen][:, cols])  # [tap, M]
        proj_own[:, k] = np.fft.irfft(np.fft.rfft(c, n=nfft, axis=0).T * sf[k][None], n=nfft, axis=1)[:, :total]
    est_pad = np.zeros((m_sets, n, total))
    est_pad[..., :samples] = ests
    e_interf = proj_all - proj_own
    e_artif = est_pad - proj_all
    sdr = _db((proj_own ** 2).sum(-1), ((e_interf + e_artif) ** 2).sum(-1))
    sir = _db((proj_own ** 2).sum(-1), (e_interf ** 2).sum(-1))
    sar = _db((proj_all ** 2).sum(-1), (e_artif ** 2).sum(-1))
    out = [{"sdr": sdr[s], "sir": sir[s], "sar": sar[s]} for s in range(m_sets)]
    return out[0] if single else out


def si_sdr(references: Any, estimates: Any, zero_mean: bool = True) -> np.ndarray:
    """Scale-invariant SDR ``[N]`` (dB): ``10 log10(|a s|^2 / |a s - s_hat|^2)`` with the best ``a``."""
    refs, ests = _as_2d(references, "references"), _as_2d(estimates, "estimates")
    if refs.shape != ests.shape:
        raise AvkitError(f"references {refs.shape} and estimates {ests.shape} must have the same shape")
    if zero_mean:
        refs = refs - refs.mean(axis=1, keepdims=True)
        ests = ests - ests.mean(axis=1, keepdims=True)
    energy = (refs ** 2).sum(axis=1, keepdims=True)
    alpha = (ests * refs).sum(axis=1, keepdims=True) / np.where(energy > 0, energy, 1.0)
    target = alpha * refs
    return _db((target ** 2).sum(1), ((ests - target) ** 2).sum(1))


def scores(references: Any, estimates: Any, bss: bool = True) -> dict[str, np.ndarray]:
    """``{"sdr", "sir", "sar", "si_sdr"}`` per source (BSS-eval left out when ``bss`` is False)."""
    out = {"si_sdr": si_sdr(references, estimates)}
    if bss:
        out = {**bss_eval(references, estimates), **out}
    return out


def oracle_estimates(spectral: Any, sources: Any) -> dict[str, np.ndarray]:
    """The ideal ratio / binary / phase-sensitive mask estimates ``{"irm", "ibm", "psm": [N, S]}`` of the mixture
    ``sum(sources)``, on the same STFT and through the same inverse path as the model."""
    import torch

    from avkit.apps.separation.stft import ideal_masks

    src = torch.as_tensor(np.asarray(sources, np.float32))
    length = src.shape[-1]
    with torch.no_grad():
        specs = spectral.stft(src)  # [N, F, T]
        mix_spec = spectral.stft(src.sum(0))
        out = {}
        for name, kind in (("irm", "ratio"), ("ibm", "binary"), ("psm", "phase")):
            out[name] = spectral.apply_mask(mix_spec, ideal_masks(specs, kind), length).numpy()
    return out


def evaluate_mixture(spectral: Any, sources: Any, estimates: Any, *, oracles: bool = True,
                     bss: bool = True) -> dict[str, dict[str, list[float]]]:
    """Scores of one mixture: ``{"model": {...}, "mixture": {...}, "irm": ..., "ibm": ..., "psm": ...}``, each
    ``{metric: [per source]}``. ``mixture`` scores the unprocessed mixture as every source's estimate;
    ``estimates`` may be None (baselines and oracles only)."""
    src = np.asarray(sources, np.float64)
    sets: dict[str, np.ndarray] = {}
    if estimates is not None:
        sets["model"] = _as_2d(estimates, "estimates")
    sets["mixture"] = np.repeat(src.sum(0, keepdims=True), len(src), axis=0)
    if oracles:
        sets.update(oracle_estimates(spectral, src))
    out: dict[str, dict[str, np.ndarray]] = {k: {"si_sdr": si_sdr(src, v)} for k, v in sets.items()}
    if bss:
        for name, result in zip(sets, bss_eval_sets(src, list(sets.values()))):
            out[name] = {**result, **out[name]}
    return {k: {m: [float(x) for x in v] for m, v in d.items()} for k, d in out.items()}


def summarize(results: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """Means per number of sources: ``{"2": {"model": {"sdr": ..., "sdri": ...}, "mixture": ...}, "all": ...}``.

    ``results`` are :func:`evaluate_mixture` dicts with a ``"num_sources"`` key. ``sdri`` / ``si_sdri``
    are the improvements over the mixture, per source, then averaged; ``count`` is the number of sources.
    """
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for r in results:
        groups.setdefault(str(r["num_sources"]), []).append(r)
        groups.setdefault("all", []).append(r)
    out: dict[str, dict[str, dict[str, float]]] = {}
    for key in sorted(groups, key=lambda k: (k == "all", k)):
        rows = groups[key]
        methods = [m for m in ("model", "mixture", "irm", "ibm", "psm") if m in rows[0]]
        table: dict[str, dict[str, float]] = {}
        for method in methods:
            entry: dict[str, float] = {}
            for metric in METRICS:
                if metric not in rows[0][method]:
                    continue
                values = np.concatenate([np.asarray(r[method][metric], np.float64) for r in rows])
                entry[metric] = _finite_mean(values)
                if method != "mixture" and metric in ("sdr", "si_sdr"):
                    base = np.concatenate([np.asarray(r["mixture"][metric], np.float64) for r in rows])
                    entry[metric.replace("sdr", "sdri")] = _finite_mean(values - base)
            entry["count"] = float(sum(len(r[method][next(iter(r[method]))]) for r in rows))
            table[method] = entry
        out[key] = table
    return out


def _finite_mean(values: np.ndarray) -> float:
    """The mean without perfect (+inf) and undefined (NaN) scores; a silent estimate's -inf stays, so it shows."""
    kept = values[~np.isnan(values) & (values != np.inf)]
    return float(kept.mean()) if len(kept) else float("nan")


def format_table(summary: Mapping[str, Mapping[str, Mapping[str, float]]], title: str = "") -> str:
    """A plain-text table per number of sources (rows: model, mixture, IRM, IBM, PSM)."""
    lines = [title] if title else []
    cols = ("sdr", "sir", "sar", "si_sdr", "sdri", "si_sdri")
    header = f"{'sources':>7}  {'method':<8}" + "".join(f"{c:>9}" for c in cols) + f"{'n':>6}"
    lines.append(header)
    lines.append("-" * len(header))
    for key, table in summary.items():
        for method, entry in table.items():
            cells = "".join(f"{entry[c]:9.2f}" if c in entry and not np.isnan(entry[c]) else f"{'-':>9}" for c in cols)
            lines.append(f"{key:>7}  {method.upper() if method in ('irm', 'ibm', 'psm') else method:<8}{cells}"
                         f"{int(entry.get('count', 0)):6d}")
    return "\n".join(lines)
