"""Why separation of the real scales is hard: the same 15 pairs under four conditions, one run.

The real-recording benchmark (``benchmarks/separation.py``) mixes six scale recordings that play the same
notes at the same times (unison), rendered from a bank the models never heard (FluidR3_GM). This script
pulls the two apart, on the 15 two-source pairs of the six instruments (4.5 s, peak 0.45 each):

- ``real unison``: the benchmark's mixtures;
- ``training bank unison``: the same C-major scale (C4-C5, 0.5 s a note, velocity 100) rendered from
  TimGM6mb, the bank the models were trained on: unison without the change of bank;
- ``real, 2nd +0.25 s``: the second recording delayed by half a note, so onsets differ and pitches
  mostly differ;
- ``real, 2nd +0.5 s``: delayed by a whole note: the onsets coincide again but every note is a step
  away from the other source's (different notes, same rhythm).

Each source's pictures: ``instruments.draw`` moving at its own (shifted) note grid, with the benchmark's
seeds, so the ``real unison`` row is the benchmark's 2-source mean. Methods: the pictured
runs given (``--runs``; ``shipped`` = assets/separation), audio-only runs (``--audio-runs``; outputs put
in the order that suits the references), and the phase-sensitive mask (the best oracle of the benchmark).

    python benchmarks/separation_conditions.py --runs shipped runs/separation_gm --audio-runs runs/separation_gm_audio
    python benchmarks/separation_conditions.py --unison-only --runs RUN ... --audio-runs RUN ...   # many runs, quickly
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
import separation as bench  # noqa: E402  (the benchmark's recordings, pictures and scoring)

SCALE = (60, 62, 64, 65, 67, 69, 71, 72)  # C4-C5, as the recordings (SOURCES.md)


def render_scale(name: str) -> np.ndarray:
    """The recordings' scale played by ``name`` from the training bank, 4.5 s, peak ``bench.PEAK``."""
    from avkit.data.synthetic import soundfont
    from avkit.data.synthetic.music import BY_NAME

    font = soundfont.load()
    out = np.zeros(int((bench.WINDOW + 1.0) * bench.RATE), np.float32)
    for k, key in enumerate(SCALE):
        note = font.note(BY_NAME[name].program, key, 100, 0.5, bench.RATE)
        i = int(0.5 * k * bench.RATE)
        out[i:i + len(note)] += note[: len(out) - i]
    out = out[: int(bench.WINDOW * bench.RATE)]
    return (bench.PEAK * out / np.abs(out).max()).astype(np.float32)


def delayed(wave: np.ndarray, seconds: float) -> np.ndarray:
    return np.concatenate([np.zeros(int(seconds * bench.RATE), np.float32), wave])[: len(wave)]


def main(argv: list[str] | None = None) -> int:
    from avkit.apps.separation import load
    from avkit.apps.separation.metrics import oracle_estimates
    from avkit.data.synthetic.instruments import draw

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", nargs="*", default=["shipped"], help="pictured runs ('shipped': assets/separation)")
    p.add_argument("--audio-runs", nargs="*", default=[], help="audio-only runs (visual: none)")
    p.add_argument("--real", default=str(bench.ROOT.parent / "shared" / "media" / "audio"))
    p.add_argument("--unison-only", action="store_true", help="only the benchmark's mixtures (real unison)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    real = bench.load_recordings(Path(args.real))
    if len(real) < len(bench.REAL):
        print(f"(the six scale recordings are not all in {args.real}: nothing to do)")
        return 0
    pictured = {run: load(None if run == "shipped" else run, device="cpu") for run in args.runs}
    audio = {run: load(run, device="cpu") for run in args.audio_runs}
    bank = {name: render_scale(name) for name in bench.REAL}
    conditions = {"real unison": (real, 0.0), "training bank unison": (bank, 0.0),
                  "real, 2nd +0.25 s": (real, 0.25), "real, 2nd +0.5 s": (real, 0.5)}
    if args.unison_only:
        conditions = {"real unison": conditions["real unison"]}
    print(f"# python benchmarks/separation_conditions.py; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
          "15 two-source pairs each; mean SDRi over sources and pairs (dB), worst pair in brackets")
    methods = [*pictured, *(f"{r} (audio only)" for r in audio), "psm (oracle)"]
    print("| condition | " + " | ".join(methods) + " |")
    print("|---|" + "---:|" * len(methods))
    for cname, (waves, shift) in conditions.items():
        sdri: dict[str, list[float]] = {m: [] for m in methods}
        for a, b in itertools.combinations(bench.REAL, 2):
            refs = np.stack([waves[a], delayed(waves[b], shift)])
            mix = refs.sum(0)
            onsets_b = tuple(t + shift for t in bench.NOTE_GRID if t + shift < bench.WINDOW)
            frames = [draw(a, bench.WINDOW, fps=8, size=64, onsets=bench.NOTE_GRID, seed=bench.REAL.index(a)),
                      draw(b, bench.WINDOW, fps=8, size=64, onsets=onsets_b, seed=bench.REAL.index(b))]
            sets = {run: np.stack(sep.separate(mix, bench.RATE, frames)) for run, sep in pictured.items()}
            for run, sep in audio.items():
                est = bench.audio_only(sep, mix, refs)
                if est is not None:
                    sets[f"{run} (audio only)"] = est
            sets["psm (oracle)"] = oracle_estimates(next(iter({**pictured, **audio}.values())).spectral, refs)["psm"]
            scores = bench.score(refs, sets)
            for m in methods:
                if m in scores:
                    sdri[m].append(float(np.mean(scores[m]["sdri"])))
        cells = [f"{np.mean(v):+.2f} ({np.min(v):+.2f})" if v else "-" for v in sdri.values()]
        print(f"| {cname} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
