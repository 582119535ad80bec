"""``instruments``: solo clips of synthetic instruments, each with its own sprite and timbre.

Every instrument has a fixed sprite (shape + colour) and a fixed timbre (harmonic profile,
envelope, pitch range). The sprite pulses (grows) and bobs (rises) with the amplitude envelope
of its own notes, so the picture moves in time with the sound. Clips are solo, for
mix-and-separate training: mix two clips' audio and separate it using each clip's frames.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from avkit.data.synthetic.common import (
    ClassInfo, Generator, SyntheticClip, composite, coverage, noise_floor, smooth_background, to_uint8,
)


@dataclass(frozen=True)
class Instrument:
    name: str
    shape: str
    colour: tuple[int, int, int]
    colour_name: str
    partials: tuple[tuple[float, float], ...]  # (frequency ratio, amplitude)
    pitch: tuple[float, float]  # Hz range of the fundamental
    attack: float  # s
    decay: float  # s: exponential decay time constant while held (inf = sustained)
    release: float  # s
    note_length: tuple[float, float]  # s
    vibrato: float = 0.0  # relative depth at 5.5 Hz
    noise: float = 0.0  # breath / strike noise, relative to the tone
    pitch_drop: float = 0.0  # drum: relative pitch drop over the first 50 ms
    description: str = ""


def _harmonics(amps: list[float]) -> tuple[tuple[float, float], ...]:
    return tuple((float(h), a) for h, a in enumerate(amps, start=1) if a)


INSTRUMENTS: tuple[Instrument, ...] = (
    Instrument("flute", "ellipse", (120, 200, 255), "light blue", _harmonics([1, 0.2, 0.06]),
               (523.0, 1047.0), 0.06, np.inf, 0.08, (0.3, 0.6), vibrato=0.006, noise=0.04,
               description="light blue ellipse; almost pure tone, soft attack, C5-C6"),
    Instrument("clarinet", "bar", (30, 150, 60), "green", _harmonics([1, 0, 0.55, 0, 0.35, 0, 0.2, 0, 0.12]),
               (147.0, 392.0), 0.04, np.inf, 0.06, (0.3, 0.6),
               description="green bar; odd harmonics only (hollow), D3-G4"),
    Instrument("violin", "triangle", (240, 130, 30), "orange", _harmonics([1 / h for h in range(1, 13)]),
               (196.0, 784.0), 0.12, np.inf, 0.1, (0.35, 0.7), vibrato=0.012,
               description="orange triangle; sawtooth (all harmonics, bright), slow bowed attack, G3-G5"),
    Instrument("bell", "diamond", (245, 225, 40), "yellow", ((1.0, 1.0), (2.76, 0.6), (5.40, 0.35), (8.93, 0.2)),
               (440.0, 880.0), 0.002, 0.35, 0.05, (0.35, 0.6),
               description="yellow diamond; inharmonic partials, struck then decaying, A4-A5"),
    Instrument("drum", "disc", (220, 40, 40), "red", ((1.0, 1.0), (1.6, 0.3)),
               (70.0, 130.0), 0.001, 0.12, 0.03, (0.2, 0.35), noise=0.5, pitch_drop=0.5,
               description="red disc; low pitched thump with a noisy strike, fast decay"),
)
NAMES = [inst.name for inst in INSTRUMENTS]


@dataclass
class InstrumentsConfig:
    """Parameters of the ``instruments`` kind."""

    size: int = 32
    fps: float = 8.0
    duration: float = 3.0
    sample_rate: int = 16000
    sprite_size: tuple[float, float] = (0.36, 0.46)  # rest size (long side), in frame sizes
    pulse: float = 0.35  # extra size at full loudness (relative)
    bob: float = 0.12  # rise at full loudness, in frame sizes
    peak: float = 0.45  # peak level of a clip, so two mixed clips stay below 1
    gap: tuple[float, float] = (0.0, 0.25)  # silence between notes, s


def classes(cfg: InstrumentsConfig) -> list[ClassInfo]:
    return [ClassInfo(inst.name, "instrument", inst.description) for inst in INSTRUMENTS]


def _note(inst: Instrument, freq: float, length: float, sr: int, rng: np.random.Generator
          ) -> tuple[np.ndarray, np.ndarray]:
    """One note: ``(wave, envelope)`` float32, ``length`` + release seconds long."""
    n = int(round((length + inst.release) * sr))
    t = np.arange(n) / sr
    env = np.minimum(t / inst.attack, 1.0)
    if np.isfinite(inst.decay):
        env = env * np.exp(-np.maximum(t - inst.attack, 0) / inst.decay)
    held = t < length
    if not held.all():
        level = env[held][-1] if held.any() else 0.0
        env = np.where(held, env, level * np.exp(-(t - length) / (inst.release / 4)))
    inst_freq = freq * (1 + inst.vibrato * np.sin(2 * np.pi * 5.5 * t))
    if inst.pitch_drop:
        inst_freq = inst_freq * (1 + inst.pitch_drop * np.exp(-t / 0.05))
    phase = 2 * np.pi * np.cumsum(inst_freq) / sr
    wave = np.zeros(n)
    for ratio, amp in inst.partials:
        if ratio * freq < sr / 2 * 0.95:
            # Higher partials of struck instruments die out faster.
            damp = np.exp(-t * (ratio - 1) * 2.0) if np.isfinite(inst.decay) else 1.0
            wave += amp * damp * np.sin(ratio * phase)
    wave /= sum(a for _, a in inst.partials)
    if inst.noise:
        burst = rng.standard_normal(n) * (np.exp(-t / 0.02) if inst.pitch_drop else 1.0)
        wave += inst.noise * burst
    return (wave * env).astype(np.float32), env.astype(np.float32)


def _pitches(inst: Instrument, rng: np.random.Generator, count: int) -> np.ndarray:
    """A pentatonic line inside the instrument's range."""
    lo, hi = inst.pitch
    steps = np.array([0, 2, 4, 7, 9])
    octaves = int(np.ceil(np.log2(hi / lo)))
    scale = np.array([lo * 2 ** ((12 * o + s) / 12) for o in range(octaves + 1) for s in steps])
    scale = scale[scale <= hi]
    idx = rng.integers(len(scale))
    out = []
    for _ in range(count):
        out.append(scale[idx])
        idx = int(np.clip(idx + rng.integers(-2, 3), 0, len(scale) - 1))
    return np.array(out)


def render(cfg: InstrumentsConfig, label: str, rng: np.random.Generator) -> SyntheticClip:
    """One solo clip of instrument ``label``."""
    if label not in NAMES:
        raise ValueError(f"unknown instrument {label!r}; expected one of {NAMES}")
    inst = INSTRUMENTS[NAMES.index(label)]
    sr, size = cfg.sample_rate, cfg.size
    num_samples = int(round(cfg.duration * sr))
    audio = np.zeros(num_samples, np.float32)
    envelope = np.zeros(num_samples, np.float32)

    onsets, lengths = [], []
    t = rng.uniform(0.0, 0.2)
    while t < cfg.duration - 0.1:
        length = rng.uniform(*inst.note_length)
        onsets.append(t)
        lengths.append(length)
        t += length + rng.uniform(*cfg.gap)
    pitches = _pitches(inst, rng, len(onsets))
    gains = rng.uniform(0.5, 1.0, len(onsets))
    for onset, length, freq, gain in zip(onsets, lengths, pitches, gains):
        wave, env = _note(inst, float(freq), length, sr, rng)
        start = int(round(onset * sr))
        stop = min(start + len(wave), num_samples)
        audio[start:stop] += gain * wave[: stop - start]
        envelope[start:stop] = np.maximum(envelope[start:stop], gain * env[: stop - start])
    scale = cfg.peak / max(float(np.abs(audio).max()), 1e-6)
    audio = audio * scale + noise_floor(rng, num_samples, 0.001)

    # Frame k shows the loudest moment of the audio it covers, [k/fps, (k+1)/fps).
    num_frames = max(1, int(round(cfg.duration * cfg.fps)))
    bounds = np.minimum((np.arange(num_frames + 1) / cfg.fps * sr).round().astype(int), num_samples)
    loud = np.array([envelope[a:b].max() if b > a else 0.0 for a, b in zip(bounds[:-1], bounds[1:])],
                    dtype=np.float32)

    colour = np.clip(np.array(inst.colour, np.float32) + rng.uniform(-12, 12, 3), 0, 255)
    for _ in range(100):  # a background the sprite stands out from
        background = smooth_background(rng, size, np.zeros(1), contrast=10.0)
        if np.linalg.norm(background[0].mean(axis=(0, 1)) - colour) >= 110:
            break
    base = rng.uniform(*cfg.sprite_size) * size
    cx = rng.uniform(0.35, 0.65) * size
    cy0 = rng.uniform(0.4, 0.65) * size
    angle = np.pi / 2 if inst.shape in ("bar", "ellipse", "triangle") else 0.0
    alpha = coverage(inst.shape, size, np.full(num_frames, cx), cy0 - cfg.bob * size * loud,
                     np.full(num_frames, angle), base * (1 + cfg.pulse * loud))
    frames = to_uint8(composite(background, alpha, colour))

    notes = [{"onset": o, "duration": d, "pitch_hz": p, "gain": g}
             for o, d, p, g in zip(onsets, lengths, pitches, gains)]
    segments = [{"label": label, "start": o, "end": min(o + d, cfg.duration)} for o, d in zip(onsets, lengths)]
    caption = (f"A {inst.colour_name} {inst.shape} pulses in time with a solo {label}, "
               f"{len(onsets)} notes between {pitches.min():.0f} and {pitches.max():.0f} Hz.")
    meta: dict[str, Any] = {"shape": inst.shape, "colour": inst.colour_name, "notes": notes,
                            "loudness_per_frame": loud.tolist(), "num_frames": num_frames}
    return SyntheticClip(frames, audio.astype(np.float32), label, caption, segments, meta)


GENERATOR = Generator("instruments", "solo synthetic instruments: a sprite that pulses with its own timbre",
                      InstrumentsConfig, classes, render)
