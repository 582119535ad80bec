"""Audio-guided clip selection on long videos: video accuracy against GFLOPs for every policy and budget.

On held-out synthetic ``longvideo`` data (another seed than the training videos), for budgets
K = 1, 2, 3, 5, 10: uniform, random, audio top-K with three previews (the analytic energy
preview, the trained audio-only preview, the trained audio + one-frame preview) and the learned
(SCSampler-style) sampler, each with its GFLOPs per video (preview and sampler included), against
dense processing (the heavy model on 10 uniform clips, averaged: the reference; and on every
candidate). An "oracle" row (top-K windows by the heavy model's own true-class probability: it
needs the label) bounds what any selection could reach. Then the CPU wall-clock of
``ClipSelector.select`` on one long video, end to end (decoding included).

    python benchmarks/clip_selection.py                    # generate + train what is missing, then measure
    python benchmarks/clip_selection.py --num-test 60 --skip-wallclock      # quicker
    python benchmarks/clip_selection.py --markdown docs/benchmarks/clip_selection_cpu.md --plot docs/clip_selection_tradeoff.png

What is missing is made with the commands of docs/clip_selection.md (the same recipes):
``avkit generate longvideo``, ``python -m avkit.apps.clip_selection.data`` (segment manifest) and
``avkit train`` of recipes/longvideo_{c3d,preview,sampler}.yaml (+ the audio-only preview).
Per-clip heavy probabilities are computed once per video on every candidate and on the uniform
clips, and every policy is evaluated from them with the same functions ``avkit select`` uses
(``choose``, ``aggregate``); the script checks on a few videos that ``ClipSelector.select`` gives
the same prediction and GFLOPs.
"""
from __future__ import annotations

import argparse
import math
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
BUDGETS = (1, 2, 3, 5, 10)
RANDOM_DRAWS = 5


def sh(cmd: list[str]) -> float:
    print("$", " ".join(cmd), flush=True)
    start = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT)
    return time.perf_counter() - start


def train_seconds(run_dir: Path) -> float:
    """Sum of the epoch times in metrics.csv (training + validation, not the feature preparation)."""
    import csv

    with open(run_dir / "metrics.csv") as f:
        return sum(float(r["seconds"]) for r in csv.DictReader(f))


def prepare(args: argparse.Namespace) -> dict[str, Any]:
    """Generate and train what is missing; returns what was run and how long it took."""
    avkit = [sys.executable, "-m", "avkit"]
    log: dict[str, Any] = {"commands": [], "wall_seconds": {}}
    data, runs = Path(args.data), Path(args.runs)
    steps = [
        (data / "longvideo_train" / "manifest.jsonl",
         avkit + ["generate", "longvideo", str(data / "longvideo_train"), "--num", str(args.num_train), "--seed", "0"]),
        (data / "longvideo_test" / "manifest.jsonl",
         avkit + ["generate", "longvideo", str(data / "longvideo_test"), "--num", str(args.num_test), "--seed", "1",
                  "--val-fraction", "0"]),
        (data / "longvideo_train" / "segments.jsonl",
         [sys.executable, "-m", "avkit.apps.clip_selection.data", str(data / "longvideo_train")]),
        (runs / "longvideo_c3d" / "best.safetensors",
         avkit + ["train", "recipes/longvideo_c3d.yaml", f"data.source={data}/longvideo_train/segments.jsonl",
                  f"train.output_dir={runs}/longvideo_c3d"]),
        (runs / "longvideo_preview" / "best.safetensors",
         avkit + ["train", "recipes/longvideo_preview.yaml", f"data.source={data}/longvideo_train",
                  f"train.output_dir={runs}/longvideo_preview"]),
        (runs / "longvideo_preview_audio" / "best.safetensors",
         avkit + ["train", "recipes/longvideo_preview.yaml", f"data.source={data}/longvideo_train",
                  "task_options.visual=false", f"train.output_dir={runs}/longvideo_preview_audio"]),
        (runs / "longvideo_sampler" / "best.safetensors",
         avkit + ["train", "recipes/longvideo_sampler.yaml", f"data.source={data}/longvideo_train",
                  f"task_options.preview={runs}/longvideo_preview", f"task_options.heavy={runs}/longvideo_c3d",
                  f"train.output_dir={runs}/longvideo_sampler"]),
    ]
    for done, cmd in steps:
        if done.exists():
            continue
        log["commands"].append(" ".join(cmd[1:] if cmd[0] == sys.executable else cmd))
        log["wall_seconds"][done.parent.name] = round(sh(cmd), 1)
    return log


# ---------------------------------------------------------------------------------------------
# per-video measurements


def measure_video(v: Any, heavy: Any, previews: dict[str, Any], sampler: Any, budgets: tuple[int, ...]) -> dict[str, Any]:
    from avkit.apps.clip_selection.data import overlap_fraction
    from avkit.apps.clip_selection.policies import candidate_windows, consensus_scores
    from avkit.apps.clip_selection.preview import read_inputs
    from avkit.data.sampling import uniform_clips
    from avkit.io.in_memory import InMemoryVideo

    mem = InMemoryVideo.decode(v.path, size=heavy.short_side, sample_rate=heavy.sample_rate, audio=heavy.need_audio)
    duration = mem.duration
    cands = candidate_windows(duration, heavy.num_frames, heavy.fps)

    def probs_of(windows: list) -> torch.Tensor:
        return torch.cat([heavy.probs(heavy.batch(mem, windows[b:b + 64])) for b in range(0, len(windows), 64)])

    rec: dict[str, Any] = {"label": v.label_index, "duration": duration, "cands": cands, "P": probs_of(cands),
                           "uniform": {k: probs_of(uniform_clips(duration, heavy.num_frames, heavy.fps, k))
                                       for k in sorted(set(budgets) | {10})},
                           "inside": overlap_fraction([w.start for w in cands], [w.end for w in cands], v.segments),
                           "previews": {}}
    inputs = read_inputs(v.path, cands, frames=True)
    for name, pv in previews.items():
        res = pv.run(v.path, cands, inputs)
        rec["previews"][name] = {"scores": res.saliency, "gflops": res.gflops, "ok": res.ok, "reason": res.reason,
                                 "result": res if name == "audio+frame" else None}
        if res.ok and res.class_probs is not None:
            rec["previews"][f"{name} + consensus"] = {
                "scores": consensus_scores(res.saliency, res.class_probs), "gflops": res.gflops, "ok": True,
                "reason": None}
    if sampler is not None:
        res = rec["previews"]["audio+frame"]["result"]
        scores, g = sampler.score(res) if res.ok else (None, 0.0)
        rec["previews"]["learned"] = {"scores": scores, "gflops": res.gflops + g, "ok": res.ok, "reason": res.reason,
                                      "sampler_gflops": g}
    rec["previews"]["oracle"] = {"scores": rec["P"][:, v.label_index].numpy(), "gflops": 0.0, "ok": True, "reason": None}
    for p in rec["previews"].values():
        p.pop("result", None)
    return rec


def evaluate(recs: list[dict[str, Any]], heavy: Any, budgets: tuple[int, ...], per_clip: float
             ) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    from avkit.apps.clip_selection.policies import aggregate, choose

    rows = []
    nf, fps = heavy.num_frames, heavy.fps

    def run(policy: str, k: int, source: str | None, draw: int = 0, weighted: bool = False
            ) -> tuple[float, float, float, float]:
        correct, flops, inside, clips = [], [], [], []
        for i, r in enumerate(recs):
            pv = r["previews"].get(source) if source else None
            scores = pv["scores"] if pv is not None else None
            fallback = None if pv is None or pv["ok"] else pv["reason"]
            ch = choose(policy, r["cands"], k, duration=r["duration"], num_frames=nf, fps=fps, scores=scores,
                        fallback=fallback, rng=[draw, i])
            if ch.indices is None:  # uniform (or a fallback): its own clips
                P = r["uniform"][len(ch.windows)] if len(ch.windows) in r["uniform"] else None
                if P is None:
                    raise RuntimeError(f"no uniform probabilities for K={len(ch.windows)}")
                ins = float("nan")
                spent = len(ch.windows) * per_clip + (pv["gflops"] if pv is not None and pv["ok"] else 0.0)
            else:
                P = r["P"][ch.indices]
                ins = float(np.mean(r["inside"][ch.indices] >= 0.5))
                spent = len(ch.indices) * per_clip + (pv["gflops"] if pv is not None else 0.0)
            weights = None
            if weighted and ch.scores is not None:  # as ClipSelector.select(weighted=True)
                weights = 1 / (1 + np.exp(-ch.scores)) if policy == "learned" else ch.scores
            correct.append(float(int(aggregate(P, weights).argmax()) == r["label"]))
            flops.append(spent)
            inside.append(ins)
            clips.append(len(ch.windows))
        return float(np.mean(correct)), float(np.mean(flops)), float(np.nanmean(inside)) if not all(
            math.isnan(x) for x in inside) else float("nan"), float(np.mean(clips))

    dense = run("uniform", 10, None)
    reference = {"policy": "dense (10 uniform clips)", "budget": 10, "accuracy": dense[0], "gflops": dense[1]}
    dense_all = run("dense", 1, None)
    everything = {"policy": "dense (every candidate)", "budget": None, "accuracy": dense_all[0], "gflops": dense_all[1],
                  "inside": dense_all[2], "clips": dense_all[3]}
    sources = [("uniform", "uniform", None), ("random", "random", None)]
    sources += [(f"audio: {name} preview", "audio", name) for name in
                ("energy", "audio", "audio + consensus", "audio+frame", "audio+frame + consensus")
                if name in recs[0]["previews"]]
    if "learned" in recs[0]["previews"]:
        sources.append(("learned sampler", "learned", "learned"))
    sources.append(("audio: audio+frame preview, saliency-weighted", "audio", "audio+frame", True))
    if "learned" in recs[0]["previews"]:
        sources.append(("learned sampler, score-weighted", "learned", "learned", True))
    sources.append(("oracle (needs the label)", "audio", "oracle"))
    for label, policy, source, *weighted in sources:
        for k in budgets:
            if policy == "random":
                draws = [run(policy, k, source, d) for d in range(RANDOM_DRAWS)]
                acc, g, ins, n = (float(np.mean([d[j] for d in draws])) for j in range(4))
            else:
                acc, g, ins, n = run(policy, k, source, weighted=bool(weighted and weighted[0]))
            rows.append({"policy": label, "budget": k, "accuracy": acc, "gflops": g, "inside": ins, "clips": n,
                         "fraction_of_dense": g / reference["gflops"]})
    return rows, reference, everything


def check_against_api(recs: list[dict[str, Any]], videos: list[Any], selector: Any, per_clip: float,
                      preview_gflops: float) -> dict[str, Any]:
    """``ClipSelector.select`` on a few videos == the benchmark's emulation (prediction and GFLOPs)."""
    from avkit.apps.clip_selection.policies import aggregate, choose

    worst = 0.0
    for r, v in zip(recs[:3], videos[:3]):
        sel = selector.select(v.path, budget=2, policy="audio")
        scores = r["previews"]["audio+frame"]["scores"]
        ch = choose("audio", r["cands"], 2, duration=r["duration"], num_frames=selector.heavy.num_frames,
                    fps=selector.heavy.fps, scores=scores)
        mine = aggregate(r["P"][ch.indices]).numpy()
        worst = max(worst, float(np.abs(mine - np.array(sel.probs)).max()))
        assert [round(w.start, 4) for w in ch.windows] == [c["start"] for c in sel.clips], "chosen clips differ"
        assert abs(sel.gflops["total"] - (2 * per_clip + preview_gflops)) < 1e-9, "GFLOPs differ"
    return {"videos": 3, "max_prob_difference": worst}


# ---------------------------------------------------------------------------------------------
# wall clock


def wallclock(selector_av: Any, selector_energy: Any, selector_learned: Any, video: str, repeats: int) -> list[dict[str, Any]]:
    cases = [("dense (10 uniform clips)", selector_energy, "uniform", 10),
             ("dense (every candidate)", selector_energy, "dense", 1),
             ("uniform K=2", selector_energy, "uniform", 2),
             ("audio: energy preview K=2", selector_energy, "audio", 2),
             ("audio: audio+frame preview K=1", selector_av, "audio", 1),
             ("audio: audio+frame preview K=2", selector_av, "audio", 2)]
    if selector_learned is not None:
        cases.append(("learned sampler K=2", selector_learned, "learned", 2))
    out = []
    for name, sel, policy, k in cases:
        sel.select(video, budget=k, policy=policy)  # warm-up (first calls build kernels, count FLOPs)
        times, parts = [], []
        for _ in range(repeats):
            res = sel.select(video, budget=k, policy=policy)
            times.append(res.seconds["total"])
            parts.append(res.seconds)
        best = int(np.argmin(times))
        out.append({"case": name, "seconds": statistics.median(times), "min_seconds": min(times),
                    "parts": parts[best], "gflops": res.gflops["total"], "clips": len(res.clips),
                    "duration": res.duration})
    ref = out[0]["seconds"]
    for row in out:
        row["speedup_vs_dense10"] = ref / row["seconds"]
        row["speedup_vs_dense_all"] = out[1]["seconds"] / row["seconds"]
    return out


def full_size_clip_seconds(repeats: int) -> dict[str, float]:
    """Seconds and GFLOPs of one forward of the full-size C3D (the lecture's 39 GFLOPs) on this CPU."""
    from avkit.models import create_model
    from avkit.models.flops import count_gflops

    model = create_model("c3d", num_classes=10).eval()
    x = torch.zeros(1, 3, 16, 112, 112)
    with torch.no_grad():
        model(x)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - start)
    return {"seconds": statistics.median(times), "gflops": count_gflops(model, x)}


def project(wall: list[dict[str, Any]], full: dict[str, float]) -> None:
    """Add the projected time with the full-size heavy model to each wall-clock row."""
    for w in wall:
        w["projected_seconds"] = w["seconds"] - w["parts"]["heavy"] + w["clips"] * full["seconds"]
    ref = wall[0]["projected_seconds"]
    for w in wall:
        w["projected_speedup_vs_dense10"] = ref / w["projected_seconds"]


# ---------------------------------------------------------------------------------------------
# output


def markdown(rows: list[dict[str, Any]], reference: dict[str, Any], everything: dict[str, Any],
             budgets: tuple[int, ...]) -> str:
    policies = list(dict.fromkeys(r["policy"] for r in rows))
    by = {(r["policy"], r["budget"]): r for r in rows}
    head = "| policy | " + " | ".join(f"K={k} acc | K={k} GFLOPs" for k in budgets) + " |"
    lines = [head, "|---|" + "---:|---:|" * len(budgets)]
    for p in policies:
        cells = []
        for k in budgets:
            r = by[(p, k)]
            cells += [f"{100 * r['accuracy']:.1f}%", f"{r['gflops']:.4f} ({100 * r['fraction_of_dense']:.0f}%)"]
        lines.append(f"| {p} | " + " | ".join(cells) + " |")
    lines += ["", f"Reference, {reference['policy']}: **{100 * reference['accuracy']:.1f}%** at "
              f"{reference['gflops']:.4f} GFLOPs per video (100%). {everything['policy']}: "
              f"{100 * everything['accuracy']:.1f}% at {everything['gflops']:.3f} GFLOPs "
              f"({everything['clips']:.0f} clips).", ""]
    lines += ["Share of chosen clips at least half inside a visible action segment:", "",
              "| policy | " + " | ".join(f"K={k}" for k in budgets) + " |", "|---|" + "---:|" * len(budgets)]
    for p in policies:
        if p in ("uniform",):
            continue
        lines.append(f"| {p} | " + " | ".join(
            "-" if math.isnan(by[(p, k)]["inside"]) else f"{100 * by[(p, k)]['inside']:.0f}%" for k in budgets) + " |")
    return "\n".join(lines)


def background_diagnostic(recs: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    """What the heavy model says on candidates that show no action (< 1% inside a segment) vs inside (>= 50%)."""
    bg = torch.cat([r["P"][torch.from_numpy(r["inside"] < 0.01)] for r in recs])
    act = [(r["P"][torch.from_numpy(r["inside"] >= 0.5)], r["label"]) for r in recs]
    act_acc = float(np.mean([float((P.argmax(1) == y).float().mean()) for P, y in act if len(P)]))
    mean = bg.mean(0)
    top = mean.argsort(descending=True)[:3].tolist()
    return {"background_windows": int(bg.shape[0]), "background_max_prob": float(bg.max(1).values.mean()),
            "background_top_classes": {names[i]: round(float(mean[i]), 3) for i in top},
            "action_window_accuracy": act_acc}


def targets(rows: list[dict[str, Any]], reference: dict[str, Any], budgets: tuple[int, ...], n: int) -> list[str]:
    out = []
    se = math.sqrt(max(reference["accuracy"] * (1 - reference["accuracy"]), 1e-9) / n)
    for p in dict.fromkeys(r["policy"] for r in rows):
        if not (p.startswith("audio") or p.startswith("learned")):
            continue
        cheap = [r for r in rows if r["policy"] == p and r["fraction_of_dense"] <= 0.2]
        best = max(cheap, key=lambda r: r["accuracy"]) if cheap else None
        if best is None:
            out.append(f"{p}: no budget within 20% of dense GFLOPs")
        else:
            gap = best["accuracy"] - reference["accuracy"]
            verdict = "met" if gap >= -1e-9 else ("within one standard error" if gap >= -se else "NOT met")
            out.append(f"{p}: best at <= 20% of dense GFLOPs is K={best['budget']}: {100 * best['accuracy']:.1f}% "
                       f"at {100 * best['fraction_of_dense']:.1f}% of dense GFLOPs vs dense "
                       f"{100 * reference['accuracy']:.1f}% (gap {100 * gap:+.1f} points, dense s.e. "
                       f"{100 * se:.1f}): {verdict}")
        uni = {r["budget"]: r["accuracy"] for r in rows if r["policy"] == "uniform"}
        mine = {r["budget"]: r["accuracy"] for r in rows if r["policy"] == p}
        below = [k for k in budgets if k < 10]
        beaten = [k for k in below if mine[k] > uni[k]]
        out.append(f"{p}: beats uniform at K = {beaten or 'none'} of {below}"
                   + ("" if len(beaten) == len(below) else
                      f" (not at K = {[k for k in below if k not in beaten]}: "
                      + ", ".join(f"{100 * mine[k]:.1f}% vs {100 * uni[k]:.1f}%" for k in below if k not in beaten) + ")"))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="avkit_data", help="where the longvideo datasets are (or go)")
    ap.add_argument("--runs", default="runs", help="where the runs are (or go)")
    ap.add_argument("--num-train", type=int, default=160)
    ap.add_argument("--num-test", type=int, default=200, help="held-out videos (seed 1) to generate")
    ap.add_argument("--limit", type=int, default=0, help="evaluate only the first N test videos (0 = all)")
    ap.add_argument("--budgets", type=int, nargs="+", default=list(BUDGETS))
    ap.add_argument("--long-duration", type=float, default=300.0, help="seconds of the wall-clock video")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-wallclock", action="store_true")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1: steadier on a shared CPU)")
    ap.add_argument("--markdown", default="docs/benchmarks/clip_selection_cpu.md")
    ap.add_argument("--plot", default="docs/clip_selection_tradeoff.png")
    ap.add_argument("--timeline", default="docs/clip_selection_timeline.png", help="timeline of one test video")
    ap.add_argument("--json", default="runs/clip_selection/results.json")
    ap.add_argument("--heavy", default=None, help="classifier run to evaluate (default RUNS/longvideo_c3d)")
    ap.add_argument("--sampler", default=None,
                    help="sampler run trained for --heavy (default RUNS/longvideo_sampler; 'none': no learned rows)")
    ap.add_argument("--no-prepare", action="store_true", help="do not generate or train anything")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    budgets = tuple(args.budgets)

    from rich.progress import Progress

    from avkit.apps.clip_selection.data import read_long_manifest
    from avkit.apps.clip_selection.inference import ClipSelector, HeavyModel
    from avkit.apps.clip_selection.plots import plot_timeline, plot_tradeoff
    from avkit.apps.clip_selection.preview import EnergyPreview, NetPreview
    from avkit.apps.clip_selection.sampler import LearnedSampler
    from avkit.utils import atomic_write_json, atomic_write_text

    made = {} if args.no_prepare else prepare(args)
    data, runs = Path(args.data), Path(args.runs)
    heavy_dir = Path(args.heavy) if args.heavy else runs / "longvideo_c3d"
    sampler_dir = Path(args.sampler) if args.sampler else runs / "longvideo_sampler"
    heavy = HeavyModel(heavy_dir)
    previews = {"energy": EnergyPreview(), "audio": NetPreview.from_run(runs / "longvideo_preview_audio"),
                "audio+frame": NetPreview.from_run(runs / "longvideo_preview")}
    sampler = None if args.sampler == "none" else LearnedSampler.from_run(sampler_dir)
    videos, names = read_long_manifest(data / "longvideo_test")
    if args.limit:
        videos = videos[:args.limit]
    t0 = time.perf_counter()
    recs = []
    with Progress(transient=True) as bar:
        task = bar.add_task("test videos", total=len(videos))
        for v in videos:
            recs.append(measure_video(v, heavy, previews, sampler, budgets))
            bar.update(task, advance=1)
    measure_s = time.perf_counter() - t0
    probe = heavy.batch(__import__("avkit.io.in_memory", fromlist=["x"]).InMemoryVideo.decode(
        videos[0].path, size=heavy.short_side, audio=False), recs[0]["cands"][:1])
    per_clip = heavy.gflops(probe)
    rows, reference, everything = evaluate(recs, heavy, budgets, per_clip)
    selector = ClipSelector(heavy_dir, preview=runs / "longvideo_preview", heavy=heavy)
    check = check_against_api(recs, videos, selector, per_clip, recs[0]["previews"]["audio+frame"]["gflops"])

    diag = background_diagnostic(recs, heavy.class_names)
    table = markdown(rows, reference, everything, budgets)
    table += (f"\n\nThe heavy model on the {diag['background_windows']} candidates that show no action: mean top "
              f"probability {diag['background_max_prob']:.2f}, mean probabilities "
              + ", ".join(f"{k} {v:.2f}" for k, v in diag["background_top_classes"].items())
              + f"; on candidates at least half inside the action it is right on "
              f"{100 * diag['action_window_accuracy']:.0f}% of them.")
    verdicts = targets(rows, reference, budgets, len(recs))
    print(table)
    print()
    print("\n".join(verdicts))

    wall = []
    if not args.skip_wallclock:
        long_dir = data / f"longvideo_long{int(args.long_duration)}"
        if not (long_dir / "manifest.jsonl").exists():
            sh([sys.executable, "-m", "avkit", "generate", "longvideo", str(long_dir), "--num", "1", "--seed", "2",
                "--duration", str(args.long_duration), "--val-fraction", "0"])
        long_video = str(long_dir / "clips" / "000000.mp4")
        sel_energy = ClipSelector(heavy_dir, heavy=heavy)
        sel_learned = None if sampler is None else ClipSelector(heavy_dir, sampler=sampler_dir, heavy=heavy)
        wall = wallclock(selector, sel_energy, sel_learned, long_video, args.repeats)
        full = full_size_clip_seconds(args.repeats)
        project(wall, full)
        print()
        print(f"wall clock on one {args.long_duration:.0f} s video ({long_video}), median of {args.repeats}:")
        for w in wall:
            print(f"  {w['case']:<34} {w['seconds']:7.3f} s  {w['gflops']:8.4f} GFLOPs  x{w['speedup_vs_dense10']:.2f} "
                  f"vs dense-10, x{w['speedup_vs_dense_all']:.1f} vs every candidate; with a full-size C3D: "
                  f"{w['projected_seconds']:.1f} s, x{w['projected_speedup_vs_dense10']:.2f} vs dense-10")

    if args.timeline:
        i = next((j for j, v in enumerate(videos) if any(d.get("kind") == "sound_only" for d in v.distractors)), 0)
        res = selector.select(videos[i].path, budget=2, policy="audio")
        plot_timeline(res, args.timeline)
    if args.plot:
        curves = [r for r in rows if not r["policy"].startswith("oracle")]
        plot_tradeoff(curves, args.plot, reference,
                      title=f"{len(recs)} held-out long videos ({recs[0]['duration']:.0f} s): accuracy vs GFLOPs")

    env = {"python": platform.python_version(), "torch": torch.__version__, "threads": torch.get_num_threads(),
           "machine": platform.machine(), "date": time.strftime("%Y-%m-%d %H:%M")}
    try:
        env["load_average"] = [round(x, 1) for x in __import__("os").getloadavg()]
    except OSError:
        pass
    trained = {str(d): round(train_seconds(d), 1) for d in
               (heavy_dir, runs / "longvideo_preview", runs / "longvideo_preview_audio", sampler_dir)
               if (d / "metrics.csv").is_file() and (d != sampler_dir or sampler is not None)}
    header = [f"# Clip selection benchmark ({env['date']}, CPU, {env['threads']} threads, torch {env['torch']}, "
              f"load average {env.get('load_average')})", "",
              f"`python benchmarks/clip_selection.py` on {len(recs)} held-out `longvideo` videos (seed 1, "
              f"{recs[0]['duration']:.0f} s, 32x32), heavy model `{heavy_dir}` "
              f"({heavy.gflops(probe):.4f} GFLOPs per clip), candidates every 0.5 s; measuring took "
              f"{measure_s:.0f} s. Training time (sum of epoch times, metrics.csv): "
              + ", ".join(f"{k} {v:.0f} s" for k, v in trained.items()) + ".", "",
              "Accuracy = video top-1; GFLOPs per video include the preview (and sampler); "
              "the percentage is of the dense reference.", ""]
    body = header + [table, "", "Targets:", ""] + [f"- {v}" for v in verdicts]
    if wall:
        body += ["", f"Wall clock of `ClipSelector.select` on one {wall[0]['duration']:.0f} s video (decoding "
                 f"included), median of {args.repeats}:", "",
                 "| case | clips | GFLOPs | seconds | preview s | heavy read s | heavy model s | vs dense-10 | vs every candidate |",
                 "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        body += [f"| {w['case']} | {w['clips']} | {w['gflops']:.4f} | {w['seconds']:.3f} | {w['parts']['preview']:.3f} | "
                 f"{w['parts']['heavy_read']:.3f} | {w['parts']['heavy']:.3f} | x{w['speedup_vs_dense10']:.2f} | "
                 f"x{w['speedup_vs_dense_all']:.1f} |" for w in wall]
        body += ["", f"The same cases with a full-size heavy model (C3D width 64, 3x16x112x112, "
                 f"{full['gflops']:.1f} GFLOPs per clip, measured {full['seconds']:.2f} s per clip on this CPU): the "
                 "measured times with the tiny model's forward replaced by that many full-size forwards "
                 "(decoding at 112 px not re-measured):", "",
                 "| case | clips | projected seconds | vs dense-10 |", "|---|---:|---:|---:|"]
        body += [f"| {w['case']} | {w['clips']} | {w['projected_seconds']:.1f} | x{w['projected_speedup_vs_dense10']:.2f} |"
                 for w in wall]
    body += ["", f"API check: `ClipSelector.select` matches the benchmark's emulation on {check['videos']} videos "
             f"(max probability difference {check['max_prob_difference']:.2e}, same clips and GFLOPs)."]
    if args.markdown:
        atomic_write_text(args.markdown, "\n".join(body) + "\n")
        print(f"\nwrote {args.markdown}")
    if args.json:
        atomic_write_json(args.json, {"rows": rows, "reference": reference, "every_candidate": everything,
                                      "targets": verdicts, "wallclock": wall, "background": diag, "api_check": check, "env": env,
                                      "train_seconds": trained, "prepared": made, "num_videos": len(recs),
                                      "full_size_heavy": full if wall else None,
                                      "heavy_gflops_per_clip": per_clip,
                                      "preview_gflops": {k: recs[0]["previews"][k]["gflops"] for k in recs[0]["previews"]}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
