"""Clip samplers: which timestamps of a video make a clip.

A clip is ``num_frames`` frames at ``fps`` frames per second, so it spans ``num_frames / fps``
seconds. Samplers work on times, not frame indices, so variable-frame-rate files work: the
reader (``avkit.io.read_clip(path, times=window.times)``) returns for each time the frame shown
at that time. All samplers take the video ``duration`` and, optionally, the actual frame
timestamps ``frame_times`` (then the returned times are snapped to the timestamps of the frames
shown, and the usable range starts at the first frame).

Clips longer than the video are padded (the ``pad`` option):

- ``"repeat"``: times past the end are replaced by the last time inside the video, so the last
  frame is repeated (the clip holds still at the end).
- ``"loop"``: times past the end wrap around to the start of the video, which plays again.

Random draws come only from the ``rng`` argument (a ``numpy.random.Generator`` or an int seed),
so a sampler is deterministic for a given generator state.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from avkit.errors import AvkitError

PAD_MODES = ("repeat", "loop")


@dataclass(frozen=True, eq=False)
class ClipWindow:
    """One clip: the half-open span ``[start, end)`` in seconds and its ``times`` (float64 [T]).

    Compared by identity (``times`` is an array); compare ``times`` with numpy when needed.
    """

    start: float
    end: float
    times: np.ndarray

    @property
    def num_frames(self) -> int:
        return int(len(self.times))

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True, eq=False)
class View:
    """One test view: clip ``clip_index`` of the video seen through spatial crop ``crop_index``."""

    clip_index: int
    crop_index: int
    window: ClipWindow


def as_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    """A ``numpy.random.Generator`` from a generator, a seed, or None (fresh entropy)."""
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


def _check(duration: float, num_frames: int, fps: float, pad: str) -> None:
    if not (isinstance(duration, (int, float)) and math.isfinite(duration) and duration > 0):
        raise AvkitError(f"video duration must be a positive number of seconds, got {duration!r}")
    if int(num_frames) != num_frames or num_frames < 1:
        raise AvkitError(f"num_frames must be a positive integer, got {num_frames!r}")
    if not (fps > 0 and math.isfinite(fps)):
        raise AvkitError(f"fps must be positive, got {fps!r}")
    if pad not in PAD_MODES:
        raise AvkitError(f"pad must be one of {PAD_MODES}, got {pad!r}")


def _range(duration: float, frame_times: np.ndarray | None) -> tuple[float, float]:
    """The usable time range ``[t0, t1)`` of the video."""
    if frame_times is None:
        return 0.0, float(duration)
    t0 = float(frame_times[0])
    t1 = max(float(duration), float(frame_times[-1]) + 1e-9)
    return t0, t1


def _as_frame_times(frame_times: Sequence[float] | np.ndarray | None) -> np.ndarray | None:
    if frame_times is None:
        return None
    ft = np.sort(np.asarray(frame_times, dtype=np.float64).ravel())
    if ft.size == 0:
        raise AvkitError("frame_times is empty: the video has no frames")
    return ft


def clip_at(
    start: float,
    duration: float,
    num_frames: int,
    fps: float,
    *,
    frame_times: Sequence[float] | np.ndarray | None = None,
    pad: str = "repeat",
) -> ClipWindow:
    """The clip of ``num_frames`` at ``fps`` starting at ``start`` seconds (padded past the end)."""
    _check(duration, num_frames, fps, pad)
    ft = _as_frame_times(frame_times)
    return _window(float(start), duration, num_frames, fps, ft, pad)


def _window(start: float, duration: float, num_frames: int, fps: float,
            ft: np.ndarray | None, pad: str) -> ClipWindow:
    t0, t1 = _range(duration, ft)
    times = start + np.arange(num_frames, dtype=np.float64) / fps
    past = times >= t1
    if past.any():
        if pad == "loop":
            times[past] = t0 + np.mod(times[past] - t0, t1 - t0)
        else:
            inside = times[~past]
            times[past] = inside[-1] if inside.size else max(t0, np.nextafter(t1, t0))
    if ft is not None:
        # Snap to the timestamp of the frame shown at each time (the last frame with pts <= t).
        idx = np.clip(np.searchsorted(ft, times + 1e-9, side="right") - 1, 0, ft.size - 1)
        times = ft[idx]
    return ClipWindow(start=start, end=start + num_frames / fps, times=times)


def random_clip(
    duration: float,
    num_frames: int,
    fps: float,
    rng: np.random.Generator | int | None = None,
    *,
    frame_times: Sequence[float] | np.ndarray | None = None,
    pad: str = "repeat",
) -> ClipWindow:
    """A clip starting uniformly at random so it lies inside the video (training).

    When the clip is longer than the video it starts at the beginning and is padded.
    """
    _check(duration, num_frames, fps, pad)
    ft = _as_frame_times(frame_times)
    t0, t1 = _range(duration, ft)
    slack = max(0.0, (t1 - t0) - num_frames / fps)
    start = t0 + float(as_rng(rng).uniform(0.0, slack)) if slack > 0 else t0
    return _window(start, duration, num_frames, fps, ft, pad)


def uniform_clips(
    duration: float,
    num_frames: int,
    fps: float,
    num_clips: int = 10,
    *,
    frame_times: Sequence[float] | np.ndarray | None = None,
    pad: str = "repeat",
) -> list[ClipWindow]:
    """``num_clips`` evenly spaced clips (testing; the usual recipe averages 10).

    The first clip starts at the start of the video and the last ends at its end, with equal
    gaps between starts; a single clip is centred. Clips overlap when the video is short and
    all start at the beginning (padded) when the video is shorter than one clip.
    """
    _check(duration, num_frames, fps, pad)
    if int(num_clips) != num_clips or num_clips < 1:
        raise AvkitError(f"num_clips must be a positive integer, got {num_clips!r}")
    ft = _as_frame_times(frame_times)
    t0, t1 = _range(duration, ft)
    slack = max(0.0, (t1 - t0) - num_frames / fps)
    if num_clips == 1:
        starts = np.array([t0 + slack / 2])
    else:
        starts = t0 + np.linspace(0.0, slack, num_clips)
    return [_window(float(s), duration, num_frames, fps, ft, pad) for s in starts]


def sliding_windows(
    duration: float,
    num_frames: int,
    fps: float,
    stride: float | None = None,
    *,
    frame_times: Sequence[float] | np.ndarray | None = None,
    pad: str = "repeat",
    drop_last: bool = False,
) -> list[ClipWindow]:
    """Clips starting every ``stride`` seconds (default: one clip length, no overlap).

    Full windows come first; if they leave a tail of the video uncovered, one more window
    starts at the next stride and is padded, unless ``drop_last``. A video shorter than one
    clip gives a single padded window (even with ``drop_last``, so no video yields nothing).
    """
    _check(duration, num_frames, fps, pad)
    span = num_frames / fps
    stride = span if stride is None else float(stride)
    if not stride > 0:
        raise AvkitError(f"stride must be positive seconds, got {stride!r}")
    ft = _as_frame_times(frame_times)
    t0, t1 = _range(duration, ft)
    eps = 1e-9
    count = int(math.floor((t1 - t0 - span) / stride + eps)) + 1 if t1 - t0 >= span - eps else 0
    starts = [t0 + k * stride for k in range(count)]
    if not starts:
        starts = [t0]
    elif starts[-1] + span < t1 - eps and not drop_last:
        starts.append(starts[-1] + stride)
    return [_window(float(s), duration, num_frames, fps, ft, pad) for s in starts]


def multi_view(
    duration: float,
    num_frames: int,
    fps: float,
    num_clips: int = 10,
    num_crops: int = 3,
    *,
    frame_times: Sequence[float] | np.ndarray | None = None,
    pad: str = "repeat",
) -> list[View]:
    """The multi-view test set: ``num_clips`` uniform clips x ``num_crops`` spatial crops.

    Views are clip-major (all crops of clip 0, then clip 1, ...); the crop index selects one
    output of a multi-crop transform such as :class:`avkit.data.transforms.ThreeCrop`.
    """
    if int(num_crops) != num_crops or num_crops < 1:
        raise AvkitError(f"num_crops must be a positive integer, got {num_crops!r}")
    clips = uniform_clips(duration, num_frames, fps, num_clips, frame_times=frame_times, pad=pad)
    return [View(i, j, w) for i, w in enumerate(clips) for j in range(num_crops)]
