"""Self-supervised audio-visual pretraining (task: av_mae, docs/pretraining.md): what it buys with few labels.

Data: ``avkit generate motion --num 1200 --duration 2 --sound-pair`` (12 classes: 6 defined by motion, 4 by
appearance, 2 only by sound; 900 train / 300 val clips). For each seed:

1. pretrain ``recipes/pretrain_av_mae.yaml`` on the 900 training clips without their labels (audio-visual),
   and the same with ``task_options.audio_mask=1.0`` (video-only); wall time of each, and the audio->video /
   video->audio recall@1/5 of the AV run's contrastive embeddings on the 300 held-out clips;
2. on 1%, 10% and 100% of the training labels (``data.label_fraction``, stratified, ``data.label_seed`` =
   seed): a linear probe on the pretrained encoder (``recipes/probe_av_mae.yaml``), the same probe on a
   randomly initialised encoder (``model.init=""``), fine-tuning from the pretrained weights
   (``recipes/finetune_av_mae.yaml``) and the same model from scratch (``model.init=""``), plus a linear
   probe on the video-only pretraining (a video-only encoder, no sound in or out);
3. every downstream run is scored once at the end on the 300 val clips (one centre clip each), overall and
   per class group;
4. step time of a pretraining step (forward, backward, AdamW; batch 32 of the recipe's clips) and encoder
   GFLOPs per clip at masking 0.5, 0.75 and 0.9 of both modalities.

The table's baselines (random-init probe, scratch, video-only, chance) are measured in the same run.
Training runs with one torch thread (as ``task: av_mae`` does on CPU: tiny layers on a shared machine).

    python benchmarks/pretraining.py --seeds 0 1 --work /tmp/avkit_pretraining | tee docs/benchmarks/pretraining_cpu.txt
    # or one process per seed (same --work), then the tables of both:
    python benchmarks/pretraining.py --seeds 1 --work /tmp/avkit_pretraining --json /tmp/avkit_pretraining/seed1.json
    python benchmarks/pretraining.py --from-json /tmp/avkit_pretraining/seed0.json /tmp/avkit_pretraining/seed1.json
    python benchmarks/pretraining.py --seeds 0 --pretrain-epochs 2 --epochs-scale 0.1   # a quick look
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FRACTIONS = (0.01, 0.1, 1.0)
EPOCHS = {0.01: 40, 0.1: 30, 1.0: 10}  # about 40, 90 and 290 optimiser steps at batch 32
METHODS = ("probe", "random_probe", "finetune", "scratch", "video_only_probe")
LABELS = {"probe": "linear probe, AV-pretrained", "random_probe": "linear probe, random-init encoder",
          "finetune": "fine-tune, AV-pretrained", "scratch": "from scratch (same model)",
          "video_only_probe": "linear probe, video-only pretrained (no sound)"}


def generate_data(out: Path) -> Path:
    from avkit.data.synthetic import generate

    if not (out / "manifest.jsonl").is_file():
        generate("motion", out, 1200, seed=0, size=32, fps=8, duration=2.0, sound_pair=True)
    return out


def run(recipe: str, overrides: list[str]) -> tuple[Any, float]:
    """Train ``recipes/RECIPE`` with ``overrides``; ``(result, wall seconds)``."""
    from avkit.engine import train
    from avkit.engine.config import load_config

    cfg = load_config(ROOT / "recipes" / recipe, overrides + ["train.progress=false", "train.tensorboard=false"])
    start = time.perf_counter()
    result = train(cfg, overwrite=True, quiet=True)
    return result, time.perf_counter() - start


def score(run_dir: Path, groups: dict[str, str]) -> dict[str, float]:
    """Accuracy on the val clips (one centre clip each), overall and per class group."""
    from avkit.engine import evaluate
    from avkit.quickstart import group_accuracy

    ev = evaluate(run_dir, clips=1, crops=1, split="val", checkpoint="last")
    return group_accuracy(ev["confusion"], ev["class_names"], groups)


def downstream(method: str, fraction: float, seed: int, data: Path, work: Path, av_run: Path, video_run: Path,
               scale: float) -> Path:
    out = work / f"seed{seed}" / f"{method}_{fraction:g}"
    common = [f"data.source={data}", f"train.output_dir={out}", f"train.seed={seed}", f"data.label_seed={seed}",
              f"data.label_fraction={fraction}", f"train.epochs={max(1, round(EPOCHS[fraction] * scale))}",
              "data.val_split="]  # scored once at the end (score), not every epoch
    recipe = "finetune_av_mae.yaml" if method in ("finetune", "scratch") else "probe_av_mae.yaml"
    init = {"probe": av_run, "finetune": av_run, "video_only_probe": video_run}.get(method, "")
    extra = [f"model.init={init}"]
    if method == "video_only_probe":
        extra += ["model.video_options.modalities=[video]", "data.audio=false"]
    run(recipe, common + extra)
    return out


def step_times(ratios: tuple[float, ...] = (0.5, 0.75, 0.9), steps: int = 8) -> list[dict[str, float]]:
    """Median pretraining step time (s) and encoder GFLOPs per clip at each masking ratio (both modalities)."""
    import torch

    from avkit.apps.pretraining.task import AVMAETask
    from avkit.engine.config import load_config
    from avkit.engine.optim import build_optimizer
    from avkit.models.flops import count_gflops_call

    cfg = load_config(ROOT / "recipes" / "pretrain_av_mae.yaml")
    gen = torch.Generator().manual_seed(0)
    batch = {"video": torch.randn(32, 3, 8, 32, 32, generator=gen), "audio": torch.randn(32, 16000, generator=gen) * 0.1}
    rows = []
    for ratio in ratios:
        cfg.task_options.update(video_mask=ratio, audio_mask=ratio)
        task = AVMAETask(cfg)
        torch.manual_seed(0)
        model: Any = task.build_model()
        opt = build_optimizer(model, cfg.optim)
        times = []
        for _ in range(steps + 2):
            start = time.perf_counter()
            loss, _, _ = task.train_step(model, batch)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            times.append(time.perf_counter() - start)
        enc = model.encoder
        inputs = enc.inputs(batch)
        keep = model.masks(32, task.ratios, torch.device("cpu"))
        rows.append({"ratio": ratio, "step_s": statistics.median(times[2:]),
                     "encoder_gflops": count_gflops_call(enc, inputs, keep) / 32,
                     "full_gflops": count_gflops_call(enc, inputs) / 32,
                     "visible": (keep["video"].shape[1] + keep["audio"].shape[1])
                     / (enc.num_tokens("video") + enc.num_tokens("audio"))})
    return rows


def mean_sd(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.1%}"
    return f"{statistics.mean(values):.1%} ± {statistics.stdev(values):.1%}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--work", type=Path, default=Path("/tmp/avkit_pretraining"))
    ap.add_argument("--pretrain-epochs", type=int, default=0, help="0 = the recipe's")
    ap.add_argument("--epochs-scale", type=float, default=1.0, help="scale the downstream epochs (a quick look)")
    ap.add_argument("--json", type=Path, default=None, help="write every number here (after each run)")
    ap.add_argument("--from-json", type=Path, nargs="+", default=None,
                    help="print the tables of finished runs' --json (several: runs of other seeds, merged)")
    args = ap.parse_args()
    if args.from_json:
        saved = merge([json.loads(path.read_text()) for path in args.from_json])
        print_tables(saved, saved["groups"], time.perf_counter())
        return

    import torch

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    data = generate_data(args.work / "data")
    classes = json.loads((data / "classes.json").read_text())
    groups = {c["name"]: c["group"] for c in classes}
    names = sorted(set(groups.values()))
    counts = {g: list(groups.values()).count(g) for g in names}
    print(f"data: {data} (1200 clips of 2 s, 8 frames of 32x32 at 8 fps + 1 s of 16 kHz sound per clip; "
          f"{len(groups)} classes: {', '.join(f'{counts[g]} {g}' for g in names)}; 900 train / 300 val)")
    print(f"seeds {args.seeds}; torch threads {torch.get_num_threads()}; load average at start "
          f"{', '.join(f'{x:.1f}' for x in __import__('os').getloadavg())}\n", flush=True)

    results: dict[str, Any] = {"seeds": args.seeds, "groups": groups, "pretrain": [], "downstream": [], "steps": []}

    def save() -> None:
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))

    for seed in args.seeds:
        pre: dict[str, Any] = {"seed": seed}
        runs = {}
        for name, extra in (("av", []), ("video_only", ["task_options.audio_mask=1.0", "data.audio=false"])):
            out = args.work / f"seed{seed}" / f"pretrain_{name}"
            epochs = [f"train.epochs={args.pretrain_epochs}"] if args.pretrain_epochs else []
            result, seconds = run("pretrain_av_mae.yaml", [f"data.source={data}", f"train.output_dir={out}",
                                                           f"train.seed={seed}"] + epochs + extra)
            last = result.history[-1]
            pre[name] = {"seconds": seconds, "epochs": result.epochs_done,
                         **{k: last.get(k) for k in ("val_loss", "val_recon_video", "val_recon_audio", "val_a2v_r1",
                                                     "val_a2v_r5", "val_v2a_r1", "val_v2a_r5")}}
            runs[name] = out
            print(f"seed {seed}: pretrain {name}: {seconds:.0f} s, {result.epochs_done} epochs, last: "
                  + ", ".join(f"{k} {v:.3f}" for k, v in pre[name].items() if isinstance(v, float) and k != "seconds"),
                  flush=True)
        pre["chance_r1"], pre["chance_r5"] = 1 / 300, 5 / 300
        results["pretrain"].append(pre)
        for fraction in FRACTIONS:
            for method in METHODS:
                start = time.perf_counter()
                out = downstream(method, fraction, seed, data, args.work, runs["av"], runs["video_only"],
                                 args.epochs_scale)
                scores = score(out, groups)
                row = {"seed": seed, "fraction": fraction, "method": method, **scores,
                       "seconds": time.perf_counter() - start}
                results["downstream"].append(row)
                save()
                print(f"seed {seed}: {fraction:>4.0%} {method:<16} overall {scores['overall']:.1%} "
                      + " ".join(f"{g} {scores[g]:.1%}" for g in names) + f" ({row['seconds']:.0f} s)", flush=True)
    results["steps"] = step_times()
    save()
    print_tables(results, groups, t0)


def merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One result from runs of different seeds (e.g. one process per seed): rows joined, step times of the first."""
    out = {"seeds": [], "groups": parts[0]["groups"], "pretrain": [], "downstream": [], "steps": parts[0]["steps"]}
    for part in parts:
        for key in ("seeds", "pretrain", "downstream"):
            out[key] += part[key]
    return out


def print_tables(results: dict[str, Any], groups: dict[str, str], t0: float) -> None:
    rows = results["downstream"]
    args = argparse.Namespace(seeds=results["seeds"])

    def acc(method: str, fraction: float, key: str = "overall") -> list[float]:
        return [r[key] for r in rows if r["method"] == method and r["fraction"] == fraction]

    print(f"\n## Accuracy on the 300 val clips (mean ± sd over seeds {args.seeds}; chance {1 / len(groups):.1%})\n")
    print("| method | " + " | ".join(f"{f:.0%} labels" for f in FRACTIONS) + " |")
    print("|---|" + "---:|" * len(FRACTIONS))
    for method in METHODS:
        print(f"| {LABELS[method]} | " + " | ".join(mean_sd(acc(method, f)) for f in FRACTIONS) + " |")

    print("\n## Targets\n")
    gain = [a - b for a, b in zip(acc("finetune", 0.1), acc("scratch", 0.1))]
    probe_gain = [a - b for a, b in zip(acc("probe", 0.1), acc("random_probe", 0.1))]
    print(f"- 10% labels, fine-tune minus scratch: {', '.join(f'{g * 100:+.1f}' for g in gain)} points "
          f"(target >= +10): {'met' if min(gain) >= 0.10 else 'MISSED'}")
    print(f"- 10% labels, probe minus random-init probe: {', '.join(f'{g * 100:+.1f}' for g in probe_gain)} points "
          f"(target >= +20): {'met' if min(probe_gain) >= 0.20 else 'MISSED'}")
    for f in FRACTIONS:
        av, vo = acc("probe", f, "sound"), acc("video_only_probe", f, "sound")
        print(f"- sound classes (12-way accuracy on the still_low / still_high clips, chance {1 / len(groups):.1%}), "
              f"{f:.0%} labels: AV-pretrained probe "
              f"{mean_sd(av)} vs video-only pretrained probe {mean_sd(vo)}: "
              f"{'met' if min(av) > max(vo) else 'MISSED'}")
    a2v = [p["av"]["val_a2v_r5"] for p in results["pretrain"]]
    chance = results["pretrain"][0]["chance_r5"]
    print(f"- A->V recall@5 on 300 held-out clips: {', '.join(f'{x:.1%}' for x in a2v)} vs chance {chance:.1%} "
          f"({min(a2v) / chance:.1f}x-{max(a2v) / chance:.1f}x; target >= 5x): {'met' if min(a2v) >= 5 * chance else 'MISSED'}")
    secs = [p["av"]["seconds"] for p in results["pretrain"]]
    print(f"- AV pretraining wall time (recipe, 900 clips, 1 thread): {', '.join(f'{s / 60:.1f}' for s in secs)} min "
          f"(target < 15): {'met' if max(secs) < 900 else 'MISSED'}")

    print("\n## Retrieval with the contrastive embeddings (300 held-out clips)\n")
    print("| seed | A->V R@1 | A->V R@5 | V->A R@1 | V->A R@5 | chance R@1 / R@5 |")
    print("|---|---:|---:|---:|---:|---:|")
    for p in results["pretrain"]:
        a = p["av"]
        print(f"| {p['seed']} | {a['val_a2v_r1']:.1%} | {a['val_a2v_r5']:.1%} | {a['val_v2a_r1']:.1%} | "
              f"{a['val_v2a_r5']:.1%} | {p['chance_r1']:.1%} / {p['chance_r5']:.1%} |")

    print("\n## Pretraining time\n")
    print("| seed | AV: minutes (epochs) | video-only: minutes (epochs) |")
    print("|---|---:|---:|")
    for p in results["pretrain"]:
        print(f"| {p['seed']} | {p['av']['seconds'] / 60:.1f} ({p['av']['epochs']}) | "
              f"{p['video_only']['seconds'] / 60:.1f} ({p['video_only']['epochs']}) |")

    print("\n## Step time against the masking ratio (batch 32, forward + backward + AdamW, 1 thread)\n")
    print("| masking (video and audio) | visible tokens | encoder GFLOPs / clip | vs unmasked | step (s) | vs 0.5 |")
    print("|---:|---:|---:|---:|---:|---:|")
    base = results["steps"][0]["step_s"]
    for s in results["steps"]:
        print(f"| {s['ratio']:.2f} | {s['visible']:.0%} | {s['encoder_gflops']:.4f} | "
              f"{s['encoder_gflops'] / s['full_gflops']:.2f}x | {s['step_s']:.3f} | {s['step_s'] / base:.2f}x |")
    print(f"\ntotal {time.perf_counter() - t0:.0f} s; load average at the end "
          f"{', '.join(f'{x:.1f}' for x in __import__('os').getloadavg())}")


if __name__ == "__main__":
    main()
