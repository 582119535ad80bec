"""How far timbre alone goes on the real benchmark's mixtures: an instrument-informed NMF separator.

The real recordings of benchmarks/separation.py are six instruments playing one scale at the same times
(unison), so only timbre tells two of them apart. This script asks what a separator that is *told*
both instruments, and knows their timbres from the training bank, can do there: supervised NMF (no
network). Each instrument's dictionary holds, for every key of its range (+-3) and two velocities, the
training bank's note as two spectra (its first 6 STFT frames, the attack, and the rest up to two thirds
of its length, the sustain; each normalised to sum 1). A mixture's magnitude STFT is fitted with both
dictionaries side by side (activations only, 200 multiplicative updates of the beta-divergence), and each
source gets the ratio mask of its own dictionary's part. Scored like the benchmark (SDRi, BSS-eval) on the
model's STFT, beside the ideal ratio and phase-sensitive masks on the same STFT, for the real unison
mixtures, the same scale rendered from the training bank (so the dictionaries fit the timbres exactly),
and the real recordings with the second one delayed half a note (other notes at the same onsets).

    python benchmarks/separation_nmf.py      # the log docs/benchmarks/separation_nmf.log (about 1 minute)
"""
from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import separation as bench  # noqa: E402  (the benchmark's recordings and scoring)
import separation_conditions as conditions  # noqa: E402  (the training bank's scales, delays)

ITERATIONS = 200


def dictionary(spectral, name: str) -> np.ndarray:
    """``[F, K]``: attack and sustain spectra of every key of ``name``'s range (+-3) at velocities 60 and 110,
    rendered from the training bank."""
    from avkit.data.synthetic import soundfont
    from avkit.data.synthetic.music import BY_NAME

    font, inst = soundfont.load(), BY_NAME[name]
    atoms = []
    for key in range(max(inst.low - 3, 21), min(inst.high + 3, 108) + 1):
        for velocity in (60, 110):
            wave = font.note(inst.program, key, velocity, 0.8, bench.RATE)
            mag = spectral.stft(torch.as_tensor(wave)).abs().numpy()  # [F, T]
            for part in (mag[:, :6], mag[:, 6:max(7, 2 * mag.shape[1] // 3)]):
                atom = part.mean(1)
                atoms.append(atom / max(float(atom.sum()), 1e-9))
    return np.stack(atoms, 1)


def nmf_masks(mag: np.ndarray, dictionaries: list[np.ndarray], beta: float) -> list[np.ndarray]:
    """Ratio masks, one per dictionary, from fitting ``mag [F, T]`` with the dictionaries side by side
    (activations only, multiplicative updates of the beta-divergence; fixed start, so runs repeat)."""
    w = np.concatenate(dictionaries, 1)
    h = np.random.default_rng(0).random((w.shape[1], mag.shape[1])) + 0.1
    for _ in range(ITERATIONS):
        model = w @ h + 1e-9
        h *= (w.T @ (mag * model ** (beta - 2))) / (w.T @ model ** (beta - 1) + 1e-9)
    parts, start = [], 0
    for d in dictionaries:
        parts.append(d @ h[start:start + d.shape[1]])
        start += d.shape[1]
    total = sum(parts) + 1e-12
    return [p / total for p in parts]


def main(argv: list[str] | None = None) -> int:
    from avkit.apps.separation import load
    from avkit.apps.separation.metrics import oracle_estimates

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--real", default=str(bench.ROOT.parent / "shared" / "media" / "audio"))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    real = bench.all_recordings(Path(args.real))
    if real is None:
        return 0
    spectral = load(None, device="cpu").spectral  # the shipped model's STFT
    bank = {name: conditions.render_scale(name) for name in bench.REAL}
    atoms = {name: dictionary(spectral, name) for name in bench.REAL}
    cases = {"real unison (the benchmark)": (real, 0.0), "training bank unison": (bank, 0.0),
             "real, 2nd +0.5 s (other notes)": (real, 0.5)}
    methods = ("NMF, KL (beta 1)", "NMF, beta 0.5", "irm (oracle)", "psm (oracle)")
    print(f"# python benchmarks/separation_nmf.py; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
          f"15 two-source pairs each; {ITERATIONS} updates; mean SDRi over sources and pairs (dB), worst pair in brackets")
    print("| mixtures | " + " | ".join(methods) + " |")
    print("|---|" + "---:|" * len(methods))
    for case, (waves, shift) in cases.items():
        sdri: dict[str, list[float]] = {m: [] for m in methods}
        for a, b in itertools.combinations(bench.REAL, 2):
            refs = np.stack([waves[a], conditions.delayed(waves[b], shift)])
            mix = torch.as_tensor(refs.sum(0))
            spec = spectral.stft(mix)
            sets = {}
            for method, beta in zip(methods[:2], (1.0, 0.5)):
                masks = torch.as_tensor(np.stack(nmf_masks(spec.abs().numpy(), [atoms[a], atoms[b]], beta)),
                                        dtype=torch.float32)
                sets[method] = spectral.apply_mask(spec, masks, len(mix)).numpy()
            oracles = oracle_estimates(spectral, refs)
            sets.update({"irm (oracle)": oracles["irm"], "psm (oracle)": oracles["psm"]})
            scores = bench.score(refs, sets)
            for method in methods:
                sdri[method].append(float(np.mean(scores[method]["sdri"])))
        print(f"| {case} | " + " | ".join(f"{np.mean(v):+.2f} ({min(v):+.2f})" for v in sdri.values()) + " |",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
