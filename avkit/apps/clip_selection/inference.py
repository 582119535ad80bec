"""Audio-guided clip selection in front of any trained avkit classifier: the Python API of ``avkit select``.

```python
from avkit.apps import clip_selection
selector = clip_selection.load("runs/longvideo_c3d", preview="runs/longvideo_preview")   # -> ClipSelector
result = selector.select("video.mp4", budget=2, policy="audio")
result.prediction[0]          # {"label": ..., "score": ...}
result.gflops["total"], result.gflops["dense"]
```

One call: candidate windows of the run's clip length over the whole video; the preview scores
every window (``audio``/``learned`` policies only); the policy picks at most ``budget`` clips
(:mod:`avkit.apps.clip_selection.policies`); only those clips are decoded and run through the heavy model
(the run's frame count, fps, size and centre crop, as ``avkit classify``); their softmax is
averaged (optionally weighted by saliency). The result says what was spent: GFLOPs counted on
the exact input shapes the preview, the sampler and the heavy model ran on, against dense
processing (the heavy model on 10 uniformly spaced clips, the usual test protocol, and on every
candidate), and the wall-clock time of each part.

``consensus=True`` re-ranks a trained preview's saliency by agreement with the video's overall
sound class (:func:`~avkit.apps.clip_selection.policies.consensus_scores`).
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from avkit.apps.clip_selection.policies import (
    DEFAULT_STRIDE,
    GUIDED,
    POLICIES,
    aggregate,
    candidate_windows,
    check_budget,
    choose,
)
from avkit.apps.clip_selection.preview import EnergyPreview, NetPreview, PreviewResult, make_preview
from avkit.data.sampling import ClipWindow
from avkit.errors import AvkitError, MediaError
from avkit.models.flops import FlopCache

DENSE_CLIPS = 10  # the dense reference: the heavy model on 10 uniformly spaced clips, averaged


class _BatchCaller(nn.Module):
    """``forward(batch)`` -> the classifier's logits the way the trainer calls it."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        from avkit.engine.step import forward_batch

        return forward_batch(self.inner, batch)


class HeavyModel:
    """A trained classifier run: reads clips the way the run saw them, returns softmax per clip."""

    def __init__(self, run_dir: str | Path, checkpoint: str = "best", device: str | torch.device | None = "cpu",
                 model: tuple[nn.Module, Any, list[str]] | None = None) -> None:
        from avkit.engine.build import clip_transform, short_side_of
        from avkit.engine.evaluate import load_run

        self.run_dir = str(run_dir)
        self.cfg: Any
        self.net, self.cfg, self.class_names = model if model is not None else load_run(run_dir, checkpoint, device)
        self.net.eval()
        data = self.cfg.data
        self.num_frames, self.fps = int(data.num_frames), float(data.fps)
        self.short_side = short_side_of(data, 1)
        self.transform = clip_transform(data, train=False, num_crops=1)
        self.need_audio = bool(data.audio or data.spectrogram)
        self.sample_rate = int(data.sample_rate)
        self.caller = _BatchCaller(self.net)
        self.flops = FlopCache(self.caller)
        self.chunk = 64  # clips per forward

    @property
    def clip_seconds(self) -> float:
        return self.num_frames / self.fps

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    def batch(self, source: Any, windows: Sequence[ClipWindow]) -> dict[str, torch.Tensor]:
        """``video [K, 3, T, H, W]`` (+ ``audio`` / ``spectrogram`` of the clip's own span for a run
        that uses sound) of ``windows`` from an open ``VideoReader`` or ``InMemoryVideo``, read the
        way the run was trained (:func:`avkit.data.batch.clip_batch`)."""
        from avkit.data.batch import clip_batch

        data = self.cfg.data
        return clip_batch(source, windows, num_frames=self.num_frames, size=self.short_side, transform=self.transform,
                          audio=bool(data.audio), spectrogram=bool(data.spectrogram), sample_rate=self.sample_rate,
                          audio_seconds=self.clip_seconds)

    @torch.no_grad()
    def probs(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Softmax ``[K, C]`` of the heavy model on a batch of clips."""
        from avkit.engine.step import autocast_context, to_device

        dev = self.device
        n = next(v.shape[0] for v in batch.values() if isinstance(v, torch.Tensor))
        out = []
        for b in range(0, n, self.chunk):  # bounded memory for dense processing of a long video
            part = {k: v[b:b + self.chunk] if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
            with autocast_context(dev, self.cfg.train.precision):
                out.append(self.caller(to_device(part, dev)).float().softmax(dim=-1).cpu())
        return torch.cat(out)

    def gflops(self, batch: dict[str, torch.Tensor], clips: int | None = None) -> float:
        """Counted GFLOPs of the heavy model on ``batch`` (or on ``clips`` clips of the same shape)."""
        if clips is not None:
            batch = {k: torch.empty((clips, *v.shape[1:]), dtype=v.dtype, device="meta")
                     for k, v in batch.items() if isinstance(v, torch.Tensor)}
        return self.flops(batch)


@dataclass
class Selection:
    """The result of :meth:`ClipSelector.select` (``to_dict()`` is what ``--json`` prints)."""

    video: str
    duration: float
    run: str
    policy: str  # asked for
    used: str  # what ran (uniform after a fallback)
    budget: int
    preview: str | None  # the preview that scored the candidates (None: no preview ran)
    fallback: str | None  # why the audio-guided policy sampled uniformly
    clip_seconds: float
    stride: float
    candidates: list[dict[str, float]]  # start, end, saliency (when scored)
    clips: list[dict[str, Any]]  # the chosen clips: start, end, score, top label and probability
    prediction: list[dict[str, Any]]  # top labels of the aggregated probabilities
    probs: list[float]  # aggregated class probabilities
    class_names: list[str]
    weighted: bool
    gflops: dict[str, float]
    seconds: dict[str, float]
    truth: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def top_label(self) -> str:
        return self.prediction[0]["label"]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ClipSelector:
    """Clip selection in front of the classifier of ``run_dir``.

    ``preview``: a preview run directory (``recipes/longvideo_preview.yaml``) or None for the
    analytic energy preview; ``sampler``: a learned-sampler run (``recipes/longvideo_sampler.yaml``),
    which brings its own preview, needed by ``policy="learned"``. ``stride``: seconds between
    candidate starts; ``min_gap``: NMS distance between chosen clip centres (default one clip);
    ``consensus``: re-rank the preview's saliency by agreement with the whole video (``audio``).
    ``checkpoint`` picks the classifier's weights (``best`` / ``last``); the preview and the sampler
    load their best.
    """

    def __init__(self, run_dir: str | Path, *, preview: str | Path | None = None, sampler: str | Path | None = None,
                 checkpoint: str = "best", device: str | torch.device | None = "cpu", stride: float = DEFAULT_STRIDE,
                 min_gap: float | None = None, consensus: bool = False, heavy: HeavyModel | None = None) -> None:
        self.heavy = heavy if heavy is not None else HeavyModel(run_dir, checkpoint, device)
        self.sampler = None
        if sampler is not None:
            from avkit.apps.clip_selection.sampler import LearnedSampler

            self.sampler = LearnedSampler.from_run(sampler, device)
        self.preview: EnergyPreview | NetPreview = make_preview(preview, device)
        if not stride > 0:
            raise AvkitError(f"stride must be positive seconds, got {stride!r}")
        if min_gap is not None and min_gap < 0:
            raise AvkitError(f"min_gap must be >= 0 seconds, got {min_gap!r}")
        self.stride = float(stride)
        self.min_gap = min_gap
        self.consensus = bool(consensus)
        if self.consensus and not isinstance(self.preview, NetPreview):
            raise AvkitError("consensus re-ranking needs a trained preview with class scores (--preview RUN)")
        if isinstance(self.preview, NetPreview) and self.preview.class_names and \
                len(self.preview.class_names) != len(self.heavy.class_names):
            raise AvkitError(f"the preview knows {len(self.preview.class_names)} classes, the classifier "
                             f"{len(self.heavy.class_names)}")

    def candidates(self, duration: float) -> list[ClipWindow]:
        return candidate_windows(duration, self.heavy.num_frames, self.heavy.fps, self.stride)

    def score(self, path: str | Path, windows: Sequence[ClipWindow], policy: str
              ) -> tuple[PreviewResult, np.ndarray | None, float, str]:
        """Preview (and, for ``learned``, sampler) scores of every candidate: ``(preview result,
        scores or None, sampler GFLOPs, preview name)``."""
        if policy == "learned":
            if self.sampler is None:
                raise AvkitError("policy 'learned' needs a learned sampler: pass --sampler RUN "
                                 "(trained with recipes/longvideo_sampler.yaml)")
            result = self.sampler.preview.run(path, windows)
            if not result.ok:
                return result, None, 0.0, self.sampler.preview.name
            scores, gflops = self.sampler.score(result)
            return result, scores, gflops, f"learned sampler ({self.sampler.run_dir}) on the {self.sampler.preview.name}"
        result = self.preview.run(path, windows)
        if self.consensus and result.ok and result.saliency is not None and result.class_probs is not None:
            from avkit.apps.clip_selection.policies import consensus_scores

            return result, consensus_scores(result.saliency, result.class_probs), 0.0, \
                f"{self.preview.name}, consensus re-ranking"
        return result, result.saliency, 0.0, self.preview.name

    @torch.no_grad()
    def select(self, video: str | Path, budget: int = 3, policy: str = "audio", *, weighted: bool = False,
               seed: int = 0, top: int = 5, on_stage: Callable[[str], None] | None = None) -> Selection:
        """Choose at most ``budget`` clips of ``video`` with ``policy``, classify them, and account for it."""
        from avkit.apps.clip_selection.data import find_truth
        from avkit.io import VideoReader

        if policy not in POLICIES:
            raise AvkitError(f"unknown policy {policy!r}; choose from {', '.join(POLICIES)}")
        budget = check_budget(budget)
        if top < 1:
            raise AvkitError(f"top must be >= 1, got {top}")
        path = Path(video)
        if not path.exists():
            raise MediaError(path, "no such file")
        stage = on_stage or (lambda name: None)
        heavy = self.heavy
        t_start = time.perf_counter()
        with VideoReader(path) as reader:
            if reader.video is None:
                raise MediaError(path, "no video stream")
            duration = reader.duration
            if duration is None or not duration > 0 or not math.isfinite(duration):
                raise MediaError(path, "unknown or zero duration")
            windows = self.candidates(duration)
            preview_result, scores, sampler_gflops, preview_name = None, None, 0.0, None
            fallback = None
            t0 = time.perf_counter()
            if policy in GUIDED:
                stage(f"preview of {len(windows)} candidate clips")
                preview_result, scores, sampler_gflops, preview_name = self.score(path, windows, policy)
                fallback = preview_result.reason
            t_preview = time.perf_counter() - t0
            choice = choose(policy, windows, budget, duration=duration, num_frames=heavy.num_frames, fps=heavy.fps,
                            scores=scores, min_gap=self.min_gap, fallback=fallback, rng=seed)
            stage(f"heavy model on {len(choice.windows)} clip(s)")
            t1 = time.perf_counter()
            batch = heavy.batch(reader, choice.windows)
            t_read = time.perf_counter() - t1
            t2 = time.perf_counter()
            probs = heavy.probs(batch)
            t_heavy = time.perf_counter() - t2
        weights = None
        if weighted and choice.scores is not None:  # saliency in [0, 1]; sampler ranking scores through a sigmoid
            weights = 1 / (1 + np.exp(-choice.scores)) if choice.used == "learned" else choice.scores
        video_probs = aggregate(probs, weights)
        total_seconds = time.perf_counter() - t_start

        heavy_gflops = heavy.gflops(batch)
        per_clip = heavy.gflops(batch, clips=1)
        preview_gflops = preview_result.gflops if preview_result is not None else 0.0
        dense = heavy.gflops(batch, clips=DENSE_CLIPS)
        total = preview_gflops + sampler_gflops + heavy_gflops
        gflops = {"preview": preview_gflops, "sampler": sampler_gflops, "heavy": heavy_gflops,
                  "heavy_per_clip": per_clip, "total": total, "dense": dense,
                  "dense_all": per_clip * len(windows), "fraction_of_dense": total / dense if dense else math.nan}
        names = heavy.class_names
        k = min(top, len(names))
        vals, idx = video_probs.topk(k)
        prediction = [{"label": names[i], "index": int(i), "score": float(s)} for s, i in zip(vals.tolist(), idx.tolist())]
        clips = []
        for j, w in enumerate(choice.windows):
            p = probs[j]
            c = int(p.argmax())
            clips.append({"start": round(float(w.start), 4), "end": round(float(min(w.end, duration)), 4),
                          "score": None if choice.scores is None else float(choice.scores[j]),
                          "label": names[c], "prob": float(p[c])})
        sal = preview_result.saliency if preview_result is not None and preview_result.ok else None
        cands = [{"start": round(float(w.start), 4), "end": round(float(min(w.end, duration)), 4),
                  **({"saliency": float(sal[i])} if sal is not None else {}),
                  **({"score": float(scores[i])} if scores is not None and policy == "learned" else {})}
                 for i, w in enumerate(windows)]
        truth = find_truth(path)
        truth_dict = None
        notes = []
        if truth is not None:
            truth_dict = {"label": truth.label, "segments": truth.segments, "distractors": truth.distractors,
                          "correct": prediction[0]["label"] == truth.label}
        elif _trained_on_synthetic(heavy.cfg):
            notes.append(f"the classifier was trained on synthetic data ({heavy.cfg.data.source}): on this video its "
                         "labels mean nothing; the selection, compute and timings still apply")
        if len(choice.windows) < budget and policy not in ("dense", "uniform") and choice.used != "uniform":
            notes.append(f"{len(choice.windows)} of {budget} clips fit at least "
                         f"{self.min_gap if self.min_gap is not None else heavy.clip_seconds:g} s apart (NMS)")
        seconds = {"preview": round(t_preview, 4),
                   "preview_decode": round(preview_result.decode_seconds, 4) if preview_result is not None else 0.0,
                   "heavy_read": round(t_read, 4), "heavy": round(t_heavy, 4), "total": round(total_seconds, 4)}
        return Selection(video=str(path), duration=float(duration), run=heavy.run_dir, policy=policy, used=choice.used,
                         budget=budget, preview=preview_name if preview_result is not None else None,
                         fallback=fallback if choice.used == "uniform" and policy in GUIDED else None,
                         clip_seconds=heavy.clip_seconds, stride=self.stride, candidates=cands, clips=clips,
                         prediction=prediction, probs=[float(x) for x in video_probs], class_names=list(names),
                         weighted=weights is not None, gflops=gflops, seconds=seconds, truth=truth_dict, notes=notes)


def _trained_on_synthetic(cfg: Any) -> bool:
    """Whether the run's training data is an ``avkit generate`` dataset (its manifest rows carry ``meta``)."""
    import json

    source = Path(cfg.data.source or "")
    manifest = source / "manifest.jsonl" if source.is_dir() else source
    for candidate in (manifest, manifest.parent / "manifest.jsonl"):
        try:
            with open(candidate) as f:
                first = f.readline()
            if first.strip() and "meta" in json.loads(first):
                return True
        except (OSError, ValueError):
            continue
    return False


def format_selection(result: Selection) -> str:
    """The human-readable report of ``avkit select``."""
    g = result.gflops
    lines = [f"{result.video}: {result.duration:.1f} s, {len(result.candidates)} candidate clips of "
             f"{result.clip_seconds:g} s every {result.stride:g} s"]
    how = f"policy {result.policy}" + (f" -> {result.used}" if result.used != result.policy else "")
    how += f", budget {result.budget}" + (", saliency-weighted" if result.weighted else "")
    if result.preview:
        how += f"; preview: {result.preview}"
    lines.append(how)
    if result.fallback:
        lines.append(f"fallback: {result.fallback}; sampled uniformly")
    lines.append(f"  {'#':>2}  {'start':>7}  {'end':>7}  {'score':>6}  top label (p)")
    for i, c in enumerate(result.clips, 1):
        score = "-" if c["score"] is None else f"{c['score']:.3f}"
        lines.append(f"  {i:>2}  {c['start']:>7.2f}  {c['end']:>7.2f}  {score:>6}  {c['label']} ({c['prob']:.2f})")
    pred = ", ".join(f"{p['label']} {p['score']:.3f}" for p in result.prediction[:3])
    lines.append(f"prediction: {pred}")
    if result.truth is not None:
        lines.append(f"truth: {result.truth['label']} ({'correct' if result.truth['correct'] else 'wrong'}); "
                     f"action visible in {len(result.truth['segments'])} segment(s)")
    parts = []
    if g["preview"]:
        parts.append(f"preview {g['preview']:.4f}")
    if g["sampler"]:
        parts.append(f"sampler {g['sampler']:.5f}")
    parts.append(f"heavy {len(result.clips)} x {g['heavy_per_clip']:.4f}")
    lines.append(f"compute: {' + '.join(parts)} = {g['total']:.4f} GFLOPs; dense ({DENSE_CLIPS} clips) "
                 f"{g['dense']:.4f} GFLOPs -> {100 * g['fraction_of_dense']:.1f}% of dense; every candidate "
                 f"{g['dense_all']:.4f} GFLOPs")
    s = result.seconds
    lines.append(f"time: preview {s['preview']:.3f} s (decoding {s['preview_decode']:.3f} s), heavy clips read "
                 f"{s['heavy_read']:.3f} s + model {s['heavy']:.3f} s, total {s['total']:.3f} s")
    lines += [f"note: {n}" for n in result.notes]
    return "\n".join(lines)
