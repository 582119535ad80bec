"""Synthetic generators: manifest schema, determinism, no single-frame shortcut, A/V sync, CLI."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import av
import numpy as np
import pytest

from avkit.data.synthetic import GENERATORS, generate, read_manifest, render_clip
from avkit.data.synthetic.motion import MOTION_CLASSES
from avkit.errors import AvkitError, OutputExistsError

SR = 16000


def decode(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Frames uint8 [T,H,W,3] and mono audio float32 [S] of an mp4."""
    with av.open(str(path)) as c:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    with av.open(str(path)) as c:
        audio = np.concatenate([f.to_ndarray().mean(0) for f in c.decode(audio=0)])
    return frames, audio


@pytest.fixture(scope="session")
def motion_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("motion")
    result = generate("motion", out, 48, seed=0)
    rows = read_manifest(out)
    clips = [decode(out / r["path"]) for r in rows]
    return out, result, rows, clips


@pytest.fixture(scope="session")
def instruments_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("instruments")
    generate("instruments", out, 20, seed=1)
    rows = read_manifest(out)
    return out, rows, [decode(out / r["path"]) for r in rows]


@pytest.fixture(scope="session")
def long_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("long")
    generate("longvideo", out, 3, seed=2, duration=12.0, segments=(2, 3))
    rows = read_manifest(out)
    return out, rows, [decode(out / r["path"]) for r in rows]


# ---------------------------------------------------------------- manifest and files

@pytest.mark.parametrize("fixture", ["motion_data", "instruments_data", "long_data"])
def test_manifest_schema(fixture, request):
    out, rows = request.getfixturevalue(fixture)[0], request.getfixturevalue(fixture)[-2]
    classes = json.loads((out / "classes.json").read_text())
    names = [c["name"] for c in classes]
    assert all(set(c) == {"name", "group", "description"} and c["description"] for c in classes)
    assert len(set(names)) == len(names)
    assert sorted(p.name for p in (out / "clips").iterdir()) == sorted(Path(r["path"]).name for r in rows)
    for r in rows:
        assert {"path", "label", "caption", "duration", "split", "segments", "meta"} <= set(r)
        assert r["label"] in names and isinstance(r["caption"], str) and len(r["caption"]) > 20
        assert r["split"] in ("train", "val") and (out / r["path"]).is_file()
        assert all(set(s) == {"label", "start", "end"} for s in r["segments"])
    # Balanced classes, stratified split: every class with >= 2 clips has both splits.
    for name in names:
        splits = [r["split"] for r in rows if r["label"] == name]
        if len(splits) >= 2:
            assert "train" in splits and "val" in splits


def test_motion_files_match_config(motion_data):
    out, result, rows, clips = motion_data
    assert result.num == 48 and len(result.classes) == 8 and result.clips_per_second > 0
    val = sum(r["split"] == "val" for r in rows)
    assert val == 16  # int(6 * 0.25 + 0.5) = 2 per class
    for r, (frames, audio) in zip(rows, clips):
        assert frames.shape == (24, 32, 32, 3)  # 3 s at 8 fps, 32x32
        assert r["duration"] == 3.0
        assert len(audio) >= 3 * SR


def test_deterministic(tmp_path, motion_data):
    a = generate("motion", tmp_path / "a", 3, seed=0)
    b = generate("motion", tmp_path / "b", 3, seed=0)
    c = generate("motion", tmp_path / "c", 3, seed=1)
    assert (tmp_path / "a" / "manifest.jsonl").read_text() == (tmp_path / "b" / "manifest.jsonl").read_text()
    for name in ("000000.mp4", "000001.mp4", "000002.mp4"):
        fa, aa = decode(a.out / "clips" / name)
        fb, ab = decode(b.out / "clips" / name)
        fc, _ = decode(c.out / "clips" / name)
        assert np.array_equal(fa, fb) and np.array_equal(aa, ab)
        assert not np.array_equal(fa, fc)
    # Clip i does not depend on --num: the 48-clip dataset starts with the same clips.
    rows48 = motion_data[2][:3]
    rows3 = read_manifest(a.out)
    assert [r["caption"] for r in rows3] == [r["caption"] for r in rows48]
    assert np.array_equal(decode(a.out / "clips" / "000002.mp4")[0], motion_data[3][2][0])


def test_refuses_non_empty_output(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(OutputExistsError):
        generate("motion", tmp_path, 2)
    generate("motion", tmp_path, 4, overwrite=True)
    generate("motion", tmp_path, 2, overwrite=True)  # shrinking removes stale clips, keeps other files
    assert sorted(p.name for p in (tmp_path / "clips").iterdir()) == ["000000.mp4", "000001.mp4"]
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_bad_params():
    with pytest.raises(AvkitError, match="unknown kind"):
        render_clip("nope", 0)
    with pytest.raises(AvkitError, match="unknown parameter"):
        render_clip("motion", 0, colour="red")
    with pytest.raises(AvkitError, match="size"):
        render_clip("motion", 0, size=4)


# ---------------------------------------------------------------- motion: no single-frame shortcut

def frame_features(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per frame: mean colour, object area, circular centroid, orientation; plus cx, cy, 2*theta."""
    t, h, w, _ = frames.shape
    f = frames.astype(np.float32)
    bg = np.median(f.reshape(t, -1, 3), axis=1)
    mask = (np.linalg.norm(f - bg[:, None, None], axis=-1) > 40).astype(np.float32)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    m = mask.sum(axis=(1, 2)) + 1e-6
    zx = (mask * np.exp(2j * np.pi * xs / w)).sum(axis=(1, 2)) / m  # wrap-aware centroid
    zy = (mask * np.exp(2j * np.pi * ys / h)).sum(axis=(1, 2)) / m
    cx = np.mod(np.angle(zx) * w / (2 * np.pi), w)
    cy = np.mod(np.angle(zy) * h / (2 * np.pi), h)
    dx = np.mod(xs - cx[:, None, None] + w / 2, w) - w / 2
    dy = np.mod(ys - cy[:, None, None] + h / 2, h) - h / 2
    mu20, mu02, mu11 = ((mask * a).sum(axis=(1, 2)) / m for a in (dx * dx, dy * dy, dx * dy))
    theta2 = np.arctan2(2 * mu11, mu20 - mu02)
    feats = np.stack([*f.mean(axis=(1, 2)).T, mask.mean(axis=(1, 2)), zx.real, zx.imag, zy.real, zy.imag,
                      np.cos(theta2), np.sin(theta2)], axis=1)
    return feats, cx, cy, theta2


def pair_features(frames: np.ndarray) -> np.ndarray:
    """Between consecutive frames: centroid displacement (wrapped) and orientation change."""
    _, cx, cy, theta2 = frame_features(frames)
    h, w = frames.shape[1:3]
    return np.stack([np.mod(np.diff(cx) + w / 2, w) - w / 2, np.mod(np.diff(cy) + h / 2, h) - h / 2,
                     np.mod(np.diff(theta2) + np.pi, 2 * np.pi) - np.pi], axis=1)


def nearest_centroid_accuracy(x: np.ndarray, y: np.ndarray, fold: np.ndarray) -> float:
    """Two-fold cross-validated accuracy of a nearest-class-mean classifier on standardised x."""
    accs = []
    for k in (0, 1):
        test, train = fold == k, fold != k
        z = (x - x[train].mean(0)) / (x[train].std(0) + 1e-6)
        names = np.unique(y[train])
        means = np.stack([z[train][y[train] == n].mean(0) for n in names])
        pred = names[np.argmin(((z[test][:, None] - means[None]) ** 2).sum(-1), axis=1)]
        accs.append(float((pred == y[test]).mean()))
    return float(np.mean(accs))


def test_single_frames_do_not_reveal_motion_class(motion_data):
    _, _, rows, clips = motion_data
    single, pairs = ([], [], []), ([], [], [])
    for i, (r, (frames, _)) in enumerate(zip(rows, clips)):
        if r["label"] not in MOTION_CLASSES:
            continue
        fold = (i // 8) % 2  # every 8 clips hold one of each class
        f = frame_features(frames)[0]
        p = pair_features(frames)
        for store, x in ((single, f), (pairs, p)):
            store[0].append(x)
            store[1].extend([r["label"]] * len(x))
            store[2].extend([fold] * len(x))
    single_acc = nearest_centroid_accuracy(np.concatenate(single[0]), np.array(single[1]), np.array(single[2]))
    pair_acc = nearest_centroid_accuracy(np.concatenate(pairs[0]), np.array(pairs[1]), np.array(pairs[2]))
    chance = 1 / len(MOTION_CLASSES)
    assert single_acc < chance + 0.15, single_acc
    assert pair_acc > 0.95, pair_acc


def test_motion_is_visible_at_8_frames(motion_data):
    _, _, rows, clips = motion_data
    for r, (frames, _) in zip(rows, clips):
        if r["label"].startswith("move_"):
            shift = np.abs(pair_features(frames[:8])[:, :2]).sum(1)
            assert 1.2 < np.median(shift) < 4.0  # a few pixels per frame
        if r["label"].startswith("rotate_"):
            turn = np.degrees(np.abs(pair_features(frames[:8])[:, 2])) / 2
            assert 8 < np.median(turn) < 25


def _rms(audio: np.ndarray, win: int = 160) -> np.ndarray:
    n = len(audio) // win
    return np.sqrt((audio[: n * win].reshape(n, win) ** 2).mean(1))


def test_motion_sounds_are_synchronised(motion_data):
    _, _, rows, clips = motion_data
    checked = 0
    for r, (_, audio) in zip(rows, clips):
        events = r["meta"]["sound_events"]
        if not r["label"].startswith(("move_", "rotate_")) or not events:
            continue
        rms = _rms(audio)  # 10 ms windows
        floor = np.median(rms)
        for t in events:
            if t > 2.97:
                continue  # cut off by the end of the clip
            k = int(t * 100)
            assert rms[max(k - 1, 0):k + 4].max() > 5 * floor, (r["label"], t)
        quiet = np.ones(len(rms), bool)
        for t in events:
            quiet[max(int(t * 100) - 2, 0):int(t * 100) + 12] = False
        assert rms[quiet].max() < 3 * floor  # nothing loud away from the events
        checked += 1
    assert checked >= 20


# ---------------------------------------------------------------- instruments

def _harmonic_profile(audio: np.ndarray, note: dict) -> np.ndarray:
    """Magnitude at 1..6 x f0 and at 2.76 x f0 over a note's steady part, relative to f0."""
    start = int((note["onset"] + 0.12) * SR)
    stop = int((note["onset"] + note["duration"] - 0.02) * SR)
    seg = audio[start:stop] * np.hanning(stop - start)
    spec = np.abs(np.fft.rfft(seg, 1 << 15))
    freqs = np.fft.rfftfreq(1 << 15, 1 / SR)
    f0 = note["pitch_hz"]

    def peak(ratio: float) -> float:
        band = (freqs > ratio * f0 * 0.97) & (freqs < ratio * f0 * 1.03)
        return float(spec[band].max()) if band.any() else 0.0

    return np.array([peak(h) for h in (1, 2, 3, 4, 5, 6, 2.76)]) / max(peak(1), 1e-9)


def test_instruments_have_their_own_timbre(instruments_data):
    _, rows, clips = instruments_data
    profiles: dict[str, list[np.ndarray]] = {}
    for r, (_, audio) in zip(rows, clips):
        notes = [n for n in r["meta"]["notes"] if n["duration"] > 0.3 and n["onset"] + n["duration"] < 2.9]
        for n in notes:
            profiles.setdefault(r["label"], []).append(_harmonic_profile(audio, n))
    p = {k: np.median(v, axis=0) for k, v in profiles.items()}
    h2, h3, inh = 1, 2, 6
    assert p["clarinet"][h2] < 0.1 and p["clarinet"][h3] > 0.3  # odd harmonics only
    assert p["violin"][h2] > 0.3 and p["violin"][h3] > 0.2 and p["violin"][4] > 0.1  # all harmonics
    assert p["flute"][h2] < 0.35 and p["flute"][h3] < 0.15  # nearly pure
    assert p["bell"][inh] > 0.1 and p["bell"][inh] > 3 * max(p["bell"][h2], p["bell"][h3])  # inharmonic


def test_instruments_separable_by_spectrum(instruments_data):
    """A nearest-class-mean classifier on spectral shape (band energies, flatness) identifies them."""
    _, rows, clips = instruments_data
    feats, labels, folds = [], [], []
    edges = np.geomspace(50, 8000, 13)
    for i, (r, (_, audio)) in enumerate(zip(rows, clips)):
        win = np.lib.stride_tricks.sliding_window_view(audio, 512)[::256] * np.hanning(512)
        mag = np.abs(np.fft.rfft(win, axis=1))
        energy = (mag ** 2).sum(1)
        mag = mag[energy > 0.05 * energy.max()]
        power, freqs = (mag ** 2).mean(0), np.fft.rfftfreq(512, 1 / SR)
        bands = np.array([power[(freqs >= lo) & (freqs < hi)].sum() for lo, hi in zip(edges[:-1], edges[1:])])
        flatness = (np.exp(np.log(mag + 1e-8).mean(1)) / (mag.mean(1) + 1e-8)).mean()
        feats.append(np.concatenate([np.log(bands / bands.sum() + 1e-6), [flatness]]))
        labels.append(r["label"])
        folds.append((i // 5) % 2)
    acc = nearest_centroid_accuracy(np.array(feats), np.array(labels), np.array(folds))
    assert acc >= 0.8, acc


def test_sprite_moves_with_its_sound(instruments_data):
    _, rows, clips = instruments_data
    corrs = []
    for r, (frames, _) in zip(rows, clips):
        loud = np.array(r["meta"]["loudness_per_frame"])
        if loud.std() < 0.1:
            continue  # a sustained line with no gaps: nothing to follow
        area = frame_features(frames)[0][:, 3]
        corrs.append(np.corrcoef(area, loud)[0, 1])
    assert len(corrs) >= 8
    assert np.median(corrs) > 0.8, corrs


# ---------------------------------------------------------------- long videos

def test_long_video_segments_and_onsets(long_data):
    _, rows, clips = long_data
    for r, (frames, audio) in zip(rows, clips):
        assert r["duration"] == 12.0 and frames.shape[0] == 96
        segs = sorted(r["segments"], key=lambda s: s["start"])
        assert 2 <= len(segs) <= 3
        assert all(s["label"] == r["label"] for s in segs)
        assert all(0 <= s["start"] < s["end"] <= r["duration"] and 1.0 <= s["end"] - s["start"] <= 2.0
                   for s in segs)
        assert all(a["end"] <= b["start"] for a, b in zip(segs, segs[1:]))
        rms = _rms(audio, 800)  # 50 ms windows
        floor = np.median(rms)
        for s in segs:
            k = int(s["start"] * 20)
            assert rms[k:k + 4].max() > 8 * floor  # the onset chime
        loudest = np.argmax(rms) / 20
        assert min(abs(loudest - s["start"]) for s in segs) < 0.3
        # The action is only visible inside segments: frames change much more there.
        diff = np.abs(np.diff(frames.astype(np.float32), axis=0)).mean(axis=(1, 2, 3))
        t = np.arange(1, len(frames)) / 8
        inside = np.zeros(len(t), bool)
        for s in segs:
            inside |= (t > s["start"] + 0.2) & (t < s["end"] - 0.1)
        if r["label"] in MOTION_CLASSES:
            assert diff[inside].mean() > 3 * np.median(diff[~inside])


# ---------------------------------------------------------------- CLI

def _cli(argv):
    from avkit.cli import generate as cmd

    parser = argparse.ArgumentParser()
    cmd.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_generate(tmp_path, capsys):
    out = tmp_path / "d"
    assert _cli(["generate", "instruments", str(out), "--num", "5", "--seed", "3", "--size", "24",
                 "--duration", "1", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["num"] == 5 and summary["config"]["size"] == 24 and len(summary["classes"]) == 5
    frames, audio = decode(out / "clips" / "000004.mp4")
    assert frames.shape == (8, 24, 24, 3)
    with pytest.raises(OutputExistsError):
        _cli(["generate", "instruments", str(out), "--num", "2"])
    assert _cli(["generate", "motion", str(out), "--num", "2", "--overwrite", "--duration", "1"]) == 0
    assert "2 clips, 8 classes" in capsys.readouterr().out
    assert len(read_manifest(out)) == 2


def test_generators_listed():
    assert set(GENERATORS) == {"motion", "instruments", "longvideo"}
    for gen in GENERATORS.values():
        assert gen.classes(gen.config())
