"""Visually guided separation: SDR/SIR/SAR of the model vs the mixture and the ideal-mask oracles, and
the real-time factor of ``avkit separate`` on CPU.

Four parts, each with its baselines measured in the same run:

1. Held-out synthetic mixtures of 2 and 3 solo clips of a generator seed the model never saw
   (``--test``), scored for the model, the unprocessed mixture and the ideal ratio / binary masks on
   the same STFT (the upper bound of a mixture-phase mask).
2. The same on real instrument recordings (``../shared/media/audio/scale_*.wav``): 3 s windows,
   each normalised like a synthetic solo (peak 0.45), mixed with recordings shown by a *different*
   synthetic sprite (generated pictures: the sprite of the synthetic instrument closest in role).
   They say how far the synthetic timbres are from the real thing.
3. Duets: ``separate_video`` on generated two-instrument videos, by halves and by found sources,
   scored against their stems.
4. Speed: ``separate_video`` on a generated two-instrument video of ``--rtf-seconds`` seconds,
   separation alone (analysis, finding the sources, separating them, the sound map) and the whole
   command (reading, separating, writing WAVs, the sound-map image and the videos).

    python benchmarks/separation.py --run runs/separation_instruments --test avkit_data/separation/test
    python benchmarks/separation.py --mixtures 20 --no-real --json out.json
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
# real recording -> the synthetic instrument whose sprite stands for it in the generated picture
REAL_TO_SPRITE = {"flute": "flute", "violin": "violin", "trumpet": "violin", "cello": "clarinet",
                  "piano": "bell", "acoustic_guitar": "bell"}
WINDOWS = ((0.5, 3.5), (3.5, 6.5))  # seconds of each recording


def synthetic_part(sep, test: str, per_n: int) -> dict:
    from avkit.apps.separation.evaluate import mixtures_of, score_mixtures
    from avkit.apps.separation.metrics import summarize

    mixtures = mixtures_of(test, sep.opts, num_mix=[2, 3], length=2 * per_n, seed=1)
    t0 = time.perf_counter()
    rows = score_mixtures(sep, mixtures, progress=_bar("synthetic held-out"))
    return {"source": test, "num_mixtures": len(rows), "seconds": round(time.perf_counter() - t0, 1),
            "summary": summarize(rows)}


def sprite_frames(label: str, sep, seed: int = 99) -> np.ndarray:
    """Frames of a generated clip of ``label`` (the run's fps and size)."""
    from avkit.data.synthetic import render_clip

    for index in range(200):
        clip = render_clip("instruments", index, seed=seed, sample_rate=sep.sample_rate, duration=3.0,
                           fps=sep.opts.fps, size=sep.opts.image_size)
        if clip.label == label:
            return clip.frames
    raise RuntimeError(f"no {label} clip found")


def real_part(sep, folder: Path) -> dict | None:
    from avkit.apps.separation.metrics import evaluate_mixture, summarize
    from avkit.apps.separation.stft import Spectral
    from avkit.io import read_audio

    files = sorted(folder.glob("scale_*.wav"))
    if not files:
        return None
    sr = sep.sample_rate
    recordings = {}
    for path in files:
        name = path.stem[len("scale_"):]
        if name not in REAL_TO_SPRITE:
            continue
        wave = read_audio(path, sample_rate=sr)[0].numpy()
        for w, (a, b) in enumerate(WINDOWS):
            piece = wave[int(a * sr):int(b * sr)]
            if len(piece) < int((b - a) * sr) or np.abs(piece).max() < 1e-3:
                continue
            recordings[(name, w)] = (0.45 * piece / np.abs(piece).max()).astype(np.float32)
    frames = {label: sprite_frames(label, sep) for label in set(REAL_TO_SPRITE.values())}
    spectral = Spectral(sep.spectral.cfg)
    rows = []
    names = sorted({n for n, _ in recordings})
    combos = [c for n in (2, 3) for c in itertools.combinations(names, n)
              if len({REAL_TO_SPRITE[x] for x in c}) == n]
    bar = _bar("real recordings")
    total = len(combos) * len(WINDOWS)
    done = 0
    for combo in combos:
        for w in range(len(WINDOWS)):
            done += 1
            if not all((x, w) in recordings for x in combo):
                continue
            refs = np.stack([recordings[(x, w)] for x in combo])
            est = sep.separate_clips(refs.sum(0), [frames[REAL_TO_SPRITE[x]] for x in combo])
            r = evaluate_mixture(spectral, refs, est)
            r["num_sources"] = len(combo)
            r["names"] = list(combo)
            rows.append(r)
            bar(done, total)
    per_pair = {}
    for r in rows:
        if r["num_sources"] == 2:
            per_pair.setdefault("+".join(r["names"]), []).append(np.mean(np.subtract(r["model"]["sdr"],
                                                                                     r["mixture"]["sdr"])))
    return {"folder": str(folder), "mapping": REAL_TO_SPRITE, "num_mixtures": len(rows), "summary": summarize(rows),
            "sdri_per_pair": {k: round(float(np.mean(v)), 2) for k, v in sorted(per_pair.items())}}


def speed_part(sep, seconds: float) -> dict:
    from avkit.apps.separation import separate_video
    from avkit.data.synthetic import generate, read_manifest

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "duet"
        generate("instruments", data, 1, seed=5, sample_rate=sep.sample_rate, duration=seconds, duets=1.0,
                 fps=sep.opts.fps, size=sep.opts.image_size)
        video = data / read_manifest(data)[0]["path"]
        out = {}
        for name, videos in (("wavs_and_png", False), ("everything", True)):
            times = []
            for rep in range(2):  # the first run warms up (imports, allocator)
                r = separate_video(video, sep, Path(tmp) / f"out_{name}_{rep}", videos=videos)
                times.append(r.seconds)
            best = min(times, key=lambda s: s["total"])
            out[name] = {"duration": round(r.duration, 2), "sources": len(r.sources),
                         **{k: round(v, 3) for k, v in best.items()},
                         "rtf_separation": round(r.duration / best["separate"], 1),
                         "rtf_total": round(r.duration / best["total"], 1)}
    return out


def duet_part(sep, num: int = 6, seed: int = 9) -> dict:
    """``separate_video`` on generated duets (two sprites side by side, 3 s), scored against the duet's
    WAV stems: left/right halves (``--regions 2x1``) and sources the model finds (``auto``). Each
    stem is scored against the estimate that suits it best (distinct estimates per stem)."""
    from avkit.apps.separation import separate_video
    from avkit.apps.separation.metrics import bss_eval
    from avkit.data.synthetic import generate, read_manifest
    from avkit.io import read_audio

    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "duets"
        generate("instruments", data, num, seed=seed, sample_rate=sep.sample_rate, duration=3.0, duets=1.0,
                 fps=sep.opts.fps, size=sep.opts.image_size)
        rows = read_manifest(data)
        for regions in ("2x1", "auto"):
            sdr, sdri, found = [], [], []
            for i, row in enumerate(rows):
                r = separate_video(data / row["path"], sep, Path(tmp) / f"out_{regions}_{i}", regions=regions, videos=False)
                stems = np.stack([read_audio(data / src["stem"], sample_rate=sep.sample_rate)[0].numpy()
                                  for src in row["meta"]["sources"]])
                ests = [read_audio(Path(tmp) / f"out_{regions}_{i}" / f"source_{k}.wav", sample_rate=sep.sample_rate)[0].numpy()
                        for k in range(len(r.sources))]
                n = min(stems.shape[1], *(len(e) for e in ests))
                stems, ests = stems[:, :n], [e[:n] for e in ests]
                found.append(len(ests))
                if len(ests) < len(stems):
                    continue  # fewer sources found than the duet has: not scored
                base = bss_eval(stems, np.stack([stems.sum(0)] * len(stems)))["sdr"]
                best = max((bss_eval(stems, np.stack([ests[k] for k in pick]))["sdr"]
                            for pick in itertools.permutations(range(len(ests)), len(stems))),
                           key=lambda score: score.mean())
                sdr.append(best.mean())
                sdri.append((best - base).mean())
            out[regions] = {"duets": len(rows), "scored": len(sdr), "sources_found": found,
                            "sdr": round(float(np.mean(sdr)), 2) if sdr else None,
                            "sdri": round(float(np.mean(sdri)), 2) if sdri else None}
    return out


def _bar(what: str):
    def show(done: int, total: int) -> None:
        print(f"\r  {what}: {done}/{total}", end="" if done < total else "\n", file=sys.stderr, flush=True)
    return show


def main(argv: list[str] | None = None) -> int:
    from avkit.apps.separation import load
    from avkit.apps.separation.metrics import format_table

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", default=str(ROOT / "runs" / "separation_instruments"))
    p.add_argument("--test", default=str(ROOT / "avkit_data" / "separation" / "test"),
                   help="held-out solo clips (a generator seed not used for training or validation)")
    p.add_argument("--mixtures", type=int, default=100, help="held-out mixtures per number of sources")
    p.add_argument("--real", default=str(ROOT.parent / "shared" / "media" / "audio"))
    p.add_argument("--no-real", action="store_true")
    p.add_argument("--rtf-seconds", type=float, default=30.0, help="length of the video timed for the RTF")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    p.add_argument("--json", default="", help="also write the results here")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    sep = load(args.run, device="cpu")
    results = {"run": args.run, "torch_threads": torch.get_num_threads(),
               "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    results["synthetic"] = synthetic_part(sep, args.test, args.mixtures)
    print(format_table(results["synthetic"]["summary"],
                       title=f"held-out synthetic mixtures ({args.test}, {results['synthetic']['num_mixtures']} "
                             "mixtures; dB)"))
    if not args.no_real:
        real = real_part(sep, Path(args.real))
        if real is None:
            print(f"\n(no real recordings in {args.real}: skipped)")
        else:
            results["real"] = real
            print()
            print(format_table(real["summary"], title=f"real recordings ({real['num_mixtures']} mixtures; "
                                                      "generated sprite pictures; dB)"))
            print("SDRi per pair:", ", ".join(f"{k} {v:+.1f}" for k, v in real["sdri_per_pair"].items()))
    results["duets"] = duet_part(sep)
    print()
    for regions, d in results["duets"].items():
        print(f"duets, --regions {regions}: {d['scored']} of {d['duets']} scored (sources found {d['sources_found']}), "
              f"SDR {d['sdr']} dB, SDRi {d['sdri']} dB")
    results["speed"] = speed_part(sep, args.rtf_seconds)
    print()
    for name, s in results["speed"].items():
        print(f"speed ({name}): {s['duration']} s video, {s['sources']} sources found; separation {s['separate']} s "
              f"= {s['rtf_separation']}x real time; whole command {s['total']} s = {s['rtf_total']}x "
              f"(read {s['read']} s, write {s['write']} s, load {s['load']} s)")
    s2 = results["synthetic"]["summary"].get("2", {})
    if s2:
        gap = s2["irm"]["sdr"] - s2["model"]["sdr"]
        print(f"\ntargets (2 sources): SDRi {s2['model']['sdri']:.2f} dB (>= 8: {s2['model']['sdri'] >= 8}), "
              f"IRM - model {gap:.2f} dB (<= 3: {gap <= 3}), separation "
              f"{results['speed']['everything']['rtf_separation']}x real time (>= 20: "
              f"{results['speed']['everything']['rtf_separation'] >= 20})")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
