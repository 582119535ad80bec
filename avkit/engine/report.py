"""``report.md`` of a run: a metrics table, training curves and, for classification, the confusion matrix (PNGs).

Plots use matplotlib's object API with the Agg canvas, so no global backend is switched and
no display is needed.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from avkit.utils import atomic_path, atomic_write_text


def new_figure(width: float = 5.0, height: float = 3.5, dpi: int = 100) -> Any:
    """A matplotlib figure on the Agg canvas (no display, no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Any, path: Path) -> Path:
    """Write ``fig`` as a PNG atomically."""
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(str(tmp), format="png")
    return path


def plot_curves(history: Sequence[dict[str, Any]], metric: str, path: Path) -> Path:
    """``train_<metric>`` and ``val_<metric>`` against the epoch number."""
    fig = new_figure()
    ax = fig.add_subplot(1, 1, 1)
    epochs = [row["epoch"] for row in history]
    for split, style in (("train", "o-"), ("val", "s--")):
        values = [row.get(f"{split}_{metric}") for row in history]
        points = [(e, v) for e, v in zip(epochs, values) if v is not None]
        if points:
            ax.plot([p[0] for p in points], [p[1] for p in points], style, label=split)
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    if metric == "acc":
        ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend()
    return save_figure(fig, path)


def plot_confusion(confusion: Sequence[Sequence[int]], class_names: Sequence[str], path: Path,
                   title: str = "confusion matrix") -> Path:
    """Row-normalised confusion matrix (rows: true class, columns: predicted), counts written in."""
    import numpy as np

    cm = np.asarray(confusion, dtype=np.float64)
    n = cm.shape[0]
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    side = min(3.0 + 0.45 * n, 14.0)
    fig = new_figure(side + 1.0, side)
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(norm, vmin=0.0, vmax=1.0, cmap="Blues")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    names = list(class_names)[:n] + [str(i) for i in range(len(class_names), n)]
    ax.set_xticks(range(n), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if n <= 20:
        for i in range(n):
            for j in range(n):
                if cm[i, j]:
                    ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if norm[i, j] > 0.5 else "black")
    return save_figure(fig, path)


def _fmt(v: Any) -> str:
    if v is None or v == "":
        return "-"
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


CURVE_FILES = {"loss": "loss.png", "acc": "accuracy.png"}  # other metrics: <metric>.png


def write_report(run_dir: str | Path, history: Sequence[dict[str, Any]], *, columns: Sequence[str],
                 best_key: str, best_epoch: int = 0, curves: Sequence[str] = ("loss",),
                 confusion: Sequence[Sequence[int]] | None = None, class_names: Sequence[str] = ()) -> Path:
    """Write ``report.md`` with the ``columns`` of ``history``, a curve per metric in ``curves``
    (``loss.png``, ``accuracy.png``, ...) and, for classification, ``confusion.png``."""
    run_dir = Path(run_dir)
    lines = [f"# Training report: {run_dir.name}", ""]
    if history:
        last = history[-1]
        best = next((r for r in history if r["epoch"] == best_epoch), last)
        summary = f"{len(history)} epoch(s), {last['step']} optimiser steps."
        if best.get(best_key) is not None:
            what = "validation accuracy" if best_key == "val_acc" else best_key
            summary += f" Best {what} {best[best_key]:.4f} at epoch {best['epoch']} (best.safetensors)."
        lines += [summary, ""]
        lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(_fmt(r.get(c)) for c in columns) + " |" for r in history]
        lines.append("")
        lines += ["## Curves", ""]
        for metric in curves:
            name = CURVE_FILES.get(metric, f"{metric}.png")
            plot_curves(history, metric, run_dir / name)
            lines += [f"![{metric}]({name})", ""]
    if confusion is not None:
        plot_confusion(confusion, class_names, run_dir / "confusion.png",
                       title=f"validation, epoch {best_epoch}" if best_epoch else "validation")
        lines += ["## Confusion matrix", "",
                  f"Validation set at the best epoch ({best_epoch}); rows are true classes.", "",
                  "![confusion matrix](confusion.png)", ""]
    path = run_dir / "report.md"
    atomic_write_text(path, "\n".join(lines))
    return path


def append_report(run_dir: str | Path, title: str, lines: Sequence[str]) -> Path:
    """Add a ``## title`` section to ``RUN/report.md`` (after what the task wrote), atomically."""
    path = Path(run_dir) / "report.md"
    old = path.read_text() if path.is_file() else f"# Training report: {Path(run_dir).name}\n"
    atomic_write_text(path, old.rstrip("\n") + "\n\n" + "\n".join([f"## {title}", "", *lines]) + "\n")
    return path
