"""``InMemoryVideo``: a whole file decoded once, read like a :class:`~avkit.io.VideoReader`.

Training on a small dataset for many epochs decodes the same files again and again; at
quickstart sizes (32x32 frames) opening and decoding a file costs several times more than a
training step of a tiny model. ``VideoDataset(cache=True)`` keeps one ``InMemoryVideo`` per
file instead, so every epoch after the first only slices arrays.

``frames_at`` picks frames by the same rule as ``VideoReader.frames_at`` (the last frame with
``pts <= t``, the first frame for times before it), so a cached dataset yields the same frames.
Audio is one mono waveform at a fixed sample rate, sliced by sample index.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from avkit.errors import AvkitError, MediaError
from avkit.io.read import _EPS, Size, VideoReader


class InMemoryVideo:
    """Every frame of a file (resized to ``size`` as ``VideoReader`` does) and its mono audio."""

    def __init__(self, frames: torch.Tensor, timestamps: torch.Tensor, audio: torch.Tensor | None,
                 sample_rate: int, duration: float, path: str, size: Size = None) -> None:
        if frames.shape[0] == 0:
            raise MediaError(path, "no decodable video frames")
        self.frames = frames  # uint8 [N, H, W, 3]
        self.timestamps = timestamps.numpy()  # float64 [N], increasing
        self.audio = audio  # float32 [S] from t = 0, or None: ``reader.audio is None`` as for VideoReader
        self.sample_rate = sample_rate
        self.duration = duration
        self.path = path
        self.size = size

    @classmethod
    def decode(cls, path: str, *, size: Size = None, sample_rate: int = 16000, audio: bool = True
               ) -> InMemoryVideo:
        """Decode all of ``path``: frames at ``size`` (as ``frames_at(size=...)``), audio at ``sample_rate``."""
        with VideoReader(path) as reader:
            duration = reader.duration
            if duration is None or not duration > 0:
                raise MediaError(path, "unknown or zero video duration")
            frames, stamps = reader.frames_between(0.0, None, size=size)
            wave = reader.read_audio(0.0, duration, sample_rate=sample_rate) if audio and reader.audio else None
        return cls(frames, stamps, wave, sample_rate, duration, str(path), size)

    # The context-manager protocol lets the dataset use it where it would open a VideoReader.
    def __enter__(self) -> InMemoryVideo:
        return self

    def __exit__(self, *exc) -> None:
        pass

    def frames_at(self, times: Sequence[float] | np.ndarray, size: Size = None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        """The frame displayed at each time (s) and its timestamp; ``size`` must match the decode."""
        if size != self.size:
            raise AvkitError(f"{self.path}: decoded in memory at size {self.size}, asked for {size}")
        times = np.asarray(times, dtype=np.float64).reshape(-1)
        idx = np.searchsorted(self.timestamps, times + _EPS, side="right") - 1
        idx = np.clip(idx, 0, len(self.timestamps) - 1)
        return self.frames[torch.from_numpy(idx)], torch.from_numpy(self.timestamps[idx])

    clips_at = VideoReader.clips_at  # the clips' times through frames_at, split per clip

    def read_audio(self, start: float, end: float, *, sample_rate: int) -> torch.Tensor:
        """Mono waveform of ``[start, end)``: ``round((end - start) * sample_rate)`` samples, zero-padded."""
        if self.audio is None:
            raise MediaError(self.path, "no audio stream")
        if sample_rate != self.sample_rate:
            raise AvkitError(f"{self.path}: audio held at {self.sample_rate} Hz, asked for {sample_rate} Hz")
        want = max(0, int(round((end - start) * sample_rate)))
        first = int(round(start * sample_rate))
        lo, hi = max(0, first), max(0, min(first + want, self.audio.numel()))
        wave = self.audio[lo:hi]
        before = lo - first
        after = want - before - wave.numel()
        if before or after:
            wave = torch.nn.functional.pad(wave, (before, max(0, after)))
        return wave[:want]
