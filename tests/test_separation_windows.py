"""Long recordings are separated a window at a time (``inference.Recording``), so that memory does not grow with
the length: the windows cover the recording on its video-frame and STFT grids, their sounds cross-fade back into
the recording exactly, each STFT frame is counted once in the sound map, no analysis ever sees more than one
window, and a duet separated in 8 s windows sounds as good as separated whole."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import avkit.apps.separation.inference as inference
from avkit.apps import separation
from avkit.apps.separation.inference import Recording, window_plan
from avkit.apps.separation.metrics import bss_eval
from avkit.apps.separation.regions import parse_regions
from avkit.apps.separation.video import read_input, separate_sources
from avkit.data.synthetic import generate, read_manifest
from avkit.io import read_audio

RATE, HOP, FPS = 16000, 256, 8.0


@pytest.mark.parametrize("seconds", [0.1, 10.0, 64.0, 64.01, 100.0, 281.3, 3600.0])
def test_the_windows_cover_the_recording_on_its_grids(seconds: float) -> None:
    length = int(seconds * RATE)
    windows = window_plan(length, RATE, HOP, FPS, 60.0, 4.0)
    frames = 1 + length // HOP
    assert windows[0].start == 0 and windows[-1].stop == length
    assert (len(windows) == 1) == (length <= 64 * RATE)
    for w, after in zip(windows, windows[1:]):
        assert after.start % (2 * HOP) == 0 and (after.start / RATE * FPS).is_integer()  # on both grids
        assert w.stop - after.start == w.fade_out == after.fade_in == 4 * RATE  # the overlap is the cross-fade
        assert w.own_stop == after.own_start and after.start // HOP < after.own_start < w.stop // HOP
    assert windows[0].own_start == 0 and windows[-1].own_stop == frames  # every STFT frame owned once
    assert all(w.stop - w.start == 60 * RATE for w in windows[:-1])  # all but the last are whole windows
    if len(windows) > 1:
        assert 4 * RATE < windows[-1].stop - windows[-1].start <= 60 * RATE


@pytest.fixture(scope="module")
def long_duet(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """A 20 s duet of two instruments (church organ left, vibraphone right) and its two stems, left first."""
    root = tmp_path_factory.mktemp("long") / "d"
    generate("gm_instruments", root, 1, seed=4, duets=1.0, duration=20.0)
    row = read_manifest(root)[0]
    players = sorted(row["meta"]["sources"], key=lambda p: p["side"] != "left")
    refs = np.stack([read_audio(root / p["stem"], sample_rate=RATE)[0].numpy() for p in players])
    return root / row["path"], refs


@pytest.fixture(scope="module")
def shipped():
    sep = separation.load(None)
    sep.detach_namer()  # the networks (the timbre path works on each window's spectrogram alike)
    return sep


def test_the_windows_cross_fade_back_into_the_recording(long_duet, shipped, monkeypatch) -> None:
    """Each window's own sound, cross-faded and laid end to end, is the recording again (to float precision)."""
    monkeypatch.setattr(inference, "WINDOW_SECONDS", 8.0)
    monkeypatch.setattr(inference, "WINDOW_OVERLAP", 4.0)
    clip = read_input(long_duet[0], shipped, output_frames=False)
    rec = Recording(shipped, clip.audio, clip.net_frames)
    assert len(rec.windows) == 4
    again = inference._stitched(rec, lambda a: shipped.spectral.istft(a.mix_spec, a.length).numpy()[None])
    np.testing.assert_allclose(again[0], clip.audio, atol=1e-5)


def test_a_duet_in_8_s_windows_is_separated_as_well_as_whole(long_duet, shipped, monkeypatch) -> None:
    """``--regions 2x1`` on the 20 s duet: whole, and in four 8 s windows (no analysis longer than one window),
    each half gets its own player about equally well, the sound map agrees, and ``auto`` finds the same sources."""
    video, refs = long_duet
    clip = read_input(video, shipped, output_frames=False)
    n = min(refs.shape[1], len(clip.audio))
    mixture = bss_eval(refs[:, :n], np.stack([refs.sum(0)[:n]] * 2))["sdr"]

    def run() -> tuple[float, np.ndarray, np.ndarray, list[np.ndarray]]:
        rec = Recording(shipped, clip.audio, clip.net_frames)
        est = separate_sources(shipped, clip, rec, parse_regions("2x1")).estimates[:, :n]
        share, per_frame = shipped.sound_map(rec)
        found, _ = shipped.find_sources(rec)
        return float((bss_eval(refs[:, :n], est)["sdr"] - mixture).mean()), share, per_frame, found

    whole = run()
    seen: list[int] = []
    analyse = shipped.analyse
    monkeypatch.setattr(shipped, "analyse", lambda audio, *a, **k: seen.append(len(audio)) or analyse(audio, *a, **k))
    monkeypatch.setattr(inference, "WINDOW_SECONDS", 8.0)
    monkeypatch.setattr(inference, "WINDOW_OVERLAP", 4.0)
    windowed = run()
    assert max(seen) <= 8 * RATE and len(seen) >= 8  # one window at a time, analysed again on each pass
    steps: list[str] = []
    rec = Recording(shipped, clip.audio, clip.net_frames, progress=steps.append)
    shipped.sound_map(rec)
    shipped.separate_regions(rec, [np.ones(rec.grid, bool)])
    assert steps == [f"separating (pass {p}: window {k}/4)" for p in (1, 2) for k in (1, 2, 3, 4)]
    assert whole[0] > 3.0 and abs(windowed[0] - whole[0]) < 0.5, (whole[0], windowed[0])
    assert windowed[2].shape == whole[2].shape
    assert np.corrcoef(whole[1].ravel(), windowed[1].ravel())[0, 1] > 0.99
    assert windowed[1].sum() == pytest.approx(whole[1].sum(), rel=0.03)  # each frame counted once, not twice
    assert len(windowed[3]) == len(whole[3])
    for a, b in zip(windowed[3], whole[3]):  # the same places, give or take a cell at a hill's edge
        assert (a & b).sum() / (a | b).sum() > 0.8


def test_the_python_face_separates_a_long_mixture_a_window_at_a_time(long_duet, shipped, monkeypatch) -> None:
    """``separate(mixture, rate, sources)`` (the mix-and-separate case, each source's own pictures at their own
    rate) on the 20 s duet: in 8 s windows, no analysis longer than one window, about as good as whole."""
    from avkit.data.synthetic.instruments import draw

    video, refs = long_duet
    row = read_manifest(video.parent.parent)[0]
    players = sorted(row["meta"]["sources"], key=lambda p: p["side"] != "left")
    frames = [draw(p["label"], 20.0, fps=10, onsets=p["onsets"], seed=k) for k, p in enumerate(players)]
    mixture = refs.sum(0)
    base = bss_eval(refs, np.stack([mixture] * 2))["sdr"]
    whole = bss_eval(refs, np.stack(separation.separate(mixture, RATE, frames, run=shipped)))["sdr"] - base
    seen: list[int] = []
    analyse = shipped.analyse
    monkeypatch.setattr(shipped, "analyse", lambda audio, *a, **k: seen.append(len(audio)) or analyse(audio, *a, **k))
    monkeypatch.setattr(inference, "WINDOW_SECONDS", 8.0)
    monkeypatch.setattr(inference, "WINDOW_OVERLAP", 4.0)
    windowed = bss_eval(refs, np.stack(separation.separate(mixture, RATE, frames, run=shipped)))["sdr"] - base
    assert max(seen) <= 8 * RATE and len(seen) == 4
    assert whole.mean() > 3.0 and abs(windowed.mean() - whole.mean()) < 0.5, (whole, windowed)


def test_the_timbre_path_separates_a_long_mixture_a_window_at_a_time(long_duet, shipped, monkeypatch) -> None:
    """Told the instruments, the 20 s duet by timbre (no network) in 8 s windows: as good as whole, and each
    window's spectrogram alone is fitted."""
    import avkit.apps.separation.timbre as timbre

    video, refs = long_duet
    players = sorted(read_manifest(video.parent.parent)[0]["meta"]["sources"], key=lambda p: p["side"] != "left")
    names = [p["label"] for p in players]
    frames = [np.zeros((20, 8, 8, 3), np.uint8)] * 2  # not looked at: the instruments are given
    mixture = refs.sum(0)
    base = bss_eval(refs, np.stack([mixture] * 2))["sdr"]
    whole = bss_eval(refs, np.stack(shipped.separate(mixture, RATE, frames, instruments=names)))["sdr"] - base
    fitted: list[int] = []
    masks = timbre.timbre_masks
    monkeypatch.setattr(timbre, "timbre_masks", lambda mag, *a, **k: fitted.append(mag.shape[-1]) or masks(mag, *a, **k))
    monkeypatch.setattr(inference, "WINDOW_SECONDS", 8.0)
    monkeypatch.setattr(inference, "WINDOW_OVERLAP", 4.0)
    analysed: list[int] = []
    analyse = shipped.analyse
    monkeypatch.setattr(shipped, "analyse", lambda audio, *a, **k: analysed.append(len(audio)) or analyse(audio, *a, **k))
    windowed = bss_eval(refs, np.stack(shipped.separate(mixture, RATE, frames, instruments=names)))["sdr"] - base
    assert len(fitted) == 4 and max(fitted) <= 1 + 8 * RATE // HOP and not analysed  # no network ran
    assert whole.mean() > 10.0 and abs(windowed.mean() - whole.mean()) < 0.5, (whole, windowed)
    clip = read_input(video, shipped, output_frames=False)  # the video's own regions, by timbre: the same way
    rec = Recording(shipped, clip.audio, clip.net_frames)
    halves = [np.zeros(rec.grid, bool), np.zeros(rec.grid, bool)]
    halves[0][:, :rec.grid[1] // 2], halves[1][:, rec.grid[1] // 2:] = True, True
    fitted.clear()
    by_regions = shipped.separate_regions(rec, halves, timbre=names)
    assert len(analysed) == 1 and len(fitted) == 4  # the first window, to check the input; then spectrograms only
    n = min(refs.shape[1], by_regions.shape[1])
    assert abs((bss_eval(refs[:, :n], by_regions[:, :n])["sdr"] - base).mean() - whole.mean()) < 1.0


@pytest.mark.parametrize("visual", ["appearance", "motion"])
def test_a_window_sees_the_frames_shown_while_it_plays(visual: str) -> None:
    """``analyse(audio, frames, fps, start=s)`` looks at the frames shown from ``s`` on: the same visual features
    as the frames from there on given with ``start=0``, for both visual pathways (a tiny random network)."""
    import torch

    from avkit.apps.separation.inference import Separator
    from avkit.apps.separation.model import NetConfig, SeparationNet
    from avkit.apps.separation.options import SeparationOptions
    from avkit.apps.separation.stft import STFTConfig

    stft = STFTConfig(sample_rate=8000, n_fft=254, hop=64, freq_bins=64)
    torch.manual_seed(0)
    net = SeparationNet(NetConfig(channels=8, unet_width=4, unet_depth=3, visual_width=4, visual=visual), stft).eval()
    sep = Separator(net, SeparationOptions(stft=stft, channels=8, visual=visual, image_size=16), torch.device("cpu"))
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (160, 16, 16, 3), dtype=np.uint8)  # 20 s at 8 fps
    audio = rng.standard_normal(6 * 8000).astype(np.float32) * 0.1  # 6 s of sound ...
    later = sep.analyse(audio, frames, 8.0, start=9.0)  # ... from 9 s on
    cut = sep.analyse(audio, frames[72:], 8.0)
    torch.testing.assert_close(later.maps, cut.maps)
    assert not torch.allclose(later.maps, sep.analyse(audio, frames, 8.0).maps)
