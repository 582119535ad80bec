"""``longvideo``: long, mostly uninformative videos with a few short labelled action segments.

The background is a slowly drifting low-contrast texture with a quiet noise bed. Each video has
one action class (its label, drawn from the ``motion`` classes) that happens in a few short
segments (default 2-4 segments of 1-2 s). Each such segment starts with a loud chime and carries
the class's own sound (see ``motion``), so the audio says where to look: this is the data for
audio-guided clip selection. Distractors keep an energy threshold from solving it: a chime and
the sound of another class's action with nothing to see (``sound_only``), and the action happening
once more in silence (``silent_action``, also listed in ``segments`` since it is visible there).
The manifest row's ``segments`` lists where the action is visible; ``meta.segments`` gives each
one's object, colour, sound-event times and caption with times, ``meta.distractors`` both kinds
of distractor.

For temporal action localisation, ``actions`` (empty by default) lists the classes each visible
segment draws its own label from (``motion`` classes and its sound-defined ``still_low`` /
``still_high``, which look alike and differ only in sound): a video then holds several actions of
different classes, each segment's label in ``segments``; silent repeats draw from the visually
defined ones. With ``actions`` empty, nothing changes (same draws, same files).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from avkit.data.synthetic import motion
from avkit.data.synthetic.common import (
    ClassInfo,
    Generator,
    SyntheticClip,
    chime,
    composite,
    noise_floor,
    place,
    smooth_background,
    to_uint8,
)
from avkit.errors import AvkitError


@dataclass
class LongVideoConfig:
    """Parameters of the ``longvideo`` kind."""

    size: int = 32
    fps: float = 8.0
    duration: float = 40.0
    sample_rate: int = 16000
    segments: tuple[int, int] = (2, 4)  # how many sounded action segments per video (inclusive)
    segment_duration: tuple[float, float] = (1.0, 2.0)  # s
    silent_actions: tuple[int, int] = (1, 1)  # extra segments where the action happens with no sound
    sound_distractors: tuple[int, int] = (1, 2)  # a chime + another class's sound, nothing to see
    # Their chime level, relative to onset_level: louder, since real onsets also carry the class sound.
    distractor_level: tuple[float, float] = (1.1, 1.3)
    drift: float = 1.5  # background drift, px per second
    background_level: float = 0.015  # RMS of the background noise bed
    onset_level: float = 0.8  # peak of the onset chime
    speed: tuple[float, float] = (0.4, 0.7)  # as in motion
    shapes: tuple[str, ...] = tuple(motion.SHAPES)  # as in motion
    spin: tuple[float, float] = (100.0, 160.0)
    object_size: tuple[float, float] = (0.45, 0.6)
    sound_level: float = 0.5
    actions: tuple[str, ...] = ()  # localisation: each visible segment's class drawn from these (module docstring)


def check(cfg: LongVideoConfig) -> None:
    """One line per bad parameter (they come from the command line too), before anything is rendered."""
    if cfg.actions:
        known = motion.CLASSES + motion.SOUND_CLASSES
        unknown = [a for a in cfg.actions if a not in known]
        if unknown:
            raise AvkitError(f"unknown action(s) {', '.join(unknown)}; choose from {', '.join(known)}")
        if len(set(cfg.actions)) != len(cfg.actions) or len(cfg.actions) < 2:
            # sound-only distractors play another action's sound, so there must be another
            raise AvkitError(f"actions must name at least two different classes, got {' '.join(cfg.actions)}")
    lo, hi = cfg.segments
    if not 0 <= lo <= hi:
        raise AvkitError(f"segments must be 0 <= MIN <= MAX, got {lo} {hi}")
    shortest, longest = cfg.segment_duration
    if not 0 < shortest <= longest:
        raise AvkitError(f"segment duration must be 0 < MIN <= MAX seconds, got {shortest:g} {longest:g}")


def classes(cfg: LongVideoConfig) -> list[ClassInfo]:
    check(cfg)
    if cfg.actions:
        return [ClassInfo(a, "sound" if a in motion.SOUND_CLASSES else "action", motion.DESCRIPTIONS[a])
                for a in cfg.actions]
    return [ClassInfo(c.name, "action", c.description) for c in motion.classes(motion.MotionConfig())]


def _event_times(cfg: LongVideoConfig, count: int, rng: np.random.Generator) -> list[tuple[float, float]]:
    """``count`` non-overlapping events, one per equal slot of the video, at least 0.5 s from slot edges."""
    slot = cfg.duration / count
    out = []
    for k in range(count):
        length = min(rng.uniform(*cfg.segment_duration), max(slot - 1.0, 0.1))
        start = k * slot + rng.uniform(0.5, max(slot - length - 0.5, 0.5))
        out.append((start, min(start + length, cfg.duration)))
    return out


def _count(rng: np.random.Generator, bounds: tuple[int, int]) -> int:
    return int(rng.integers(bounds[0], bounds[1] + 1))


def _segment_label(cfg: LongVideoConfig, kind: str, rng: np.random.Generator) -> str:
    """A visible segment's class with ``cfg.actions``: any of them, or a visually defined one in silence."""
    pool = list(cfg.actions)
    if kind == "silent_action":
        pool = [a for a in pool if a not in motion.SOUND_CLASSES] or pool
    return pool[int(rng.integers(len(pool)))]


def render(cfg: LongVideoConfig, label: str, rng: np.random.Generator) -> SyntheticClip:
    """One long video whose action ``label`` happens in a few short segments, among distractors."""
    if label not in (cfg.actions or motion.CLASSES):
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

    kinds = (["action"] * _count(rng, cfg.segments) + ["silent_action"] * _count(rng, cfg.silent_actions)
             + ["sound_only"] * _count(rng, cfg.sound_distractors))
    kinds = [kinds[i] for i in rng.permutation(len(kinds))]
    obj_cfg = motion.MotionConfig(size=cfg.size, fps=cfg.fps, sample_rate=sr, speed=cfg.speed, spin=cfg.spin,
                                  object_size=cfg.object_size, sound_level=cfg.sound_level, shapes=tuple(cfg.shapes))
    bell = chime(sr)
    segments: list[dict[str, Any]] = []
    details: list[dict[str, Any]] = []
    distractors: list[dict[str, Any]] = []
    captions: list[str] = []
    for kind, (start, end) in zip(kinds, _event_times(cfg, len(kinds), rng)):
        inside = np.nonzero((times >= start) & (times < end))[0]
        length = end - start
        backdrop = frames[min(int(np.ceil(start * cfg.fps)), num_frames - 1)]  # colours contrast with it
        if kind == "sound_only":
            # The chime and the sound of another class's action, with the action itself not drawn.
            others = [c for c in (cfg.actions or motion.CLASSES) if c != label]
            other = others[int(rng.integers(len(others)))]
            track = motion.draw_object(obj_cfg, other, rng, times[inside] - start, backdrop, length)
            place(audio, motion.object_sound(obj_cfg, other, rng, track.events, length), start, sr)
            place(audio, bell, start, sr, gain=rng.uniform(*cfg.distractor_level) * cfg.onset_level)
            distractors.append({"kind": kind, "start": start, "end": end, "sound_of": other,
                                "sound_events": [start, *(start + track.events).tolist()]})
            captions.append(f"{start:.1f}-{end:.1f} s: a chime and the sound of {other.replace('_', ' ')}, "
                            f"with nothing to see.")
            continue
        seg_label = _segment_label(cfg, kind, rng) if cfg.actions else label
        track = motion.draw_object(obj_cfg, seg_label, rng, times[inside] - start, backdrop, length)
        frames[inside] = composite(frames[inside], track.alpha, track.fill)
        when = f"{start:.1f}-{end:.1f} s"
        if kind == "action":
            place(audio, motion.object_sound(obj_cfg, seg_label, rng, track.events, length), start, sr)
            place(audio, bell, start, sr, gain=cfg.onset_level)
            events = [start, *(start + track.events).tolist()]
            caption = f"{when}: a chime, then {track.visual}, {track.sound}."
        else:
            events = []
            caption = f"{when}: {track.visual}, in silence."
            distractors.append({"kind": kind, "start": start, "end": end, "sound_events": []})
        segments.append({"label": seg_label, "start": start, "end": end})
        details.append({"label": seg_label, "start": start, "end": end, "sound": kind == "action", "shape": track.meta["shape"],
                        "colour": track.meta["colour"], "object": track.meta, "sound_events": events,
                        "caption": caption})
        captions.append(caption)

    caption = f"A {cfg.duration:.0f} s video of a slowly drifting texture. " + " ".join(captions)
    meta = {"num_frames": num_frames, "num_segments": len(segments), "segments": details,
            "distractors": distractors}
    return SyntheticClip(to_uint8(frames), audio, label, caption, segments, meta)


GENERATOR = Generator("longvideo", "long drifting-background videos with a few short action segments and distractors",
                      LongVideoConfig, classes, render)
