"""Figures of clip selection: the timeline of one video (``avkit select --plot``) and the
accuracy-versus-GFLOPs trade-off of the benchmark. matplotlib object API on the Agg canvas (no
global backend, no display), written atomically, like :mod:`avkit.engine.report`.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from avkit.engine.report import new_figure, save_figure


def plot_timeline(result: Any, path: str | Path) -> Path:
    """Saliency of every candidate clip over time, the chosen clips and, when known, the true
    segments (sounded actions, silent actions, sound-only distractors). ``result`` is a
    :class:`~avkit.apps.clip_selection.inference.Selection` or its ``to_dict()``."""
    r = result if isinstance(result, Mapping) else result.to_dict()
    fig = new_figure(10.0, 3.6, dpi=110)
    ax = fig.add_subplot(1, 1, 1)
    cands = r["candidates"]
    mids = [(c["start"] + c["end"]) / 2 for c in cands]
    if cands and "saliency" in cands[0]:
        ax.plot(mids, [c["saliency"] for c in cands], "-", color="tab:blue", lw=1.2, label="preview saliency")
    if cands and "score" in cands[0]:
        s = [c["score"] for c in cands]
        lo, hi = min(s), max(s)
        ax.plot(mids, [(x - lo) / (hi - lo) if hi > lo else 0.5 for x in s], "-", color="tab:purple", lw=1.2,
                label="learned sampler score (scaled)")
    for i, c in enumerate(r["clips"], 1):
        ax.axvspan(c["start"], c["end"], ymin=0.18, ymax=1.0, color="tab:orange", alpha=0.35,
                   label="chosen clips" if i == 1 else None)
        ax.text((c["start"] + c["end"]) / 2, 1.04, str(i), ha="center", va="bottom", fontsize=7)
    truth = r.get("truth")
    if truth:
        for k, seg in enumerate(truth["segments"]):
            sounded = seg.get("sound", True)
            ax.axvspan(seg["start"], seg["end"], ymin=0.0, ymax=0.08, facecolor="tab:green" if sounded else "none",
                       hatch=None if sounded else "////", edgecolor="tab:green",
                       label=("action (with sound)" if sounded else "action (silent)") if k == 0 or not sounded else None)
        shown = False
        for d in truth["distractors"]:
            if d.get("kind") == "sound_only":
                ax.axvspan(d["start"], d["end"], ymin=0.0, ymax=0.08, color="tab:red", alpha=0.7,
                           label=None if shown else "sound, nothing to see")
                shown = True
    ax.set_xlim(0, r["duration"])
    ax.set_ylim(-0.25, 1.15)
    ax.set_yticks([0, 0.5, 1.0])
    ax.set_xlabel("time (s)")
    ax.set_ylabel("saliency")
    pred = r["prediction"][0]
    title = (f"{Path(r['video']).name}: policy {r['policy']}"
             + (f" -> {r['used']}" if r["used"] != r["policy"] else "") + f", {len(r['clips'])} clip(s); "
             f"predicted {pred['label']} ({pred['score']:.2f})")
    if truth:
        title += f", true {truth['label']}"
    ax.set_title(title, fontsize=9)
    if r.get("fallback"):
        ax.text(0.01, 0.5, f"fallback to uniform: {r['fallback']}", transform=ax.transAxes, fontsize=8, va="center")
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=6, frameon=False)
    ax.grid(alpha=0.25)
    return save_figure(fig, Path(path))


def plot_tradeoff(rows: Sequence[Mapping[str, Any]], path: str | Path, reference: Mapping[str, Any] | None = None,
                  title: str = "video accuracy against compute") -> Path:
    """Accuracy against GFLOPs per video, one line per policy (points = budgets, labelled with K);
    ``reference`` (dense) as a star with dashed guides at its accuracy and 20% of its GFLOPs."""
    fig = new_figure(9.5, 4.8, dpi=110)
    ax = fig.add_subplot(1, 1, 1)
    policies: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        policies.setdefault(row["policy"], []).append(row)
    markers = "osD^v<>px"
    for n, (name, pts) in enumerate(policies.items()):
        pts = sorted(pts, key=lambda p: p["gflops"])
        ax.plot([p["gflops"] for p in pts], [p["accuracy"] for p in pts], marker=markers[n % len(markers)], ms=4,
                lw=1.2, label=name)
        for p in pts:
            if p.get("budget") is not None:
                ax.annotate(str(p["budget"]), (p["gflops"], p["accuracy"]), textcoords="offset points",
                            xytext=(3, 3), fontsize=6)
    if reference is not None:
        ax.plot([reference["gflops"]], [reference["accuracy"]], "k*", ms=12, label=reference.get("policy", "dense"))
        ax.axhline(reference["accuracy"], color="k", ls=":", lw=0.8)
        ax.axvline(0.2 * reference["gflops"], color="gray", ls="--", lw=0.8, label="20% of dense GFLOPs")
    ax.set_xscale("log")
    ax.set_xlabel("GFLOPs per video (preview included)")
    ax.set_ylabel("video accuracy")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3, which="both")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return save_figure(fig, Path(path))
