"""``longvideo``: long, mostly uninformative videos with a few short labelled action segments.

The background is a slowly drifting low-contrast texture with a quiet noise bed. Each video has
one action class (its label, drawn from the ``motion`` classes) that happens in a few short
segments (default 2-4 segments of 1-2 s). Each segment starts with a loud chime and carries the
class's own sound (see ``motion``), so the audio says where to look: this is the data for
audio-guided clip selection. Segment times are in the manifest row's ``segments``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avkit.data.synthetic import motion
from avkit.data.synthetic.common import (
    ClassInfo, Generator, SyntheticClip, chime, composite, noise_floor, place, smooth_background, to_uint8,
)


@dataclass
class LongVideoConfig:
    """Parameters of the ``longvideo`` kind."""

    size: int = 32
    fps: float = 8.0
    duration: float = 40.0
    sample_rate: int = 16000
    segments: tuple[int, int] = (2, 4)  # how many action segments per video (inclusive)
    segment_duration: tuple[float, float] = (1.0, 2.0)  # s
    drift: float = 1.5  # background drift, px per second
    background_level: float = 0.015  # RMS of the background noise bed
    onset_level: float = 0.8  # peak of the onset chime
    speed: tuple[float, float] = (0.4, 0.7)  # as in motion
    spin: tuple[float, float] = (100.0, 160.0)
    object_size: tuple[float, float] = (0.45, 0.6)
    sound_level: float = 0.5


def classes(cfg: LongVideoConfig) -> list[ClassInfo]:
    return [ClassInfo(c.name, "action", c.description) for c in motion.classes(motion.MotionConfig())]


def _segment_times(cfg: LongVideoConfig, rng: np.random.Generator) -> list[tuple[float, float]]:
    """Non-overlapping segments, one per equal slot of the video, at least 0.5 s from slot edges."""
    lo, hi = cfg.segments
    count = int(rng.integers(lo, hi + 1))
    slot = cfg.duration / count
    out = []
    for k in range(count):
        length = min(rng.uniform(*cfg.segment_duration), max(slot - 1.0, 0.1))
        start = k * slot + rng.uniform(0.5, max(slot - length - 0.5, 0.5))
        out.append((start, min(start + length, cfg.duration)))
    return out


def render(cfg: LongVideoConfig, label: str, rng: np.random.Generator) -> SyntheticClip:
    """One long video whose action ``label`` happens in a few short segments."""
    if label not in motion.CLASSES:
        raise ValueError(f"unknown action {label!r}; expected one of {motion.CLASSES}")
    sr = cfg.sample_rate
    num_frames = max(1, int(round(cfg.duration * cfg.fps)))
    times = np.arange(num_frames) / cfg.fps
    frames = smooth_background(rng, cfg.size, times, contrast=18.0, drift=cfg.drift)
    num_samples = int(round(cfg.duration * sr))
    # A slowly breathing noise bed (0.1-0.3 Hz) so quiet parts are not silent or stationary.
    t = np.arange(num_samples) / sr
    swell = 1 + 0.4 * np.sin(2 * np.pi * rng.uniform(0.1, 0.3) * t + rng.uniform(0, 2 * np.pi))
    audio = noise_floor(rng, num_samples, cfg.background_level) * swell.astype(np.float32)

    obj_cfg = motion.MotionConfig(size=cfg.size, fps=cfg.fps, sample_rate=sr, speed=cfg.speed, spin=cfg.spin,
                                  object_size=cfg.object_size, sound_level=cfg.sound_level)
    segments, captions = [], []
    bell = chime(sr)
    for start, end in _segment_times(cfg, rng):
        inside = np.nonzero((times >= start) & (times < end))[0]
        length = end - start
        if len(inside):
            bg_mean = frames[inside[0]].mean(axis=(0, 1))
            track = motion.draw_object(obj_cfg, label, rng, times[inside] - start, bg_mean, length)
            frames[inside] = composite(frames[inside], track.alpha, track.fill)
            events = track.events
            captions.append(track.caption)
        else:
            events = np.zeros(0)
        sound = motion.object_sound(obj_cfg, label, rng, events, length)
        place(audio, sound, start, sr)
        place(audio, bell, start, sr, gain=cfg.onset_level)
        segments.append({"label": label, "start": start, "end": end})

    starts = ", ".join(f"{s['start']:.1f} s" for s in segments)
    what = captions[0].rstrip(".") if captions else f"a {label} action"
    caption = (f"A {cfg.duration:.0f} s video of a slowly drifting texture. {len(segments)} times "
               f"(at {starts}) a chime sounds and {what[0].lower() + what[1:]}, for 1-2 s.")
    meta = {"num_frames": num_frames, "num_segments": len(segments)}
    return SyntheticClip(to_uint8(frames), audio, label, caption, segments, meta)


GENERATOR = Generator("longvideo", "long drifting-background videos with a few short action segments",
                      LongVideoConfig, classes, render)
