"""Why separation of the real scales is hard: the same 15 pairs under five conditions (six with --unison-set), one run.

The real-recording benchmark (``benchmarks/separation.py``) mixes six scale recordings that play the same
notes at the same times (unison), rendered from a bank the models never heard (FluidR3_GM). This script
pulls the two apart, on the 15 two-source pairs of the six instruments (4.5 s, peak 0.45 each), under five conditions:

- ``real unison``: the benchmark's mixtures;
- ``training bank unison``: the same C-major scale (C4-C5, 0.5 s a note, velocity 100) rendered from
  TimGM6mb, the bank the models were trained on: unison without the change of bank;
- ``real, 2nd +0.25 s``: the second recording delayed by half a note, so onsets differ and pitches
  mostly differ;
- ``real, 2nd +0.5 s``: delayed by a whole note: the onsets coincide again but every note is a step
  away from the other source's (different notes, same rhythm);
- ``training bank, 2nd +0.5 s``: the same on the training bank's renders: different notes, same rhythm,
  no change of bank.

Each source's pictures: ``instruments.draw`` moving at its own (shifted) note grid, with the benchmark's
seeds, so the ``real unison`` row is the benchmark's 2-source mean.

``--unison-set DIR`` adds a fifth row: 15 pairs of solo clips of a gm_instruments dataset generated with
``unison`` (the training set: clips the models were trained on), two different instruments on the same
shared melody, each with its own video's frames: unison on the training bank's own music, nothing new. Methods: the pictured
runs given (``--runs``; ``shipped`` = assets/separation), audio-only runs (``--audio-runs``; outputs put
in the order that suits the references), and the phase-sensitive mask (the best oracle of the benchmark).

    python benchmarks/separation_conditions.py --runs shipped runs/separation_gm --audio-runs runs/separation_gm_audio
    python benchmarks/separation_conditions.py --unison-only --runs RUN ... --audio-runs RUN ...   # many runs, quickly
    python benchmarks/separation_conditions.py --runs shipped RUN --unison-set runs/gm/gm_train_unison
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


def unison_pairs(root: Path, count: int = 15) -> list[tuple[np.ndarray, list[np.ndarray], int]]:
    """``count`` mixtures of two solo clips of ``root`` (a gm_instruments set with ``unison``) that play the
    same shared melody on different instruments: ``(references [2, S], [frames_a, frames_b], sample rate)``,
    the first such pair of each melody in manifest order."""
    from avkit.data.synthetic import read_manifest, read_wav
    from avkit.io import read_clip

    by_part: dict[int, list[dict]] = {}
    for row in read_manifest(root):
        if row["meta"].get("unison_part") is not None and not row["meta"]["duet"]:
            by_part.setdefault(row["meta"]["unison_part"], []).append(row)
    out = []
    for _, rows in sorted(by_part.items()):
        pair = next(((a, b) for a, b in itertools.combinations(rows, 2) if a["label"] != b["label"]), None)
        if pair is None:
            continue
        waves, rates = zip(*(read_wav(root / r["meta"]["sources"][0]["stem"]) for r in pair))
        n = min(len(w) for w in waves)
        frames = [read_clip(root / r["path"], audio=False).frames.numpy() for r in pair]
        out.append((np.stack([w[:n] for w in waves]), frames, int(rates[0])))
        if len(out) == count:
            break
    return out


def main(argv: list[str] | None = None) -> int:
    from avkit.apps.separation import load
    from avkit.apps.separation.metrics import oracle_estimates
    from avkit.data.synthetic.instruments import draw

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", nargs="*", default=["shipped"], help="pictured runs ('shipped': assets/separation)")
    p.add_argument("--audio-runs", nargs="*", default=[], help="audio-only runs (visual: none)")
    p.add_argument("--real", default=str(bench.ROOT.parent / "shared" / "media" / "audio"))
    p.add_argument("--unison-only", action="store_true", help="only the benchmark's mixtures (real unison)")
    p.add_argument("--unison-set", default="", help="a gm_instruments set with unison clips: a row of its pairs")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    real = bench.all_recordings(Path(args.real))
    if real is None:
        return 0
    pictured = {run: load(None if run == "shipped" else run, device="cpu") for run in args.runs}
    audio = {run: load(run, device="cpu") for run in args.audio_runs}
    bank = {name: render_scale(name) for name in bench.REAL}
    conditions = {"real unison": (real, 0.0), "training bank unison": (bank, 0.0),
                  "real, 2nd +0.25 s": (real, 0.25), "real, 2nd +0.5 s": (real, 0.5),
                  "training bank, 2nd +0.5 s": (bank, 0.5)}
    if args.unison_only:
        conditions = {"real unison": conditions["real unison"]}
    print(f"# python benchmarks/separation_conditions.py; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
          "15 two-source pairs each; mean SDRi over sources and pairs (dB), worst pair in brackets")
    methods = [*pictured, *(f"{r} (audio only)" for r in audio), "psm (oracle)"]
    print("| condition | " + " | ".join(methods) + " |")
    print("|---|" + "---:|" * len(methods))
    rows: dict[str, list[tuple[np.ndarray, list[np.ndarray], int]]] = {}
    for cname, (waves, shift) in conditions.items():
        rows[cname] = []
        for a, b in itertools.combinations(bench.REAL, 2):
            onsets_b = tuple(t + shift for t in bench.NOTE_GRID if t + shift < bench.WINDOW)
            frames = [draw(a, bench.WINDOW, fps=8, size=64, onsets=bench.NOTE_GRID, seed=bench.REAL.index(a)),
                      draw(b, bench.WINDOW, fps=8, size=64, onsets=onsets_b, seed=bench.REAL.index(b))]
            rows[cname].append((np.stack([waves[a], delayed(waves[b], shift)]), frames, bench.RATE))
    if args.unison_set:
        rows["training clips, unison pairs"] = unison_pairs(Path(args.unison_set))
    for cname, mixtures in rows.items():
        sdri: dict[str, list[float]] = {m: [] for m in methods}
        for refs, frames, rate in mixtures:
            mix = refs.sum(0)
            sets = {run: np.stack(sep.separate(mix, rate, frames)) for run, sep in pictured.items()}
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
