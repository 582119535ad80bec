"""What the quickstart prints and writes: per-group accuracy, the tables, results.md and the plot."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.table import Table

    from avkit.quickstart.config import QuickstartConfig


def group_accuracy(confusion: list[list[int]], class_names: list[str], groups: dict[str, str]) -> dict[str, float]:
    """Accuracy per class group (e.g. "motion", "appearance") and overall, from a confusion matrix."""
    import torch

    cm = torch.tensor(confusion, dtype=torch.float64)  # rows = true class
    out: dict[str, float] = {}
    for group in sorted(set(groups.values())):
        idx = [i for i, n in enumerate(class_names) if groups.get(n) == group]
        rows = cm[idx]
        out[group] = float(rows[:, idx].diagonal().sum() / rows.sum()) if rows.sum() > 0 else float("nan")
    out["overall"] = float(cm.diagonal().sum() / cm.sum())
    return out


def read_back_table(read: dict[str, Any]) -> Table:
    from rich.table import Table

    table = Table(title="motion data read back through VideoDataset (random clip sampler)")
    table.add_column("what")
    table.add_column("value")
    table.add_row("clips", str(read["clips"]))
    table.add_row("classes", ", ".join(read["classes"]))
    table.add_row("decode + transform + log-mel", f"{read['clips_per_second']} clips/s")
    for k, v in read["item_shapes"].items():
        table.add_row(f"item['{k}']", str(v))
    table.add_row("skipped files", str(len(read["skipped"])))
    return table


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def results_table(rows: list[dict[str, Any]], cfg: QuickstartConfig) -> Table:
    from rich import box
    from rich.table import Table

    # No vertical borders and a model column that never truncates: fits an 80-column terminal.
    table = Table(title=f"val video accuracy, {cfg.test_clips} clips averaged "
                        f"({cfg.num_frames}x{cfg.size}x{cfg.size} at {cfg.fps:g} fps)",
                  box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    table.add_column("model", no_wrap=True, min_width=max(len(r["model"]) for r in rows))
    for col in ("motion", "appearance", "sound", "overall", "params", "GFLOPs", "train s"):
        table.add_column(col, justify="right", no_wrap=True)
    for r in rows:
        table.add_row(r["model"], _pct(r["motion_acc"]), _pct(r["appearance_acc"]), _pct(r.get("sound_acc")),
                      _pct(r["overall_acc"]),
                      f"{r['params'] / 1e3:.0f}k", f"{r['gflops']:.4f}", f"{r['train_seconds']:.0f}")
    counts = Counter(r["epochs"] for r in rows)
    if len(counts) > 1:  # results.md has a column for it
        usual = counts.most_common(1)[0][0]
        table.caption = "epochs: " + ", ".join(f"{r['model']} {r['epochs']}" for r in rows if r["epochs"] != usual) + \
                        f", the others {usual}"
    return table


def _jobs_text(summary: dict[str, Any]) -> str:
    jobs = summary.get("jobs") or {"parallel": 1, "threads_each": 0}
    if jobs["parallel"] == 1:
        return "one model trained at a time"
    return (f"{jobs['parallel']} models trained side by side, {jobs['threads_each']} CPU thread(s) each "
            f"(column 'train s' is each one's wall clock)")


def results_markdown(summary: dict[str, Any]) -> str:
    cfg = summary["config"]
    lines = ["# avkit quickstart results", "",
             f"{summary['data']['num']} generated motion clips; {cfg['num_frames']} frames of {cfg['size']}x{cfg['size']} "
             f"at {cfg['fps']:g} fps; video accuracy on the val split averaged over {cfg['test_clips']} clips; "
             f"up to {cfg['epochs']} epochs (column 'epochs'); device {summary['device']}; chance {summary['motion_chance']:.0%} on the motion "
             f"classes, {summary['chance']:.0%} overall; {_jobs_text(summary)}.", "",
             *(["Sound classes: still_low / still_high, the same still shape with a low or a high tone "
                "(chance 50% between the two; only the sound tells them apart).", ""] if cfg.get("sound_pair") else []),
             "| model | what | motion classes | appearance classes | sound classes | overall | params | GFLOPs | epochs "
             "| train s |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in summary["results"]:
        lines.append(f"| {r['model']} | {r['what']} | {_pct(r['motion_acc'])} | {_pct(r['appearance_acc'])} | "
                     f"{_pct(r.get('sound_acc'))} | {_pct(r['overall_acc'])} | {r['params'] / 1e3:.0f}k | "
                     f"{r['gflops']:.4f} | {r['epochs']} | {r['train_seconds']:.0f} |")
    lines += ["", "![comparison](comparison.png)", ""]
    return "\n".join(lines)


def plot_results(rows: list[dict[str, Any]], path: Path, chance: float) -> None:
    """Grouped bars of accuracy per class group (motion, appearance, sound) per model; ``chance`` on the motion classes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from avkit.utils import atomic_path

    names = [r["model"] for r in rows]
    x = range(len(rows))
    fig, ax = plt.subplots(figsize=(1.3 * len(rows) + 2, 3.6))
    groups = [("motion_acc", "motion classes"), ("appearance_acc", "appearance classes"), ("sound_acc", "sound classes")]
    groups = [(k, label) for k, label in groups if any(r.get(k) is not None for r in rows)]
    width = 0.8 / len(groups)
    for j, (key, label) in enumerate(groups):
        offset = (j - (len(groups) - 1) / 2) * width
        ax.bar([i + offset for i in x], [100 * (r.get(key) or 0) for r in rows], width, label=label)
    ax.axhline(100 * chance, color="gray", ls="--", lw=1, label="chance on motion classes")
    ax.set_xticks(list(x), names, rotation=20, ha="right")
    ax.set_ylabel("video accuracy (%)")
    ax.set_ylim(0, 105)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=4, fontsize=8, frameon=False)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)
