"""Visually guided separation: the shipped model (recipes/separation_gm.yaml) on real instrument recordings,
on held-out synthetic mixtures and on same-instrument duets, against the ideal masks, the same network
with no pictures and the synthetic-trained model; speed and memory of ``avkit separate`` on CPU.

Parts, each with its baselines measured in the same run:

1. Real recordings (``../shared/media/audio/scale_*.wav``: guitar, cello, flute, piano, trumpet, violin,
   rendered with FluidR3_GM, a bank the model never heard): 16 kHz mono, the first ``WINDOW`` s (the
   eight notes of the C-major scale, one every 0.5 s, and the last one's release), each normalised to
   peak 0.45 like a training solo; every 2-source pair and 3-source mixture. Each source's pictures
   are ``instruments.draw(name, ...)`` moving at the recordings' **known note grid** (0, 0.5, ..., 3.5 s;
   SOURCES.md: "0.5 s a note"; no onset detection). Scored: the model(s) with pictures, the audio-only
   network (its outputs put in the best order, an advantage it gets for free), the synthetic-trained
   model of recipes/separation_instruments.yaml (with the synthetic sprites it learnt), the mixture, and
   the ideal ratio, binary and phase-sensitive masks on the model's STFT.
2. Held-out synthetic mixtures of gm_instruments solos (generator seed 3: melodies never heard; the
   held-out duet pairs appear), 2 and 3 different instruments, whole 3 s clips.
3. Same-instrument duets of the held-out gm_instruments set (two players of one instrument, different
   parts, side by side in one video): ``separate_video --regions 2x1``, each half scored against the stem
   of the player on that side; the audio-only network (best order) beside it.
4. Speed and memory: a 10 s two-instrument gm_instruments video; ``separate_video`` in process (separation
   alone, the faster of two runs) and the whole ``avkit separate`` command in a fresh process (wall
   time, peak RSS of that process; avkit's modules compiled to bytecode first, as after a first run).
5. The whole command on the recorded videos of ../shared/media/video (real sizes and lengths: 6-70 s,
   320x240 to 800x332), fresh processes; ``--baseline CHECKOUT`` runs another checkout's avkit in turns.
6. Long recordings (``--long``): ``avkit separate --no-video`` in a fresh process on tears_of_steel's sound
   repeated 1, 4 and 16 times (70 s to 19 min, under 128x96 noise at 4 fps), peak RSS and time, and on a
   generated 150 s two-instrument duet with ``--regions 2x1``, scored against its stems; with ``--baseline``
   the other checkout's command in turns (before the windows, the separation's memory grew with the length).

The shipped model holds an audio-only network beside the pictured one (for two sources its stems, ordered by
the pictured network's estimates, are the output: docs/separation.md); every part also scores the pictured
network alone ("pictured_network") and the audio-only network with the order given ("audio_only") and in the
other order ("audio_only_other_order": with no pictures nothing says which sound is whose, so a user of the
audio-only network gets the mean of the two), in the same run. The figures of docs/separation.md since then (``--stems``: the other training of that network):

    python benchmarks/separation.py --threads 1 --skip speed --mixtures 25 --same-duets 48 \
        --json docs/benchmarks/separation_gm_stems.json
    python benchmarks/separation.py --threads 1 --skip speed --mixtures 25 --same-duets 48 \
        --stems runs/separation_gm_audio_unison_eq --json docs/benchmarks/separation_gm_stems_seed0.json
    python benchmarks/separation.py --threads 1 --skip real synthetic duets --json docs/benchmarks/separation_gm_speed_stems.json

Before it (three processes; the speed part alone, after the others):

    python benchmarks/separation.py --threads 1 --seed-runs runs/separation_gm_seed1 --audio-run runs/separation_gm_audio \\
        --old-run /tmp/sepbench/run30 --skip speed synthetic duets --json docs/benchmarks/separation_gm_real.json
    python benchmarks/separation.py --threads 1 --audio-run runs/separation_gm_audio --skip speed real --mixtures 25 \\
        --same-duets 16 --json docs/benchmarks/separation_gm_synthetic.json
    python benchmarks/separation.py --threads 1 --skip real synthetic duets --json docs/benchmarks/separation_gm_speed.json
    python benchmarks/separation.py --markdown docs/benchmarks/separation_gm_real.json      # the docs' tables
"""
from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
REAL = ("acoustic_guitar", "cello", "flute", "piano", "trumpet", "violin")
WINDOW = 4.5  # s: the eight notes and the last one's release
NOTE_GRID = tuple(0.5 * k for k in range(8))  # the recordings' note onsets (SOURCES.md: 0.5 s a note)
PEAK = 0.45
RATE = 16000
# the synthetic-trained model's sprites: the synthetic instrument closest in role (as in its benchmark)
OLD_SPRITES = {"flute": "flute", "violin": "violin", "trumpet": "violin", "cello": "clarinet", "piano": "bell",
               "acoustic_guitar": "bell"}
METRICS = ("sdr", "sir", "sar", "si_sdr")


def all_recordings(folder: Path) -> dict[str, np.ndarray] | None:
    """:func:`load_recordings`, or None (and a line saying so) when any of the six is missing."""
    recordings = load_recordings(folder)
    if len(recordings) < len(REAL):
        print(f"(the six scale recordings are not all in {folder}: nothing to do)")
        return None
    return recordings


def load_recordings(folder: Path) -> dict[str, np.ndarray]:
    """The six scale recordings, 16 kHz mono, the first ``WINDOW`` s, peak ``PEAK``."""
    from avkit.io import read_audio

    out = {}
    for name in REAL:
        path = folder / f"scale_{name}.wav"
        if path.is_file():
            wave = read_audio(path, sample_rate=RATE)[0].numpy()[: int(WINDOW * RATE)]
            out[name] = (PEAK * wave / max(float(np.abs(wave).max()), 1e-6)).astype(np.float32)
    return out


def pictures(name: str, seed: int) -> np.ndarray:
    """``instruments.draw`` of ``name`` moving at the known note grid (64 px, 8 fps)."""
    from avkit.data.synthetic.instruments import draw

    return draw(name, WINDOW, fps=8, size=64, onsets=NOTE_GRID, seed=seed)


def old_sprites(label: str, sep: Any, seed: int = 99) -> np.ndarray:
    """Frames of a generated synthetic ``instruments`` clip of ``label`` (for the synthetic-trained model)."""
    from avkit.data.synthetic import render_clip

    for index in range(200):
        clip = render_clip("instruments", index, seed=seed, sample_rate=sep.sample_rate, duration=WINDOW,
                           fps=sep.opts.fps, size=sep.opts.image_size)
        if clip.label == label:
            return clip.frames
    raise RuntimeError(f"no {label} clip found")


def audio_only(sep: Any, mixture: np.ndarray, refs: np.ndarray) -> np.ndarray | None:
    """The audio-only network's estimates (in the order that suits ``refs`` best), or None when it
    separates another number of sources."""
    from avkit.apps.separation.evaluate import best_order

    n = len(refs)
    if n != sep.net.net_cfg.slots:
        return None
    with torch.no_grad():
        dummy = torch.zeros(1, n, 1, 3, 8, 8, dtype=torch.uint8)
        est = sep.net.separate(torch.as_tensor(mixture)[None], dummy)[0].numpy()
    return best_order(refs, est)


def score(refs: np.ndarray, sets: dict[str, np.ndarray]) -> dict[str, dict[str, list[float]]]:
    """BSS-eval SDR/SIR/SAR and SI-SDR of every estimate set ``[N, S]`` against ``refs [N, S]``, plus the
    improvements over the unprocessed mixture (``sdri``, ``si_sdri``), per source."""
    from avkit.apps.separation.metrics import bss_eval_sets, si_sdr

    refs = refs.astype(np.float64)
    sets = {"mixture": np.repeat(refs.sum(0, keepdims=True), len(refs), axis=0), **sets}
    out = {}
    for name, result in zip(sets, bss_eval_sets(refs, [np.asarray(v, np.float64) for v in sets.values()])):
        out[name] = {**{k: np.asarray(result[k]) for k in ("sdr", "sir", "sar")},
                     "si_sdr": si_sdr(refs, np.asarray(sets[name], np.float64))}
    for name in out:
        out[name]["sdri"] = out[name]["sdr"] - out["mixture"]["sdr"]
        out[name]["si_sdri"] = out[name]["si_sdr"] - out["mixture"]["si_sdr"]
    return {k: {m: [round(float(x), 3) for x in v] for m, v in d.items()} for k, d in out.items()}


def means(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean of every metric of every method over the sources of ``rows`` (methods missing in a row: left out)."""
    methods = sorted({m for r in rows for m in r["scores"]})
    out = {}
    for method in methods:
        have = [r["scores"][method] for r in rows if method in r["scores"]]
        out[method] = {m: round(float(np.mean(np.concatenate([h[m] for h in have]))), 2)
                       for m in (*METRICS, "sdri", "si_sdri")}
        out[method]["mixtures"] = len(have)
    return out


def real_part(models: dict[str, Any], audio: Any, old: Any, folder: Path) -> dict | None:
    from avkit.apps.separation.metrics import oracle_estimates

    recordings = load_recordings(folder)
    if len(recordings) < 2:
        return None
    first = next(iter(models.values()))
    frames = {name: pictures(name, seed=k) for k, name in enumerate(REAL)}
    rows = []
    combos = [c for n in (2, 3) for c in itertools.combinations(sorted(recordings), n)]
    bar = _bar("real recordings")
    for i, combo in enumerate(combos):
        refs = np.stack([recordings[x] for x in combo])
        mix = refs.sum(0)
        sets = {name: np.stack(sep.separate(mix, RATE, [frames[x] for x in combo])) for name, sep in models.items()}
        if first.namer is not None:  # the timbre path with the right names: what --instruments gives
            sets["told_instruments"] = np.stack(first.separate(mix, RATE, [frames[x] for x in combo], instruments=combo))
        names, named = first.plan_timbre([frames[x] for x in combo])
        if names is not None:  # as the separator does: a name the sound does not bear out goes to the networks
            by_timbre = np.stack(first.separate(mix, RATE, [frames[x] for x in combo], instruments=names))
            names = None if first.unheard(named, by_timbre, mix) is not None else names
        oracles = oracle_estimates(first.spectral, refs)
        sets.update({k: oracles[k] for k in ("irm", "ibm", "psm")})
        if audio is not None:
            est = audio_only(audio, mix, refs)
            if est is not None:
                sets["audio_only"] = est
                sets["audio_only_other_order"] = est[::-1]
        if old is not None:
            sets["synthetic_trained"] = np.stack(old.separate(mix, RATE, [old_sprites(OLD_SPRITES[x], old)
                                                                          for x in combo]))
        rows.append({"names": list(combo), "num_sources": len(combo), "scores": score(refs, sets),
                     "by_timbre": names is not None, "named": named})
        bar(i + 1, len(combos))
    return {"folder": str(folder), "window_s": WINDOW, "onsets": "known note grid " + ", ".join(map(str, NOTE_GRID)),
            "summary": {str(n): means([r for r in rows if r["num_sources"] == n]) for n in (2, 3)},
            "mixtures": rows}


def synthetic_part(sep: Any, test: str, per_n: int, audio: Any = None, pictured: Any = None,
                   networks: Any = None) -> dict:
    """Held-out mixtures of 2 and 3 sources; the audio-only network (order given), the pictured network alone and
    the networks without the timbre path on the same 2-source mixtures."""
    from avkit.apps.separation.evaluate import mixtures_of, score_mixtures
    from avkit.apps.separation.metrics import summarize

    out = {"source": test}
    mixtures = mixtures_of(test, sep.opts, num_mix=[2, 3], length=2 * per_n, seed=1)
    out["summary"] = summarize(score_mixtures(sep, mixtures, progress=_bar(f"held-out {Path(test).name}")))
    two = [item for item in (mixtures[i] for i in range(len(mixtures))) if int(item["valid"].sum()) == 2]
    for name, other in (("audio_only_2", audio), ("pictured_network_2", pictured), ("networks_2", networks)):
        if other is not None:
            out[name] = summarize(score_mixtures(other, two, oracles=False, progress=_bar(name)))["2"]
    return out


def same_duets_part(sep: Any, audio: Any, test: Path, limit: int, pictured: Any = None, networks: Any = None) -> dict:
    """Same-instrument duet videos of ``test``: ``--regions 2x1``, each half against its side's stem."""
    from avkit.apps.separation import separate_video
    from avkit.data.synthetic import read_manifest
    from avkit.io import read_audio

    rows = [r for r in read_manifest(test) if (r.get("meta") or {}).get("same_instrument")][:limit]
    out_rows = []
    bar = _bar("same-instrument duets")
    with tempfile.TemporaryDirectory() as tmp:
        def halves(model: Any, out: Path) -> list[np.ndarray]:
            r = separate_video(test / row["path"], model, out, regions="2x1", videos=False)
            return [read_audio(out / f"source_{k}.wav", sample_rate=sep.sample_rate)[0].numpy()
                    for k in range(len(r.sources))]

        for i, row in enumerate(rows):
            srcs = sorted(row["meta"]["sources"], key=lambda s: s["side"] != "left")  # left half, right half
            stems = np.stack([read_audio(test / s["stem"], sample_rate=sep.sample_rate)[0].numpy() for s in srcs])
            ests = {"model": halves(sep, Path(tmp) / str(i))}
            for name, other in (("pictured_network", pictured), ("networks", networks)):
                if other is not None:
                    ests[name] = halves(other, Path(tmp) / f"{i}_{name}")
            n = min(stems.shape[1], *(len(e) for est in ests.values() for e in est))
            stems = stems[:, :n]
            sets = {name: np.stack([e[:n] for e in est]) for name, est in ests.items()}
            if audio is not None:
                sets["audio_only"] = audio_only(audio, stems.sum(0), stems)
                sets["audio_only_other_order"] = sets["audio_only"][::-1]
            out_rows.append({"path": row["path"], "instrument": srcs[0]["label"], "scores": score(stems, sets)})
            bar(i + 1, len(rows))
    return {"source": str(test), "duets": len(out_rows), "summary": means(out_rows), "rows": out_rows}


def speed_part(run: str | None, sep: Any, seconds: float) -> dict:
    """In-process ``separate_video`` timings and the whole command in a fresh process (wall, peak RSS)."""
    from avkit.apps.separation import separate_video
    from avkit.data.synthetic import generate, read_manifest

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "duet"
        generate("gm_instruments", data, 1, seed=5, duration=seconds, duets=1.0)
        video = data / read_manifest(data)[0]["path"]
        times = []
        for rep in range(2):  # the first run pays the one-off warm-up
            r = separate_video(video, sep, Path(tmp) / f"in_process_{rep}", videos=True)
            times.append(r.seconds)
        best = min(times, key=lambda s: s["total"])
        out["in_process"] = {"duration": round(r.duration, 2), "sources": len(r.sources),
                             **{k: round(v, 3) for k, v in best.items()},
                             "rtf_separation": round(r.duration / best["separate"], 1),
                             "rtf_total": round(r.duration / best["total"], 1)}
        # the two players as two halves: two sources, so a model with an audio-only network uses its stems
        halves = min((separate_video(video, sep, Path(tmp) / f"halves_{rep}", regions="2x1", videos=False).seconds
                      for rep in range(2)), key=lambda s: s["total"])
        out["in_process"]["separate_2x1"] = round(halves["separate"], 3)
        out["in_process"]["rtf_separation_2x1"] = round(r.duration / halves["separate"], 1)
        # the halves separated by timbre, the two instruments given (as --instruments does)
        players = sorted(read_manifest(data)[0]["meta"]["sources"], key=lambda p: p["side"] != "left")
        names = [p["label"] for p in players]
        if len(set(names)) == 2 and getattr(sep, "namer", None) is not None:
            told = min((separate_video(video, sep, Path(tmp) / f"told_{rep}", regions="2x1", videos=False,
                                       instruments=names).seconds for rep in range(2)), key=lambda s: s["total"])
            out["in_process"]["separate_by_timbre"] = round(told["separate"], 3)
            out["in_process"]["rtf_separation_by_timbre"] = round(r.duration / told["separate"], 1)
        # A user's second run finds avkit's modules compiled; this machine sets PYTHONDONTWRITEBYTECODE, so
        # without this every fresh process would compile them again (about 0.2 s, a one-off timing).
        import compileall

        import avkit

        compileall.compile_dir(str(Path(avkit.__file__).parent), quiet=1)
        cmd = [sys.executable, "-m", "avkit.cli.main", "separate", str(video)]
        if run:
            cmd += ["--run", run]
        runs = [fresh_process([*cmd, "--out", str(Path(tmp) / f"cli_{rep}")])
                for rep in range(2)]  # best of two: the first fresh process may pay for a cold file cache
        rc, wall, rss = min(runs, key=lambda run_: run_[1])
        out["command"] = {"rc": rc, "wall_s": round(wall, 2), "duration": round(r.duration, 2),
                          "rtf": round(r.duration / wall, 1), "peak_rss_mb": round(rss, 1),
                          "argv": "avkit separate VIDEO --out DIR" + (f" --run {run}" if run else "")}
        # The floor under the command: a fresh Python importing what it imports (best of two, same run).
        for name, code in (("import_torch_s", "import torch"),
                           ("import_torch_frozen_s", "import gc; gc.disable(); import torch; gc.freeze(); gc.enable()")):
            times = []
            for _ in range(2):
                start = time.perf_counter()
                subprocess.run([sys.executable, "-c", code], check=True)
                times.append(time.perf_counter() - start)
            out["command"][name] = round(min(times), 2)
    return out


def fresh_process(cmd: list[str], cwd: Path | None = None) -> tuple[int, float, float]:
    """Run ``cmd`` in a fresh process (in ``cwd``: ``python -m avkit...`` there runs that checkout's avkit):
    (exit code, wall seconds, its peak RSS in MB)."""
    probe = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
             "rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode; "
             "print(rc, time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    rc, wall, rss = subprocess.run([sys.executable, "-c", probe, *cmd], capture_output=True, text=True, check=True,
                                   cwd=cwd).stdout.split()
    return int(rc), float(wall), int(rss) / 1024


def videos_part(folder: Path, checkouts: dict[str, Path]) -> list[dict[str, Any]]:
    """``avkit separate VIDEO`` (no options: regions found, the four videos written) on every video of ``folder``
    (the shared recorded videos) in a fresh process, with the avkit of each checkout in turn (the code here, and
    a baseline checkout when given): wall time, real-time factor, peak RSS and the command's own phases."""
    import compileall

    rows = []
    for video in sorted(p for p in folder.iterdir() if p.suffix in (".mp4", ".mkv", ".avi", ".webm")):
        for label, root in checkouts.items():
            compileall.compile_dir(str(root / "avkit"), quiet=1)
            with tempfile.TemporaryDirectory() as tmp:
                rc, wall, rss = fresh_process([sys.executable, "-m", "avkit.cli.main", "separate", str(video), "--out",
                                               str(Path(tmp) / "out")], cwd=root)
                record = json.loads((Path(tmp) / "out" / "separation.json").read_text()) if rc == 0 else {}
            duration = float(record.get("duration", 0.0))
            rows.append({"video": video.name, "code": label, "rc": rc, "wall_s": round(wall, 2),
                         "duration": round(duration, 2), "rtf": round(duration / wall, 2) if duration else None,
                         "peak_rss_mb": round(rss, 1), "sources": len(record.get("sources", [])),
                         "seconds": record.get("seconds", {})})
            print(f"  {video.name:<32} {label:<9} rc {rc}  {wall:7.2f} s  {rows[-1]['rtf']}x real time  "
                  f"peak RSS {rss:8.1f} MB  phases {rows[-1]['seconds']}", flush=True)
    return rows


def long_part(tears: Path, checkouts: dict[str, Path], repeats: tuple[int, ...] = (1, 4, 16),
              duet_seconds: float = 150.0) -> dict[str, Any]:
    """Part 6: ``avkit separate --no-video`` on long recordings in a fresh process per checkout (see the module
    docstring): peak RSS and time on tears_of_steel's sound repeated, and SDRi of a long generated duet's halves."""
    import compileall

    from avkit.apps.separation.metrics import bss_eval
    from avkit.data.synthetic import generate, read_manifest
    from avkit.io import VideoReader, read_audio, write_video

    out: dict[str, Any] = {"memory": [], "duet": []}
    for root in checkouts.values():
        compileall.compile_dir(str(root / "avkit"), quiet=1)
    with tempfile.TemporaryDirectory() as tmp:
        with VideoReader(tears) as reader:
            sound = reader.read_audio(sample_rate=16000).numpy()
        noise = np.random.default_rng(0)
        for times in repeats:
            video = Path(tmp) / f"long{times}.mp4"
            audio = np.tile(sound, times)
            frames = noise.integers(0, 255, (int(len(audio) / 16000 * 4), 96, 128, 3), dtype=np.uint8)
            write_video(video, frames, 4, audio, 16000)
            del frames
            for label, root in checkouts.items():
                rc, wall, rss = fresh_process([sys.executable, "-m", "avkit.cli.main", "separate", str(video), "--out",
                                               str(Path(tmp) / "out"), "--no-video", "--overwrite"], cwd=root)
                record = json.loads((Path(tmp) / "out" / "separation.json").read_text()) if rc == 0 else {}
                row = {"seconds": round(len(audio) / 16000, 1), "code": label, "rc": rc, "wall_s": round(wall, 2),
                       "separate_s": record.get("seconds", {}).get("separate"), "peak_rss_mb": round(rss, 1),
                       "sources": len(record.get("sources", []))}
                out["memory"].append(row)
                print(f"  {row['seconds']:7.1f} s  {label:<9} rc {rc}  {wall:7.2f} s (separation {row['separate_s']} s)"
                      f"  peak RSS {rss:8.1f} MB  {row['sources']} source(s)", flush=True)
        generate("gm_instruments", Path(tmp) / "duet", 1, seed=4, duets=1.0, duration=duet_seconds)
        row = read_manifest(Path(tmp) / "duet")[0]
        players = sorted(row["meta"]["sources"], key=lambda p: p["side"] != "left")
        refs = np.stack([read_audio(Path(tmp) / "duet" / p["stem"], sample_rate=16000)[0].numpy() for p in players])
        mixture = bss_eval(refs, np.stack([refs.sum(0)] * 2))["sdr"]
        for label, root in checkouts.items():
            rc, wall, rss = fresh_process([sys.executable, "-m", "avkit.cli.main", "separate",
                                           str(Path(tmp) / "duet" / row["path"]), "--out", str(Path(tmp) / "out"),
                                           "--regions", "2x1", "--no-video", "--overwrite"], cwd=root)
            est = np.stack([read_audio(Path(tmp) / "out" / f"source_{k}.wav", sample_rate=16000)[0].numpy()
                            [:refs.shape[1]] for k in range(2)])
            sdri = (bss_eval(refs, est)["sdr"] - mixture).tolist()
            out["duet"].append({"seconds": duet_seconds, "code": label, "rc": rc, "wall_s": round(wall, 2),
                                "peak_rss_mb": round(rss, 1), "sdri": [round(v, 2) for v in sdri]})
            print(f"  duet {duet_seconds:.0f} s, --regions 2x1, {label:<9} rc {rc}  {wall:6.2f} s  peak RSS {rss:7.1f} MB"
                  f"  SDRi {np.mean(sdri):+.2f} dB ({sdri[0]:+.2f}, {sdri[1]:+.2f})", flush=True)
    return out


def _bar(what: str):
    def show(done: int, total: int) -> None:
        print(f"\r  {what}: {done}/{total}", end="" if done < total else "\n", file=sys.stderr, flush=True)
    return show


def _table(summary: dict[str, dict[str, float]], title: str) -> str:
    cols = (*METRICS, "sdri", "si_sdri")
    lines = [title, f"{'method':<18}" + "".join(f"{c:>9}" for c in cols) + f"{'n':>5}"]
    for method, entry in summary.items():
        lines.append(f"{method:<18}" + "".join(f"{entry[c]:9.2f}" for c in cols) + f"{entry['mixtures']:5d}")
    return "\n".join(lines)


def markdown(results: dict[str, Any]) -> str:
    """The docs' tables (docs/separation.md) from a ``--json`` file of this benchmark."""
    def row(name: str, e: dict[str, float]) -> str:
        return f"| {name} | " + " | ".join(f"{e[c]:.2f}" for c in (*METRICS, "sdri", "si_sdri")) + f" | {e['mixtures']} |"

    head = "| method | SDR | SIR | SAR | SI-SDR | SDRi | SI-SDRi | mixtures |\n|---|---:|---:|---:|---:|---:|---:|---:|"
    out = []
    real = results.get("real")
    if real:
        for n in ("2", "3"):
            out += [f"\nReal recordings, {n} sources (dB, means over sources):\n", head]
            out += [row(name, e) for name, e in real["summary"][n].items()]
        out += ["\nSDRi per 2-source mixture (dB):\n", "| pair | " + " | ".join(
            k for k in real["mixtures"][0]["scores"] if k != "mixture") + " |",
            "|---|" + "---:|" * (len(real["mixtures"][0]["scores"]) - 1)]
        for r in real["mixtures"]:
            if r["num_sources"] == 2:
                out.append(f"| {' + '.join(r['names'])} | " + " | ".join(
                    f"{np.mean(v['sdri']):+.2f}" for k, v in r["scores"].items() if k != "mixture") + " |")
    if results.get("same_duets"):
        d = results["same_duets"]
        out += [f"\nSame-instrument duets ({d['duets']} videos, --regions 2x1; dB):\n", head]
        out += [row(name, e) for name, e in d["summary"].items()]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    from avkit.apps.separation import Separator, load
    from avkit.apps.separation.metrics import format_table

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", default=None, help="the model with pictures (default: the shipped model)")
    p.add_argument("--seed-runs", nargs="*", default=[], help="trainings of the same recipe with other seeds")
    p.add_argument("--stems", default="", help="an audio-only run to give the model's stems instead of its own")
    p.add_argument("--audio-run", default="", help="the same network trained with no pictures (visual: none; "
                                                     "default: the model's own audio-only network, if it has one)")
    p.add_argument("--old-run", default="", help="a run of recipes/separation_instruments.yaml")
    p.add_argument("--gm-test", default=str(ROOT / "runs" / "gm" / "gm_test"), help="held-out gm_instruments clips")
    p.add_argument("--mixtures", type=int, default=50, help="held-out synthetic mixtures per number of sources")
    p.add_argument("--same-duets", type=int, default=24, help="same-instrument duets scored")
    p.add_argument("--real", default=str(ROOT.parent / "shared" / "media" / "audio"))
    p.add_argument("--rtf-seconds", type=float, default=10.0)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    p.add_argument("--videos", default=str(ROOT.parent / "shared" / "media" / "video"),
                   help="recorded videos for the whole command's time and memory (part 5)")
    p.add_argument("--baseline", default="", help="another avkit checkout (a git worktree) whose command part 5 "
                                                  "also runs, in turns with this one")
    p.add_argument("--long", action="store_true", help="also run part 6, long recordings (a few minutes)")
    p.add_argument("--skip", nargs="*", default=[], choices=["real", "synthetic", "duets", "speed", "videos"])
    p.add_argument("--json", default="", help="also write the results here")
    p.add_argument("--markdown", default="", help="only print the docs' tables of this --json file")
    args = p.parse_args(argv)
    if args.markdown:
        print(markdown(json.loads(Path(args.markdown).read_text())))
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    sep = load(args.run, device="cpu")
    models = {"model": sep, **{f"model_seed_run{k + 1}": load(r, device="cpu") for k, r in enumerate(args.seed_runs)}}
    if args.stems:  # another training of the model's audio-only network (the seed-to-seed spread)
        sep.attach_stems(load(args.stems, device="cpu"))
    pictured = networks = None
    if sep.namer is not None:  # the same model never separating by timbre: its networks
        networks = load(args.run, device="cpu")
        networks.detach_namer()
        models["networks"] = networks
    if sep.stems is not None:  # the same model without its audio-only network: what the pictures alone give
        pictured = load(args.run, device="cpu")
        pictured.detach_stems()
        pictured.detach_namer()
        models["pictured_network"] = pictured
    audio = load(args.audio_run, device="cpu") if args.audio_run else None
    if audio is None and sep.stems is not None:
        audio = Separator(sep.stems, sep.opts, sep.device)
    old = load(args.old_run, device="cpu") if args.old_run else None
    results: dict[str, Any] = {"run": args.run or "shipped", "stems": args.stems or ("shipped" if sep.stems is not None
                                                                                   else ""),
                               "seed_runs": args.seed_runs, "audio_run": args.audio_run,
                               "old_run": args.old_run, "torch_threads": torch.get_num_threads(),
                               "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    if "real" not in args.skip:
        real = real_part(models, audio, old, Path(args.real))
        if real is None:
            print(f"(no real recordings in {args.real}: skipped)")
        else:
            results["real"] = real
            for n in ("2", "3"):
                print(_table(real["summary"][n], f"\nreal recordings, {n} sources (dB, means over sources)"))
            print("\nSDRi per 2-source pair (model | audio only | best oracle; * separated by timbre, the names):")
            for r in real["mixtures"]:
                if r["num_sources"] == 2:
                    s = r["scores"]
                    best = max(np.mean(s[o]["sdri"]) for o in ("irm", "ibm", "psm"))
                    ao = f"{np.mean(s['audio_only']['sdri']):+.2f}" if "audio_only" in s else "-"
                    named = ", ".join(f"{n} {p:.3f}" for n, p in r["named"] or [])
                    print(f"  {'+'.join(r['names']):<24} {np.mean(s['model']['sdri']):+.2f}{'*' if r['by_timbre'] else ' '}"
                          f" | {ao} | {best:+.2f}   {named}")
    if "synthetic" not in args.skip and Path(args.gm_test).is_dir():
        results["synthetic"] = synthetic_part(sep, args.gm_test, args.mixtures, audio, pictured, networks)
        print()
        print(format_table(results["synthetic"]["summary"], title=f"held-out gm_instruments mixtures ({args.gm_test}; dB)"))
        if "pictured_network_2" in results["synthetic"]:
            p2 = results["synthetic"]["pictured_network_2"]["model"]
            print(f"pictured network alone, 2 sources: SDR {p2['sdr']:.2f} SDRi {p2['sdri']:.2f} SI-SDR {p2['si_sdr']:.2f}")
        if "networks_2" in results["synthetic"]:
            n2 = results["synthetic"]["networks_2"]["model"]
            print(f"networks (no timbre path), 2 sources: SDR {n2['sdr']:.2f} SDRi {n2['sdri']:.2f} SI-SDR {n2['si_sdr']:.2f}")
        if "audio_only_2" in results["synthetic"]:
            a2 = results["synthetic"]["audio_only_2"]["model"]
            print(f"audio only, 2 sources: SDR {a2['sdr']:.2f} SDRi {a2['sdri']:.2f} SI-SDR {a2['si_sdr']:.2f}")
    if "duets" not in args.skip and Path(args.gm_test).is_dir():
        results["same_duets"] = same_duets_part(sep, audio, Path(args.gm_test), args.same_duets, pictured, networks)
        print(_table(results["same_duets"]["summary"], f"\nsame-instrument duets ({results['same_duets']['duets']}, "
                                                       "--regions 2x1 against each side's stem; dB)"))
    if "speed" not in args.skip:
        results["speed"] = speed_part(args.run, sep, args.rtf_seconds)
        s, c = results["speed"]["in_process"], results["speed"]["command"]
        print(f"\nspeed: {s['duration']} s two-instrument video, {s['sources']} sources found; separation "
              f"{s['separate']} s = {s['rtf_separation']}x real time (--regions 2x1: {s['separate_2x1']} s = "
              f"{s['rtf_separation_2x1']}x; by timbre, the instruments given: {s.get('separate_by_timbre', '-')} s = "
              f"{s.get('rtf_separation_by_timbre', '-')}x); separate_video with the videos {s['total']} s = "
              f"{s['rtf_total']}x; the whole command in a fresh process {c['wall_s']} s = {c['rtf']}x (rc {c['rc']}), "
              f"peak RSS {c['peak_rss_mb']} MB; a fresh Python importing torch alone {c['import_torch_s']} s, as the "
              f"avkit program does (the collector off, then frozen) {c['import_torch_frozen_s']} s")
    if "videos" not in args.skip and Path(args.videos).is_dir():
        checkouts = {"here": ROOT, **({"baseline": Path(args.baseline).resolve()} if args.baseline else {})}
        print(f"\nthe whole command on the recorded videos of {args.videos} (fresh processes, no options):")
        results["videos"] = videos_part(Path(args.videos), checkouts)
    tears = Path(args.videos) / "tears_of_steel_vp8_vorbis.webm"
    if args.long and tears.is_file():
        checkouts = {"here": ROOT, **({"baseline": Path(args.baseline).resolve()} if args.baseline else {})}
        print("\nlong recordings, avkit separate --no-video in fresh processes:")
        results["long"] = long_part(tears, checkouts)
    elif args.long:
        print(f"(no {tears}: part 6 skipped)")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
