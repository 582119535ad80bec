"""The avkit captioner on held-out synthetic clips, with and without audio tokens.

For each captioning run (video tokens only, video + audio tokens; stage 1 and stage 2 where
present), greedy captions of held-out clips (another seed than the training data) are scored
with BLEU-4, CIDEr-D and per-attribute accuracy (object, colour, motion, sound) parsed from the
generated text, with the functions the training loop validates with
(``avkit.apps.captioning.metrics.caption_scores``). The recipes train on none of the clips of about
1 in 3 (object, colour, motion) combinations (``task_options.hold_out``); the scores are given on
the test clips of those unseen combinations and on all test clips, each with its exact-overlap
share: how many of its reference captions appear word for word among the training captions. Then ``benchmarks/ask_speed.py`` measures
``avkit ask`` (time to first token, tokens per second) with the tiny random model families.

    python benchmarks/captioning.py                     # generate + train what is missing, then measure
    python benchmarks/captioning.py --no-prepare --runs runs --skip-ask
    python benchmarks/captioning.py --markdown docs/benchmarks/captioning_cpu.md

What is missing is made with the commands of docs/captioning.md (the recipes in ``recipes/``,
trained with ``OMP_NUM_THREADS=1``).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
# Moving objects are bars, triangles and crosses: with the default bar / ellipse / triangle the
# captioner named the object right on 89-91% of the held-out clips, with a cross for the ellipse
# on 94-96% (docs/captioning.md).
SHAPES = ["--shapes", "bar", "triangle", "cross"]
TRAIN_DATA = {  # folder -> generate arguments (the recipes' sources)
    "caption_motion_train": ["motion", "--num", "400", "--seed", "0", *SHAPES],
    "caption_long_train": ["longvideo", "--num", "60", "--seed", "0", "--duration", "20", *SHAPES],
    # the video encoder's classification data: one class per motion and shape
    "caption_encoder": ["motion", "--num", "2400", "--seed", "2", *SHAPES, "--shape-labels"],
}
TEST_DATA = {  # held out: another seed, everything in one split
    "caption_motion_test": ["motion", "--num", "200", "--seed", "1", "--val-fraction", "0", *SHAPES],
    "caption_long_test": ["longvideo", "--num", "20", "--seed", "1", "--duration", "20", "--val-fraction", "0",
                          *SHAPES],
}
RUNS = [  # (run folder, recipe, the runs it needs, label)
    ("caption_lm", "caption_lm.yaml", (), "language model (text only)"),
    ("caption_video_encoder", "caption_video_encoder.yaml", (), "video encoder (C3D classifier)"),
    ("caption_video_s1", "caption_video_stage1.yaml", ("caption_lm", "caption_video_encoder"), "video tokens, stage 1"),
    ("caption_video_s2", "caption_video_stage2.yaml", ("caption_video_s1",), "video tokens, stage 2"),
    ("caption_av_s1", "caption_av_stage1.yaml", ("caption_lm", "caption_video_encoder"), "video + audio tokens, stage 1"),
    ("caption_av_s2", "caption_av_stage2.yaml", ("caption_av_s1",), "video + audio tokens, stage 2"),
]
CAPTIONERS = [name for name, _, _, _ in RUNS if name not in ("caption_lm", "caption_video_encoder")]
ATTRS = ("object", "colour", "motion", "sound")


def _avkit(*args: str) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "avkit", *args]
    print("$", " ".join(cmd[2:]), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT, env=env)


def prepare(data: Path, runs: Path, wanted: list[str]) -> None:
    """Generate the datasets and train the runs that are missing (in recipe order)."""
    for name, args in {**TRAIN_DATA, **TEST_DATA}.items():
        if not (data / name / "manifest.jsonl").is_file():
            _avkit("generate", args[0], str(data / name), *args[1:])
    need = set(wanted)
    for name, _, parents, _ in reversed(RUNS):  # a wanted run needs its parents
        if name in need:
            need.update(parents)
    for name, recipe, _, _ in RUNS:
        if name in need and not (runs / name / "best.safetensors").is_file():
            _avkit("train", f"recipes/{recipe}", f"train.output_dir={runs / name}")


def _norm(caption: str) -> str:
    return " ".join(caption.lower().split())


def overlap(references: list[str], training: set[str]) -> float:
    """The share of ``references`` found word for word (case and spacing aside) in ``training``."""
    return sum(_norm(r) in training for r in references) / max(1, len(references))


def evaluate(run_dir: Path, sources: list[Path], batch_size: int = 16) -> dict[str, Any]:
    """Greedy captions of every record of ``sources``; their scores on the clips of combinations the
    run never trained on (``unseen``) and on all clips (``all``), each with its exact-overlap share."""
    from avkit.apps import captioning
    from avkit.apps.captioning.data import CaptionDataset, held_out, read_sources
    from avkit.apps.captioning.metrics import caption_scores

    run = captioning.load(run_dir, device="cpu")
    opts = run.cfg.task_options
    every = int(opts.get("hold_out") or 0)
    training = {_norm(r.caption) for r in read_sources([str(s) for s in opts["sources"]], None)
                if not held_out(r, every)}
    records = read_sources([str(s) for s in sources], None)
    data = CaptionDataset(records, run.cfg.data, train=False, audio=run.uses_audio)
    texts: list[str] = []
    start = time.perf_counter()
    for i in range(0, len(data), batch_size):
        items = [data[j] for j in range(i, min(i + batch_size, len(data)))]
        batch = {"video": torch.stack([it["video"] for it in items])}
        if run.uses_audio:
            batch["audio"] = torch.stack([it["audio"] for it in items])
        texts += run.caption_batch(batch)
    seconds = time.perf_counter() - start
    subsets = {"unseen": [i for i, r in enumerate(records) if held_out(r, every)], "all": list(range(len(records)))}
    out: dict[str, Any] = {"run": str(run_dir), "modalities": run.model.modalities, "hold_out": every,
                           "seconds": seconds, "clips": len(records)}
    for name, idx in subsets.items():
        refs = [records[i].caption for i in idx]
        scores = caption_scores([texts[i] for i in idx], refs, [records[i].attributes for i in idx]) if idx else None
        out[name] = {"clips": len(idx), "overlap": overlap(refs, training),
                     "bleu4": scores["bleu4"] if scores else float("nan"),
                     "cider": scores["cider"] if scores else float("nan"),
                     "attributes": {a: scores["attributes"][a] if scores else {"accuracy": float("nan"), "count": 0}
                                    for a in ATTRS},
                     "examples": [{"reference": records[i].caption, "caption": texts[i]}
                                  for i in idx[:: max(1, len(idx) // 6)]]}
    return out


SUBSETS = {"unseen": "clips of combinations never trained on", "all": "all held-out clips"}


def table(rows: list[tuple[str, dict[str, Any]]]) -> str:
    head = "| run | tokens | test clips | exact overlap | clips | BLEU-4 | CIDEr-D | " + " | ".join(ATTRS) + " |"
    lines = [head, "|" + "---|" * 3 + "---:|" * (4 + len(ATTRS))]
    for label, r in rows:
        for subset, what in SUBSETS.items():
            s = r[subset]
            accs = []
            for a in ATTRS:
                v = s["attributes"][a]
                accs.append(f"{100 * v['accuracy']:.0f}% ({v['count']})" if v["count"] else "-")
            lines.append(f"| {label} | {' + '.join(r['modalities'])} | {what} | {100 * s['overlap']:.0f}% | "
                         f"{s['clips']} | {s['bleu4']:.3f} | {s['cider']:.3f} | " + " | ".join(accs) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="avkit_data", help="where the datasets are (or go)")
    ap.add_argument("--runs", default="runs", help="where the runs are (or go)")
    ap.add_argument("--only", nargs="+", default=CAPTIONERS,
                    help="captioning runs to evaluate (and train when missing)")
    ap.add_argument("--no-prepare", action="store_true", help="do not generate or train anything")
    ap.add_argument("--skip-ask", action="store_true", help="do not run benchmarks/ask_speed.py")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    ap.add_argument("--markdown", default="docs/benchmarks/captioning_cpu.md")
    ap.add_argument("--json", default="runs/captioning/results.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    data, runs = Path(args.data), Path(args.runs)
    if not args.no_prepare:
        prepare(data, runs, args.only)
    labels = {name: label for name, _, _, label in RUNS}
    tests = [data / name for name in TEST_DATA]
    rows = []
    for name in args.only:
        if not (runs / name / "best.safetensors").is_file():
            print(f"skipped {runs / name}: not trained", flush=True)
            continue
        rows.append((labels.get(name, name), evaluate(runs / name, tests)))
        print(table(rows[-1:]), flush=True)
    header = (f"# Captioner benchmark ({time.strftime('%Y-%m-%d %H:%M')}, CPU, {args.threads} threads, "
              f"torch {torch.__version__}, {platform.python_version()})\n\n"
              f"`python benchmarks/captioning.py`: greedy captions of the held-out clips of "
              f"{', '.join(str(t) for t in tests)} (seed 1; longvideo: one clip per action segment).\n"
              "The runs train on no clip of about 1 in 3 (object, colour, motion) combinations "
              "(task_options.hold_out); 'exact overlap': the share of the test clips' reference captions "
              "found word for word among the training captions.\n"
              "Attribute accuracy over the clips whose truth has the attribute (count in brackets); "
              "a caption that names no value counts as wrong.\n\n")
    text = header + table(rows) + "\n"
    for label, r in rows:
        text += (f"\n{label}: {r['seconds']:.1f} s for {r['clips']} clips. Examples on unseen combinations "
                 "(reference -> generated):\n\n")
        text += "".join(f"- {e['reference']} -> {e['caption']}\n" for e in r["unseen"]["examples"])
    if not args.skip_ask:
        out = subprocess.run([sys.executable, "benchmarks/ask_speed.py"], cwd=ROOT, capture_output=True, text=True)
        text += "\n`avkit ask` speed (`python benchmarks/ask_speed.py`, tiny random models, CPU):\n\n```\n" + \
                (out.stdout.strip() or out.stderr.strip()[-2000:]) + "\n```\n"
    print(text)
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(text)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps([{"label": lab, **r} for lab, r in rows], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
