"""Temporal IoU and mean average precision over tIoU thresholds, as the ActivityNet evaluation defines it.

Per class and threshold: predictions sorted by score (ties keep input order), each matched to the
still-unmatched ground truth of the same video with the highest tIoU, if that tIoU reaches the
threshold (a true positive; otherwise a false positive, and a duplicate of a matched segment is a
false positive); AP = area under the precision envelope (precision made non-increasing from the
right) over all recall points (``interpolated_prec_rec`` of ActivityNet's ``eval_detection.py``).
mAP = mean over the classes that have ground truth (a class with ground truth but no prediction
scores 0; predictions of a class with no ground truth are ignored, as there).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from avkit.errors import AvkitError

THUMOS_TIOUS = (0.3, 0.4, 0.5, 0.6, 0.7)
ACTIVITYNET_TIOUS = tuple(round(0.5 + 0.05 * k, 2) for k in range(10))  # 0.5:0.05:0.95


def tiou(start: float, end: float, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Temporal IoU of one segment ``[start, end]`` with each of ``[starts, ends]``."""
    starts = np.asarray(starts, dtype=np.float64)
    ends = np.asarray(ends, dtype=np.float64)
    inter = np.clip(np.minimum(end, ends) - np.maximum(start, starts), 0.0, None)
    union = (end - start) + (ends - starts) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def interpolated_ap(precision: np.ndarray, recall: np.ndarray) -> float:
    """Area under the precision envelope at every recall change (ActivityNet's interpolation)."""
    mprec = np.concatenate([[0.0], precision, [0.0]])
    mrec = np.concatenate([[0.0], recall, [1.0]])
    for i in range(len(mprec) - 2, -1, -1):
        mprec[i] = max(mprec[i], mprec[i + 1])
    idx = np.nonzero(mrec[1:] != mrec[:-1])[0] + 1
    return float(np.sum((mrec[idx] - mrec[idx - 1]) * mprec[idx]))


def _check(rows: Sequence[Mapping[str, Any]], what: str, keys: tuple[str, ...]) -> None:
    for i, r in enumerate(rows):
        missing = [k for k in keys if k not in r]
        if missing:
            raise AvkitError(f"{what} row {i}: missing {', '.join(missing)}")
        if not float(r["end"]) >= float(r["start"]):
            raise AvkitError(f"{what} row {i}: end {r['end']} before start {r['start']}")


def average_precision(predictions: Sequence[Mapping[str, Any]], ground_truth: Sequence[Mapping[str, Any]],
                      tiou_thresholds: Sequence[float]) -> np.ndarray:
    """AP of one class at each threshold (``float [len(tiou_thresholds)]``); rows as in :func:`mean_average_precision`."""
    thresholds = np.asarray(tiou_thresholds, dtype=np.float64)
    ap = np.zeros(len(thresholds))
    if not ground_truth or not predictions:
        return ap
    by_video: dict[Any, list[int]] = {}
    for j, g in enumerate(ground_truth):
        by_video.setdefault(g["video"], []).append(j)
    gt_start = np.array([float(g["start"]) for g in ground_truth])
    gt_end = np.array([float(g["end"]) for g in ground_truth])
    order = np.argsort(-np.array([float(p["score"]) for p in predictions]), kind="stable")
    matched = np.zeros((len(thresholds), len(ground_truth)), dtype=bool)
    tp = np.zeros((len(thresholds), len(predictions)))
    for rank, i in enumerate(order):
        p = predictions[i]
        cand = np.array(by_video.get(p["video"], []), dtype=int)
        if cand.size == 0:
            continue
        overlap = tiou(float(p["start"]), float(p["end"]), gt_start[cand], gt_end[cand])
        best_first = np.argsort(-overlap, kind="stable")
        for t, thr in enumerate(thresholds):
            for k in best_first:
                if overlap[k] < thr:
                    break
                if matched[t, cand[k]]:
                    continue
                matched[t, cand[k]] = True
                tp[t, rank] = 1
                break
    tp_sum = np.cumsum(tp, axis=1)
    fp_sum = np.cumsum(1 - tp, axis=1)
    recall = tp_sum / len(ground_truth)
    precision = tp_sum / (tp_sum + fp_sum)
    return np.array([interpolated_ap(precision[t], recall[t]) for t in range(len(thresholds))])


def mean_average_precision(predictions: Sequence[Mapping[str, Any]], ground_truth: Sequence[Mapping[str, Any]],
                           tiou_thresholds: Sequence[float] = THUMOS_TIOUS) -> dict[float, float]:
    """``{tiou: mAP}`` (mAP in [0, 1]) of ``predictions`` (dicts ``video, start, end, label, score``)
    against ``ground_truth`` (dicts ``video, start, end, label``): the mean over ground-truth classes
    of each class's AP (module docstring). No ground truth at all is an error, not a silent 0."""
    _check(predictions, "prediction", ("video", "start", "end", "label", "score"))
    _check(ground_truth, "ground truth", ("video", "start", "end", "label"))
    if not ground_truth:
        raise AvkitError("mean average precision: no ground-truth segments")
    classes = sorted({str(g["label"]) for g in ground_truth})
    aps = np.stack([average_precision([p for p in predictions if str(p["label"]) == c],
                                      [g for g in ground_truth if str(g["label"]) == c], tiou_thresholds)
                    for c in classes])
    return {float(t): float(v) for t, v in zip(tiou_thresholds, aps.mean(axis=0))}


def per_class_ap(predictions: Sequence[Mapping[str, Any]], ground_truth: Sequence[Mapping[str, Any]],
                 tiou_thresholds: Sequence[float] = THUMOS_TIOUS) -> dict[str, float]:
    """``{class: AP averaged over the thresholds}`` for each ground-truth class (to compare class groups)."""
    classes = sorted({str(g["label"]) for g in ground_truth})
    return {c: float(average_precision([p for p in predictions if str(p["label"]) == c],
                                       [g for g in ground_truth if str(g["label"]) == c], tiou_thresholds).mean())
            for c in classes}
