"""Which clips of a long video the heavy classifier sees: candidates, policies, temporal NMS, aggregation.

**Candidates** are windows of the heavy model's clip length (``num_frames / fps`` seconds) every
``stride`` seconds, all inside the video (the last one ends at the end of the video; a video
shorter than one clip gives one padded window).

**Policies** (:data:`POLICIES`), one interface, :func:`choose`:

- ``dense``: every candidate (the budget is ignored);
- ``uniform``: ``K`` evenly spaced clips, the first at the start and the last at the end of the
  video (``avkit classify --clips K``; ``K = 10`` is the usual dense test protocol);
- ``random``: ``K`` candidates drawn at random (seeded), kept apart by the same NMS as the scored
  policies;
- ``audio``: the ``K`` candidates with the highest preview saliency, after NMS;
- ``learned``: the ``K`` candidates the learned sampler ranks highest, after NMS.

**Temporal NMS** (:func:`temporal_nms`): greedy, best score first; a candidate is dropped when its
centre is closer than ``min_gap`` seconds (default: one clip length, so chosen clips do not
overlap) to a clip already chosen. When fewer than ``K`` candidates survive, fewer are returned: the
budget is an upper bound.

**Fallback**: the audio-guided policies (``audio``, ``learned``) need sound; when the preview says
the audio is missing or silent, :func:`choose` returns uniform sampling and the reason.

**Consensus** (:func:`consensus_scores`, optional for ``audio``): a preview with class scores can
re-rank its saliency by how well each window agrees with what the salient sounds of the whole
video say, so a one-off loud sound of another class drops below the recurring action sounds.

**Aggregation** (:func:`aggregate`): the mean of the heavy model's softmax over the chosen clips,
or with ``weights`` (the clips' saliency) a weighted mean.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from avkit.data.sampling import ClipWindow, as_rng, clip_at, uniform_clips
from avkit.errors import AvkitError

POLICIES = ("dense", "uniform", "random", "audio", "learned")
GUIDED = ("audio", "learned")  # need audio; fall back to uniform without it
DEFAULT_STRIDE = 0.5


def candidate_windows(duration: float, num_frames: int, fps: float, stride: float = DEFAULT_STRIDE
                      ) -> list[ClipWindow]:
    """Clips of ``num_frames`` at ``fps`` starting every ``stride`` s, all inside ``[0, duration]``."""
    if not (isinstance(duration, (int, float)) and math.isfinite(duration) and duration > 0):
        raise AvkitError(f"video duration must be a positive number of seconds, got {duration!r}")
    if not (stride > 0 and math.isfinite(stride)):
        raise AvkitError(f"stride must be a positive number of seconds, got {stride!r}")
    span = num_frames / fps
    if duration <= span + 1e-9:
        return [clip_at(0.0, duration, num_frames, fps)]
    last = duration - span
    starts = list(np.arange(0.0, last + 1e-9, stride))
    if last - starts[-1] > 1e-6:
        starts.append(last)
    return [clip_at(float(s), duration, num_frames, fps) for s in starts]


def centres(windows: Sequence[ClipWindow], duration: float | None = None) -> np.ndarray:
    return np.array([(w.start + (min(w.end, duration) if duration else w.end)) / 2 for w in windows])


def temporal_nms(centre: Sequence[float] | np.ndarray, scores: Sequence[float] | np.ndarray, k: int, min_gap: float) -> list[int]:
    """Indices of at most ``k`` items, best score first, whose centres are ``>= min_gap`` s apart.

    Ties keep the earlier item. ``min_gap <= 0`` is plain top-k.
    """
    c = np.asarray(centre, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    if c.shape != s.shape:
        raise AvkitError(f"nms: {c.shape[0]} centres but {s.shape[0]} scores")
    if np.isnan(s).any():
        raise AvkitError("nms: scores contain NaN")
    order = np.argsort(-s, kind="stable")
    chosen: list[int] = []
    for i in order:
        if len(chosen) >= k:
            break
        if all(abs(c[i] - c[j]) >= min_gap - 1e-9 for j in chosen):
            chosen.append(int(i))
    return chosen


@dataclass
class Choice:
    """What a policy chose: the windows (in time order), their scores, and whether it fell back."""

    policy: str  # the policy asked for
    used: str  # the policy that ran (``uniform`` after a fallback)
    windows: list[ClipWindow]
    indices: list[int] | None  # into the candidates (None for uniform, whose clips are not candidates)
    scores: np.ndarray | None  # the chosen clips' scores (None when the policy has none)
    fallback: str | None = None  # why the audio-guided policy fell back to uniform


def check_budget(budget: int) -> int:
    if isinstance(budget, bool) or int(budget) != budget or budget < 1:
        raise AvkitError(f"budget must be a positive integer number of clips, got {budget!r}")
    return int(budget)


def choose(policy: str, candidates: Sequence[ClipWindow], budget: int, *, duration: float, num_frames: int,
           fps: float, scores: Sequence[float] | np.ndarray | None = None, min_gap: float | None = None,
           fallback: str | None = None, rng: np.random.Generator | int | None = 0) -> Choice:
    """Pick at most ``budget`` clips with ``policy`` (see the module docstring).

    ``scores`` (one per candidate) are needed by ``audio`` and ``learned``; ``fallback`` is the
    reason the audio cannot guide (missing or silent): those policies then sample uniformly.
    ``min_gap`` defaults to one clip length.
    """
    if policy not in POLICIES:
        raise AvkitError(f"unknown policy {policy!r}; choose from {', '.join(POLICIES)}")
    budget = check_budget(budget)
    candidates = list(candidates)
    if not candidates:
        raise AvkitError("no candidate clips")
    gap = num_frames / fps if min_gap is None else float(min_gap)
    if policy in GUIDED and fallback is not None:
        return _uniform(policy, budget, duration, num_frames, fps, fallback)
    if policy == "dense":
        return Choice(policy, policy, candidates, list(range(len(candidates))), None)
    if policy == "uniform":
        return _uniform(policy, budget, duration, num_frames, fps, None)
    mid = centres(candidates, duration)
    if policy == "random":
        s = as_rng(rng).random(len(candidates))
        picked = temporal_nms(mid, s, budget, gap)
        return _scored(policy, candidates, sorted(picked), None)
    if scores is None:
        raise AvkitError(f"policy {policy!r} needs a score for every candidate clip")
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if s.shape[0] != len(candidates):
        raise AvkitError(f"policy {policy!r}: {s.shape[0]} scores for {len(candidates)} candidates")
    picked = sorted(temporal_nms(mid, s, budget, gap))
    return _scored(policy, candidates, picked, s[picked])


def _scored(policy: str, candidates: list[ClipWindow], picked: list[int], scores: np.ndarray | None) -> Choice:
    return Choice(policy, policy, [candidates[i] for i in picked], picked, scores)


def _uniform(policy: str, budget: int, duration: float, num_frames: int, fps: float, reason: str | None) -> Choice:
    return Choice(policy, "uniform", uniform_clips(duration, num_frames, fps, budget), None, None, reason)


def consensus_scores(saliency: Sequence[float] | np.ndarray, class_probs: np.ndarray, power: float = 1.0) -> np.ndarray:
    """Saliency re-ranked by agreement with the whole video: ``s_i * (p_i . q) ** power``.

    ``q`` is the saliency-weighted mean of the preview's per-window class probabilities ``p``: what
    the salient sounds of the video say overall. A loud sound that recurs (the action, which happens
    several times) agrees with ``q``; a one-off sound of another class (a distractor) does not, and
    drops in the ranking. Needs a preview with class scores.
    """
    s = np.clip(np.asarray(saliency, dtype=np.float64).reshape(-1), 0.0, None)
    p = np.asarray(class_probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] != s.shape[0]:
        raise AvkitError(f"consensus: {p.shape} class probabilities for {s.shape[0]} windows")
    if s.sum() <= 0:
        return s
    q = (s[:, None] * p).sum(axis=0) / s.sum()
    agree = p @ q / max(float(q @ q), 1e-12)  # 1 for a window that says exactly what the video says
    return s * np.clip(agree, 0.0, None) ** power


def aggregate(probs: torch.Tensor, weights: Sequence[float] | np.ndarray | torch.Tensor | None = None) -> torch.Tensor:
    """Video-level class probabilities: the (weighted) mean of per-clip probabilities ``[K, C]``."""
    if probs.ndim != 2 or probs.shape[0] == 0:
        raise AvkitError(f"aggregate expects per-clip probabilities [K, C] with K >= 1, got {tuple(probs.shape)}")
    if weights is None:
        return probs.mean(dim=0)
    w = torch.as_tensor(np.asarray(weights, dtype=np.float64), dtype=probs.dtype).reshape(-1).clamp(min=0)
    if w.shape[0] != probs.shape[0]:
        raise AvkitError(f"aggregate: {w.shape[0]} weights for {probs.shape[0]} clips")
    if float(w.sum()) <= 0:
        return probs.mean(dim=0)
    return (w[:, None] * probs).sum(dim=0) / w.sum()
