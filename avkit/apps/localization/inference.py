"""A trained localiser run on videos: :class:`Localizer` (``avkit localize``, ``avkit eval``)."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from avkit.errors import AvkitError


class Localizer:
    """The run's network and its feature spec; :meth:`localize` one video, :meth:`evaluate` a manifest."""

    def __init__(self, run_dir: str | Path, checkpoint: str = "best", device: str | torch.device | None = "auto") -> None:
        from avkit.apps.localization.features import Extractor, FeatureSpec
        from avkit.apps.localization.model import build
        from avkit.engine.checkpoint import load_trained, open_run

        self.run = open_run(run_dir, checkpoint, task="localization")
        meta = self.run.meta
        self.class_names: list[str] = list(meta["class_names"])
        self.method = str(meta["method"])
        self.spec = FeatureSpec(**meta["features"])
        self.model: Any = load_trained(build(self.method, int(meta["in_dim"]), len(self.class_names), **meta["options"]),
                                  self.run, device).eval()
        self.extractor = Extractor(self.spec)

    def detect_features(self, feat: Any) -> list[dict[str, Any]]:
        """Segments (label name, start, end, score; best first) from one video's extracted features."""
        from avkit.apps.localization.task import make_item, to_rows

        item = make_item(feat, [], self.class_names, self.spec)
        dev = next(self.model.parameters()).device
        item = {**item, "feats": item["feats"].to(dev), "centres": item["centres"].to(dev)}
        rows = to_rows(self.model.detect(item), feat.path, self.class_names)
        return [{k: r[k] for k in ("label", "start", "end", "score")} for r in rows]

    def localize(self, video: str | Path) -> list[dict[str, Any]]:
        """Segments of ``video`` (a video shorter than one window is one line naming it)."""
        return self.detect_features(self.extractor(video))

    def evaluate(self, source: str | Path, split: str | None, format: str = "auto", video_root: str = "") -> dict[str, Any]:
        """mAP of the run on the videos of ``source`` (a manifest or ActivityNet / THUMOS JSON) in ``split``."""
        from avkit.apps.localization.data import ground_truth_rows, read_videos
        from avkit.apps.localization.metrics import ACTIVITYNET_TIOUS, THUMOS_TIOUS, mean_average_precision

        videos, _, skipped = read_videos(source, split, class_names=self.class_names, strict=False,
                                         min_duration=self.spec.window, format=format, video_root=video_root)
        preds = []
        for v in videos:
            preds += [{"video": v.path, **d} for d in self.localize(v.path)]
        truth = ground_truth_rows(videos)
        thumos = mean_average_precision(preds, truth, THUMOS_TIOUS)
        anet = mean_average_precision(preds, truth, ACTIVITYNET_TIOUS)
        return {"method": self.method, "videos": len(videos), "segments": len(truth), "skipped": skipped,
                "mAP": {f"{t:g}": v for t, v in thumos.items()}, "average_mAP_0.3_0.7": float(np.mean(list(thumos.values()))),
                "average_mAP_0.5_0.95": float(np.mean(list(anet.values())))}


def format_map(result: Mapping[str, Any]) -> str:
    """The mAP table ``avkit eval`` prints."""
    heads = list(result["mAP"])
    lines = [f"{result['method']}: {result['videos']} videos, {result['segments']} segments",
             "tIoU  " + "  ".join(f"{h:>5}" for h in heads) + "  avg(0.3:0.7)  avg(0.5:0.95)",
             "mAP   " + "  ".join(f"{100 * result['mAP'][h]:5.1f}" for h in heads)
             + f"  {100 * result['average_mAP_0.3_0.7']:12.1f}  {100 * result['average_mAP_0.5_0.95']:13.1f}"]
    lines += [f"skipped: {s}" for s in result.get("skipped", [])]
    return "\n".join(lines)


def plot_timeline(segments: list[dict[str, Any]], duration: float, path: Path, class_names: list[str],
                  truth: list[dict[str, Any]] | None = None, min_score: float = 0.2) -> Path:
    """A timeline PNG: predicted segments (alpha = score) per class, ground truth above them when known."""
    from avkit.engine.report import new_figure, save_figure

    if not class_names:
        raise AvkitError("no classes to plot")
    fig = new_figure(8.0, 0.5 + 0.4 * len(class_names))
    ax = fig.add_subplot(111)
    row = {c: i for i, c in enumerate(class_names)}
    for s in segments:
        if s["score"] >= min_score:
            ax.barh(row[s["label"]] - 0.15, s["end"] - s["start"], left=s["start"], height=0.3, color="tab:blue",
                    alpha=min(1.0, float(s["score"])))
    for g in truth or []:
        ax.barh(row[g["label"]] + 0.2, g["end"] - g["start"], left=g["start"], height=0.2, color="tab:green")
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlim(0, duration)
    ax.set_xlabel("time (s)")
    ax.set_title("predicted (blue, opacity = score)" + (" and ground truth (green)" if truth else ""))
    return save_figure(fig, path)


def truth_of(video: str | Path) -> list[dict[str, Any]] | None:
    """The ground-truth segments of ``video`` from a ``manifest.jsonl`` in its folder or the one above, if any."""
    from avkit.data.jsonl import read_jsonl

    video = Path(video).resolve()
    for folder in (video.parent, video.parent.parent):
        manifest = folder / "manifest.jsonl"
        if not manifest.is_file():
            continue
        for _, row in read_jsonl(manifest):
            if "path" in row and (folder / str(row["path"])).resolve() == video:
                return [dict(s) for s in row.get("segments") or []]
    return None
