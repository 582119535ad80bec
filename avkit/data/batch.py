"""Clip windows of one open video -> the batch a model takes: :func:`clip_batch`.

Training items, evaluation views, ``avkit classify``, clip selection and the captioner all turn
windows (:class:`~avkit.data.sampling.ClipWindow`) into ``video [K, 3, T, H, W]`` plus, for runs
that use sound, ``audio [K, S]`` and ``spectrogram [K, 1, F, T']``. This is the one place that does it.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from avkit.data.sampling import ClipWindow
from avkit.errors import AvkitError


def window_audio(source: Any, window: ClipWindow, seconds: float, sample_rate: int) -> torch.Tensor:
    """``float32 [round(seconds * sample_rate)]`` of sound centred on ``window`` (zero-padded at the end)."""
    length = int(round(seconds * sample_rate))
    start = max(0.0, (window.start + window.end) / 2 - seconds / 2)
    wave = torch.as_tensor(source.read_audio(start, start + length / sample_rate, sample_rate=sample_rate),
                           dtype=torch.float32)[:length]
    return torch.nn.functional.pad(wave, (0, length - wave.shape[0]))


def clip_batch(source: Any, windows: Sequence[ClipWindow], *, num_frames: int, size: int,
               transform: Callable[[torch.Tensor], torch.Tensor], audio: bool = False, spectrogram: bool = False,
               sample_rate: int = 16000, audio_seconds: float | None = None,
               audio_transform: Callable[[torch.Tensor], torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """The model batch of ``windows`` read from ``source`` (an open ``VideoReader`` or ``InMemoryVideo``).

    Frames are decoded once for all windows at short side ``size`` (``source.clips_at``: one forward pass,
    each frame decoded at most once) and ``transform`` turns each
    clip ``uint8 [T, H, W, 3]`` into ``[3, T, H, W]`` (or ``[crops, 3, T, H, W]``, concatenated).
    With ``audio`` / ``spectrogram``, each window gets ``audio_seconds`` (default: the window's
    length) of sound centred on it; a video without sound gives zeros, and ``has_audio`` in the
    batch says so (``bool [K]``), so callers can report or refuse it.
    """
    if not windows:
        raise AvkitError("no clips to read")
    if any(len(w.times) != num_frames for w in windows):
        raise AvkitError(f"clip windows of {sorted({len(w.times) for w in windows})} frames, expected {num_frames}")
    frames, _ = source.clips_at([w.times for w in windows], size=size)  # one pass over the file for all clips
    views = [transform(c) for c in frames]
    if views[0].ndim == 5:  # [crops, 3, T, H, W] per clip
        video = torch.cat(views)
    else:  # a training item's single clip costs no copy
        video = views[0].unsqueeze(0) if len(views) == 1 else torch.stack(views)
    batch: dict[str, torch.Tensor] = {"video": video}
    if not (audio or spectrogram):
        return batch
    has_audio = source.audio is not None
    waves = []
    for w in windows:
        seconds = audio_seconds if audio_seconds is not None else w.end - w.start
        if not has_audio:
            waves.append(torch.zeros(int(round(seconds * sample_rate)), dtype=torch.float32))
            continue
        wave = window_audio(source, w, seconds, sample_rate)
        waves.append(audio_transform(wave) if audio_transform is not None else wave)
    wave = torch.stack(waves)
    if audio:
        batch["audio"] = wave
    if spectrogram:
        from avkit.data.audio_features import LogMel

        mel = LogMel(sample_rate=sample_rate)
        batch["spectrogram"] = torch.stack([mel(x) for x in wave])
    batch["has_audio"] = torch.full((len(windows),), has_audio, dtype=torch.bool)
    return batch
