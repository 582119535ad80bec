"""``instruments``: clips of synthetic instruments, each with its own sprite shape and timbre.

Every instrument has a fixed sprite shape and a fixed timbre (harmonic profile, envelope, pitch
range); the sprite's colour is drawn per clip, so it says nothing about the instrument. The
sprite pulses (grows) and bobs (rises) with the amplitude envelope of its own notes, so the
picture moves in time with the sound. Solo clips are for mix-and-separate training (mix two
clips' audio, separate it using each clip's frames); ``duets`` (a fraction of clips) show two
instruments side by side playing at once, for evaluating separation on real mixtures. Every
clip carries its clean sources as stems (``SyntheticClip.stems``, written as lossless WAVs that
sum exactly to the clip's audio) and each sprite's position, size and box per frame.

The five synthetic timbres are ``SYNTH_INSTRUMENTS`` (``NAMES``). ``INSTRUMENTS`` lists the General
MIDI instruments of the ``gm_instruments`` kind (real sampled sounds) and ``draw`` draws one of
them moving at given note onsets.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from avkit.data.synthetic.common import (
    ClassInfo,
    Generator,
    SyntheticClip,
    article,
    composite,
    coverage,
    half_extent,
    inside_range,
    noise_floor,
    pick_colour,
    smooth_background,
    to_uint8,
)
from avkit.data.synthetic.music import BY_NAME, GM_INSTRUMENTS, Note
from avkit.data.synthetic.sprites import draw_player
from avkit.errors import AvkitError


@dataclass(frozen=True)
class Instrument:
    name: str
    shape: str
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


SYNTH_INSTRUMENTS: tuple[Instrument, ...] = (
    Instrument("flute", "ellipse", _harmonics([1, 0.2, 0.06]),
               (523.0, 1047.0), 0.06, np.inf, 0.08, (0.3, 0.6), vibrato=0.006, noise=0.04,
               description="ellipse; almost pure tone, soft attack, C5-C6"),
    Instrument("clarinet", "bar", _harmonics([1, 0, 0.55, 0, 0.35, 0, 0.2, 0, 0.12]),
               (147.0, 392.0), 0.04, np.inf, 0.06, (0.3, 0.6),
               description="bar; odd harmonics only (hollow), D3-G4"),
    Instrument("violin", "triangle", _harmonics([1 / h for h in range(1, 13)]),
               (196.0, 784.0), 0.12, np.inf, 0.1, (0.35, 0.7), vibrato=0.012,
               description="triangle; sawtooth (all harmonics, bright), slow bowed attack, G3-G5"),
    Instrument("bell", "diamond", ((1.0, 1.0), (2.76, 0.6), (5.40, 0.35), (8.93, 0.2)),
               (440.0, 880.0), 0.002, 0.35, 0.05, (0.35, 0.6),
               description="diamond; inharmonic partials, struck then decaying, A4-A5"),
    Instrument("drum", "disc", ((1.0, 1.0), (1.6, 0.3)),
               (70.0, 130.0), 0.001, 0.12, 0.03, (0.2, 0.35), noise=0.5, pitch_drop=0.5,
               description="disc; low pitched thump with a noisy strike, fast decay"),
)
NAMES = [inst.name for inst in SYNTH_INSTRUMENTS]

# The General MIDI instruments (snake_case names) of the gm_instruments kind; drawn by ``draw``.
INSTRUMENTS: tuple[str, ...] = tuple(inst.name for inst in GM_INSTRUMENTS)


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
    duets: float = 0.0  # fraction of clips that are duets: the clip's instrument and another, side by side
    duet_scale: float = 0.7  # sprite size in a duet, relative to a solo sprite


def classes(cfg: InstrumentsConfig) -> list[ClassInfo]:
    return [ClassInfo(inst.name, "instrument", inst.description) for inst in SYNTH_INSTRUMENTS]


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
    idx = int(rng.integers(len(scale)))
    out = []
    for _ in range(count):
        out.append(scale[idx])
        idx = int(np.clip(idx + rng.integers(-2, 3), 0, len(scale) - 1))
    return np.array(out)


def _line(inst: Instrument, cfg: InstrumentsConfig, rng: np.random.Generator
          ) -> tuple[np.ndarray, np.ndarray, list[dict[str, float]]]:
    """One instrument's melodic line: ``(audio, envelope, notes)``, audio peaking at 1, envelope in [0, 1]."""
    sr = cfg.sample_rate
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
    audio /= max(float(np.abs(audio).max()), 1e-6)
    notes = [{"onset": o, "duration": d, "pitch_hz": float(p), "gain": g}
             for o, d, p, g in zip(onsets, lengths, pitches, gains)]
    return audio, envelope, notes


def _frame_loudness(envelope: np.ndarray, cfg: InstrumentsConfig, num_frames: int) -> np.ndarray:
    """Frame ``k`` gets the loudest moment of the envelope in ``[k/fps, (k+1)/fps)``."""
    sr = cfg.sample_rate
    bounds = np.minimum((np.arange(num_frames + 1) / cfg.fps * sr).round().astype(int), len(envelope))
    return np.array([envelope[a:b].max() if b > a else 0.0 for a, b in zip(bounds[:-1], bounds[1:])],
                    dtype=np.float32)


def _sprite(inst: Instrument, cfg: InstrumentsConfig, rng: np.random.Generator, loud: np.ndarray,
            x_range: tuple[float, float], scale: float) -> dict[str, Any]:
    """Where the sprite is in each frame: it stays wholly inside ``x_range`` and the frame while it
    grows by ``pulse`` and rises by ``bob`` with ``loud``. Returns centres, lengths and boxes (px)."""
    size = cfg.size
    angle = np.pi / 2 if inst.shape in ("bar", "ellipse", "triangle") else 0.0
    base = rng.uniform(*cfg.sprite_size) * size * scale
    biggest = base * (1 + cfg.pulse)
    rise = cfg.bob * size
    wx_small, hy_small = half_extent(inst.shape, base, angle)
    wx_big, hy_big = half_extent(inst.shape, biggest, angle)
    cx = rng.uniform(*inside_range(max(wx_small, wx_big), *x_range))
    # The top is highest when loudest (risen and biggest); the bottom is lowest at rest or when biggest.
    lo = max(hy_small, rise + hy_big) + 1.0
    hi = size - 1.0 - max(hy_small, hy_big - rise)
    cy0 = rng.uniform(lo, hi) if lo <= hi else size / 2
    lengths = base * (1 + cfg.pulse * loud)
    cys = cy0 - rise * loud
    half = np.array([half_extent(inst.shape, float(length), angle) for length in lengths])
    boxes = np.stack([cx - half[:, 0], cys - half[:, 1], cx + half[:, 0], cys + half[:, 1]], axis=1)
    return {"angle": angle, "cx": cx, "cy": cys, "lengths": lengths, "boxes": boxes}


def render(cfg: InstrumentsConfig, label: str, rng: np.random.Generator) -> SyntheticClip:
    """One clip of instrument ``label``: a solo, or (with probability ``duets``) a duet with another."""
    if label not in NAMES:
        raise ValueError(f"unknown instrument {label!r}; expected one of {NAMES}")
    size = cfg.size
    players = [SYNTH_INSTRUMENTS[NAMES.index(label)]]
    if rng.uniform() < cfg.duets:
        others = [inst for inst in SYNTH_INSTRUMENTS if inst.name != label]
        players.append(others[int(rng.integers(len(others)))])
    lines = [_line(inst, cfg, rng) for inst in players]
    # Mix the sources at random relative levels; the stems carry the same scaling, so they sum to the mix.
    # Each stem gets a faint noise floor (RMS 0.001 in all): never digitally silent, and AAC's fast
    # coder takes twice as long on the bare, slowly decaying note tails.
    levels = rng.uniform(0.6, 1.0, len(players)) if len(players) > 1 else np.ones(1)
    mix = np.sum([level * audio for level, (audio, _, _) in zip(levels, lines)], axis=0)
    scale = cfg.peak / max(float(np.abs(mix).max()), 1e-6)
    floor = 0.001 / np.sqrt(len(players))
    stems = [(scale * level * audio + noise_floor(rng, len(audio), floor)).astype(np.float32)
             for level, (audio, _, _) in zip(levels, lines)]
    audio = np.sum(stems, axis=0).astype(np.float32)

    num_frames = max(1, int(round(cfg.duration * cfg.fps)))
    background = smooth_background(rng, size, np.zeros(1), contrast=10.0)
    bg_mean = background[0].mean(axis=(0, 1))
    frames = background
    if len(players) == 1:
        sides, ranges, sprite_scale = ["centre"], [(0.0, float(size))], 1.0
    else:
        sides = ["left", "right"] if rng.uniform() < 0.5 else ["right", "left"]
        ranges = [(0.0, size / 2) if side == "left" else (size / 2, float(size)) for side in sides]
        sprite_scale = cfg.duet_scale
    sources: list[dict[str, Any]] = []
    for inst, (_, envelope, notes), side, x_range, level in zip(players, lines, sides, ranges, levels):
        loud = _frame_loudness(envelope, cfg, num_frames)
        taken = {s["colour"] for s in sources}
        for _ in range(20):  # two sprites of a duet get different colours
            colour_name, colour = pick_colour(rng, bg_mean)
            if colour_name not in taken:
                break
        sprite = _sprite(inst, cfg, rng, loud, x_range, sprite_scale)
        alpha = coverage(inst.shape, size, np.full(num_frames, sprite["cx"]), sprite["cy"],
                         np.full(num_frames, sprite["angle"]), sprite["lengths"])
        frames = composite(frames, alpha, colour)
        sources.append({"label": inst.name, "shape": inst.shape, "colour": colour_name, "rgb": colour,
                        "side": side, "level": float(level * scale), "notes": notes,
                        "loudness_per_frame": loud.tolist(),
                        "center_per_frame": np.stack([np.full(num_frames, sprite["cx"]), sprite["cy"]], 1).tolist(),
                        "length_per_frame": sprite["lengths"].tolist(), "box_per_frame": sprite["boxes"].tolist()})

    main = sources[0]
    pitches = [n["pitch_hz"] for n in main["notes"]]
    if len(sources) == 1:
        caption = (f"{article(main['colour'])} {main['colour']} {main['shape']} pulses in time with a solo {label}, "
                   f"{len(pitches)} notes between {min(pitches):.0f} and {max(pitches):.0f} Hz.")
    else:
        left, right = sorted(sources, key=lambda s: s["side"] != "left")
        caption = (f"A duet: {article(left['colour']).lower()} {left['colour']} {left['shape']} ({left['label']}) "
                   f"on the left and {article(right['colour']).lower()} {right['colour']} {right['shape']} "
                   f"({right['label']}) on the right, each pulsing with its own notes.")
    labelled = [(src["label"], n) for src in sources for n in src["notes"]]
    segments = [{"label": name, "start": n["onset"], "end": min(n["onset"] + n["duration"], cfg.duration)}
                for name, n in sorted(labelled, key=lambda item: item[1]["onset"])]
    meta: dict[str, Any] = {"shape": main["shape"], "colour": main["colour"], "notes": main["notes"],
                            "loudness_per_frame": main["loudness_per_frame"], "num_frames": num_frames,
                            "duet": len(sources) > 1, "sources": sources}
    return SyntheticClip(to_uint8(frames), audio, label, caption, segments, meta, stems)


def draw(instrument: str, duration: float, fps: float = 8, size: int = 64, onsets: Sequence[float] | None = None,
         seed: int = 0) -> np.ndarray:
    """Frames (uint8 ``[T, H, W, 3]``, ``T = round(duration * fps)``) of ``instrument`` (a name in
    ``INSTRUMENTS``) whose sounding part moves at each of ``onsets`` (seconds; None: at rest).

    The picture is the one the ``gm_instruments`` kind draws for a solo: its drawing on a smooth
    background, colour and pitches (a walk in the instrument's range) drawn from ``seed``; each
    note lasts until the next onset (at most 0.6 s).
    """
    if instrument not in BY_NAME:
        raise AvkitError(f"unknown instrument {instrument!r}; choose from {sorted(BY_NAME)}")
    if not (duration > 0 and fps > 0 and size >= 16):
        raise AvkitError(f"need duration > 0, fps > 0 and size >= 16 (got {duration}, {fps}, {size})")
    times = sorted(float(t) for t in (onsets if onsets is not None else []))
    if times and not (np.isfinite(times).all() and times[0] >= 0):
        raise AvkitError(f"onsets must be finite times >= 0 s, got {times[:5]}")
    rng = np.random.default_rng(seed)
    inst = BY_NAME[instrument]
    key = (inst.low + inst.high) // 2
    notes = []
    for i, t in enumerate(times):
        end = times[i + 1] if i + 1 < len(times) else t + 0.6
        notes.append(Note(t, max(min(end - t, 0.6) * 0.9, 0.05), key, 96))
        key = int(np.clip(key + rng.integers(-4, 5), inst.low, inst.high))
    canvas = smooth_background(rng, size, np.zeros(1), contrast=10.0)
    _, colour = pick_colour(rng, canvas[0].mean(axis=(0, 1)))
    num_frames = max(1, int(round(duration * fps)))
    canvas, _ = draw_player(canvas, instrument, notes, np.arange(num_frames) / fps,
                            (0.02 * size, 0.02 * size, 0.98 * size, 0.98 * size), colour)
    return to_uint8(np.broadcast_to(canvas, (num_frames, size, size, 3)))


GENERATOR = Generator("instruments", "synthetic instruments (solos, optional duets): a sprite that pulses "
                      "with its own timbre, with clean stems",
                      InstrumentsConfig, classes, render)
