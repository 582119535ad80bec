"""Mix-and-separate data: solo clips from a synthetic dataset (clean stems) or a folder of videos,
mixtures that are the sum of the stems, reproducible items, partners of different instruments."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from avkit.apps.separation.data import MixDataset, SoloLibrary, collate
from avkit.data.synthetic import generate, read_manifest, read_wav
from avkit.errors import AvkitError

SR = 11025


@pytest.fixture(scope="module")
def solo_data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sep_solo")
    generate("instruments", out, 12, seed=11, sample_rate=SR, duration=1.0, duets=0.25)
    return out


@pytest.fixture(scope="module")
def lib(solo_data: Path) -> SoloLibrary:
    return SoloLibrary(solo_data, sample_rate=SR, image_size=32, fps=8.0)


def test_the_library_holds_solo_stems_and_frames(solo_data: Path, lib: SoloLibrary) -> None:
    rows = read_manifest(solo_data)
    solos = [r for r in rows if not r["meta"]["duet"]]
    assert 0 < len(solos) < len(rows)  # the duets are left out, and said so
    assert len(lib) == len(solos) and all("duet" in why for why in lib.skipped.values())
    for clip, row in zip(lib.clips, solos):
        stem, rate = read_wav(solo_data / row["meta"]["sources"][0]["stem"])
        assert rate == SR
        np.testing.assert_array_equal(clip.audio.numpy(), stem)  # the lossless stem, not the AAC track
        assert clip.label == row["label"]
        assert clip.frames.dtype == torch.uint8 and tuple(clip.frames.shape) == (8, 32, 32, 3)


def test_mixtures_are_sums_of_solos_of_different_instruments(lib: SoloLibrary) -> None:
    ds = MixDataset(lib, num_mix=(2, 3), segment=4095, num_frames=3, train=True, seed=0, length=20)
    counts = set()
    for i in range(len(ds)):
        item, plan = ds[i], ds.mixture_plan(i)
        n = plan["num_sources"]
        counts.add(n)
        assert item["valid"].sum() == n and item["num_sources"] == n
        labels = [lib.labels[s["clip"]] for s in plan["sources"]]
        assert len(set(labels)) == n
        assert plan["sources"][0]["clip"] == i % len(lib)
        for k, s in enumerate(plan["sources"]):
            solo = lib.clips[s["clip"]]
            torch.testing.assert_close(item["audio"][k], solo.audio[s["start"]:s["start"] + 4095], rtol=0, atol=0)
            torch.testing.assert_close(item["frames"][k], solo.frames[s["frames"]].permute(0, 3, 1, 2))
        assert item["audio"][n:].abs().sum() == 0
    assert counts == {2, 3}
    batch = collate([ds[0], ds[1]])
    assert batch["audio"].shape == (2, 3, 4095) and batch["frames"].shape == (2, 3, 3, 3, 32, 32)
    assert batch["kept"].all()


def test_items_are_reproducible_and_change_with_the_epoch(lib: SoloLibrary) -> None:
    ds = MixDataset(lib, segment=4095, train=True, seed=3)
    a = ds[5]
    assert torch.equal(MixDataset(lib, segment=4095, train=True, seed=3)[5]["audio"], a["audio"])
    ds.set_epoch(1)
    assert not torch.equal(ds[5]["audio"], a["audio"])
    val = MixDataset(lib, train=False, seed=3)
    assert val.segment == min(len(c.audio) for c in lib.clips)
    assert [val[i]["num_sources"] for i in range(4)] == [2, 3, 2, 3]
    val.set_epoch(4)
    assert torch.equal(val[1]["audio"], MixDataset(lib, train=False, seed=3)[1]["audio"])


def test_a_folder_of_solo_videos(tmp_path: Path, solo_data: Path) -> None:
    rows = [r for r in read_manifest(solo_data) if not r["meta"]["duet"]]
    for r in rows:
        (tmp_path / r["label"]).mkdir(exist_ok=True)
        shutil.copy(solo_data / r["path"], tmp_path / r["label"] / Path(r["path"]).name)
    folder = SoloLibrary(tmp_path, sample_rate=SR)
    assert sorted(folder.labels) == sorted(r["label"] for r in rows)
    assert folder.clips[0].audio.shape[0] >= SR - 1  # the video's own (AAC) sound track
    ds = MixDataset(folder, num_mix=(2,), train=False)
    assert ds[0]["num_sources"] == 2
    flat = tmp_path / "flat"
    flat.mkdir()
    for r in rows[:3]:
        shutil.copy(solo_data / r["path"], flat / Path(r["path"]).name)
    unlabelled = SoloLibrary(flat, sample_rate=SR)
    assert not unlabelled.labelled and not MixDataset(unlabelled, num_mix=(3,)).distinct


def test_bad_sources(tmp_path: Path, lib: SoloLibrary) -> None:
    with pytest.raises(AvkitError, match="no videos found"):
        SoloLibrary(tmp_path)
    with pytest.raises(AvkitError, match="not a manifest"):
        SoloLibrary(tmp_path / "missing")
    (tmp_path / "manifest.jsonl").write_text("{not json\n")
    with pytest.raises(AvkitError, match="line 1"):
        SoloLibrary(tmp_path)
    with pytest.raises(AvkitError, match="different sources"):
        MixDataset(lib, num_mix=(6,))
    with pytest.raises(AvkitError, match="num_mix"):
        MixDataset(lib, num_mix=())


def test_zoom_out_shrinks_the_picture_and_keeps_the_background() -> None:
    from avkit.apps.separation.data import zoom_out

    frames = torch.full((2, 3, 32, 32), 40, dtype=torch.uint8)
    frames[:, :, 8:24, 8:24] = 250  # a 16 px square on a flat background
    torch.testing.assert_close(zoom_out(frames, 1.0, 0.3, 0.7), frames)
    small = zoom_out(frames, 0.5, 0.0, 1.0)
    bright = (small[0, 0] > 145).float()
    assert bright.sum() == pytest.approx(64, abs=8)  # (16 * 0.5) ** 2
    ys, xs = torch.nonzero(bright, as_tuple=True)
    assert xs.float().mean() < 16 < ys.float().mean()  # placed left (fx = 0) and low (fy = 1)
    assert (small[:, :, :8, -8:] == 40).all()  # the rest is the repeated background


def test_training_items_zoom_half_the_sources(lib: SoloLibrary) -> None:
    ds = MixDataset(lib, segment=4095, train=True, seed=0, length=40, zoom=(0.5, 0.8))
    plans = [ds.mixture_plan(i) for i in range(len(ds))]
    zoomed = [s for p in plans for s in p["sources"] if "zoom" in s]
    total = sum(len(p["sources"]) for p in plans)
    assert 0.3 < len(zoomed) / total < 0.7 and all(0.5 <= s["zoom"][0] <= 0.8 for s in zoomed)
    assert not any("zoom" in s for i in range(4) for s in MixDataset(lib, train=False, zoom=(0.5, 0.8))
                   .mixture_plan(i)["sources"])
    with pytest.raises(AvkitError, match="zoom"):
        MixDataset(lib, zoom=(0.5, 1.5))


def test_unison_partners_play_the_same_melody_in_step(tmp_path: Path) -> None:
    """``unison``: a training partner that plays the clip's unison melody on another instrument, cropped
    at the same time (so the two play the same notes); without it, partners and crops are as before."""
    out = tmp_path / "unison"
    generate("gm_instruments", out, 12, seed=2, size=32, duration=2.0, unison=1.0, unison_parts=2,
             instruments=("violin", "flute", "trumpet"))
    lib = SoloLibrary(out, sample_rate=16000, image_size=32, fps=8.0)
    assert all(c.part in (0, 1) for c in lib.clips)
    ds = MixDataset(lib, num_mix=(2,), segment=8000, train=True, seed=0, length=24, unison=1.0, all_frames=True)
    pairs = 0
    for i in range(len(ds)):
        a, b = ds.mixture_plan(i)["sources"]
        ca, cb = lib.clips[a["clip"]], lib.clips[b["clip"]]
        if ds._unison_partners(a["clip"]):
            pairs += 1
            assert ca.part == cb.part and ca.label != cb.label
            assert a["start"] == b["start"] and a["frames"] == b["frames"]
    assert pairs >= 12
    plain = MixDataset(lib, num_mix=(2,), segment=8000, train=True, seed=0, length=24, all_frames=True)
    starts = [(p["sources"][0]["start"], p["sources"][1]["start"]) for p in map(plain.mixture_plan, range(24))]
    assert any(x != y for x, y in starts)


def test_equalise_sets_the_gain_at_each_anchor_and_eq_items_use_it(lib: SoloLibrary) -> None:
    """``equalise``: a tone at an anchor frequency comes out at that anchor's gain; ``eq_db`` training
    items carry a curve within +-eq_db per source and their audio is the clip's piece through it."""
    from avkit.apps.separation.data import EQ_HZ, equalise

    sr, gains = 22050, [6.0, -6.0, 3.0, 0.0, -3.0, 4.5]
    t = np.arange(sr) / sr
    between = float(np.sqrt(EQ_HZ[0] * EQ_HZ[1]))  # half-way in log-frequency: half-way in dB
    for hz, db in [*zip(EQ_HZ, gains), (between, (gains[0] + gains[1]) / 2)]:
        tone = torch.tensor(np.sin(2 * np.pi * hz * t), dtype=torch.float32)
        out = equalise(tone, sr, gains)[2000:-2000]
        assert abs(20 * np.log10(out.abs().max().item()) - db) < 0.1, (hz, db)
    ds = MixDataset(lib, num_mix=(2,), segment=4095, train=True, seed=0, length=6, eq_db=6.0)
    for i in range(len(ds)):
        item, plan = ds[i], ds.mixture_plan(i)
        for k, src in enumerate(plan["sources"]):
            assert len(src["eq_db"]) == len(EQ_HZ) and max(map(abs, src["eq_db"])) <= 6.0
            piece = lib.clips[src["clip"]].audio[src["start"]:src["start"] + 4095]
            torch.testing.assert_close(item["audio"][k], equalise(piece, SR, src["eq_db"]) * src["gain"])
