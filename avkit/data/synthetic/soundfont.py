"""Play notes from a SoundFont 2 bank with numpy: the real recorded samples of General MIDI instruments.

A SoundFont holds recorded notes (samples) per instrument, each with its root key, loop points and
a volume envelope; a preset maps key and velocity ranges to samples. ``SoundFont`` reads a bank
(RIFF chunks, ``struct`` and ``numpy`` only) and ``SoundFont.note`` renders one note: the
sample is resampled to the note's pitch (with optional vibrato), looped while held, and shaped by
the bank's envelope. Decoded samples and zone look-ups are cached, so a note costs one linear
interpolation and one envelope.

The default bank is ``TimGM6mb.sf2``, shipped in the wheel of the ``pretty_midi`` package (an
avkit dependency), found with ``bank_path()``; avkit never uses FluidR3_GM, which rendered the
real-instrument recordings the separation benchmark scores (docs/synthetic.md).
"""
from __future__ import annotations

import importlib.util
import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from avkit.errors import AvkitError, DependencyError

BANK_FILE = "TimGM6mb.sf2"
BANK_PACKAGE = "pretty_midi"

# Generator operators of the SoundFont 2.01 specification that this player uses.
_KEY_RANGE, _VEL_RANGE, _INSTRUMENT, _SAMPLE_ID, _SAMPLE_MODES = 43, 44, 41, 53, 54
_START_OFS, _END_OFS, _LOOP_START_OFS, _LOOP_END_OFS = 0, 1, 2, 3
_START_COARSE, _END_COARSE, _LOOP_START_COARSE, _LOOP_END_COARSE = 4, 12, 45, 50
_COARSE_TUNE, _FINE_TUNE, _SCALE_TUNING, _ROOT_KEY = 51, 52, 56, 58
_ATTENUATION, _FILTER_FC = 48, 8
_DELAY, _ATTACK, _HOLD, _DECAY, _SUSTAIN, _RELEASE = 33, 34, 35, 36, 37, 38
_KEY_TO_HOLD, _KEY_TO_DECAY = 39, 40
_SIGNED = {_START_OFS, _END_OFS, _LOOP_START_OFS, _LOOP_END_OFS, _START_COARSE, _END_COARSE,
           _LOOP_START_COARSE, _LOOP_END_COARSE, _COARSE_TUNE, _FINE_TUNE, _DELAY, _ATTACK, _HOLD,
           _DECAY, _RELEASE, _KEY_TO_HOLD, _KEY_TO_DECAY, _ATTENUATION}
# Operators whose preset-level value adds to the instrument-level one (the rest are not summed).
_ADDITIVE = {_COARSE_TUNE, _FINE_TUNE, _ATTENUATION, _FILTER_FC, _DELAY, _ATTACK, _HOLD, _DECAY, _SUSTAIN,
             _RELEASE, _KEY_TO_HOLD, _KEY_TO_DECAY}
_DEFAULTS = {_SCALE_TUNING: 100, _FILTER_FC: 13500, _DELAY: -12000, _ATTACK: -12000, _HOLD: -12000,
             _DECAY: -12000, _RELEASE: -12000}


def bank_path() -> Path:
    """The General MIDI bank file installed with the ``pretty_midi`` package.

    Raises ``DependencyError`` (an ``AvkitError``) naming the file, the package and the pip
    command when either is missing.
    """
    spec = importlib.util.find_spec(BANK_PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        path = Path(folder) / BANK_FILE
        if path.is_file():
            return path
    where = f"not in {folders[0]}" if folders else f"package {BANK_PACKAGE} is not installed"
    raise DependencyError(BANK_PACKAGE, f"sound bank {BANK_FILE} not found ({where}); it comes with "
                                        f"{BANK_PACKAGE}: pip install {BANK_PACKAGE} (or pip install -e . in avkit)")


@dataclass(frozen=True)
class Zone:
    """One sample of a preset with everything needed to play it (generator values merged)."""

    sample: int  # index into SoundFont.samples
    start: int  # absolute sample offsets in the bank's sample data
    end: int
    loop_start: int
    loop_end: int
    loop: bool
    root_key: int
    sample_rate: int
    tune_cents: float  # coarse + fine + the sample's pitch correction
    scale_tuning: float  # cents per key
    gain: float  # linear, from the initial attenuation
    delay: float  # s
    attack: float
    hold: float
    decay: float
    sustain_db: float  # attenuation while held, dB
    release: float  # s
    key_to_hold: float  # timecents per key (relative to key 60)
    key_to_decay: float


@dataclass(frozen=True)
class SampleHeader:
    name: str
    start: int
    end: int
    loop_start: int
    loop_end: int
    sample_rate: int
    root_key: int
    correction: int


def _timecents(tc: float) -> float:
    return float(2.0 ** (tc / 1200.0))


class SoundFont:
    """A SoundFont 2 bank in memory: presets by ``(bank, program)``, samples as int16."""

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        try:
            raw = path.read_bytes()
        except OSError as err:
            raise AvkitError(f"{path}: cannot read the sound bank ({err.strerror or err})") from None
        if raw[:4] != b"RIFF" or raw[8:12] != b"sfbk":
            raise AvkitError(f"{path}: not a SoundFont 2 bank")
        self.path = path
        chunks: dict[bytes, bytes] = {}
        self.info: dict[str, str] = {}
        self._walk(raw, 12, len(raw), chunks)
        if b"smpl" not in chunks or b"phdr" not in chunks:
            raise AvkitError(f"{path}: SoundFont without sample data or presets")
        self.data = np.frombuffer(chunks[b"smpl"], dtype="<i2")
        self.samples = [SampleHeader(_name(r[0]), *r[1:8])
                        for r in struct.iter_unpack("<20sIIIIIBbHH", chunks[b"shdr"])]
        phdr = list(struct.iter_unpack("<20sHHHIII", chunks[b"phdr"]))
        self._pbag = [b[0] for b in struct.iter_unpack("<HH", chunks[b"pbag"])]
        self._pgen = list(struct.iter_unpack("<HH", chunks[b"pgen"]))
        inst = list(struct.iter_unpack("<20sH", chunks[b"inst"]))
        self._ibag = [b[0] for b in struct.iter_unpack("<HH", chunks[b"ibag"])]
        self._igen = list(struct.iter_unpack("<HH", chunks[b"igen"]))
        self.instrument_names = [_name(i[0]) for i in inst[:-1]]
        self._inst_bags = [(inst[i][1], inst[i + 1][1]) for i in range(len(inst) - 1)]
        # (bank, program) -> (name, first bag, end bag)
        self.presets = {(p[2], p[1]): (_name(p[0]), p[3], phdr[i + 1][3]) for i, p in enumerate(phdr[:-1])}
        self._floats: np.ndarray | None = None

    def _walk(self, raw: bytes, pos: int, stop: int, chunks: dict[bytes, bytes]) -> None:
        while pos + 8 <= stop:
            tag, size = raw[pos:pos + 4], struct.unpack("<I", raw[pos + 4:pos + 8])[0]
            body = raw[pos + 8:pos + 8 + size]
            if tag == b"LIST":
                self._walk(raw, pos + 12, pos + 8 + size, chunks)
            elif tag.isupper() and tag[:1] == b"I":  # INFO fields: INAM, ICOP, ICMT, ...
                self.info[tag.decode()] = _name(body)
            else:
                chunks[tag] = body
            pos += 8 + size + (size & 1)

    def _zones(self, gens: list[tuple[int, int]], bags: list[int], first: int, last: int, global_op: int
               ) -> tuple[dict[int, int], list[dict[int, int]]]:
        """Generator dicts of bags ``[first, last)``: the global zone's and the others'."""
        zones = [dict(gens[g] for g in range(bags[b], bags[b + 1])) for b in range(first, last)]
        if zones and global_op not in zones[0]:
            return zones[0], zones[1:]
        return {}, zones

    def zones(self, program: int, key: int, velocity: int, bank: int = 0) -> list[Zone]:
        """The zones that sound for ``key`` at ``velocity`` in preset ``(bank, program)``.

        A key that no zone covers (a hole in the bank, e.g. TimGM6mb's alto sax at E4) borrows
        the zones of the nearest covered key; ``note`` repitches them to the key asked for.
        """
        for k in sorted(range(128), key=lambda k: (abs(k - key), k)):
            zones = _cached_zones(self, bank, program, k, velocity)
            if zones:
                return list(zones)
        return []

    def _resolve(self, bank: int, program: int, key: int, velocity: int) -> tuple[Zone, ...]:
        if (bank, program) not in self.presets:
            raise AvkitError(f"{self.path.name}: no preset {program} in bank {bank}")
        _, first, last = self.presets[(bank, program)]
        p_global, p_zones = self._zones(self._pgen, self._pbag, first, last, _INSTRUMENT)
        out = []
        for pz in p_zones:
            pz = {**p_global, **pz}
            if _INSTRUMENT not in pz or not _in_range(pz, key, velocity):
                continue
            a, b = self._inst_bags[pz[_INSTRUMENT]]
            i_global, i_zones = self._zones(self._igen, self._ibag, a, b, _SAMPLE_ID)
            for iz in i_zones:
                iz = {**i_global, **iz}
                if _SAMPLE_ID in iz and _in_range(iz, key, velocity):
                    out.append(self._zone(iz, pz))
        return tuple(out)

    def _zone(self, iz: dict[int, int], pz: dict[int, int]) -> Zone:
        def value(op: int) -> float:
            v = _signed(op, iz[op]) if op in iz else _DEFAULTS.get(op, 0)
            if op in _ADDITIVE and op in pz:
                v += _signed(op, pz[op])
            return float(v)

        s = self.samples[iz[_SAMPLE_ID]]

        def offset(fine: int, coarse: int) -> int:
            return int(value(fine) + 32768 * value(coarse))

        root = int(iz.get(_ROOT_KEY, s.root_key))
        return Zone(
            sample=iz[_SAMPLE_ID], start=s.start + offset(_START_OFS, _START_COARSE),
            end=s.end + offset(_END_OFS, _END_COARSE),
            loop_start=s.loop_start + offset(_LOOP_START_OFS, _LOOP_START_COARSE),
            loop_end=s.loop_end + offset(_LOOP_END_OFS, _LOOP_END_COARSE),
            loop=iz.get(_SAMPLE_MODES, 0) & 1 == 1, root_key=root if 0 <= root <= 127 else 60,
            sample_rate=s.sample_rate, tune_cents=100 * value(_COARSE_TUNE) + value(_FINE_TUNE) + s.correction,
            scale_tuning=value(_SCALE_TUNING),
            # EMU8000 banks are voiced for 0.4 of the specified attenuation, as FluidSynth plays them.
            gain=10 ** (-0.4 * min(max(value(_ATTENUATION), 0), 1440) / 200),
            delay=_timecents(value(_DELAY)), attack=_timecents(value(_ATTACK)), hold=_timecents(value(_HOLD)),
            decay=_timecents(value(_DECAY)), sustain_db=min(max(value(_SUSTAIN), 0), 1440) / 10,
            release=_timecents(value(_RELEASE)), key_to_hold=value(_KEY_TO_HOLD), key_to_decay=value(_KEY_TO_DECAY),
        )

    def floats(self) -> np.ndarray:
        """All sample data as float32 in [-1, 1], decoded once (the zones index into it)."""
        if self._floats is None:
            self._floats = self.data.astype(np.float32) / 32768.0
        return self._floats

    def note(self, program: int, key: int, velocity: int, duration: float, sample_rate: int, *,
             vibrato_cents: float = 0.0, vibrato_rate: float = 5.5, vibrato_delay: float = 0.15,
             bank: int = 0) -> np.ndarray:
        """One note: float32 samples for ``duration`` s held plus the release tail.

        ``key`` is the MIDI key (69 = A4 = 440 Hz), ``velocity`` 1-127 (louder and, through the
        bank's velocity layers, brighter). ``vibrato_cents`` is the depth of a sine vibrato that
        fades in after ``vibrato_delay`` s. Zones without a loop play their recording to its end.
        """
        if not 0 <= key <= 127 or not 1 <= velocity <= 127 or duration <= 0:
            raise AvkitError(f"bad note: key {key} (0-127), velocity {velocity} (1-127), duration {duration} (> 0)")
        zones = self.zones(program, key, velocity, bank)
        if not zones:
            raise AvkitError(f"{self.path.name}: preset {program} has no sample for key {key} at velocity {velocity}")
        release = min(max(z.release for z in zones), 1.0)
        n = int(round((duration + release) * sample_rate))
        t = np.arange(n, dtype=np.float64) / sample_rate
        bend = np.ones(n)
        if vibrato_cents:
            fade = np.clip((t - vibrato_delay) / 0.2, 0.0, 1.0)
            bend = 2.0 ** (vibrato_cents * fade * np.sin(2 * np.pi * vibrato_rate * t) / 1200.0)
        data = self.floats()
        out = np.zeros(n, np.float32)
        for z in zones:
            cents = (key - z.root_key) * z.scale_tuning + z.tune_cents
            step = 2.0 ** (cents / 1200.0) * z.sample_rate / sample_rate
            pos = np.concatenate([[0.0], np.cumsum(step * bend[:-1])])
            length, loop_a, loop_b = z.end - z.start, z.loop_start - z.start, z.loop_end - z.start
            if z.loop and 0 <= loop_a < loop_b <= length:
                past = pos >= loop_b
                pos[past] = loop_a + np.mod(pos[past] - loop_a, loop_b - loop_a)
            i = pos.astype(np.int64)
            keep = i < length - 1
            frac = (pos - i).astype(np.float32)
            i = np.where(keep, i + z.start, z.start)
            wave = (data[i] * (1 - frac) + data[i + 1] * frac) * keep
            out += wave * _envelope(z, key, duration, t) * z.gain
        return out * np.float32(10 ** (40 * np.log10(velocity / 127) / 20))


def _envelope(z: Zone, key: int, duration: float, t: np.ndarray) -> np.ndarray:
    """Volume envelope (delay, linear attack, hold, decay at 96 dB per decay time to the sustain
    level, release at 96 dB per release time from where it was at note-off), float32 like ``t``."""
    hold = z.hold * _timecents(z.key_to_hold * (60 - key))
    decay = max(z.decay * _timecents(z.key_to_decay * (60 - key)), 1e-3)
    ts = t - z.delay
    attack = np.clip(ts / max(z.attack, 1e-4), 0.0, 1.0)
    falling = np.maximum(ts - z.attack - hold, 0.0)
    db = np.minimum(96.0 * falling / decay, z.sustain_db)
    off = t >= duration
    if off.any():
        at_off = db[np.argmax(off)]
        db = np.where(off, at_off + 96.0 * (t - duration) / max(z.release, 1e-3), db)
    return (attack * 10 ** (-db / 20)).astype(np.float32)


@lru_cache(maxsize=8192)
def _cached_zones(font: SoundFont, bank: int, program: int, key: int, velocity: int) -> tuple[Zone, ...]:
    return font._resolve(bank, program, key, velocity)


@lru_cache(maxsize=4)
def load(path: str | None = None) -> SoundFont:
    """The bank at ``path`` (default: ``bank_path()``), read once per process."""
    return SoundFont(path or bank_path())


def _in_range(gens: dict[int, int], key: int, velocity: int) -> bool:
    for op, value in ((_KEY_RANGE, key), (_VEL_RANGE, velocity)):
        if op in gens:
            lo, hi = gens[op] & 0xFF, gens[op] >> 8
            if not lo <= value <= hi:
                return False
    return True


def _signed(op: int, amount: int) -> int:
    return amount - 65536 if op in _SIGNED and amount >= 32768 else amount


def _name(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("latin-1").strip()
