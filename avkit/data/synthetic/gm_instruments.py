"""``gm_instruments``: clips of real sampled instruments playing procedural music, with pictures that
move in time with the notes.

The sound of each player is rendered from a General MIDI SoundFont (``soundfont.py``: the bank's
recorded notes, resampled, looped and enveloped), its notes composed by ``music.py`` (melodies,
counter-melodies, bass lines, chords, arpeggios; varied tempo, key, register, dynamics,
articulation, vibrato). Its picture (``sprites.py``) is the instrument's own drawing whose
sounding part moves at each note (bow strokes, plucked strings, pressed keys, mallet strikes,
fingering and a nod). Clips are solos, duets of two different instruments (``duets``) or of two
players of one instrument playing different parts (``same_duets``), with the same layout as the
``instruments`` kind: mp4 + one lossless WAV stem per source summing exactly to the clip's audio,
per-source notes, onsets and boxes per frame in ``meta.sources``.

Hold-out (``subset``): ``train`` clips never contain ``held_out_instruments`` nor a duet of a
``held_out_pairs`` pair; ``val`` clips may contain both, and a duet of an instrument that has a
held-out partner always uses it. Generate train and val datasets with different seeds, so the
val melodies are new too (docs/synthetic.md).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from avkit.data.synthetic import soundfont
from avkit.data.synthetic.common import (
    ClassInfo,
    Generator,
    SyntheticClip,
    article,
    noise_floor,
    pick_colour,
    place,
    smooth_background,
    to_uint8,
)
from avkit.data.synthetic.music import (
    BY_NAME,
    GM_INSTRUMENTS,
    GMInstrument,
    Note,
    Song,
    compose_part,
    compose_song,
    fold_key,
    register,
)
from avkit.data.synthetic.sprites import draw_player
from avkit.errors import AvkitError

SUBSETS = ("all", "train", "val")


@dataclass
class GMInstrumentsConfig:
    """Parameters of the ``gm_instruments`` kind."""

    size: int = 64
    fps: float = 8.0
    duration: float = 3.0
    sample_rate: int = 16000
    instruments: tuple[str, ...] = ()  # the instruments to use (empty: all of music.GM_INSTRUMENTS)
    duets: float = 0.0  # share of clips with a second, different instrument
    same_duets: float = 0.0  # share of clips with two players of the clip's instrument, playing different parts
    subset: str = "all"  # "train": nothing held out appears; "val": held-out instruments and pairs appear
    held_out_instruments: tuple[str, ...] = ()
    held_out_pairs: tuple[tuple[str, str], ...] = (("acoustic_guitar", "violin"), ("cello", "flute"),
                                                   ("piano", "trumpet"), ("clarinet", "marimba"))
    tempo: tuple[float, float] = (70.0, 150.0)  # beats per minute
    level: tuple[float, float] = (0.6, 1.0)  # relative level of each player in a duet
    peak: float = 0.45  # peak level of a clip, so two mixed clips stay below 1
    # Unison: this share of the solo clips plays one of ``unison_parts`` shared melodies (composed from
    # ``unison_seed``, moved by octaves into each instrument's range), so that mixing two of them gives
    # instruments playing the same notes at the same times, which only their timbre tells apart (real
    # music doubles parts often). ``meta.unison_part`` names the melody. Give train and test sets
    # different ``unison_seed``s, or they share melodies.
    unison: float = 0.0
    unison_parts: int = 64
    unison_seed: int = 0
    # SoundFont 2 files to render from, one drawn per clip (both players of a duet share it); empty: the
    # default bank (``soundfont.bank_path()``). More than one bank keeps a network from learning one
    # bank's recordings of an instrument as the instrument.
    banks: tuple[str, ...] = ()


def _names(cfg: GMInstrumentsConfig) -> list[str]:
    """The clip labels of ``cfg``: its instruments, less the held-out ones in the ``train`` subset."""
    names = list(cfg.instruments) or [inst.name for inst in GM_INSTRUMENTS]
    held = set(cfg.held_out_instruments) | {n for pair in cfg.held_out_pairs for n in pair}
    unknown = sorted((set(names) | held) - set(BY_NAME))
    if unknown:
        raise AvkitError(f"unknown instrument(s) {unknown}; choose from {sorted(BY_NAME)}")
    if cfg.subset not in SUBSETS:
        raise AvkitError(f"subset must be one of {SUBSETS}, got {cfg.subset!r}")
    if not (0 <= cfg.duets <= 1 and 0 <= cfg.same_duets <= 1 and cfg.duets + cfg.same_duets <= 1):
        raise AvkitError(f"duets ({cfg.duets}) and same_duets ({cfg.same_duets}) must be in [0, 1] and sum to <= 1")
    if not 0 <= cfg.unison <= 1 or cfg.unison_parts < 1:
        raise AvkitError(f"unison ({cfg.unison}) must be in [0, 1] and unison_parts ({cfg.unison_parts}) >= 1")
    if cfg.subset == "train":
        names = [n for n in names if n not in cfg.held_out_instruments]
    if not names:
        raise AvkitError("no instrument left to generate: every instrument is held out")
    return names


def classes(cfg: GMInstrumentsConfig) -> list[ClassInfo]:
    return [ClassInfo(n, BY_NAME[n].family, BY_NAME[n].description) for n in _names(cfg)]


def _partner(cfg: GMInstrumentsConfig, label: str, rng: np.random.Generator) -> str:
    """The second instrument of a two-instrument duet, honouring the hold-out of ``cfg.subset``."""
    pairs = {frozenset(p) for p in cfg.held_out_pairs}
    pool = [n for n in _names(cfg) if n != label]
    held = [n for n in pool if frozenset((label, n)) in pairs]
    if cfg.subset == "train":
        pool = [n for n in pool if n not in held]
    elif cfg.subset == "val" and held:
        pool = held
    if not pool:
        raise AvkitError(f"no duet partner left for {label}: every pair with it is held out")
    return pool[int(rng.integers(len(pool)))]


def _parts(inst: list[GMInstrument], rng: np.random.Generator) -> list[tuple[str, str]]:
    """(role, register) of each player: a solo's part is free; in a duet the first player has the
    melody up high and the second a different part (counter-melody, bass, arpeggio or chords) lower."""
    if len(inst) == 1:
        roles = ["melody", "melody", "arpeggio"] + (["chords"] if inst[0].polyphonic else [])
        return [(roles[int(rng.integers(len(roles)))], "any")]
    second = ["countermelody", "bass", "arpeggio"] + (["chords"] if inst[1].polyphonic else [])
    return [("melody", "high"), (second[int(rng.integers(len(second)))], "low")]


def unison_part(cfg: GMInstrumentsConfig, part: int, inst: GMInstrument) -> tuple[Song, list[Note]]:
    """Shared melody ``part`` as ``inst`` plays it: the same song and notes for every instrument, moved
    by whole octaves into its range (the octave that fits most notes; the rest folded in by octaves).
    Only the vibrato depth follows the instrument."""
    rng = np.random.default_rng([cfg.unison_seed, part, 0x0515])
    song = compose_song(rng, cfg.tempo)
    notes = compose_part(song, inst, "melody", (60, 74), cfg.duration, rng)
    shifts = (0, -1, 1, -2, 2, -3, 3, -4, 4)  # the nearest octave wins a tie
    fits = [sum(inst.low <= n.key + 12 * k <= inst.high for n in notes) for k in shifts]
    shift = 12 * shifts[int(np.argmax(fits))]
    return song, [replace(n, key=fold_key(n.key + shift, inst.low, inst.high)) for n in notes]


def play(inst: GMInstrument, notes: list[Note], duration: float, sample_rate: int,
         font: soundfont.SoundFont | None = None) -> np.ndarray:
    """The notes rendered from the bank's samples (default: the default bank): float32 ``[duration * sample_rate]``."""
    font = font or soundfont.load()
    out = np.zeros(int(round(duration * sample_rate)), np.float32)
    for n in notes:
        wave = font.note(inst.program, n.key, n.velocity, n.duration, sample_rate,
                         vibrato_cents=n.vibrato, vibrato_rate=n.vibrato_rate)
        place(out, wave, n.onset, sample_rate)
    return out


def _boxes(alpha: np.ndarray, num_frames: int) -> list[list[float]]:
    """``[x0, y0, x1, y1]`` px per frame around the sprite's coverage (> 0.05)."""
    alpha = np.broadcast_to(alpha, (num_frames, *alpha.shape[1:]))
    out = []
    for a in alpha:
        ys, xs = np.nonzero(a > 0.05)
        box = [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)] if len(xs) else [0.0] * 4
        out.append(box)
    return out


def _words(name: str) -> str:
    return name.replace("_", " ")


def render(cfg: GMInstrumentsConfig, label: str, rng: np.random.Generator) -> SyntheticClip:
    """One clip of instrument ``label``: a solo, a duet with another instrument or with itself."""
    names = _names(cfg)
    if label not in names:
        raise AvkitError(f"unknown instrument {label!r} for this config; expected one of {names}")
    draw = rng.uniform()
    players = [BY_NAME[label]]
    if draw < cfg.same_duets:
        players.append(BY_NAME[label])
    elif draw < cfg.same_duets + cfg.duets:
        players.append(BY_NAME[_partner(cfg, label, rng)])
    song = compose_song(rng, cfg.tempo)
    parts = _parts(players, rng)
    sr, num_frames = cfg.sample_rate, max(1, int(round(cfg.duration * cfg.fps)))
    notes, keys = [], []
    shared = None
    if len(players) == 1 and cfg.unison > 0 and rng.uniform() < cfg.unison:
        shared = int(rng.integers(cfg.unison_parts))
        song, solo = unison_part(cfg, shared, players[0])
        parts = [("melody", "any")]
        notes.append(solo)
        keys.append((min(n.key for n in solo), max(n.key for n in solo)) if solo else (players[0].low, players[0].low))
    for inst, (role, where) in zip(players[len(notes):], parts[len(notes):]):
        window = register(inst, rng, where)
        keys.append(window)
        notes.append(compose_part(song, inst, role, window, cfg.duration, rng))
    font = soundfont.load(cfg.banks[int(rng.integers(len(cfg.banks)))] if cfg.banks else None)
    lines = [play(inst, ns, cfg.duration, sr, font) for inst, ns in zip(players, notes)]
    lines = [line / max(float(np.abs(line).max()), 1e-6) for line in lines]
    # Random relative levels; the stems carry the same scaling, so they sum to the mix. A faint noise
    # floor (RMS 0.001 in all) keeps every stem from being digitally silent, as in ``instruments``.
    levels = rng.uniform(*cfg.level, len(players)) if len(players) > 1 else np.ones(1)
    mix = np.sum([lv * line for lv, line in zip(levels, lines)], axis=0)
    scale = cfg.peak / max(float(np.abs(mix).max()), 1e-6)
    floor = 0.001 / np.sqrt(len(players))
    stems = [(scale * lv * line + noise_floor(rng, len(line), floor)).astype(np.float32)
             for lv, line in zip(levels, lines)]
    audio = np.sum(stems, axis=0).astype(np.float32)

    size = cfg.size
    canvas = smooth_background(rng, size, np.zeros(1), contrast=10.0)
    bg_mean = canvas[0].mean(axis=(0, 1))
    times = np.arange(num_frames) / cfg.fps
    if len(players) == 1:
        side = size * rng.uniform(0.82, 0.98)
        x0, y0 = rng.uniform(0, size - side, 2)
        sides, regions = ["centre"], [(x0, y0, x0 + side, y0 + side)]
    else:
        sides = ["left", "right"] if rng.uniform() < 0.5 else ["right", "left"]
        side = size / 2 * rng.uniform(0.9, 1.0)
        regions = []
        for s in sides:
            x0 = (0.0 if s == "left" else size / 2) + rng.uniform(0, size / 2 - side)
            y0 = rng.uniform(0, size - side)
            regions.append((x0, y0, x0 + side, y0 + side))
    sources: list[dict[str, Any]] = []
    for inst, ns, (role, _), window, s, region, level in zip(players, notes, parts, keys, sides, regions, levels):
        taken = {src["colour"] for src in sources}
        for _ in range(20):  # two players of a duet get different colours
            colour_name, colour = pick_colour(rng, bg_mean)
            if colour_name not in taken:
                break
        canvas, alpha = draw_player(canvas, inst.name, ns, times, region, colour)
        sources.append({"label": inst.name, "family": inst.family, "program": inst.program, "colour": colour_name,
                        "rgb": colour, "side": s, "level": float(level * scale), "role": role, "keys": list(window),
                        "notes": [n.to_dict() for n in ns], "onsets": sorted({n.onset for n in ns}),
                        "region": list(region), "box_per_frame": _boxes(alpha, num_frames)})
    frames = np.broadcast_to(canvas, (num_frames, size, size, 3))

    main = sources[0]
    if len(sources) == 1:
        caption = (f"{article(main['colour'])} {main['colour']} {_words(label)} plays {len(main['notes'])} notes "
                   f"({main['role']}) at {song.tempo:.0f} beats per minute.")
    else:
        left, right = sorted(sources, key=lambda src: src["side"] != "left")
        caption = (f"A duet: {article(left['colour']).lower()} {left['colour']} {_words(left['label'])} on the left "
                   f"({left['role']}) and {article(right['colour']).lower()} {right['colour']} {_words(right['label'])} "
                   f"on the right ({right['role']}), at {song.tempo:.0f} beats per minute.")
    all_notes = sorted(((src["label"], n) for src in sources for n in src["notes"]),
                       key=lambda item: item[1]["onset"])
    segments = [{"label": name, "start": n["onset"], "end": min(n["onset"] + n["duration"], cfg.duration)}
                for name, n in all_notes]
    meta: dict[str, Any] = {
        "family": main["family"], "colour": main["colour"], "notes": main["notes"], "num_frames": num_frames,
        "duet": len(sources) > 1, "same_instrument": len(sources) > 1 and sources[0]["label"] == sources[1]["label"],
        "subset": cfg.subset, "bank": font.path.name, "unison_part": shared,
        "song": {"tempo": song.tempo, "tonic": song.tonic, "mode": "major" if song.scale[2] == 4 else "minor",
                 "beats_per_bar": song.beats_per_bar},
        "sources": sources,
    }
    return SyntheticClip(to_uint8(frames), audio, label, caption, segments, meta, stems)


GENERATOR = Generator("gm_instruments", "real sampled General MIDI instruments (SoundFont) playing procedural "
                      "music; pictures whose sounding part moves with the notes; solos and duets with stems",
                      GMInstrumentsConfig, classes, render)
