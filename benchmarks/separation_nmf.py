"""How far timbre alone goes on the real benchmark's mixtures: avkit's instrument-informed NMF separator.

The real recordings of benchmarks/separation.py are six instruments playing one scale at the same times
(unison), so only timbre tells two of them apart. This script asks what a separator that is *told*
both instruments, and knows their timbres from the training bank, can do there: supervised NMF (no
network), avkit/apps/separation/timbre.py (the shipped separator's timbre path) as shipped and without its
per-instrument gains per frequency bin (the timbre path until 2026-12-08). Scored like the benchmark (SDRi, BSS-eval) on the
model's STFT, beside the ideal ratio and phase-sensitive masks on the same STFT, for the real unison
mixtures, the same scale rendered from the training bank (so the dictionaries fit the timbres exactly),
and the real recordings with the second one delayed half a note (other notes at the same onsets). One more
oracle: the same NMF with each source's dictionary cut from its own reference (the attack and the rest of each
of its notes on the known 0.5 s grid), what the timbre path could do if its dictionaries held the recordings'
exact timbres.

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


def main(argv: list[str] | None = None) -> int:
    from avkit.apps.separation import load, timbre
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
    cases = {"real unison (the benchmark)": (real, 0.0), "training bank unison": (bank, 0.0),
             "real, 2nd +0.5 s (other notes)": (real, 0.5)}
    methods = ("timbre.py", "no gains per bin", "own notes (oracle)", "irm (oracle)", "psm (oracle)")
    print(f"# python benchmarks/separation_nmf.py; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
          f"15 two-source pairs each; mean SDRi over sources and pairs (dB), worst pair in brackets")
    print("| mixtures | " + " | ".join(methods) + " |")
    print("|---|" + "---:|" * len(methods))
    for case, (waves, shift) in cases.items():
        sdri: dict[str, list[float]] = {m: [] for m in methods}
        for a, b in itertools.combinations(bench.REAL, 2):
            refs = np.stack([waves[a], conditions.delayed(waves[b], shift)])
            mix = torch.as_tensor(refs.sum(0))
            spec = spectral.stft(mix)
            sets = {}
            for method, filter_updates in zip(methods[:2], (timbre.FILTER_UPDATES, 0)):
                masks = timbre.timbre_masks(spec.abs(), [a, b], spectral.cfg, filter_updates=filter_updates)
                sets[method] = spectral.apply_mask(spec, masks, len(mix)).numpy()
            own = [own_notes(spectral, ref, delay) for ref, delay in zip(refs, (0.0, shift))]
            sets["own notes (oracle)"] = spectral.apply_mask(spec, fit_masks(spec.abs(), own), len(mix)).numpy()
            oracles = oracle_estimates(spectral, refs)
            sets.update({"irm (oracle)": oracles["irm"], "psm (oracle)": oracles["psm"]})
            scores = bench.score(refs, sets)
            for method in methods:
                sdri[method].append(float(np.mean(scores[method]["sdri"])))
        print(f"| {case} | " + " | ".join(f"{np.mean(v):+.2f} ({min(v):+.2f})" for v in sdri.values()) + " |",
              flush=True)
    return 0


def own_notes(spectral, wave: np.ndarray, delay: float) -> torch.Tensor:
    """``[F, 16]``: the attack (first 6 STFT frames) and the rest of each of ``wave``'s eight notes (0.5 s apart
    from ``delay``), each summing to 1: a dictionary of the recording's exact timbre."""
    mag = spectral.stft(torch.as_tensor(wave)).abs()
    hop_s = spectral.cfg.hop / bench.RATE
    atoms = []
    for k in range(8):
        start, stop = round((delay + 0.5 * k) / hop_s), round((delay + 0.5 * (k + 1)) / hop_s)
        for part in (mag[:, start:start + 6], mag[:, start + 6:stop]):
            if part.shape[1]:
                atom = part.mean(1)
                atoms.append(atom / atom.sum().clamp_min(1e-9))
    return torch.stack(atoms, 1)


def fit_masks(mag: torch.Tensor, dicts: list[torch.Tensor], iterations: int = 100) -> torch.Tensor:
    """Ratio masks ``[N, F, T]`` of the KL-NMF fit of ``mag`` with the fixed ``dicts`` side by side."""
    w = torch.cat(dicts, 1)
    owner = torch.cat([torch.full((d.shape[1],), k) for k, d in enumerate(dicts)])
    h = torch.as_tensor(np.random.default_rng(0).random((w.shape[1], mag.shape[1])), dtype=torch.float32) + 0.1
    for _ in range(iterations):
        h *= w.T @ (mag / (w @ h + 1e-9))
    parts = torch.stack([w[:, owner == k] @ h[owner == k] for k in range(len(dicts))])
    return parts / (parts.sum(0, keepdim=True) + 1e-12)


if __name__ == "__main__":
    raise SystemExit(main())
