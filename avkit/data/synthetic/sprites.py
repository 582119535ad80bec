"""Pictures of the General MIDI instruments whose sounding part moves in time with the notes.

Each instrument has its own drawing (body colour drawn per clip) and a moving part that a camera
would see act at each note: a bow stroke per note (fast at the note's start, easing out, reversing
direction every note, tilted to the string the pitch is on), a plucked string that blurs wide and
settles with a hand leaving it, keys that go down at the onset (on the key of the pitch) and rise
slowly after the note ends, mallets that strike the bar of the pitch and lift, and for winds and
brass the fingering (keys, valves, slide) of the pitch plus a nod of the instrument at each
onset. So the frame-difference energy of the sounding part peaks at the note onsets, and two
players of one instrument are told apart by when they move. Everything is drawn with numpy
(anti-aliased by distance to each primitive) on all frames at once.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from avkit.data.synthetic.common import composite, luma
from avkit.data.synthetic.music import BY_NAME, GMInstrument, Note

TAU = 0.16  # s: how fast an onset's motion (strike, nod, pluck blur) dies away
_WHITE_PC = (0, 2, 4, 5, 7, 9, 11)
_SHARP_AFTER = {0, 2, 5, 7, 9}  # white pitch classes followed by a black key


def _col(a: object) -> np.ndarray:
    """Per-frame values as ``[T, 1, 1]`` (scalars as ``[1, 1, 1]``) so they broadcast over pixels."""
    return np.asarray(a, dtype=np.float32).reshape(-1, 1, 1)


class Pen:
    """Draws anti-aliased primitives onto a canvas (float32 ``[T or 1, H, W, 3]``) in a local frame.

    ``u`` (right) and ``v`` (down) are in units of ``scale`` pixels around ``(cx, cy)``, turned by
    ``angle`` (radians, per frame or fixed) and shifted by ``shift`` (local units, per frame).
    Primitives return coverage in [0, 1]; ``paint`` composites a colour with it. The canvas stays
    one frame while everything painted is still (the static parts cost one frame, not ``T``).
    """

    def __init__(self, canvas: np.ndarray, num_frames: int, cx: float, cy: float, scale: float,
                 angle: object = 0.0, shift: tuple[object, object] = (0.0, 0.0)) -> None:
        self.canvas = canvas
        self.num_frames = num_frames
        h, w = canvas.shape[1:3]
        y, x = np.meshgrid(np.arange(h, dtype=np.float32) + 0.5, np.arange(w, dtype=np.float32) + 0.5, indexing="ij")
        dx, dy = (x - cx) / scale, (y - cy) / scale
        c, s = np.cos(_col(angle)), np.sin(_col(angle))
        self.u = dx * c + dy * s - _col(shift[0])
        self.v = -dx * s + dy * c - _col(shift[1])
        self.px = 1.0 / scale
        self.alpha = np.zeros((1, h, w), np.float32)  # everything this pen drew: the sprite's mask

    def _aa(self, d: np.ndarray) -> np.ndarray:
        return np.clip(0.5 - d / self.px, 0.0, 1.0)

    def seg(self, a: tuple, b: tuple, w0: float, w1: float | None = None) -> np.ndarray:
        """A segment from ``a`` to ``b`` of width ``w0`` (tapering to ``w1``), round ends."""
        au, av, bu, bv = (_col(c) for c in (*a, *b))
        du, dv = bu - au, bv - av
        t = np.clip(((self.u - au) * du + (self.v - av) * dv) / np.maximum(du * du + dv * dv, 1e-9), 0.0, 1.0)
        width = w0 if w1 is None else w0 + (w1 - w0) * t
        return self._aa(np.hypot(self.u - au - t * du, self.v - av - t * dv) - width / 2)

    def ell(self, c: tuple, rx: float, ry: float | None = None) -> np.ndarray:
        ry = rx if ry is None else ry
        cu, cv = _col(c[0]), _col(c[1])
        k = np.sqrt(((self.u - cu) / rx) ** 2 + ((self.v - cv) / ry) ** 2)
        return self._aa((k - 1.0) * min(rx, ry))

    def ring(self, c: tuple, r: float, width: float) -> np.ndarray:
        d = np.hypot(self.u - _col(c[0]), self.v - _col(c[1]))
        return self._aa(np.abs(d - r) - width / 2)

    def rect(self, u0: object, v0: object, u1: object, v1: object) -> np.ndarray:
        u0, v0, u1, v1 = (_col(c) for c in (u0, v0, u1, v1))
        return self._aa(np.maximum(np.maximum(u0 - self.u, self.u - u1), np.maximum(v0 - self.v, self.v - v1)))

    def paint(self, cover: np.ndarray, colour: object) -> None:
        colour = np.asarray(colour, np.float32)
        if colour.ndim == 2:  # one colour per frame
            colour = colour[:, None, None, :]
        moving = max(cover.shape[0], colour.shape[0] if colour.ndim == 4 else 1) > 1
        if moving and self.canvas.shape[0] == 1:
            self.canvas = np.repeat(self.canvas, self.num_frames, axis=0)
        self.canvas = composite(self.canvas, cover, colour)
        self.alpha = np.maximum(self.alpha, cover)


# ---------------------------------------------------------------- motion of the notes

def seen(onset: float, times: np.ndarray) -> float:
    """When a camera filming at ``times`` first shows an onset: the first frame at or after it.

    Motion is timed from there, so a quick movement that starts between two frames still shows
    whole in the next frame (as a camera's exposure would catch it), whatever the onset's phase.
    """
    i = int(np.searchsorted(times, onset - 1e-9))
    return float(times[i]) if i < len(times) else float("inf")


def strike(notes: Sequence[Note], times: np.ndarray, tau: float = TAU) -> np.ndarray:
    """``[T]``: 1 at the frame showing each onset, decaying with ``tau``; 0 before the first note."""
    out = np.zeros(len(times), np.float32)
    for n in notes:
        since = times - seen(n.onset, times)
        out = np.maximum(out, np.where(since >= 0, np.exp(-np.maximum(since, 0) / tau), 0.0))
    return out


def last_note(notes: Sequence[Note], times: np.ndarray) -> np.ndarray:
    """``[T]``: index of the latest note started by each frame's time (-1 before the first)."""
    onsets = np.array([n.onset for n in notes], np.float64)
    return np.searchsorted(onsets, times, side="right") - 1 if len(onsets) else np.full(len(times), -1)


def key_levels(notes: Sequence[Note], times: np.ndarray, keys: np.ndarray, release: float = 0.12) -> np.ndarray:
    """``[T, K]``: how far each of ``keys`` is pressed: 1 from its onset to its end, then rising back
    (exponentially, ``release`` s), so pressing is sudden and letting go is gradual."""
    out = np.zeros((len(times), len(keys)), np.float32)
    index = {int(k): i for i, k in enumerate(keys) if k >= 0}
    for n in notes:
        if n.key not in index:
            continue
        end = n.onset + n.duration
        level = np.where(times < n.onset, 0.0, np.where(times < end, 1.0, np.exp(-(times - end) / release)))
        out[:, index[n.key]] = np.maximum(out[:, index[n.key]], level)
    return out


def note_strikes(notes: Sequence[Note], times: np.ndarray, slots: Callable[[Note], int], count: int,
                 tau: float = TAU) -> np.ndarray:
    """``[T, count]``: ``strike`` of the notes of each slot (string, bar) ``slots(note)``."""
    out = np.zeros((len(times), count), np.float32)
    for n in notes:
        i = slots(n)
        if 0 <= i < count:
            since = times - seen(n.onset, times)
            out[:, i] = np.maximum(out[:, i], np.where(since >= 0, np.exp(-np.maximum(since, 0) / tau), 0.0))
    return out


def _ease(notes: Sequence[Note], times: np.ndarray, targets: Sequence[float], start: float, tau: float) -> np.ndarray:
    """``[T]``: a value that moves to ``targets[i]`` from wherever it is at note ``i``'s onset, fast
    at first and easing out (time constant ``tau``)."""
    out = np.full(len(times), start, np.float32)
    origin, goal, t0 = start, start, 0.0
    for n, target in zip(notes, targets):
        start_at = seen(n.onset, times)
        origin = goal + (origin - goal) * float(np.exp(-max(start_at - t0, 0.0) / tau))  # where it is now
        goal, t0 = target, start_at
        here = times >= t0
        out[here] = goal + (origin - goal) * np.exp(-(times[here] - t0) / tau)
    return out


# ---------------------------------------------------------------- colours

class Palette:
    """The colours of one player: its body colour (drawn per clip) and contrasting inks."""

    def __init__(self, body: np.ndarray) -> None:
        self.body = np.asarray(body, np.float32)
        self.ink = np.array([25, 22, 20] if luma(self.body) > 100 else [235, 232, 225], np.float32)
        self.dark = self.body * 0.45
        self.light = np.clip(self.body * 0.5 + 127, 0, 255)
        self.metal = np.array([205, 205, 212], np.float32)
        self.wood = np.array([70, 40, 20], np.float32)
        self.skin = np.array([225, 180, 140], np.float32)

    def flash(self, level: np.ndarray, base: np.ndarray, to: np.ndarray | None = None) -> np.ndarray:
        """Per-frame colour ``[T, 3]``: ``base`` lit towards ``to`` (white) by ``level`` in [0, 1]."""
        to = np.array([255, 250, 225], np.float32) if to is None else to
        return base + (to - base) * np.asarray(level, np.float32)[:, None]


# ---------------------------------------------------------------- families

def _string_of(key: int, tuning: Sequence[int]) -> int:
    """The highest string whose open pitch is at or below ``key``."""
    return max([i for i, base in enumerate(tuning) if base <= key] or [0])


def _bowed(canvas, box, inst, notes, times, pal) -> Pen:
    """A bowed string instrument; the bow strokes once per note, alternating up and down bows."""
    look = {"violin": (0.6, -0.95, (55, 62, 69, 76), False), "cello": (0.86, 0.1, (36, 43, 50, 57), True),
            "contrabass": (1.0, 0.08, (28, 33, 38, 43), True)}[inst.name]
    size, angle, tuning, endpin = look
    pen = _pen(canvas, box, size, angle, num_frames=len(times))
    k = 1.0 if inst.name != "contrabass" else 0.95
    if endpin:
        pen.paint(pen.seg((0, 0.3), (0, 0.5), 0.015), pal.metal)
    shoulder = 0.8 if inst.name == "contrabass" else 1.0
    body = np.maximum.reduce([pen.ell((0, 0.14), 0.17 * k, 0.14), pen.ell((0, -0.06), 0.13 * k * shoulder, 0.11),
                              pen.ell((0, 0.04), 0.12 * k, 0.08)])
    pen.paint(body, pal.body)
    for side in (-1, 1):  # f-holes
        pen.paint(pen.seg((side * 0.07, 0.02), (side * 0.065, 0.11), 0.018), pal.ink)
    pen.paint(pen.seg((0, 0.18), (0, 0.26), 0.045), pal.ink)  # tailpiece
    pen.paint(pen.seg((0, -0.17), (0, 0.08), 0.055), pal.ink)  # fingerboard
    pen.paint(pen.seg((0, -0.15), (0, -0.41), 0.045), pal.dark)  # neck
    pen.paint(pen.ell((0, -0.43), 0.03, 0.035), pal.dark)  # scroll
    pen.paint(pen.seg((-0.045, 0.13), (0.045, 0.13), 0.02), pal.light)  # bridge
    for q in (-0.024, -0.008, 0.008, 0.024):
        pen.paint(pen.seg((q, 0.25), (q, -0.4), 0.008), pal.light)
    # The bow: its contact point on the strings stays put while the bow slides along its own axis.
    direction = [0.22 if i % 2 == 0 else -0.22 for i in range(len(notes))]
    travel = _ease(notes, times, direction, 0.0, 0.12)
    last = last_note(notes, times)
    tilt = np.array([(_string_of(notes[i].key, tuning) - 1.5) * 0.14 if i >= 0 else 0.0 for i in last], np.float32)
    du, dv = np.cos(0.12 + tilt), np.sin(0.12 + tilt)
    cu, cv = -travel * du, 0.1 - travel * dv
    half = 0.36
    a, b = (cu - half * du, cv - half * dv), (cu + half * du, cv + half * dv)
    pen.paint(pen.seg(a, b, 0.018), np.array([235, 228, 205], np.float32))  # hair
    pen.paint(pen.seg((a[0] - 0.02 * dv, a[1] + 0.02 * du), (b[0] - 0.02 * dv, b[1] + 0.02 * du), 0.016), pal.wood)
    pen.paint(pen.ell((a[0] + 0.01 * du, a[1] + 0.01 * dv), 0.035), pal.wood)  # frog
    return pen


def _plucked(canvas, box, inst, notes, times, pal) -> Pen:
    """Guitar and banjo: the string of the pitch blurs wide at the pluck and settles; a hand leaves it."""
    if inst.name == "harp":
        return _harp(canvas, box, inst, notes, times, pal)
    banjo = inst.name == "banjo"
    tuning = (48, 55, 62, 67, 74) if banjo else (40, 45, 50, 55, 59, 64)
    pen = _pen(canvas, box, 0.95, -1.2, num_frames=len(times))
    if banjo:
        pen.paint(pen.ell((0, 0.2), 0.2), pal.body)
        pen.paint(pen.ell((0, 0.2), 0.165), np.array([236, 230, 214], np.float32))
    else:
        pen.paint(np.maximum.reduce([pen.ell((0, 0.2), 0.19, 0.16), pen.ell((0, -0.01), 0.15, 0.12),
                                     pen.ell((0, 0.09), 0.13, 0.08)]), pal.body)
        pen.paint(pen.ell((0, 0.07), 0.055), pal.ink)  # sound hole
    pen.paint(pen.seg((0, -0.08), (0, -0.44), 0.065), pal.dark)  # neck
    pen.paint(pen.rect(-0.045, -0.52, 0.045, -0.43), pal.dark)  # head
    for f in np.arange(-0.13, -0.43, -0.045):
        pen.paint(pen.seg((-0.03, f), (0.03, f), 0.008), pal.metal)
    pen.paint(pen.seg((-0.05, 0.25), (0.05, 0.25), 0.025), pal.ink)  # bridge
    count = len(tuning)
    qs = np.linspace(-0.025, 0.025, count)
    vib = note_strikes(notes, times, lambda n: _string_of(n.key, tuning), count, tau=0.14)
    for i, q in enumerate(qs):
        width = 0.008 + 0.035 * vib[:, i]  # a vibrating string looks like a wider blur
        pen.paint(_band(pen, q, 0.25, -0.44, width), pal.light)
    last = last_note(notes, times)
    s = strike(notes, times, 0.2)
    hand_q = np.array([qs[_string_of(notes[i].key, tuning)] if i >= 0 else 0.0 for i in last], np.float32)
    pen.paint(pen.ell((hand_q + 0.03 + 0.09 * (1 - s), 0.14), 0.04), pal.skin)
    return pen


def _band(pen: Pen, q: float, v0: float, v1: float, width: np.ndarray) -> np.ndarray:
    """A straight string along ``v`` at ``u = q`` whose width changes per frame."""
    d = np.maximum(np.abs(pen.u - q) - _col(width) / 2, np.maximum(pen.v - max(v0, v1), min(v0, v1) - pen.v))
    return pen._aa(d)


def _harp(canvas, box, inst, notes, times, pal) -> Pen:
    pen = _pen(canvas, box, 0.95, 0.0, num_frames=len(times))
    count = 13
    us = np.linspace(-0.22, 0.26, count)
    board = lambda u: 0.42 + (u + 0.28) * (-0.72 / 0.58)  # noqa: E731 - the soundboard's line
    slot = lambda n: int(round((n.key - inst.low) / (inst.high - inst.low) * (count - 1)))  # noqa: E731
    vib = note_strikes(notes, times, slot, count, tau=0.16)
    for i, u in enumerate(us):
        colour = np.array([200, 40, 40], np.float32) if i % 7 == 0 else pal.light  # the C strings are red on a harp
        pen.paint(_band(pen, float(u), float(board(u)), -0.36, 0.01 + 0.035 * vib[:, i]), colour)
    pen.paint(pen.seg((-0.28, 0.42), (0.3, -0.3), 0.13, 0.05), pal.body)  # soundboard
    pen.paint(pen.seg((-0.33, 0.45), (-0.33, -0.38), 0.06), pal.dark)  # column
    pen.paint(pen.seg((-0.33, -0.38), (0.0, -0.34), 0.05), pal.dark)  # neck
    pen.paint(pen.seg((0.0, -0.34), (0.32, -0.42), 0.05), pal.dark)
    # A hand at the middle of the plucked string that leaves it after the pluck.
    last = last_note(notes, times)
    hand_u = np.array([us[min(max(slot(notes[i]), 0), count - 1)] if i >= 0 else 0.0 for i in last], np.float32)
    hand_v = (board(hand_u) - 0.36) / 2
    pluck = strike(notes, times, 0.2)
    pen.paint(pen.ell((hand_u + 0.02 + 0.14 * (1 - pluck), hand_v), 0.04, 0.05), pal.skin)
    return pen


_FINGERS = 7


def _fingering(key: int) -> int:
    """How many of the 7 keys/holes are closed for a pitch: more for lower notes within an octave."""
    return int(round((11 - key % 12) * _FINGERS / 11))


def _nod(notes, times, amount: float) -> np.ndarray:
    return amount * strike(notes, times)


def _woodwind(canvas, box, inst, notes, times, pal) -> Pen:
    """Flute, clarinet, saxophone: the fingering of the pitch, and a nod of the instrument at each onset."""
    last = last_note(notes, times)
    closed = np.array([_fingering(notes[i].key) if i >= 0 else 0 for i in last])
    nod = _nod(notes, times, 0.12)
    if inst.name == "flute":
        pen = _pen(canvas, box, 1.0, -0.18 + nod, shift=(0.0, 0.04 * nod / 0.12), num_frames=len(times))
        pen.paint(pen.seg((-0.46, 0), (0.44, 0), 0.045), pal.body)
        pen.paint(pen.ell((-0.36, -0.015), 0.035, 0.02), pal.ink)  # lip plate
        holes = [(u, 0.0) for u in np.linspace(0.36, -0.16, _FINGERS)]
        radius = 0.02
    elif inst.name == "clarinet":
        pen = _pen(canvas, box, 1.0, 0.3 + nod, shift=(0.0, 0.0), num_frames=len(times))
        pen.paint(pen.seg((0, -0.47), (0, -0.4), 0.02, 0.05), pal.ink)  # mouthpiece
        pen.paint(pen.seg((0, -0.4), (0, 0.3), 0.06), pal.body)
        pen.paint(pen.seg((0, 0.28), (0, 0.46), 0.06, 0.17), pal.body)  # bell
        for v in (-0.3, 0.02):
            pen.paint(pen.seg((-0.035, v), (0.035, v), 0.015), pal.metal)
        holes = [(0.0, v) for v in np.linspace(0.22, -0.28, _FINGERS)]
        radius = 0.022
    else:  # alto sax
        pen = _pen(canvas, box, 1.0, 0.15 + nod, shift=(0.0, 0.0), num_frames=len(times))
        pen.paint(pen.seg((-0.06, -0.3), (-0.06, 0.22), 0.06, 0.11), pal.body)
        bow = pen.ring((0.04, 0.22), 0.1, 0.11) * (pen.v > 0.22)
        pen.paint(bow, pal.body)
        pen.paint(pen.seg((0.14, 0.22), (0.16, -0.1), 0.11, 0.2), pal.body)  # bell
        pen.paint(pen.seg((0.06, -0.12), (0.26, -0.08), 0.03), pal.ink)  # bell rim
        pen.paint(pen.seg((-0.06, -0.3), (-0.15, -0.4), 0.04), pal.body)  # neck
        pen.paint(pen.seg((-0.15, -0.4), (-0.24, -0.38), 0.03), pal.ink)  # mouthpiece
        holes = [(-0.1, v) for v in np.linspace(0.16, -0.22, _FINGERS)]
        radius = 0.022
    for i, (hu, hv) in enumerate(holes):
        shut = _col((closed > i).astype(np.float32))
        pen.paint(pen.ring((hu, hv), radius, 0.012), pal.metal)
        pen.paint(pen.ell((hu, hv), radius * 0.8) * shut, pal.ink)
    return pen


_PARTIALS = {  # open notes (no valve, slide in) of each brass instrument, MIDI keys
    "trumpet": (58, 65, 70, 74, 77, 80, 82, 84),
    "trombone": (40, 46, 53, 58, 62, 65, 68, 70, 72),
    "french_horn": (41, 48, 53, 57, 60, 63, 65, 67, 69, 72, 74, 77),
    "tuba": (28, 34, 41, 46, 50, 53, 56, 58),
}
_VALVES = {0: (), 1: (1,), 2: (0,), 3: (0, 1), 4: (1, 2), 5: (0, 2), 6: (0, 1, 2)}


def brass_lowering(name: str, key: int) -> int:
    """Semitones (0-6) that valves or the slide take off the nearest open note at or above ``key``."""
    above = [p for p in _PARTIALS[name] if p >= key]
    return min((above[0] if above else _PARTIALS[name][-1]) - key, 6) if above else 0


def _brass(canvas, box, inst, notes, times, pal) -> Pen:
    """Trumpet, trombone, horn, tuba: valves (or the slide) of the pitch, and the bell lifts at each onset."""
    last = last_note(notes, times)
    lowering = np.array([brass_lowering(inst.name, notes[i].key) if i >= 0 else 0 for i in last])
    pressed = np.stack([np.isin(lowering, [d for d, vs in _VALVES.items() if j in vs]) for j in range(3)], 1)
    pressed = pressed.astype(np.float32)
    nod = _nod(notes, times, 0.1)
    if inst.name == "trumpet":
        pen = _pen(canvas, box, 1.0, -0.05 - nod, num_frames=len(times))
        pen.paint(pen.seg((-0.47, 0), (-0.38, 0), 0.02, 0.04), pal.ink)  # mouthpiece
        pen.paint(pen.seg((-0.38, 0), (0.02, 0), 0.035), pal.body)
        pen.paint(pen.seg((-0.16, 0.12), (0.06, 0.12), 0.035), pal.body)
        pen.paint(pen.ring((-0.16, 0.06), 0.06, 0.035) * (pen.u < -0.16), pal.body)
        pen.paint(pen.seg((0.02, 0), (0.44, 0), 0.04, 0.27), pal.body)  # bell
        pen.paint(pen.seg((0.44, -0.13), (0.44, 0.13), 0.025), pal.light)
        for j, u in enumerate((-0.1, -0.03, 0.04)):
            pen.paint(pen.rect(u - 0.025, -0.05, u + 0.025, 0.16), pal.dark)
            top = -0.14 + 0.06 * pressed[:, j]
            pen.paint(pen.seg((u, top), (u, -0.05), 0.015), pal.metal)
            pen.paint(pen.ell((u, top), 0.03, 0.015), pal.ink)
    elif inst.name == "trombone":
        slide = _ease(notes, times, [0.08 + 0.055 * brass_lowering("trombone", n.key) for n in notes], 0.08, 0.06)
        pen = _pen(canvas, box, 1.0, -nod * 0.6, num_frames=len(times))
        pen.paint(pen.seg((-0.38, -0.09), (0.02, -0.09), 0.03), pal.body)
        pen.paint(pen.seg((0.0, -0.09), (0.42, -0.09), 0.035, 0.24), pal.body)  # bell
        pen.paint(pen.seg((0.42, -0.2), (0.42, 0.02), 0.02), pal.light)
        pen.paint(pen.ring((-0.38, -0.04), 0.05, 0.03) * (pen.u < -0.38), pal.body)
        pen.paint(pen.seg((-0.42, 0.02), (-0.3, 0.02), 0.02, 0.03), pal.ink)  # mouthpiece
        for v in (0.02, 0.09):
            pen.paint(pen.seg((-0.3, v), (-0.3 + 0.3, v), 0.018), pal.metal)  # inner slide
            pen.paint(pen.seg((slide - 0.3, v), (slide, v), 0.03), pal.body)  # outer slide
        pen.paint(pen.seg((slide, 0.02), (slide, 0.09), 0.035), pal.body)
        pen.paint(pen.ell((slide - 0.28, 0.055), 0.02, 0.05), pal.skin)  # the hand on the slide
    elif inst.name == "french_horn":
        pen = _pen(canvas, box, 1.0, -nod * 0.8, num_frames=len(times))
        pen.paint(pen.ring((0, 0), 0.22, 0.05), pal.body)
        pen.paint(pen.ring((0, 0), 0.14, 0.03), pal.body)
        pen.paint(pen.seg((0.12, 0.16), (0.34, 0.38), 0.05, 0.32), pal.body)  # bell
        pen.paint(pen.seg((-0.06, -0.06), (-0.36, -0.22), 0.03), pal.body)
        pen.paint(pen.seg((-0.36, -0.22), (-0.44, -0.26), 0.02, 0.035), pal.ink)
        for j, u in enumerate((-0.06, 0.0, 0.06)):
            pen.paint(pen.ell((u, -0.08), 0.028), pal.metal)
            pen.paint(pen.seg((u, -0.08), (u - 0.05 * pressed[:, j], -0.2 + 0.05 * pressed[:, j]), 0.015), pal.ink)
    else:  # tuba
        pen = _pen(canvas, box, 1.0, nod * 0.5, num_frames=len(times))
        pen.paint(pen.seg((0.02, 0.3), (0.02, -0.15), 0.1, 0.16), pal.body)
        pen.paint(pen.seg((0.02, -0.15), (0.02, -0.44), 0.16, 0.42), pal.body)  # bell, up
        pen.paint(pen.seg((-0.19, -0.45), (0.23, -0.45), 0.03), pal.light)
        pen.paint(pen.ring((-0.07, 0.3), 0.09, 0.08) * (pen.v > 0.3), pal.body)
        pen.paint(pen.seg((-0.16, 0.3), (-0.16, -0.04), 0.06), pal.body)
        pen.paint(pen.seg((-0.16, -0.04), (-0.3, -0.16), 0.03), pal.body)
        pen.paint(pen.seg((-0.3, -0.16), (-0.36, -0.16), 0.02, 0.035), pal.ink)
        for j, v in enumerate((0.0, 0.07, 0.14)):
            pen.paint(pen.rect(-0.2, v - 0.022, -0.12, v + 0.022), pal.dark)
            pen.paint(pen.ell((-0.26 + 0.05 * pressed[:, j], v), 0.025, 0.018), pal.ink)
    return pen


def _window(notes: Sequence[Note], inst: GMInstrument, octaves: int) -> int:
    """The lowest C of the keyboard shown: ``octaves`` octaves that hold the notes (or the range's middle)."""
    keys = [n.key for n in notes] or [(inst.low + inst.high) // 2]
    lo = 12 * (min(keys) // 12)
    return int(min(lo, 12 * (max(keys) // 12) - 12 * (octaves - 1)) if max(keys) - lo >= 12 * octaves else lo)


def _keyboard(pen: Pen, notes, times, start_c: int, octaves: int, top: float, bottom: float,
              naturals: np.ndarray, sharps: np.ndarray, pal: Palette, press: np.ndarray) -> None:
    """Keys of ``octaves`` octaves from MIDI key ``start_c`` across the pen's width; pressed keys
    take the ``press`` colour."""
    whites = 7 * octaves + 1
    left, right = -0.44, 0.44
    kw = (right - left) / whites
    white_keys = np.array([start_c + 12 * (i // 7) + _WHITE_PC[i % 7] for i in range(whites)])
    has_sharp = np.isin(white_keys % 12, list(_SHARP_AFTER)) & (np.arange(whites) < whites - 1)
    black_keys = np.where(has_sharp, white_keys + 1, -1)  # -1: no black key after this white one
    levels = key_levels(notes, times, np.concatenate([white_keys, black_keys]), release=0.25)  # [T, 2 * whites]
    idx = np.clip(np.floor((pen.u - left) / kw), 0, whites - 1).astype(np.int64)
    frac = (pen.u - left) / kw - idx
    frame = np.arange(len(times)).reshape(-1, 1, 1)
    inside = pen.rect(left, top, right, bottom)
    level = levels[frame, idx][..., None]
    pen.paint(inside, naturals + (press - naturals) * level)
    pen.paint(inside * (frac < 0.14), pal.ink * 0.5 + 40)  # the gaps between white keys
    right = (frac > 0.68) & has_sharp[idx]  # a black key straddles two white keys
    left_half = (frac < 0.32) & (idx > 0) & has_sharp[np.maximum(idx - 1, 0)]
    owner = np.where(right, idx, np.maximum(idx - 1, 0))
    black = inside * (pen.v < top + 0.6 * (bottom - top)) * (right | left_half)
    pen.paint(black, sharps + (press - sharps) * levels[frame, whites + owner][..., None])
    # A fingertip over the key of the latest note (the middle of a chord) that lands at each onset.
    centre = {int(k): left + (i + 0.5) * kw for i, k in enumerate(white_keys)}
    centre.update({int(k): left + (i + 1.0) * kw for i, k in enumerate(black_keys) if k >= 0})
    last = last_note(notes, times)
    chords = [np.mean([centre.get(m.key, 0.0) for m in notes if abs(m.onset - n.onset) < 1e-3]) for n in notes]
    hu = np.array([chords[i] if i >= 0 else 0.0 for i in last], np.float32)
    hv = top + 0.02 - 0.1 * (1 - strike(notes, times, 0.2))
    pen.paint(pen.ell((hu, hv), 0.03, 0.045), pal.skin)


def _keys(canvas, box, inst, notes, times, pal) -> Pen:
    """Piano, harpsichord, organ: the case, and keys that go down at each note's onset."""
    pen = _pen(canvas, box, 1.0, 0.0, num_frames=len(times))
    octaves = 2
    start = _window(notes, inst, octaves)
    ivory, ebony = np.array([240, 236, 225], np.float32), np.array([20, 20, 20], np.float32)
    press = (np.array([120, 200, 255], np.float32) if luma(pal.body) > 150
             else pal.light * 0.6 + np.array([0, 60, 100], np.float32))
    press = np.clip(press, 0, 255)
    if inst.name == "piano":
        pen.paint(pen.seg((-0.36, 0.14), (-0.36, 0.44), 0.04), pal.dark)  # legs
        pen.paint(pen.seg((0.36, 0.14), (0.36, 0.44), 0.04), pal.dark)
        pen.paint(pen.rect(-0.47, -0.1, 0.47, 0.13), pal.body)
        pen.paint(pen.seg((-0.45, -0.11), (0.38, -0.42), 0.035), pal.dark)  # the raised lid
        pen.paint(pen.seg((0.22, -0.1), (0.24, -0.35), 0.015), pal.ink)
        _keyboard(pen, notes, times, start, octaves, 0.13, 0.3, ivory, ebony, pal, press)
    elif inst.name == "harpsichord":
        pen.paint(pen.seg((-0.38, 0.14), (-0.38, 0.44), 0.03), pal.dark)
        pen.paint(pen.seg((0.38, 0.14), (0.38, 0.44), 0.03), pal.dark)
        pen.paint(pen.rect(-0.47, -0.28, 0.47, 0.12), pal.body)
        pen.paint(pen.rect(-0.44, -0.25, 0.44, -0.05), pal.light)  # the painted inside of the lid
        pen.paint(pen.rect(-0.44, -0.02, 0.44, 0.06), ebony)  # upper manual (at rest)
        _keyboard(pen, notes, times, start, octaves, 0.08, 0.24, ebony + 30, ivory, pal, press)
    else:  # church organ: pipes over a console; the pipe of a held note speaks (lights up)
        pen.paint(pen.rect(-0.47, -0.02, 0.47, 0.42), pal.body)
        levels = key_levels(notes, times, np.arange(start, start + 12 * octaves + 1), release=0.25)
        lit = levels.reshape(len(times), -1)[:, : 12 * octaves].reshape(len(times), octaves, 12).max(1)
        for i in range(12):
            u = -0.4 + i * 0.8 / 11
            height = 0.18 + 0.25 * (1 - abs(i - 5.5) / 5.5)
            colour = pal.flash(lit[:, i], pal.metal * 0.8)
            pen.paint(pen.rect(u - 0.028, -0.02 - height, u + 0.028, -0.02), colour)
            pen.paint(pen.seg((u - 0.02, -0.07), (u + 0.02, -0.07), 0.015), pal.ink)  # the pipe's mouth
        _keyboard(pen, notes, times, start, octaves, 0.06, 0.22, ivory, ebony, pal, press)
    return pen


def _mallets(canvas, box, inst, notes, times, pal) -> Pen:
    """Marimba, xylophone, vibraphone: bars laid out like a keyboard; a mallet strikes the bar of
    the pitch at the onset and lifts, and the bar flashes."""
    pen = _pen(canvas, box, 1.0, 0.0, num_frames=len(times))
    octaves = 2
    start = _window(notes, inst, octaves)
    whites = 7 * octaves + 1
    left, right = -0.45, 0.45
    kw = (right - left) / whites
    white_keys = [start + 12 * (i // 7) + _WHITE_PC[i % 7] for i in range(whites)]
    bars: list[tuple[int, float, float, float]] = []  # key, centre u, centre v, length
    for i, key in enumerate(white_keys):
        bars.append((key, left + (i + 0.5) * kw, 0.12, 0.3 - 0.12 * i / whites))
        if key % 12 in _SHARP_AFTER and i < whites - 1:
            bars.append((key + 1, left + (i + 1) * kw, -0.17, 0.22 - 0.09 * i / whites))
    metal = inst.name == "vibraphone"
    bar_colour = pal.metal if metal else pal.body
    if inst.name != "xylophone":  # resonator tubes under the lower row
        for _, u, v, length in bars:
            if v > 0:
                pen.paint(pen.rect(u - kw * 0.25, v, u + kw * 0.25, v + length * 0.5 + 0.12),
                          pal.dark if metal else pal.metal * 0.7)
    else:
        pen.paint(pen.seg((left, 0.05), (right, 0.08), 0.02), pal.dark)
        pen.paint(pen.seg((left, 0.2), (right, 0.17), 0.02), pal.dark)
        pen.paint(pen.seg((-0.35, 0.2), (-0.25, 0.46), 0.025), pal.dark)
        pen.paint(pen.seg((0.35, 0.17), (0.25, 0.46), 0.025), pal.dark)
    keys = [b[0] for b in bars]
    flash = note_strikes(notes, times, lambda n: keys.index(n.key) if n.key in keys else -1, len(bars), tau=0.2)
    for j, (_, u, v, length) in enumerate(bars):
        pen.paint(pen.rect(u - kw * 0.36, v - length / 2, u + kw * 0.36, v + length / 2),
                  pal.flash(0.7 * flash[:, j], bar_colour))
    # Two mallets: a chord's lowest note goes to the left one; otherwise they alternate.
    hands: list[list[Note]] = [[], []]
    for i, n in enumerate(notes):
        together = [m for m in notes if abs(m.onset - n.onset) < 1e-3]
        hand = 0 if (len(together) > 1 and n.key == min(m.key for m in together)) else (
            1 if len(together) > 1 else i % 2)
        hands[hand].append(n)
    place = {b[0]: (b[1], b[2]) for b in bars}
    for h, own in enumerate(hands):
        rest = (-0.3 if h == 0 else 0.3, -0.05)
        lastn = last_note(own, times)
        hu = np.array([place.get(own[i].key, rest)[0] if i >= 0 else rest[0] for i in lastn], np.float32)
        hv: np.ndarray = np.array([place.get(own[i].key, rest)[1] if i >= 0 else rest[1] for i in lastn], np.float32)
        hv = hv - 0.13 * (1 - strike(own, times, 0.2))  # on the bar at the onset, then lifted
        pen.paint(pen.seg((hu, hv), (hu + (0.12 if h else -0.12), hv - 0.3), 0.018), pal.wood)
        pen.paint(pen.ell((hu, hv), 0.035), pal.ink)
    return pen


_FAMILY_DRAW = {"bowed_strings": _bowed, "plucked_strings": _plucked, "woodwinds": _woodwind,
                "brass": _brass, "keys": _keys, "pitched_percussion": _mallets}


def _pen(canvas: np.ndarray, box: tuple[float, float, float, float], size: float, angle: object,
         shift: tuple[object, object] = (0.0, 0.0), num_frames: int = 1) -> Pen:
    """A pen whose unit square ``[-0.5, 0.5]^2`` fills ``size`` of the box's shorter side."""
    x0, y0, x1, y1 = box
    scale = min(x1 - x0, y1 - y0) * size
    return Pen(canvas, num_frames, (x0 + x1) / 2, (y0 + y1) / 2, scale, angle, shift)


def draw_player(canvas: np.ndarray, name: str, notes: Sequence[Note], times: np.ndarray,
                box: tuple[float, float, float, float], body: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Draw instrument ``name`` playing ``notes`` inside ``box`` (``x0, y0, x1, y1`` px) on ``canvas``
    (float32 ``[T or 1, H, W, 3]``; ``times`` are the ``T`` frames' times, s) in colour ``body``.

    Returns ``(canvas, coverage)``: the new canvas (``[T, H, W, 3]`` once anything moved) and the
    sprite's coverage ``[T or 1, H, W]`` in [0, 1].
    """
    inst = BY_NAME[name]
    notes = sorted(notes, key=lambda n: (n.onset, n.key))
    times = np.asarray(times, np.float64)
    family = _FAMILY_DRAW[inst.family]
    pen = family(canvas, box, inst, notes, times, Palette(body))
    return pen.canvas, pen.alpha
