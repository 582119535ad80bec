"""Separation by timbre (avkit/apps/separation/timbre.py) and the instrument namer beside the shipped separator
(naming.py): the instruments' dictionaries recover each part of a two-instrument mixture, and only with the right
names; the separator takes that path only for confidently named, different instruments or the user's names;
``avkit separate --instruments``."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import run_cli

import avkit.apps.separation as separation
from avkit.apps.separation import naming, timbre
from avkit.apps.separation.metrics import bss_eval
from avkit.data.synthetic import generate, read_manifest, soundfont
from avkit.data.synthetic.instruments import draw
from avkit.data.synthetic.music import BY_NAME
from avkit.errors import AvkitError
from avkit.io import read_audio

MEDIA = Path(__file__).resolve().parents[1].parent / "shared" / "media" / "audio"
RATE = 16000


def _melody(name: str, keys: list[int], step: float = 0.4) -> np.ndarray:
    """``keys`` played one after another by ``name`` from the training bank, 0.4 s apart."""
    font = soundfont.load()
    out = np.zeros(int((len(keys) * step + 1.0) * RATE), np.float32)
    for k, key in enumerate(keys):
        note = font.note(BY_NAME[name].program, key, 100, step, RATE)
        i = int(k * step * RATE)
        out[i:i + len(note)] += note[: len(out) - i]
    return 0.4 * out / np.abs(out).max()


@pytest.fixture(scope="module")
def sep():
    return separation.load(None, device="cpu")


@pytest.fixture(scope="module")
def flute_and_cello() -> np.ndarray:
    """A flute melody over a cello line (other notes, other rhythm), both from the bank the dictionaries use."""
    flute = _melody("flute", [72, 74, 76, 77, 79, 77, 76, 74])
    cello = _melody("cello", [48, 43, 45, 41], step=0.8)
    n = min(len(flute), len(cello))
    return np.stack([flute[:n], cello[:n]])


def test_the_instruments_dictionaries_recover_each_part(sep, flute_and_cello) -> None:
    """Told the right instruments, each part comes out far better than the mixture; told them the wrong way
    round, each output holds the other part."""
    refs = flute_and_cello
    mix = refs.sum(0)
    spec = sep.spectral.stft(__import__("torch").as_tensor(mix))
    est = sep.separate_by_timbre(spec, ["flute", "cello"], len(mix))
    assert est.shape == refs.shape and est.dtype == np.float32
    mixture = bss_eval(refs, np.stack([mix, mix]))["sdr"]
    gain = bss_eval(refs, est)["sdr"] - mixture
    assert gain.min() > 8.0, gain
    swapped = sep.separate_by_timbre(spec, ["cello", "flute"], len(mix))
    assert (bss_eval(refs, swapped)["sdr"] - mixture).max() < 0.0
    np.testing.assert_allclose(est.sum(0), mix, atol=2e-3)  # ratio masks split the mixture


def test_masks_sum_to_one_and_each_dictionary_covers_its_range() -> None:
    import torch

    from avkit.apps.separation.stft import STFTConfig

    cfg = STFTConfig(sample_rate=RATE, n_fft=1022, hop=256, freq_bins=256)
    d = timbre.dictionary("violin", cfg)
    inst = BY_NAME["violin"]
    keys = inst.high - inst.low + 1 + 2 * timbre.KEY_MARGIN
    assert d.shape == (cfg.n_fft // 2 + 1, keys * len(timbre.VELOCITIES) * 2)
    torch.testing.assert_close(d.sum(0), torch.ones(d.shape[1]))
    mag = torch.rand(cfg.n_fft // 2 + 1, 40)
    masks = timbre.timbre_masks(mag, ["violin", "trumpet", "piano"], cfg, iterations=20)
    assert masks.shape == (3, *mag.shape) and (masks >= 0).all()
    torch.testing.assert_close(masks.sum(0), torch.ones_like(mag))


def _recoloured(wave: np.ndarray, db_at_200hz: float, db_at_4khz: float) -> np.ndarray:
    """``wave`` through a smooth equaliser (gain linear in dB over log frequency), peak 0.4: the same
    instrument through another body or microphone than the bank's."""
    spec, freqs = np.fft.rfft(wave), np.fft.rfftfreq(len(wave), 1 / RATE)
    db = np.interp(np.log(np.maximum(freqs, 1.0)), np.log([200.0, 4000.0]), [db_at_200hz, db_at_4khz])
    out = np.fft.irfft(spec * 10 ** (db / 20), len(wave)).astype(np.float32)
    return 0.4 * out / np.abs(out).max()


def test_the_gains_per_bin_fit_instruments_coloured_unlike_the_bank(sep) -> None:
    """A flute and a violin whose spectra are tilted by +-8 dB the opposite ways (not the bank's colour): fitting
    each instrument's gain per frequency bin separates both parts better than the bank's spectra as they are."""
    flute = _recoloured(_melody("flute", [72, 74, 76, 77, 79, 77, 76, 74]), -8.0, 8.0)
    violin = _recoloured(_melody("violin", [67, 69, 71, 72, 74, 72, 71, 69]), 8.0, -8.0)
    refs = np.stack([flute, violin])
    mix = refs.sum(0)
    spec = sep.spectral.stft(torch.as_tensor(mix))
    mixture = bss_eval(refs, np.stack([mix, mix]))["sdr"]
    gains = {}
    for updates in (0, timbre.FILTER_UPDATES):
        masks = timbre.timbre_masks(spec.abs(), ["flute", "violin"], sep.spectral.cfg, filter_updates=updates)
        gains[updates] = bss_eval(refs, sep.spectral.apply_mask(spec, masks, len(mix)).numpy())["sdr"] - mixture
    assert (gains[timbre.FILTER_UPDATES] > gains[0] + 1.0).all(), gains  # +1.4 and +2.2 dB here


def test_no_gains_for_an_instrument_the_bank_does_not_find(sep) -> None:
    """A marimba melody named marimba and trombone: the bank's trombone spectra find almost nothing, so no gains
    are fitted (with gains the trombone's share grows 6x: a gain must not make a wrong name heard, since
    ``Separator.unheard`` needs it nearly silent); a flute and a violin named right get their gains."""
    cfg = sep.spectral.cfg
    marimba = sep.spectral.stft(torch.as_tensor(_melody("marimba", [60, 64, 67, 72, 67, 64]))).abs()
    masks = {u: timbre.timbre_masks(marimba, ["marimba", "trombone"], cfg, filter_updates=u) for u in (0, 20)}
    shares = {u: float((m[1] * marimba).pow(2).sum() / marimba.pow(2).sum()) for u, m in masks.items()}
    assert shares[0] < timbre.FILTER_MIN_SHARE / 10 and shares[20] == pytest.approx(shares[0], rel=1e-3), shares
    both = sum(sep.spectral.stft(torch.as_tensor(_melody(name, keys))).abs() for name, keys in
               (("flute", [72, 74, 76, 77, 79, 77, 76, 74]), ("violin", [67, 69, 71, 72, 74, 72, 71, 69])))
    fitted = {u: timbre.timbre_masks(both, ["flute", "violin"], cfg, filter_updates=u) for u in (0, 20)}
    assert (fitted[20] - fitted[0]).abs().max() > 1e-2


def test_gains_held_at_one_are_plain_updates_of_the_activations() -> None:
    """With the gains' limit at 1 the filtered updates are the activations' own: the same masks as that many
    more updates without gains (the gains are a pure per-bin scaling of each instrument's dictionary)."""
    from avkit.apps.separation.stft import STFTConfig

    cfg = STFTConfig(sample_rate=RATE, n_fft=1022, hop=256, freq_bins=256)
    mag = torch.rand(cfg.n_fft // 2 + 1, 30)
    held = timbre.timbre_masks(mag, ["flute", "cello"], cfg, iterations=20, filter_updates=10, filter_limit=1.0)
    plain = timbre.timbre_masks(mag, ["flute", "cello"], cfg, iterations=30, filter_updates=0)
    torch.testing.assert_close(held, plain, atol=1e-4, rtol=1e-4)
    free = timbre.timbre_masks(mag, ["flute", "cello"], cfg, iterations=20, filter_updates=10)
    assert (free - plain).abs().max() > 1e-2


def test_a_dictionary_is_rendered_once_then_read_from_the_cache(monkeypatch) -> None:
    """The cached file gives the same atoms without rendering; a damaged one is rendered again and replaced."""
    import torch

    from avkit.apps.separation.stft import STFTConfig

    cfg = STFTConfig(sample_rate=RATE, n_fft=510, hop=128, freq_bins=0)  # a grid no other test caches
    timbre.dictionary.cache_clear()
    rendered = timbre.dictionary("flute", cfg)
    path = timbre._cache_file("flute", cfg)
    assert path.is_file() and str(path).startswith(os.environ["AVKIT_CACHE_DIR"])
    timbre.dictionary.cache_clear()
    with monkeypatch.context() as m:
        m.setattr(timbre, "_render", lambda *a: pytest.fail("rendered again"))
        torch.testing.assert_close(timbre.dictionary("flute", cfg), rendered, rtol=0, atol=0)
    path.write_bytes(b"not an array")
    timbre.dictionary.cache_clear()
    torch.testing.assert_close(timbre.dictionary("flute", cfg), rendered, rtol=0, atol=0)
    assert np.load(path).shape == tuple(rendered.shape)  # replaced by the rendered atoms
    assert timbre._cache_file("flute", STFTConfig(sample_rate=RATE, n_fft=510, hop=64, freq_bins=0)) != path
    timbre.dictionary.cache_clear()


class _Namer:
    def __init__(self, said: list[tuple[str, float]]) -> None:
        self.said = said

    def name(self, pictures):
        assert len(pictures) == len(self.said)
        return self.said


SURE, UNSURE = naming.CONFIDENT, naming.CONFIDENT - 0.05


@pytest.mark.parametrize("said,given,expected", [
    ([("flute", 0.999), ("cello", SURE)], None, ["flute", "cello"]),
    ([("flute", 0.999), ("cello", UNSURE)], None, None),  # one name not sure enough: the networks
    ([("violin", 0.999), ("violin", 0.999)], None, None),  # one instrument: told apart by motion, not timbre
    ([("flute", 0.5), ("cello", 0.5)], ["piano", "trumpet"], ["piano", "trumpet"]),  # the user's names win
    ([("flute", 0.999), ("cello", 0.999)], ["piano", "piano"], None),
])
def test_the_separator_takes_the_timbre_path_only_for_sure_different_instruments(sep, said, given, expected) -> None:
    pictures = [np.zeros((4, 8, 8, 3), np.uint8)] * 2
    keep = sep.namer
    try:
        sep.attach_namer(_Namer(said))
        names, named = sep.plan_timbre(pictures, given)
        assert names == expected
        assert named == (None if given is not None else said)
    finally:
        sep.attach_namer(keep)


def test_bad_instrument_names_are_one_line(sep) -> None:
    pictures = [np.zeros((4, 8, 8, 3), np.uint8)] * 2
    with pytest.raises(AvkitError, match="unknown instrument 'banana'; choose from acoustic_guitar"):
        sep.plan_timbre(pictures, ["violin", "banana"])
    with pytest.raises(AvkitError, match="1 name"):
        sep.plan_timbre(pictures, ["violin"])


def test_the_shipped_namer_names_the_pictures(sep) -> None:
    """Pictures ``draw`` makes with seeds training never used: most are named right, and every name given with
    at least ``naming.CONFIDENT`` is right (docs/separation.md has the 2280-picture figure)."""
    truth, said = [], []
    for name in ("violin", "flute", "piano", "trumpet", "vibraphone", "harp"):
        for seed in (500, 501):
            said += sep.namer.name([draw(name, 2.0, onsets=[0.2, 1.0], seed=seed)])
            truth.append(name)
    right = [n == t for (n, _), t in zip(said, truth)]
    assert sum(right) >= 10, list(zip(truth, said))
    assert all(r for r, (_, p) in zip(right, said) if p >= naming.CONFIDENT), list(zip(truth, said))


def test_named_instruments_separate_two_real_recordings_by_timbre(sep) -> None:
    """Piano + trumpet scales (FluidR3_GM, a bank the dictionaries never came from), pictures from ``draw``:
    the namer is sure of both (this pair is chosen for that: for most pairs of the benchmark it is not, and the
    networks separate; docs/separation.md), so they are separated by timbre, the same samples as with
    ``instruments`` given, each source better than the mixture by more than 3 dB."""
    if not (MEDIA / "scale_piano.wav").is_file():
        pytest.skip("../shared/media is absent")
    names = ("piano", "trumpet")
    refs = []
    for name in names:
        wave = read_audio(MEDIA / f"scale_{name}.wav", sample_rate=RATE)[0].numpy()[: int(4.5 * RATE)]
        refs.append(0.45 * wave / np.abs(wave).max())
    refs = np.stack(refs).astype(np.float32)
    frames = [draw(name, 4.5, onsets=[0.5 * k for k in range(8)], seed=k) for k, name in zip((3, 4), names)]
    assert sep.plan_timbre(frames)[0] == list(names)
    out = np.stack(separation.separate(refs.sum(0), RATE, frames, run=sep))
    np.testing.assert_allclose(out, np.stack(sep.separate(refs.sum(0), RATE, frames, instruments=names)), atol=1e-6)
    gain = bss_eval(refs, out)["sdr"] - bss_eval(refs, np.stack([refs.sum(0)] * 2))["sdr"]
    assert gain.mean() > 3.0, gain


def test_cli_instruments_given_none_and_list(duet, tmp_path: Path, capsys) -> None:
    video, row = duet
    players = sorted(row["meta"]["sources"], key=lambda p: p["side"] != "left")  # left half, right half
    names = [p["label"] for p in players]
    assert names[0] != names[1]
    code, stdout, err = run_cli(capsys, "separate", video, "--out", tmp_path / "told", "--regions", "2x1",
                                "--no-video", "--instruments", ",".join(names))
    assert code == 0, err
    record = json.loads((tmp_path / "told" / "separation.json").read_text())
    assert record["by_timbre"] and record["stems"] is None
    assert [s["instrument"] for s in record["sources"]] == names and "separated by timbre" in stdout
    refs = np.stack([read_audio(video.parent.parent / p["stem"], sample_rate=RATE)[0].numpy() for p in players])
    told = np.stack([read_audio(tmp_path / "told" / f"source_{k}.wav", sample_rate=RATE)[0].numpy()[:refs.shape[1]]
                     for k in range(2)])
    mixture = bss_eval(refs, np.stack([refs.sum(0)] * 2))["sdr"]
    assert (bss_eval(refs, told)["sdr"] - mixture).mean() > 3.0  # the bank's own timbres, other notes

    code, stdout, err = run_cli(capsys, "separate", video, "--out", tmp_path / "same", "--regions", "2x1",
                                "--no-video", "--instruments", f"{names[0]},{names[0]}")
    assert code == 0 and not json.loads((tmp_path / "same" / "separation.json").read_text())["by_timbre"]
    assert "separated by the networks" in stdout  # said, not silently another method

    code, stdout, err = run_cli(capsys, "separate", video, "--out", tmp_path / "none", "--regions", "2x1",
                                "--no-video", "--instruments", "none")
    assert code == 0, err
    record = json.loads((tmp_path / "none" / "separation.json").read_text())
    assert not record["by_timbre"] and all("instrument" not in s and "named" not in s for s in record["sources"])

    code, stdout, err = run_cli(capsys, "separate", video, "--out", tmp_path / "list", "--instruments", "list")
    assert code == 0 and stdout.split() == sorted(timbre.instruments()) and "violin" in stdout.split()
    assert not (tmp_path / "list").exists()


@pytest.mark.parametrize("said,expected", [
    ([("violin", 0.95), ("flute", 0.5)], ["another source's name is not sure", "not sure enough"]),
    ([("cello", 0.99), ("cello", 0.97)], ["the same instrument as another source"] * 2),
    ([("violin", 0.99), ("cello", 0.97), ("cello", 0.95)], ["two other sources are one instrument",
                                                           "the same instrument as another source",
                                                           "the same instrument as another source"]),
])
def test_the_command_says_why_a_named_instrument_was_not_used(said, expected, capsys) -> None:
    from avkit.apps.separation.video import SeparationResult, _instrument
    from avkit.cli.separate import _print

    sources = [{"label": f"region {k}", "box": [0, 0, 1, 1], "energy": 0.5, "wav": f"source_{k}.wav",
                **_instrument(k, None, said)} for k in range(len(said))]
    _print(SeparationResult(Path("out"), sources, [], {"separate": 0.1, "total": 0.2}, None, 1.0))
    lines = capsys.readouterr().out.splitlines()[1:1 + len(said)]
    for line, (name, p), why in zip(lines, said, expected):
        assert f"looks like {name} (p = {p:.2f}, {why}" in line and "separated by timbre" not in line


def test_mirrored_pictures_are_read_as_copies(sep, flute_and_cello) -> None:
    """Frames with negative strides (a mirrored view) separate as their contiguous copies do."""
    mix = flute_and_cello.sum(0)
    views = [draw(name, 2.0, onsets=[0.2, 1.0], seed=3)[:, :, ::-1] for name in ("flute", "cello")]
    out = np.stack(sep.separate(mix, RATE, views))
    np.testing.assert_array_equal(out, np.stack(sep.separate(mix, RATE, [np.ascontiguousarray(v) for v in views])))


def test_a_name_the_sound_does_not_bear_out_goes_to_the_networks(sep, duet, tmp_path: Path) -> None:
    """The namer's rare wrong names (one instrument's two players named as two instruments) show as a source the
    timbre path gives almost nothing: then the networks separate, and separation.json says why. A guitar duet
    named guitar and tuba: the networks' stems; the two-instrument duet named right: by timbre, as before; the
    user's own names always stand."""
    generate("gm_instruments", tmp_path / "d", 2, seed=0, same_duets=1.0, duration=3.0)
    row = read_manifest(tmp_path / "d")[1]
    assert row["meta"]["same_instrument"] and row["meta"]["sources"][0]["label"] == "acoustic_guitar"
    keep = sep.namer
    try:
        sep.attach_namer(_Namer([("acoustic_guitar", 0.99), ("tuba", 0.99)]))
        separation.separate_video(tmp_path / "d" / row["path"], sep, tmp_path / "named", regions="2x1", videos=False)
        stems = [read_audio(tmp_path / "d" / pl["stem"], sample_rate=RATE)[0].numpy() for pl in row["meta"]["sources"]]
        pictures = [draw(pl["label"], 3.0, onsets=pl["onsets"], seed=k) for k, pl in enumerate(row["meta"]["sources"])]
        named_face = np.stack(separation.separate(sum(stems), RATE, pictures, run=sep))  # the Python face alike
        sep.detach_namer()
        separation.separate_video(tmp_path / "d" / row["path"], sep, tmp_path / "nets", regions="2x1", videos=False)
        np.testing.assert_array_equal(named_face, np.stack(separation.separate(sum(stems), RATE, pictures, run=sep)))
        video, duet_row = duet
        sep.attach_namer(_Namer([(p["label"], 0.99) for p in sorted(duet_row["meta"]["sources"],
                                                                     key=lambda p: p["side"] != "left")]))
        separation.separate_video(video, sep, tmp_path / "right", regions="2x1", videos=False)
    finally:
        sep.attach_namer(keep)
    record = json.loads((tmp_path / "named" / "separation.json").read_text())
    assert not record["by_timbre"] and all("instrument" not in s for s in record["sources"])
    assert "almost none of this instrument" in record["sources"][1]["named"]["not_by_timbre"]
    assert "not borne out" in record["sources"][0]["named"]["not_by_timbre"]
    for k in range(2):
        got, nets = (read_audio(tmp_path / d / f"source_{k}.wav", sample_rate=RATE)[0] for d in ("named", "nets"))
        torch.testing.assert_close(got, nets)
    assert json.loads((tmp_path / "right" / "separation.json").read_text())["by_timbre"]
    mixture = np.ones((2, 100), np.float32)
    quiet = np.stack([mixture[0], 0.01 * mixture[1]])  # 0.01 % of the energy
    assert sep.unheard([("flute", 0.99), ("cello", 0.99)], quiet, mixture[0]) == [False, True]
    assert sep.unheard(None, quiet, mixture[0]) is None  # the user's names
    assert sep.unheard([("flute", 0.99), ("cello", 0.99)], 0.5 * mixture, mixture[0]) is None
