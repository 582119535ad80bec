"""Procedural music for the ``gm_instruments`` kind: the instruments and the notes they play.

``GM_INSTRUMENTS`` lists the General MIDI instruments avkit renders (program numbers of the
General MIDI standard, a playable key range, the family, how much vibrato a player adds).
``compose_song`` draws a song (tempo, key, mode, metre, chord progression) and ``compose_part``
one player's part in it: a melody, a counter-melody, a bass line, block chords or arpeggios, with
varied rhythm, register, dynamics (a phrase-long crescendo or diminuendo, accents), articulation
(legato to staccato) and vibrato. Two parts of one song share the tempo and the harmony but not
their notes, so two players of one instrument are never in unison.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FAMILIES = ("bowed_strings", "plucked_strings", "woodwinds", "brass", "keys", "pitched_percussion")
ROLES = ("melody", "countermelody", "bass", "chords", "arpeggio")


@dataclass(frozen=True)
class GMInstrument:
    """A General MIDI instrument: its bank preset, family and the keys a part may use."""

    name: str  # the General MIDI name in snake_case
    program: int  # General MIDI program, 0-based
    family: str
    low: int  # MIDI keys (60 = C4) a part may use: the instrument's usual range
    high: int
    vibrato: float = 0.0  # largest vibrato depth a player uses, cents
    polyphonic: bool = False  # plays chords

    @property
    def description(self) -> str:
        return f"{self.family.replace('_', ' ')}; General MIDI program {self.program + 1}, keys {self.low}-{self.high}"


GM_INSTRUMENTS: tuple[GMInstrument, ...] = (
    GMInstrument("violin", 40, "bowed_strings", 55, 91, vibrato=35),
    GMInstrument("cello", 42, "bowed_strings", 36, 72, vibrato=30),
    GMInstrument("contrabass", 43, "bowed_strings", 28, 57, vibrato=20),
    GMInstrument("acoustic_guitar", 24, "plucked_strings", 40, 76, polyphonic=True),
    GMInstrument("banjo", 105, "plucked_strings", 48, 79, polyphonic=True),
    GMInstrument("harp", 46, "plucked_strings", 36, 91, polyphonic=True),
    GMInstrument("flute", 73, "woodwinds", 60, 96, vibrato=25),
    GMInstrument("clarinet", 71, "woodwinds", 50, 86),  # played without vibrato
    GMInstrument("alto_sax", 65, "woodwinds", 49, 80, vibrato=30),
    GMInstrument("trumpet", 56, "brass", 54, 82, vibrato=15),
    GMInstrument("trombone", 57, "brass", 40, 72, vibrato=10),
    GMInstrument("french_horn", 60, "brass", 41, 77, vibrato=5),
    GMInstrument("tuba", 58, "brass", 28, 58, vibrato=5),
    GMInstrument("piano", 0, "keys", 36, 96, polyphonic=True),
    GMInstrument("harpsichord", 6, "keys", 41, 89, polyphonic=True),
    GMInstrument("church_organ", 19, "keys", 36, 84, polyphonic=True),
    GMInstrument("marimba", 12, "pitched_percussion", 45, 96, polyphonic=True),
    GMInstrument("xylophone", 13, "pitched_percussion", 65, 96, polyphonic=True),
    GMInstrument("vibraphone", 11, "pitched_percussion", 53, 89, polyphonic=True),
)
BY_NAME = {inst.name: inst for inst in GM_INSTRUMENTS}

_MAJOR = (0, 2, 4, 5, 7, 9, 11)
_MINOR = (0, 2, 3, 5, 7, 8, 10)
_PROGRESSIONS = ((0, 3, 4, 0), (0, 5, 3, 4), (0, 4, 5, 3), (1, 4, 0, 0), (0, 3, 0, 4), (5, 3, 0, 4))


@dataclass(frozen=True)
class Note:
    """One note of a part: times in seconds, ``key`` a MIDI key, ``velocity`` 1-127."""

    onset: float
    duration: float
    key: int
    velocity: int
    vibrato: float = 0.0  # depth, cents
    vibrato_rate: float = 5.5  # Hz

    def to_dict(self) -> dict[str, float]:
        return {"onset": self.onset, "duration": self.duration, "key": self.key, "velocity": self.velocity,
                "pitch_hz": 440.0 * 2 ** ((self.key - 69) / 12), "vibrato": self.vibrato}


@dataclass(frozen=True)
class Song:
    """What the parts of one clip share: tempo, key, mode, metre and chords (scale degrees per bar)."""

    tempo: float  # beats per minute
    tonic: int  # pitch class, 0 = C
    scale: tuple[int, ...]
    beats_per_bar: int
    chords: tuple[int, ...]  # scale degree of each bar's chord root
    offset: float  # s before the first beat: a clip starts anywhere in a bar

    @property
    def beat(self) -> float:
        return 60.0 / self.tempo

    def chord_at(self, beat: float) -> int:
        return self.chords[int(beat // self.beats_per_bar) % len(self.chords)]

    def degree_key(self, degree: int, near: float) -> int:
        """The MIDI key of scale ``degree`` (any integer: 7 = the tonic an octave up) closest to ``near``."""
        pc = self.tonic + self.scale[degree % 7]
        return int(pc + 12 * round((near - pc) / 12))

    def in_scale(self, key: int) -> bool:
        return (key - self.tonic) % 12 in self.scale


def compose_song(rng: np.random.Generator, tempo: tuple[float, float] = (70.0, 150.0)) -> Song:
    """A random song frame: tempo, key (any of 12), major or minor, 3/4 or 4/4, a chord progression."""
    return Song(tempo=float(rng.uniform(*tempo)), tonic=int(rng.integers(12)),
                scale=_MAJOR if rng.uniform() < 0.6 else _MINOR,
                beats_per_bar=3 if rng.uniform() < 0.25 else 4,
                chords=_PROGRESSIONS[int(rng.integers(len(_PROGRESSIONS)))],
                offset=float(rng.uniform(0.0, 0.3)))


def register(inst: GMInstrument, rng: np.random.Generator, where: str = "any", width: int = 14) -> tuple[int, int]:
    """A window of about ``width`` semitones inside the instrument's range: ``low``, ``high`` or ``any`` part of it."""
    width = min(width, inst.high - inst.low)
    span = inst.high - inst.low - width
    lo = {"low": rng.uniform(0, 0.35), "high": rng.uniform(0.65, 1.0)}.get(where, rng.uniform())
    start = inst.low + int(round(lo * span))
    return start, start + width


def compose_part(song: Song, inst: GMInstrument, role: str, keys: tuple[int, int], duration: float,
                 rng: np.random.Generator) -> list[Note]:
    """One player's notes in ``song`` for ``duration`` s, inside the key window ``keys``.

    ``role``: ``melody`` (steps and leaps on the scale, short to long notes), ``countermelody``
    (a slower line), ``bass`` (chord roots and fifths), ``chords`` (block chords; polyphonic
    instruments) or ``arpeggio`` (chord tones one after another).
    """
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; expected one of {ROLES}")
    beat = song.beat
    lo, hi = keys
    # Rhythm: note values in beats, drawn per note from a per-part palette.
    values = {"melody": (0.5, 0.5, 1.0, 1.0, 1.5, 2.0), "countermelody": (1.0, 1.5, 2.0, 2.0, 3.0),
              "bass": (1.0, 1.0, 2.0), "chords": (1.0, 2.0, 2.0, 3.0), "arpeggio": (0.5, 0.5, 0.5, 1.0)}[role]
    if role == "melody" and song.tempo < 100 and rng.uniform() < 0.5:
        values = values + (0.25, 0.25)
    articulation = float(rng.choice([0.45, 0.8, 0.95]))  # staccato, normal, legato: sounding share of the slot
    level = rng.uniform(45, 115)
    slope = rng.uniform(-25, 25)  # crescendo or diminuendo over the clip
    vib = inst.vibrato * rng.uniform(0.2, 1.0)
    vib_rate = rng.uniform(4.5, 6.5)
    notes: list[Note] = []
    position = float(rng.choice([0.0, 0.5, 1.0])) if role == "countermelody" else 0.0
    degree = int(rng.integers(7))
    centre = (lo + hi) / 2
    previous = centre
    while True:
        onset_beat = position
        onset = song.offset + onset_beat * beat + rng.normal(0.0, 0.008)
        if onset >= duration - 0.15:
            break
        value = float(rng.choice(values))
        position += value
        if role in ("melody", "countermelody") and rng.uniform() < 0.1 and notes:
            continue  # a rest
        chord = song.chord_at(onset_beat)
        if role in ("melody", "countermelody"):
            step = int(rng.choice([-2, -1, -1, 1, 1, 2, 0, 3, -3, 4]))
            degree += step
            # The scale degree's key nearest to where the step points from the previous note.
            key = fold_key(song.degree_key(degree, previous + 1.7 * step), lo, hi)
            degree, previous = _degree_of(song, key), key
            group = [key]
        elif role == "bass":
            root = song.degree_key(chord + (4 if rng.uniform() < 0.25 else 0), lo + 5)
            group = [fold_key(root, lo, hi)]
        elif role == "chords":
            base = song.degree_key(chord, centre - 4)
            group = sorted({fold_key(song.degree_key(chord + d, base + 2 * d), lo, hi) for d in (0, 2, 4)})
        else:  # arpeggio: the chord's tones going up, down or up-and-down
            tones = sorted({fold_key(song.degree_key(chord + d, centre - 6 + 2 * d), lo, hi) for d in (0, 2, 4, 7)})
            group = [tones[len(notes) % len(tones)]]
        downbeat = abs(onset_beat % song.beats_per_bar) < 1e-6
        velocity = level + slope * onset / duration + (8 if downbeat else 0) + rng.normal(0, 6)
        length = max(0.06, value * beat * articulation * rng.uniform(0.9, 1.05))
        for key in group:
            notes.append(Note(round(max(onset, 0.0), 4), round(length, 4), int(key),
                              int(np.clip(round(velocity), 20, 127)), round(vib, 2), round(vib_rate, 2)))
    return notes


def fold_key(key: int, lo: int, hi: int) -> int:
    """``key`` moved by octaves into ``[lo, hi]`` (clipped when the window is under an octave)."""
    while key > hi:
        key -= 12
    while key < lo:
        key += 12
    return int(min(key, hi))


def _degree_of(song: Song, key: int) -> int:
    """The scale degree (counting octaves: 7 per octave) of an in-scale key."""
    rel = key - song.tonic
    octave, pc = divmod(rel, 12)
    return 7 * octave + song.scale.index(pc) if pc in song.scale else 7 * octave
