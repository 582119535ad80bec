"""``motion``: classes that differ only in motion, plus classes that differ only in appearance.

Motion classes (one flat-coloured shape on a static smooth background):
``move_left, move_right, move_up, move_down`` (constant speed, wrapping around the frame) and
``rotate_cw, rotate_ccw`` (spinning in place). Appearance classes (static, no motion, wholly
inside the frame, each its own silhouette, textured in a dark and a light shade of one tint
that contrast with the background and with each other in brightness): ``stripes`` (a disc with
4 parallel bands), ``checker`` (a 3x3 board on a square), ``rings`` (an annulus of two
concentric bands) and ``dots`` (an equilateral triangle with 3 round spots).

No single frame tells the motion classes apart. Shape, colour, size, orientation and position
are drawn the same way for every class, from distributions that motion maps onto themselves:
positions are uniform on the torus (the frame wraps) and orientations uniform on the circle, so
every frame of every motion class has exactly the same distribution. Class B is class A played
backwards. Only two or more frames reveal the class. One frame is enough for the appearance
classes.

Sounds, synchronised with the motion (see docs/synthetic.md):
- move_left / move_right: a tick each time the object travels a quarter of the frame, at lines
  with a random per-clip offset, so the object's position at a tick says nothing about its
  direction. Same sound for both: audio says "horizontal".
- move_up / move_down: a low knock each quarter frame travelled: audio says "vertical".
- rotate_cw: a falling chirp each 45 degrees turned; rotate_ccw: a rising chirp. Audio tells the
  direction.
- stripes: a steady low hum (220 Hz, odd harmonics); checker: a steady high tone (880 Hz);
  rings: a pulsing mid tone (440 Hz, 4 Hz tremolo); dots: a high whistle (1320 Hz).
So audio alone separates {left, right}, {up, down}, rotate_cw, rotate_ccw and each appearance
class; vision alone (two or more frames) separates everything.

Sound classes (``sound_pair``, off by default): ``still_low`` and ``still_high``, a flat-coloured
shape drawn as for the motion classes but still, with a steady low (330 Hz) or high (990 Hz) tone.
They look the same, so only the sound tells them apart: a video-only model is at chance (50%)
between them, an audio-visual one need not be.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from avkit.data.synthetic.common import (
    SUPERSAMPLE,
    ClassInfo,
    Generator,
    SyntheticClip,
    _downsample,
    article,
    chirp,
    click,
    composite,
    coverage,
    crossing_times,
    half_extent,
    harmonic_tone,
    inside_range,
    local_coords,
    noise_floor,
    pick_colour,
    pick_texture_colours,
    place,
    shape_inside,
    smooth_background,
    texture_parity,
    thud,
    to_uint8,
)
from avkit.errors import AvkitError

MOTION_CLASSES = ["move_left", "move_right", "move_up", "move_down", "rotate_cw", "rotate_ccw"]
APPEARANCE_CLASSES = ["stripes", "checker", "rings", "dots"]
CLASSES = MOTION_CLASSES + APPEARANCE_CLASSES
SOUND_CLASSES = ["still_low", "still_high"]  # MotionConfig.sound_pair: the same look, told apart by sound only
_STILL_TONES = {"still_low": (330.0, "a steady low tone"), "still_high": (990.0, "a steady high tone")}
SHAPES = ["bar", "ellipse", "triangle"]  # the default shapes, all elongated: orientation (and rotation) is visible
# Every shape a moving object can have (MotionConfig.shapes): the cross is a fourth elongated shape,
# unlike the other three.
ALL_SHAPES = ["bar", "ellipse", "triangle", "cross"]
# Appearance class -> (shape, caption noun, sound words).
TEXTURES = {
    "stripes": ("disc", "striped disc", "a steady low hum"),
    "checker": ("square", "checkerboard square", "a steady high tone"),
    "rings": ("annulus", "ring of two concentric bands", "a pulsing mid tone"),
    "dots": ("equilateral", "triangle with three round spots", "a high whistle"),
}

DESCRIPTIONS = {
    "move_left": "a shape slides left (wrapping around); ticks every quarter frame travelled",
    "move_right": "a shape slides right (wrapping around); ticks every quarter frame travelled",
    "move_up": "a shape slides up (wrapping around); low knocks every quarter frame travelled",
    "move_down": "a shape slides down (wrapping around); low knocks every quarter frame travelled",
    "rotate_cw": "a shape spins clockwise in place; a falling chirp every 45 degrees",
    "rotate_ccw": "a shape spins counter-clockwise in place; a rising chirp every 45 degrees",
    "stripes": "a static two-tone disc with 4 parallel bands; a steady low hum",
    "checker": "a static two-tone 3x3 checkerboard square; a steady high tone",
    "rings": "a static two-tone ring (annulus) of two concentric bands; a pulsing mid tone",
    "dots": "a static triangle with 3 round spots of the other tone; a high whistle",
    "still_low": "a still flat-coloured shape; a steady low tone (330 Hz)",
    "still_high": "a still flat-coloured shape (as still_low); a steady high tone (990 Hz)",
}
_DIRECTIONS = {"move_left": (-1, 0), "move_right": (1, 0), "move_up": (0, -1), "move_down": (0, 1)}


@dataclass
class MotionConfig:
    """Parameters of the ``motion`` kind. Speeds are per second in frame sizes (or degrees)."""

    size: int = 32
    fps: float = 8.0
    duration: float = 3.0
    sample_rate: int = 16000
    speed: tuple[float, float] = (0.4, 0.7)  # frame widths per second (1.6-2.8 px/frame at 32 px, 8 fps)
    spin: tuple[float, float] = (100.0, 160.0)  # degrees per second (12-20 degrees per frame at 8 fps)
    object_size: tuple[float, float] = (0.45, 0.6)  # long side, in frame sizes
    texture_size: tuple[float, float] = (0.55, 0.68)  # disc diameter of appearance objects (squares: same area)
    sound_level: float = 0.5
    noise_level: float = 0.01
    appearance: tuple[str, ...] = tuple(APPEARANCE_CLASSES)  # which appearance classes to include
    shapes: tuple[str, ...] = tuple(SHAPES)  # what a moving object may be (from ALL_SHAPES), drawn uniformly
    # One class per motion and shape ("move_left_cross"), for classifiers that must see the shape too.
    shape_labels: bool = False
    sound_pair: bool = False  # add SOUND_CLASSES (group "sound"): a look-alike pair that only the sound tells apart


def classes(cfg: MotionConfig) -> list[ClassInfo]:
    unknown = [name for name in cfg.appearance if name not in APPEARANCE_CLASSES]
    if unknown or len(set(cfg.appearance)) != len(cfg.appearance):
        raise AvkitError(f"appearance classes must be distinct names from {APPEARANCE_CLASSES}, got {list(cfg.appearance)}")
    if not cfg.shapes or len(set(cfg.shapes)) != len(cfg.shapes) or not set(cfg.shapes) <= set(ALL_SHAPES):
        raise AvkitError(f"shapes must be distinct names from {ALL_SHAPES}, got {list(cfg.shapes)}")
    motion = [ClassInfo(name, "motion", DESCRIPTIONS[name]) for name in MOTION_CLASSES]
    if cfg.shape_labels:
        motion = [ClassInfo(f"{c.name}_{shape}", "motion", c.description.replace("a shape", f"a {shape}", 1))
                  for c in motion for shape in cfg.shapes]
    sound = [ClassInfo(name, "sound", DESCRIPTIONS[name]) for name in SOUND_CLASSES] if cfg.sound_pair else []
    return motion + [ClassInfo(name, "appearance", DESCRIPTIONS[name]) for name in cfg.appearance] + sound


def split_label(label: str) -> tuple[str, str | None]:
    """``("move_left", "cross")`` for a shape label ``move_left_cross``; ``(label, None)`` otherwise."""
    for shape in ALL_SHAPES:
        if label.endswith("_" + shape) and label[: -len(shape) - 1] in MOTION_CLASSES:
            return label[: -len(shape) - 1], shape
    return label, None


@dataclass
class ObjectTrack:
    """Where one object is at each requested time, plus when it makes its sounds."""

    alpha: np.ndarray  # float32 [T, H, W] coverage
    fill: np.ndarray  # float32 [3] or [T, H, W, 3]
    events: np.ndarray  # sound event times (s), relative to the track start
    meta: dict[str, Any]
    visual: str  # what you see, lower case: "a red bar slides left across the frame, ..."
    sound: str  # what you hear: "with a tick every quarter of the frame"

    @property
    def caption(self) -> str:
        return f"{self.visual[0].upper()}{self.visual[1:]}, {self.sound}."


def draw_object(cfg: MotionConfig, label: str, rng: np.random.Generator, times: np.ndarray,
                background: np.ndarray, duration: float, shape: str | None = None) -> ObjectTrack:
    """Render the object of class ``label`` at ``times`` (seconds from its start).

    ``background`` is the (first) frame it is drawn on, float ``[H, W, 3]``: colours are chosen
    to contrast with it. ``shape`` fixes a moving object's shape (else drawn from ``cfg.shapes``).
    Used by ``motion`` clips and by ``longvideo`` action segments.
    """
    size = cfg.size
    times = np.asarray(times, dtype=np.float64)
    if label in TEXTURES:
        return _textured_object(cfg, label, rng, len(times), background)
    colour_name, colour = pick_colour(rng, background.reshape(-1, 3).mean(axis=0))
    cx0, cy0 = rng.uniform(0, size, 2)
    angle0 = rng.uniform(0, 2 * np.pi)
    length = rng.uniform(*cfg.object_size) * size
    n = len(times)

    drawn = cfg.shapes[rng.integers(len(cfg.shapes))]  # drawn even when fixed: the random stream stays the same
    shape = shape or drawn
    meta: dict[str, Any] = {"shape": shape, "colour": colour_name, "length_px": length}
    if label in _STILL_TONES:
        alpha = coverage(shape, size, np.full(n, cx0), np.full(n, cy0), np.full(n, angle0), length)
        meta.update(center=[cx0, cy0], angle_deg=np.degrees(angle0))
        visual = f"{article(colour_name).lower()} {colour_name} {shape} stands still"
        return ObjectTrack(alpha, colour, np.zeros(0), meta, visual, f"with {_STILL_TONES[label][1]}")
    if label in _DIRECTIONS:
        dx, dy = _DIRECTIONS[label]
        speed = rng.uniform(*cfg.speed) * size  # px / s
        cx = cx0 + dx * speed * times
        cy = cy0 + dy * speed * times
        angle = np.full(n, angle0)
        along = cx0 if dx else cy0
        # Tick lines a quarter frame apart at a random offset: where the object is when it ticks
        # is uniform, so a frame plus the tick times does not give the direction.
        offset = rng.uniform(0, size / 4)
        events = crossing_times(along, (dx or dy) * speed, size / 4, duration, offset)
        meta.update(speed_px_per_s=speed, speed_px_per_frame=speed / cfg.fps, start=[cx0, cy0],
                    angle_deg=np.degrees(angle0), tick_offset_px=offset)
        visual = (f"{article(colour_name).lower()} {colour_name} {shape} slides {label.split('_')[1]} "
                  f"across the frame, wrapping around the edge")
        sound = f"with a {'tick' if dx else 'low knock'} every quarter of the frame"
    else:
        sign = 1.0 if label == "rotate_ccw" else -1.0
        spin = np.radians(rng.uniform(*cfg.spin))  # rad / s
        cx, cy = np.full(n, cx0), np.full(n, cy0)
        angle = angle0 + sign * spin * times
        offset = rng.uniform(0, np.pi / 4)
        events = crossing_times(angle0, sign * spin, np.pi / 4, duration, offset)
        meta.update(spin_deg_per_s=np.degrees(spin), spin_deg_per_frame=np.degrees(spin) / cfg.fps,
                    center=[cx0, cy0], angle0_deg=np.degrees(angle0), chirp_offset_deg=np.degrees(offset))
        word = "counter-clockwise" if sign > 0 else "clockwise"
        visual = f"{article(colour_name).lower()} {colour_name} {shape} spins {word} in place"
        sound = f"with a {'rising' if sign > 0 else 'falling'} chirp every eighth of a turn"
    alpha = coverage(shape, size, np.mod(cx, size), np.mod(cy, size), angle, length)
    return ObjectTrack(alpha, colour, events, meta, visual, sound)


def _textured_object(cfg: MotionConfig, label: str, rng: np.random.Generator, n: int,
                     background: np.ndarray) -> ObjectTrack:
    """A static two-colour textured object, wholly inside the frame, for ``n`` frames."""
    size = cfg.size
    shape, noun, sound = TEXTURES[label]
    # ``texture_size`` is a disc's diameter; a square's side of the same area; a triangle's side 1.05x.
    length = rng.uniform(*cfg.texture_size) * size * {"square": np.sqrt(np.pi) / 2, "equilateral": 1.05}.get(shape, 1.0)
    angle0 = rng.uniform(0, 2 * np.pi)
    hx, hy = half_extent(shape, length, angle0)
    # A margin of 2 px at 32 px keeps H.264's blur (and random crops) off the object's edge.
    margin = max(1.0, size / 16)
    cx0 = rng.uniform(*inside_range(hx, 0, size, margin))
    cy0 = rng.uniform(*inside_range(hy, 0, size, margin))
    u, v = local_coords(size, np.full(1, cx0), np.full(1, cy0), np.full(1, angle0))
    inside = shape_inside(shape, u, v, length).astype(np.float32)
    alpha = _downsample(inside, SUPERSAMPLE)
    second_cov = _downsample(inside * texture_parity(label, u, v, length), SUPERSAMPLE)
    colour_name, colour, second_name, second = pick_texture_colours(rng, background[alpha[0] > 0.5])
    # Per-pixel colour: the mix of the two texture colours over the covered part.
    frac = np.divide(second_cov, alpha, out=np.zeros_like(alpha), where=alpha > 0)
    fill = colour * (1 - frac[..., None]) + second * frac[..., None]
    visual = f"a static {colour_name} and {second_name} {noun}"
    meta = {"shape": shape, "texture": label, "colour": colour_name, "second_colour": second_name,
            "rgb": colour, "second_rgb": second, "center": [cx0, cy0], "angle_deg": np.degrees(angle0),
            "length_px": length, "box": [cx0 - hx, cy0 - hy, cx0 + hx, cy0 + hy]}
    return ObjectTrack(np.broadcast_to(alpha, (n, size, size)), np.broadcast_to(fill, (n, size, size, 3)),
                       np.zeros(0), meta, visual, f"with {sound}")


def object_sound(cfg: MotionConfig, label: str, rng: np.random.Generator, events: np.ndarray,
                 duration: float) -> np.ndarray:
    """The class sound of ``label`` over ``duration`` seconds (without the noise floor)."""
    sr = cfg.sample_rate
    out = np.zeros(int(round(duration * sr)), np.float32)
    if label == "stripes":
        out += 0.6 * harmonic_tone(sr, duration, 220.0, [1, 0, 0.5, 0, 0.3])[: len(out)]
    elif label == "checker":
        out += 0.5 * harmonic_tone(sr, duration, 880.0, [1, 0.3])[: len(out)]
    elif label == "rings":
        t = np.arange(len(out)) / sr
        tremolo = 0.6 + 0.4 * np.sin(2 * np.pi * 4.0 * t)
        out += (0.6 * tremolo * harmonic_tone(sr, duration, 440.0, [1, 0.5, 0.25])[: len(out)]).astype(np.float32)
    elif label == "dots":
        out += 0.4 * harmonic_tone(sr, duration, 1320.0, [1])[: len(out)]
    elif label in _STILL_TONES:
        out += 0.5 * harmonic_tone(sr, duration, _STILL_TONES[label][0], [1, 0.5])[: len(out)]
    else:
        if label in ("move_left", "move_right"):
            wave = click(sr, rng)
        elif label in ("move_up", "move_down"):
            wave = thud(sr)
        elif label == "rotate_ccw":
            wave = chirp(sr, 600, 1800)
        else:
            wave = chirp(sr, 1800, 600)
        for t in events:
            place(out, wave, float(t), sr)
    return out * cfg.sound_level


def render(cfg: MotionConfig, label: str, rng: np.random.Generator) -> SyntheticClip:
    """One ``motion`` clip of class ``label``."""
    name = label
    label, shape = split_label(name)
    if label not in CLASSES + SOUND_CLASSES:
        raise ValueError(f"unknown motion class {name!r}; expected one of {CLASSES + SOUND_CLASSES}")
    num_frames = max(1, int(round(cfg.duration * cfg.fps)))
    times = np.arange(num_frames) / cfg.fps
    background = smooth_background(rng, cfg.size, times[:1])
    track = draw_object(cfg, label, rng, times, background[0], cfg.duration, shape)
    frames = to_uint8(composite(background, track.alpha, track.fill))
    num_samples = int(round(cfg.duration * cfg.sample_rate))
    audio = noise_floor(rng, num_samples, cfg.noise_level)
    audio += object_sound(cfg, label, rng, track.events, cfg.duration)
    meta = {**track.meta, "sound_events": track.events.tolist(), "num_frames": num_frames}
    return SyntheticClip(frames, audio, name, track.caption, [], meta)


GENERATOR = Generator("motion", "motion-only classes (plus four appearance classes) with synchronised sounds",
                      MotionConfig, classes, render)
