"""Building blocks shared by the synthetic generators: clip records, rasterisation, sounds, splits.

Everything renders with numpy at the output resolution. Shapes are anti-aliased by 4x4
supersampling and drawn on a torus (offsets wrap around the frame), so an object near an edge
reappears on the other side and positions are uniformly distributed in every frame.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any, Callable

import numpy as np

# Named colours (RGB) that objects are drawn from, so captions can name them.
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "orange": (245, 140, 20),
    "yellow": (240, 225, 40),
    "green": (40, 190, 60),
    "cyan": (40, 210, 220),
    "blue": (40, 80, 230),
    "purple": (140, 50, 200),
    "magenta": (230, 50, 190),
    "white": (245, 245, 245),
    "black": (15, 15, 15),
}

SUPERSAMPLE = 4


@dataclass
class ClassInfo:
    """One entry of ``classes.json``."""

    name: str
    group: str
    description: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass
class SyntheticClip:
    """One rendered clip, in memory: what a generator returns before it is written."""

    frames: np.ndarray  # uint8 [T, H, W, 3]
    audio: np.ndarray  # float32 [S], mono
    label: str
    caption: str
    segments: list[dict[str, Any]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Generator:
    """A kind of synthetic data: its config dataclass, its classes and its clip renderer."""

    name: str
    description: str
    config: type
    classes: Callable[[Any], list[ClassInfo]]
    render: Callable[[Any, str, np.random.Generator], SyntheticClip]


# ---------------------------------------------------------------- pixels

@lru_cache(maxsize=8)
def subpixel_grid(height: int, width: int, ss: int = SUPERSAMPLE) -> tuple[np.ndarray, np.ndarray]:
    """Supersample centres in pixel units: ``y, x`` float32 ``[H*ss, W*ss]`` (read-only)."""
    ys = (np.arange(height * ss, dtype=np.float32) + 0.5) / ss
    xs = (np.arange(width * ss, dtype=np.float32) + 0.5) / ss
    y, x = np.meshgrid(ys, xs, indexing="ij")
    y.flags.writeable = x.flags.writeable = False
    return y, x


def _downsample(a: np.ndarray, ss: int) -> np.ndarray:
    """Average ``ss x ss`` blocks of the last two axes."""
    *lead, h, w = a.shape
    return a.reshape(*lead, h // ss, ss, w // ss, ss).mean(axis=(-3, -1))


def local_coords(size: int, cx: np.ndarray, cy: np.ndarray, angle: np.ndarray,
                 ss: int = SUPERSAMPLE) -> tuple[np.ndarray, np.ndarray]:
    """Object-frame coordinates ``u`` (along ``angle``) and ``v`` for every supersample.

    ``cx, cy, angle`` are ``[T]`` arrays (pixels, radians; angle counter-clockwise on screen).
    Offsets wrap around the frame (torus), so the result is ``[T, size*ss, size*ss]``.
    """
    y, x = subpixel_grid(size, size, ss)
    cx, cy, angle = (np.asarray(a, dtype=np.float32).reshape(-1, 1, 1) for a in (cx, cy, angle))
    half = size / 2
    dx = np.mod(x - cx + half, size) - half
    dy = np.mod(y - cy + half, size) - half
    c, s = np.cos(angle), np.sin(angle)
    # Screen y points down; flip it so positive angles turn counter-clockwise as seen.
    u = dx * c - dy * s
    v = -dx * s - dy * c
    return u, v


def shape_inside(shape: str, u: np.ndarray, v: np.ndarray, length: float) -> np.ndarray:
    """Boolean inside-test of a shape whose long axis (``length`` px) lies along ``u``."""
    a = length / 2
    if shape == "bar":  # rectangle, aspect 2.4
        return (np.abs(u) <= a) & (np.abs(v) <= a / 2.4)
    if shape == "ellipse":  # aspect 2
        return (u / a) ** 2 + (v / (a / 2)) ** 2 <= 1.0
    if shape == "triangle":  # isosceles, apex at +u, base half-width a * 0.55
        t = (a - u) / (2 * a)  # 0 at the apex, 1 at the base
        return (t >= 0) & (t <= 1) & (np.abs(v) <= t * a * 0.55)
    if shape == "disc":
        return u ** 2 + v ** 2 <= a ** 2
    if shape == "square":
        return (np.abs(u) <= a) & (np.abs(v) <= a)
    if shape == "diamond":
        return np.abs(u) + np.abs(v) <= a
    raise ValueError(f"unknown shape {shape!r}")


def coverage(shape: str, size: int, cx: Any, cy: Any, angle: Any, length: Any,
             ss: int = SUPERSAMPLE) -> np.ndarray:
    """Anti-aliased coverage in [0, 1], float32 ``[T, size, size]``; ``length`` may vary per frame."""
    u, v = local_coords(size, cx, cy, angle, ss)
    length = np.asarray(length, dtype=np.float32).reshape(-1, 1, 1)
    return _downsample(shape_inside(shape, u, v, length).astype(np.float32), ss)


def texture_parity(pattern: str, u: np.ndarray, v: np.ndarray, period: float) -> np.ndarray:
    """0/1 texture inside an object: ``stripes`` along ``u`` or a ``checker`` board."""
    if pattern == "stripes":
        return (np.floor(u / (period / 2)) % 2).astype(np.float32)
    if pattern == "checker":
        return ((np.floor(u / period) + np.floor(v / period)) % 2).astype(np.float32)
    raise ValueError(f"unknown texture {pattern!r}")


def smooth_background(rng: np.random.Generator, size: int, times: np.ndarray, *, contrast: float = 14.0,
                      drift: float = 0.0, components: int = 4) -> np.ndarray:
    """A low-contrast texture of a few sinusoids on a random base colour: float32 ``[T, H, W, 3]``.

    ``drift`` (pixels per second) moves each component along its own direction; 0 is static.
    """
    base = rng.uniform(40, 215, size=3).astype(np.float32)
    y, x = np.meshgrid(np.arange(size, dtype=np.float32), np.arange(size, dtype=np.float32), indexing="ij")
    times = np.asarray(times, dtype=np.float32).reshape(-1, 1, 1)
    out = np.broadcast_to(base, (len(times), size, size, 3)).copy()
    for _ in range(components):
        theta = rng.uniform(0, 2 * np.pi)
        cycles = rng.uniform(0.5, 2.0)  # periods across the frame: smooth
        k = 2 * np.pi * cycles / size
        phase = rng.uniform(0, 2 * np.pi)
        speed = drift * rng.uniform(0.5, 1.0)
        wave = np.sin(k * (x * np.cos(theta) + y * np.sin(theta) - speed * times) + phase)
        tint = rng.uniform(-1, 1, size=3).astype(np.float32)
        out += (contrast / components * 2) * wave[..., None] * tint
    return out


def pick_colour(rng: np.random.Generator, avoid: np.ndarray, min_distance: float = 110.0,
                jitter: float = 15.0) -> tuple[str, np.ndarray]:
    """A palette colour (with jitter) at least ``min_distance`` (RGB) from ``avoid``."""
    names = list(PALETTE)
    for _ in range(100):
        name = names[rng.integers(len(names))]
        rgb = np.clip(np.array(PALETTE[name], np.float32) + rng.uniform(-jitter, jitter, 3), 0, 255)
        if np.linalg.norm(rgb - avoid) >= min_distance:
            return name, rgb.astype(np.float32)
    far = max(names, key=lambda n: np.linalg.norm(np.array(PALETTE[n], np.float32) - avoid))
    return far, np.array(PALETTE[far], np.float32)


def article(word: str) -> str:
    """``"An"`` before a vowel, else ``"A"`` (for captions)."""
    return "An" if word[:1].lower() in "aeiou" else "A"


def composite(background: np.ndarray, alpha: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """``background * (1 - alpha) + colour * alpha``; ``colour`` is ``[3]`` or per pixel."""
    a = alpha[..., None]
    return background * (1 - a) + colour * a


def to_uint8(frames: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(frames), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- sounds

def place(buffer: np.ndarray, wave: np.ndarray, time: float, sample_rate: int, gain: float = 1.0) -> None:
    """Add ``wave`` into ``buffer`` starting at ``time`` seconds (clipped at both ends)."""
    start = int(round(time * sample_rate))
    lo, hi = max(start, 0), min(start + len(wave), len(buffer))
    if hi > lo:
        buffer[lo:hi] += gain * wave[lo - start:hi - start]


def click(sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """A bright tick: 15 ms of decaying noise plus a 2.5 kHz ping."""
    n = int(0.015 * sample_rate)
    t = np.arange(n) / sample_rate
    env = np.exp(-t / 0.003)
    return (env * (0.6 * rng.standard_normal(n) + 0.8 * np.sin(2 * np.pi * 2500 * t))).astype(np.float32)


def thud(sample_rate: int) -> np.ndarray:
    """A low knock: 80 ms decaying 110 Hz sine with a slight pitch drop."""
    n = int(0.08 * sample_rate)
    t = np.arange(n) / sample_rate
    freq = 110 * (1 + 0.5 * np.exp(-t / 0.01))
    return (np.exp(-t / 0.025) * np.sin(2 * np.pi * np.cumsum(freq) / sample_rate)).astype(np.float32)


def chirp(sample_rate: int, f0: float, f1: float, duration: float = 0.07) -> np.ndarray:
    """A short sweep from ``f0`` to ``f1`` Hz with a smooth (Hann) envelope."""
    n = int(duration * sample_rate)
    freq = np.linspace(f0, f1, n)
    return (np.hanning(n) * np.sin(2 * np.pi * np.cumsum(freq) / sample_rate)).astype(np.float32)


def chime(sample_rate: int) -> np.ndarray:
    """A loud onset marker: 250 ms bell-like partials with a sharp attack."""
    n = int(0.25 * sample_rate)
    t = np.arange(n) / sample_rate
    wave = sum(a * np.exp(-t / (0.09 / r)) * np.sin(2 * np.pi * 660 * r * t)
               for r, a in ((1.0, 1.0), (2.76, 0.5), (5.4, 0.25)))
    return (wave / 1.75).astype(np.float32)


def harmonic_tone(sample_rate: int, duration: float, freq: float, amps: list[float]) -> np.ndarray:
    """A steady tone with harmonic amplitudes ``amps`` (partials above Nyquist dropped)."""
    t = np.arange(int(round(duration * sample_rate))) / sample_rate
    wave = np.zeros_like(t)
    for h, a in enumerate(amps, start=1):
        if a and h * freq < sample_rate / 2:
            wave += a * np.sin(2 * np.pi * h * freq * t)
    return (wave / max(sum(amps), 1e-6)).astype(np.float32)


def noise_floor(rng: np.random.Generator, num_samples: int, level: float) -> np.ndarray:
    """Soft (one-pole low-passed) noise with RMS about ``level``."""
    white = rng.standard_normal(num_samples).astype(np.float32)
    # Two-tap smoothing keeps it cheap; it is only a floor so the audio is never exactly silent.
    soft = 0.5 * (white + np.concatenate([white[:1], white[:-1]]))
    return (soft * (level / 0.707)).astype(np.float32)


def crossing_times(start: float, rate: float, step: float, duration: float) -> np.ndarray:
    """Times in ``[0, duration)`` when ``start + rate * t`` crosses a multiple of ``step``."""
    if rate == 0:
        return np.zeros(0)
    if rate > 0:
        first = (step - np.mod(start, step)) / rate
    else:
        first = np.mod(start, step) / -rate
    first = first % (step / abs(rate))  # a start exactly on a multiple counts at t=0
    return np.arange(first, duration, step / abs(rate))


# ---------------------------------------------------------------- manifest helpers

def stratified_split(labels: list[str], val_fraction: float, seed: int) -> list[str]:
    """``"train"``/``"val"`` per row: per class, a seeded ``val_fraction`` (rounded) goes to val."""
    splits = ["train"] * len(labels)
    rng = np.random.default_rng([seed, 0x5EED])
    for name in sorted(set(labels)):
        rows = [i for i, lab in enumerate(labels) if lab == name]
        n_val = int(len(rows) * val_fraction + 0.5)
        for i in rng.permutation(rows)[:n_val]:
            splits[int(i)] = "val"
    return splits


def rounded(x: Any, digits: int = 4) -> Any:
    """JSON-friendly copy with floats rounded (numpy scalars/arrays converted)."""
    if isinstance(x, dict):
        return {k: rounded(v, digits) for k, v in x.items()}
    if isinstance(x, (list, tuple, np.ndarray)):
        return [rounded(v, digits) for v in x]
    if isinstance(x, (float, np.floating)):
        return round(float(x), digits)
    if isinstance(x, np.integer):
        return int(x)
    return x
