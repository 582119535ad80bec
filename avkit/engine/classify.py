"""Label one video file with a trained run: ``classify(video, run_dir) -> [{"label", "score"}, ...]``.

The video is read with ``avkit.io`` at ``clips`` uniformly spaced clips (the run's frame count,
fps and size), each centre-cropped like validation clips; the class probabilities (softmax)
are averaged over the clips.

A file without an audio stream, for a run that uses sound, follows the run's ``data.missing_audio``
(or the ``missing_audio`` given): ``"zeros"`` classifies it with the sound marked absent
(``has_audio=False``: the model decides from the picture) and says so in :class:`Classification`'s
``note``; ``"error"`` and ``"drop"`` refuse it with the way to go on.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from avkit.data.sampling import ClipWindow
from avkit.engine.build import clip_transform, short_side_of
from avkit.engine.config import Config, DataConfig
from avkit.engine.evaluate import load_run
from avkit.engine.step import autocast_context, forward_batch, to_device
from avkit.errors import AvkitError, MediaError


def read_views(path: str | Path, cfg: Config, clips: int) -> dict[str, torch.Tensor]:
    """A batch of ``clips`` centre-cropped clips of ``path`` the way ``cfg``'s validation sees them
    (:func:`~avkit.data.batch.clip_batch`): ``video [clips, 3, T, H, W]`` plus ``audio [clips, S]`` /
    ``spectrogram`` (sound centred on each clip, silence for a file without sound) when the run uses sound."""
    from avkit.data.sampling import uniform_clips
    from avkit.io import probe
    from avkit.io.read import VideoReader

    path = Path(path)
    info = probe(path)
    if info.video_index is None:
        raise MediaError(path, "no video stream")
    duration = info.duration
    if not duration or duration <= 0:
        raise MediaError(path, "unknown or zero duration")
    windows = uniform_clips(duration, cfg.data.num_frames, cfg.data.fps, clips)
    with VideoReader(path) as reader:
        return window_batch(reader, windows, cfg.data)


def window_batch(reader: Any, windows: Sequence[ClipWindow], data: DataConfig) -> dict[str, torch.Tensor]:
    """The model batch of ``windows`` of an open ``reader`` as a run with ``data`` validates
    (:func:`~avkit.data.batch.clip_batch`: centre crop, the run's sound centred on each window)."""
    from avkit.data.batch import clip_batch

    return clip_batch(reader, windows, num_frames=data.num_frames, size=short_side_of(data, 1),
                      transform=clip_transform(data, train=False, num_crops=1), audio=data.audio,
                      spectrogram=data.spectrogram, sample_rate=data.sample_rate,
                      audio_seconds=data.num_frames / data.fps)


@dataclass
class Classification:
    """What :func:`classify_video` found: the labels, best first, and whether the file had sound."""

    labels: list[dict[str, Any]]  # {"label", "index", "score"}
    has_audio: bool | None  # None: the run does not use sound
    note: str = ""  # what was done about a missing sound ("" when nothing was)


@torch.no_grad()
def classify_video(video: str | Path, run_dir: str | Path, top: int = 5, clips: int | None = None, *,
                   checkpoint: str = "best", device: str = "auto", missing_audio: str | None = None,
                   model: tuple[nn.Module, Config, list[str]] | None = None) -> Classification:
    """The ``top`` labels of ``video`` with their probabilities, and what was done about its sound.

    ``clips`` defaults to the recipe's ``data.test_clips``, ``missing_audio`` to its
    ``data.missing_audio`` (see the module docstring). Pass ``model=load_run(run_dir)`` to classify
    many files without reloading the weights.
    """
    net, cfg, names = model if model is not None else load_run(run_dir, checkpoint, device)
    clips = cfg.data.test_clips if clips is None else int(clips)
    if clips < 1 or top < 1:
        raise AvkitError(f"clips and top must be >= 1, got clips={clips}, top={top}")
    policy = missing_audio or cfg.data.missing_audio
    views = read_views(video, cfg, clips)
    has_audio = bool(views["has_audio"].all()) if "has_audio" in views else None
    note = ""
    if has_audio is False:
        if policy != "zeros":
            raise AvkitError(f"{video}: no audio stream, and run {run_dir} uses sound (missing audio: {policy}); "
                             f"--missing-audio zeros classifies it with the sound marked absent")
        note = "no audio stream: classified with the sound marked absent (the model decides from the picture)"
    dev = next(net.parameters()).device
    batch = to_device(views, dev)
    with autocast_context(dev, cfg.train.precision):
        logits = forward_batch(net, batch).float()
    probs = logits.softmax(dim=-1).mean(dim=0).cpu()
    scores, idx = probs.topk(min(top, probs.numel()))
    labels = [{"label": names[i], "index": int(i), "score": float(s)} for s, i in zip(scores.tolist(), idx.tolist())]
    return Classification(labels, has_audio, note)


def classify(video: str | Path, run_dir: str | Path, top: int = 5, clips: int | None = None, *,
             checkpoint: str = "best", device: str = "auto", model: tuple[nn.Module, Config, list[str]] | None = None,
             ) -> list[dict[str, Any]]:
    """The ``top`` labels of ``video`` with their probabilities, best first (:func:`classify_video`'s labels)."""
    return classify_video(video, run_dir, top, clips, checkpoint=checkpoint, device=device, model=model).labels
