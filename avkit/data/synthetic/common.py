"""Building blocks shared by the synthetic generators: clip records, rasterisation, sounds, splits.

Everything renders with numpy at the output resolution. Shapes are anti-aliased by 4x4
supersampling and drawn on a torus (offsets wrap around the frame), so an object near an edge
reappears on the other side and positions are uniformly distributed in every frame. Objects that
must stay whole (textures, instrument sprites) are placed with ``inside_range``.
"""
from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

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
    # Clean per-source audio (float32 [S] each) that sums exactly to ``audio``; ``generate`` writes
    # each as a lossless WAV beside the mp4 and records its path in ``meta["sources"][k]["stem"]``.
    stems: list[np.ndarray] = field(default_factory=list)


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
    if shape == "cross":  # the bar (width a / 2.4) crossed at its middle by a bar of 0.6 of its length
        w = a / 2.4
        return ((np.abs(u) <= a) & (np.abs(v) <= w / 2 * 1.2)) | ((np.abs(u) <= w / 2 * 1.2) & (np.abs(v) <= 0.6 * a))
    if shape == "disc":
        return u ** 2 + v ** 2 <= a ** 2
    if shape == "annulus":  # a disc with a hole of 0.3 of its radius
        r2 = u ** 2 + v ** 2
        return (r2 <= a ** 2) & (r2 >= (0.3 * a) ** 2)
    if shape == "equilateral":  # side ``length``, a vertex at +u
        radius = length / np.sqrt(3)
        return (u >= -radius / 2) & (np.abs(v) <= (radius - u) / np.sqrt(3))
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


def texture_parity(pattern: str, u: np.ndarray, v: np.ndarray, length: float) -> np.ndarray:
    """0/1 texture laid out on an object of side / diameter ``length`` (1 = the second colour).

    The layout is fixed relative to the object, so every object shows the whole pattern with
    cells that scale with it: ``stripes`` 4 bands across a disc, ``checker`` a 3x3 board on a
    square, ``rings`` two concentric bands on an annulus, ``dots`` 3 round spots on an
    equilateral triangle (of side ``length``).
    """
    a = length / 2
    if pattern == "stripes":
        return (np.floor((u + a) / (length / 4)) % 2).astype(np.float32)
    if pattern == "checker":
        iu = np.clip(np.floor((u + a) / (length / 3)), 0, 2)
        iv = np.clip(np.floor((v + a) / (length / 3)), 0, 2)
        return ((iu + iv) % 2).astype(np.float32)
    if pattern == "rings":
        return (np.sqrt(u ** 2 + v ** 2) > 0.65 * a).astype(np.float32)  # outer band; the inner is 0.3-0.65
    if pattern == "dots":
        radius = length / np.sqrt(3)  # spots halfway from the centre to each vertex
        near = np.zeros(np.broadcast(u, v).shape, bool)
        for k in range(3):
            cu, cv = 0.5 * radius * np.cos(2 * np.pi * k / 3), 0.5 * radius * np.sin(2 * np.pi * k / 3)
            near |= (u - cu) ** 2 + (v - cv) ** 2 <= (0.2 * radius) ** 2
        return near.astype(np.float32)
    raise ValueError(f"unknown texture {pattern!r}")


def half_extent(shape: str, length: float, angle: float) -> tuple[float, float]:
    """Half width and half height (px) of the axis-aligned box around a centred shape."""
    a = length / 2
    c, s = abs(np.cos(angle)), abs(np.sin(angle))
    if shape in ("disc", "annulus"):
        return a, a
    if shape == "square":
        return a * (c + s), a * (c + s)
    if shape == "equilateral":
        radius = length / np.sqrt(3)
        ks = angle + 2 * np.pi * np.arange(3) / 3
        return float(np.abs(radius * np.cos(ks)).max()), float(np.abs(radius * np.sin(ks)).max())
    if shape == "diamond":
        return a * max(c, s), a * max(c, s)
    if shape == "bar":
        b = a / 2.4
        return a * c + b * s, a * s + b * c
    if shape == "ellipse":
        b = a / 2
        return float(np.hypot(a * c, b * s)), float(np.hypot(a * s, b * c))
    if shape == "cross":
        w = a / 2.4 * 0.6
        return max(a * c + w * s, w * c + 0.6 * a * s), max(a * s + w * c, w * s + 0.6 * a * c)
    if shape == "triangle":
        # Vertices in object coordinates (u, v) mapped to screen offsets (see local_coords).
        cu, su = np.cos(angle), np.sin(angle)
        verts = [(a, 0.0), (-a, 0.55 * a), (-a, -0.55 * a)]
        dx = [abs(u * cu - v * su) for u, v in verts]
        dy = [abs(-u * su - v * cu) for u, v in verts]
        return max(dx), max(dy)
    raise ValueError(f"unknown shape {shape!r}")


def inside_range(half: float, lo: float, hi: float, margin: float = 1.0) -> tuple[float, float]:
    """Centre positions in ``[lo, hi]`` that keep an object of half size ``half`` inside by ``margin``."""
    a, b = lo + half + margin, hi - half - margin
    return (a, b) if a <= b else ((lo + hi) / 2, (lo + hi) / 2)


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


def luma(rgb: Any) -> np.ndarray:
    """Rec. 601 luma of RGB values (last axis), the channel H.264 keeps at full resolution."""
    rgb = np.asarray(rgb, dtype=np.float32)
    return rgb @ np.array([0.299, 0.587, 0.114], np.float32)


def shade_name(rgb: Any) -> str:
    """A grey-scale name for a texture shade, by its luma (captions)."""
    y = float(luma(rgb))
    for limit, name in ((40, "black"), (90, "dark grey"), (150, "grey"), (210, "light grey")):
        if y < limit:
            return name
    return "white"


def pick_texture_colours(rng: np.random.Generator, background: np.ndarray, *, bg_luma: float = 40.0,
                         pair_luma: float = 100.0, tint: float = 30.0) -> tuple[str, np.ndarray, str, np.ndarray]:
    """A dark and a light shade of one random tint for a texture on ``background`` (``[N, 3]``, the
    pixels under it), in random order.

    Both shades are at least ``bg_luma`` brighter or darker than 95% of those pixels and at least
    ``pair_luma`` apart: the pattern lives in luma, which H.264 keeps at full resolution (it halves
    chroma), and neither half of it melts into the background. The two shades share their hue
    because varied hue pairs are what a small CNN cannot learn past from a few hundred clips
    (single-frame 81% with palette pairs, 100% with shared-tint shades; docs/synthetic.md).
    """
    y = luma(np.asarray(background, np.float32).reshape(-1, 3))
    lo, hi = np.percentile(y, [5, 95])
    banned = (lo - bg_luma, hi + bg_luma)

    def allowed(level: float) -> bool:
        return not banned[0] < level < banned[1]

    levels = None
    if allowed(30.0) and allowed(225.0):  # near black and near white, the usual case
        levels = (rng.uniform(5, min(60.0, banned[0])), rng.uniform(max(195.0, banned[1]), 250.0))
    else:
        for _ in range(200):
            a, b = np.sort(rng.uniform(5, 250, 2))
            if b - a >= pair_luma and allowed(a) and allowed(b):
                levels = (a, b)
                break
    if levels is None:  # no room (not seen with the default backgrounds): the widest pair
        levels = (5.0, 250.0)
    hue = rng.uniform(-tint, tint, 3).astype(np.float32)
    hue -= luma(hue)  # luma-neutral: the tint does not move the shade's brightness
    shades = [np.clip(level + hue, 0, 255).astype(np.float32) for level in levels]
    if rng.uniform() < 0.5:
        shades.reverse()
    return shade_name(shades[0]), shades[0], shade_name(shades[1]), shades[1]


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
    wave = np.zeros_like(t)
    for r, a in ((1.0, 1.0), (2.76, 0.5), (5.4, 0.25)):
        wave += a * np.exp(-t / (0.09 / r)) * np.sin(2 * np.pi * 660 * r * t)
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


def crossing_times(start: float, rate: float, step: float, duration: float, offset: float = 0.0) -> np.ndarray:
    """Times in ``[0, duration)`` when ``start + rate * t`` crosses ``offset`` + a multiple of ``step``."""
    if rate == 0:
        return np.zeros(0)
    start = start - offset
    if rate > 0:
        first = (step - np.mod(start, step)) / rate
    else:
        first = np.mod(start, step) / -rate
    first = first % (step / abs(rate))  # a start exactly on a multiple counts at t=0
    return np.arange(first, duration, step / abs(rate))


def write_wav(path: str | Path, audio: np.ndarray, sample_rate: int) -> None:
    """Write mono float32 samples as a 32-bit float WAV: lossless, readable by ffmpeg and soundfile."""
    data = np.asarray(audio, dtype="<f4").reshape(-1)
    fmt = struct.pack("<HHIIHH", 3, 1, sample_rate, 4 * sample_rate, 4, 32)  # 3 = IEEE float
    chunks = (b"fmt " + struct.pack("<I", len(fmt)) + fmt
              + b"fact" + struct.pack("<II", 4, len(data))
              + b"data" + struct.pack("<I", data.nbytes) + data.tobytes())
    Path(path).write_bytes(b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks)


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Read a mono float32 WAV written by ``write_wav``: ``(samples float32 [S], sample_rate)``."""
    raw = Path(path).read_bytes()
    if raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        raise ValueError(f"{path}: not a WAV file")
    pos, rate, out = 12, 0, None
    while pos + 8 <= len(raw):
        tag, size = raw[pos:pos + 4], struct.unpack("<I", raw[pos + 4:pos + 8])[0]
        body = raw[pos + 8:pos + 8 + size]
        if tag == b"fmt ":
            code, channels, rate, _, _, bits = struct.unpack("<HHIIHH", body[:16])
            if (code, channels, bits) != (3, 1, 32):
                raise ValueError(f"{path}: expected mono 32-bit float, got format {code}, {channels} ch, {bits} bit")
        elif tag == b"data":
            out = np.frombuffer(body, dtype="<f4").astype(np.float32)
        pos += 8 + size + (size & 1)
    if out is None:
        raise ValueError(f"{path}: no data chunk")
    return out, rate


# ---------------------------------------------------------------- manifest helpers

def clip_label(names: list[str], seed: int, index: int) -> str:
    """The class of clip ``index``: each run of ``len(names)`` clips is a seeded shuffle of the classes.

    Balanced (every class once per block), independent of how many clips are generated, and
    neither the index, the file name nor the manifest order tells the class.
    """
    block, pos = divmod(index, len(names))
    return names[int(np.random.default_rng([seed, block, 0x1ABE1]).permutation(len(names))[pos])]


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
