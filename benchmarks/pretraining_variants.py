"""Variants of the av_mae recipes against the recipes of the day, one seed, 10% of the labels (docs/pretraining.md).

The two-seed benchmark (``benchmarks/pretraining.py``) missed the 10%-label targets with 8-pixel patches; this
script measures cheaper changes against those recipes (``BASE``) in the same run, on the same data and seed,
to see which help (4-pixel patches did, and are in the recipes since):

- probe-side (the recipe's pretraining reused): ``model.video_options.head_norm=true`` (MAE's BatchNorm
  without affine parameters before the linear head), ``model.video_options.pool=modality|both`` (pool
  the modality blocks' tokens, where the contrastive term acts, instead of / besides the joint blocks');
  each gets the AV probe, the random-init probe and the video-only probe, all with that change;
- pretraining-side: ``task_options.video_mask=0.75``, ``task_options.contrastive_weight=3``,
  ``train.epochs=80``; each gets its own pretraining, the AV probe and fine-tuning (the random-init probe
  and scratch do not depend on the pretraining: the recipe row's are the baseline);
- a smaller model patch, ``model.video_options.patch_size=4`` (64 patch positions of 32x32 frames instead of
  16: 6 visible at 90% tube masking instead of 2), in every run of the row, its own random-init probe and
  scratch included.

Accuracy is 12-way on the 300 val clips (one centre clip each), as in the two-seed benchmark.

    python benchmarks/pretraining_variants.py --work /tmp/avkit_pretraining_variants | tee docs/benchmarks/pretraining_variants_cpu.txt
    # or in two processes (two cores), then one table:
    python benchmarks/pretraining_variants.py --variants recipe head_norm pool_modality pool_both video_mask_0.75 --json a.json
    python benchmarks/pretraining_variants.py --variants contrastive_3 epochs_80 --json b.json
    python benchmarks/pretraining_variants.py --from-json a.json b.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from pretraining import EPOCHS, generate_data, score  # noqa: E402
from pretraining import run as run_recipe  # noqa: E402

FRACTION = 0.1
# The variants were measured against the recipes of their day, which had 8-pixel patches; the recipes have
# 4-pixel patches since (the patch_4 row). Every run starts from 8 so the log stays reproducible.
BASE = ["model.video_options.patch_size=8"]


def run(recipe: str, overrides: list[str]) -> tuple[Any, float]:
    return run_recipe(recipe, BASE + overrides)  # later overrides win: patch_4 sets 4
# name: (pretraining overrides, or None to reuse the recipe's pretraining; probe-recipe overrides;
# model overrides for every run of the variant, its own baselines included)
VARIANTS: dict[str, tuple[list[str] | None, list[str], list[str]]] = {
    "recipe": ([], [], []),
    "head_norm": (None, ["model.video_options.head_norm=true"], []),
    "pool_modality": (None, ["model.video_options.pool=modality"], []),
    "pool_both": (None, ["model.video_options.pool=both"], []),
    "video_mask_0.75": (["task_options.video_mask=0.75"], [], []),
    "contrastive_3": (["task_options.contrastive_weight=3.0"], [], []),
    "epochs_80": (["train.epochs=80"], [], []),
    "patch_4": ([], [], ["model.video_options.patch_size=4"]),
}


def downstream(method: str, out: Path, seed: int, data: Path, init: Path | str, probe_extra: list[str],
               model_extra: list[str]) -> None:
    common = [f"data.source={data}", f"train.output_dir={out}", f"train.seed={seed}", f"data.label_seed={seed}",
              f"data.label_fraction={FRACTION}", f"train.epochs={EPOCHS[FRACTION]}", "data.val_split=",
              f"model.init={init}"] + model_extra
    if method in ("finetune", "scratch"):
        run("finetune_av_mae.yaml", common)
        return
    extra = ["model.video_options.modalities=[video]", "data.audio=false"] if method == "video_only_probe" else []
    run("probe_av_mae.yaml", common + extra + probe_extra)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=Path("/tmp/avkit_pretraining_variants"))
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--json", type=Path, default=None, help="write every number here (after each run)")
    ap.add_argument("--from-json", type=Path, nargs="+", default=None,
                    help="print the table of finished runs' --json (variants merged in order)")
    args = ap.parse_args()
    if args.from_json:
        saved = [json.loads(p.read_text()) for p in args.from_json]
        print_table({"seed": saved[0]["seed"], "variants": {k: v for s in saved for k, v in s["variants"].items()}})
        return

    import torch

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    data = generate_data(args.work / "data")
    groups = {c["name"]: c["group"] for c in json.loads((data / "classes.json").read_text())}
    seed, work = args.seed, args.work / f"seed{args.seed}"
    print(f"data: {data}; seed {seed}; {FRACTION:.0%} of the labels; torch threads 1; load average at start "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}\n", flush=True)
    results: dict[str, Any] = {"seed": seed, "variants": {}}
    pretrained: dict[str, Path] = {}

    def pretrain(name: str, overrides: list[str]) -> dict[str, Any]:
        out = work / f"pretrain_{name}"
        result, seconds = run("pretrain_av_mae.yaml", [f"data.source={data}", f"train.output_dir={out}",
                                                       f"train.seed={seed}"] + overrides)
        pretrained[name] = out
        last = result.history[-1]
        row = {"seconds": seconds, "epochs": result.epochs_done, "a2v_r5": last.get("val_a2v_r5"),
               "v2a_r5": last.get("val_v2a_r5"), "contrastive": last.get("val_contrastive")}
        print(f"pretrain {name}: {seconds:.0f} s, {row['epochs']} epochs"
              + (f", A->V R@5 {row['a2v_r5']:.1%}, V->A R@5 {row['v2a_r5']:.1%}" if row["a2v_r5"] is not None else ""),
              flush=True)
        return row

    for name in args.variants:
        pre_overrides, probe_extra, model_extra = VARIANTS[name]
        row: dict[str, Any] = {"accuracy": {}}
        if pre_overrides is not None:
            row["pretrain"] = pretrain(name, pre_overrides + model_extra)
            methods = ["probe", "finetune"]
            if name == "recipe":
                methods += ["random_probe", "scratch", "video_only_probe"]
            elif model_extra:  # another model: its own random-init probe and scratch
                methods += ["random_probe", "scratch"]
        else:
            methods = ["probe", "random_probe", "video_only_probe"]
        if name not in pretrained and "recipe" not in pretrained:
            pretrain("recipe", [])  # a probe-side variant probes the recipe's pretraining
        av = pretrained.get(name) or pretrained["recipe"]
        if "video_only_probe" in methods and "video_only" not in pretrained:
            pretrain("video_only", ["task_options.audio_mask=1.0", "data.audio=false"])
        for method in methods:
            out = work / f"{name}_{method}"
            init = {"probe": av, "finetune": av, "video_only_probe": pretrained.get("video_only", "")}.get(method, "")
            start = time.perf_counter()
            downstream(method, out, seed, data, init, probe_extra, model_extra)
            scores = score(out, groups)
            row["accuracy"][method] = scores
            print(f"{name:<16} {method:<16} overall {scores['overall']:.1%} "
                  + " ".join(f"{g} {v:.1%}" for g, v in scores.items() if g != "overall")
                  + f" ({time.perf_counter() - start:.0f} s)", flush=True)
        results["variants"][name] = row
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
    print_table(results)
    print(f"\ntotal {time.perf_counter() - t0:.0f} s; load average at the end {', '.join(f'{x:.1f}' for x in os.getloadavg())}")


def print_table(results: dict[str, Any]) -> None:
    """Gains against the baselines of the same run: the variant's own random-init probe where it has one
    (a probe-side change applies to it too), else the recipe's; scratch is always the recipe's."""
    variants = results["variants"]
    base = variants.get("recipe", {}).get("accuracy", {})

    def acc(row: dict[str, Any], method: str) -> float | None:
        scores = row["accuracy"].get(method) or base.get(method)
        return None if scores is None else float(scores["overall"])

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{x:.1%}"

    def gain(a: float | None, b: float | None) -> str:
        return "-" if a is None or b is None else f"{(a - b) * 100:+.1f}"

    print(f"\n## Seed {results['seed']}, {FRACTION:.0%} of the labels: accuracy on the 300 val clips (chance 8.3%)\n")
    print("| variant | probe | random-init probe | probe gain | video-only probe | fine-tune | scratch | fine-tune gain "
          "| A->V R@5 (chance 1.7%) | pretraining (s) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, row in variants.items():
        probe, rand = acc(row, "probe"), acc(row, "random_probe")
        fine, scratch = row["accuracy"].get("finetune"), acc(row, "scratch")
        fine_acc = None if fine is None else float(fine["overall"])
        vo = row["accuracy"].get("video_only_probe")
        pre = row.get("pretrain", {})
        print(f"| {name} | {pct(probe)} | {pct(rand)} | {gain(probe, rand)} | {pct(vo and vo['overall'])} | "
              f"{pct(fine_acc)} | {pct(scratch if fine is not None else None)} | {gain(fine_acc, scratch)} | "
              f"{pct(pre.get('a2v_r5'))} | {pre['seconds']:.0f} |" if pre else
              f"| {name} | {pct(probe)} | {pct(rand)} | {gain(probe, rand)} | {pct(vo and vo['overall'])} | "
              f"- | - | - | (recipe's) | (recipe's) |")


if __name__ == "__main__":
    main()
