"""VideoDataset: manifest/CSV/folder sources, validation, modes, audio alignment, workers, bad files."""
from __future__ import annotations

import csv
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from avkit.data import LogMel, VideoDataset, collate
from avkit.data.dataset import skips_of
from avkit.data.synthetic import generate
from avkit.errors import AvkitError
from avkit.io.write import write_video

SR = 16000


@pytest.fixture(scope="session")
def motion_dir(tmp_path_factory) -> Path:
    """6 synthetic motion clips (32x32, 8 fps, 2 s, with sound) + manifest.jsonl + classes.json."""
    out = tmp_path_factory.mktemp("motion")
    generate("motion", out, num=6, seed=0, duration=2.0, size=32, fps=8.0)
    return out


@pytest.fixture(scope="session")
def colour_root(tmp_path_factory) -> Path:
    """Class-per-folder tree: red/ and blue/ hold solid-colour clips; the sound goes silent -> loud at 2 s.

    Frame brightness also jumps at 2 s (dark -> bright), so video/audio alignment can be checked.
    """
    root = tmp_path_factory.mktemp("colours")
    t = np.arange(int(4.0 * SR)) / SR
    wave = np.where(t >= 2.0, 0.5 * np.sin(2 * np.pi * 440 * t), 0.0).astype(np.float32)
    for name, channel in (("red", 0), ("blue", 2)):
        (root / name).mkdir()
        for k in range(2):
            frames = np.zeros((32, 24, 40, 3), np.uint8)  # 4 s at 8 fps, landscape 24x40
            frames[:, :, :, channel] = 60
            frames[16:, :, :, channel] = 250  # bright from 2 s on
            write_video(root / name / f"{name}{k}.mp4", frames, 8.0, wave, SR)
    (root / "notes.txt").write_text("not a class folder")
    return root


@pytest.fixture(scope="session")
def broken_manifest(motion_dir, tmp_path_factory) -> Path:
    """JSONL with two good clips, a zero-byte .mp4 and a text file renamed .mp4 between them."""
    d = tmp_path_factory.mktemp("broken")
    (d / "empty.mp4").write_bytes(b"")
    (d / "text.mp4").write_text("this is not a video\n" * 20)
    for k in range(2):  # inside the dataset folder (rows naming files elsewhere are refused)
        shutil.copy(motion_dir / f"clips/00000{k}.mp4", d / f"good{k}.mp4")
    rows = [
        {"path": "good0.mp4", "label": "move_left"},
        {"path": "empty.mp4", "label": "move_left"},
        {"path": "text.mp4", "label": "move_right"},
        {"path": "good1.mp4", "label": "move_right"},
    ]
    (d / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return d / "manifest.jsonl"


def _small(**kw) -> dict:
    return dict(num_frames=4, fps=4.0, size=16) | kw


# -- sources --------------------------------------------------------------------------------

def test_jsonl_manifest_with_classes_json(motion_dir):
    ds = VideoDataset(motion_dir / "manifest.jsonl", **_small())
    rows = [json.loads(line) for line in (motion_dir / "manifest.jsonl").read_text().splitlines()]
    names = [c["name"] for c in json.loads((motion_dir / "classes.json").read_text())]
    assert ds.classes == names  # classes.json order, not sorted
    assert len(ds) == 6
    item = ds[2]
    assert item["video"].shape == (3, 4, 16, 16) and item["video"].dtype == torch.float32
    assert item["label"] == names.index(rows[2]["label"])
    assert item["caption"] == rows[2]["caption"] and item["path"].endswith("000002.mp4")
    assert 0.0 <= item["start"] < item["end"] <= 2.0 + 1e-6
    # A folder holding manifest.jsonl is the same dataset.
    assert len(VideoDataset(motion_dir, **_small())) == 6


def test_csv_manifest_relative_paths_segments_and_sorted_classes(motion_dir, tmp_path):
    rows = [
        {"path": "../m/clips/000000.mp4", "label": "zeta", "start": "0.5", "end": "1.5", "caption": "first",
         "split": "train"},
        {"path": "../m/clips/000001.mp4", "label": "alpha", "start": "", "end": "", "caption": "", "split": "val"},
    ]
    (tmp_path / "m").symlink_to(motion_dir, target_is_directory=True)
    (tmp_path / "sub").mkdir()
    with open(tmp_path / "sub" / "list.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["path", "label", "start", "end", "caption", "split"])
        w.writeheader()
        w.writerows(rows)
    # The rows leave the manifest's folder (../m): refused unless allowed (tests/test_data_formats.py).
    ds = VideoDataset(tmp_path / "sub" / "list.csv", **_small(num_frames=2), audio="waveform", allow_outside=True)
    assert ds.classes == ["alpha", "zeta"]  # no classes.json: sorted unique labels
    for epoch in range(4):
        ds.set_epoch(epoch)
        item = ds[0]
        assert item["label"] == 1 and item["caption"] == "first"
        assert 0.5 - 1e-9 <= item["start"] and item["end"] <= 1.5 + 1e-9  # stays in the segment
    assert ds[1]["caption"] == "" and ds[1]["label"] == 0
    assert ds[0]["audio"].shape == (SR * 2 // 4,)  # 2 frames at 4 fps = 0.5 s
    val = VideoDataset(tmp_path / "sub" / "list.csv", split="val", **_small(), allow_outside=True)
    assert len(val) == 1 and val.classes == ds.classes and val[0]["label"] == 0


def test_folder_layout_labels_match_content(colour_root):
    ds = VideoDataset(colour_root, **_small(), mode="test", num_clips=2)
    assert ds.classes == ["blue", "red"] and len(ds) == 4
    for i in range(len(ds)):
        item = ds[i]
        v = item["video"]
        assert v.shape == (2, 3, 4, 16, 16)
        mean = v.mean(dim=(0, 2, 3, 4))  # per channel (normalized)
        expected = "red" if mean[0] > mean[2] else "blue"
        assert ds.classes[item["label"]] == expected
        assert Path(item["path"]).parent.name == expected


# -- validation -----------------------------------------------------------------------------

@pytest.mark.parametrize("content, match", [
    ("", "no videos"),
    ('{"path": "a.mp4"}\n', "missing column"),
    ('{"path": "a.mp4", "label": "cat"}\n{"path": "b.mp4", "label": "dog"}\n', "unknown label"),
    ('{"path": "a.mp4", "label": "cat", "start": 2, "end": 1}\n', "after start"),
    ("not json\n", "not valid JSON"),
])
def test_bad_manifests_raise_naming_the_file(tmp_path, content, match):
    m = tmp_path / "bad.jsonl"
    m.write_text(content)
    if "unknown" in match:
        (tmp_path / "classes.json").write_text(json.dumps(["cat"]))
    with pytest.raises(AvkitError, match=match) as err:
        VideoDataset(m)
    assert "bad.jsonl" in str(err.value)


def test_csv_missing_column_and_split_errors(tmp_path, motion_dir):
    m = tmp_path / "x.csv"
    m.write_text("file,label\na.mp4,cat\n")
    with pytest.raises(AvkitError, match="x.csv.*missing column.*path"):
        VideoDataset(m)
    with pytest.raises(AvkitError, match="no videos in split"):
        VideoDataset(motion_dir, split="test")
    with pytest.raises(AvkitError):
        VideoDataset(motion_dir, audio="mono")


# -- modes and audio ------------------------------------------------------------------------

def test_test_mode_views_and_three_crops(colour_root):
    ds = VideoDataset(colour_root, **_small(), mode="test", num_clips=3, num_crops=3, audio="both")
    item = ds[0]
    assert item["video"].shape == (9, 3, 4, 16, 16)
    assert item["audio"].shape == (9, SR) and item["spectrogram"].shape[:2] == (9, 1)
    # Clips are uniform over the 4 s video: first starts at 0, last ends at 4.
    assert item["start"] == pytest.approx(0.0) and item["end"] == pytest.approx(4.0)
    # Crops of one clip share its audio; the first clip (dark, silent) differs from the last (bright, loud).
    assert torch.equal(item["audio"][0], item["audio"][2])
    assert item["audio"][0].abs().max() < 0.01 < item["audio"][-1].abs().max()
    assert item["video"][0].mean() < item["video"][-1].mean()
    # Deterministic: test mode has no random draws.
    assert torch.equal(ds[0]["video"], item["video"])


def test_audio_is_aligned_with_video_clip(colour_root):
    """Frames turn bright and the sound turns on at 2 s: both must switch at the same clip frame."""
    ds = VideoDataset(colour_root, num_frames=8, fps=8.0, size=16, audio="both", seed=3)
    seen = set()
    for epoch in range(10):
        ds.set_epoch(epoch)
        item = ds[1]
        assert item["audio"].shape == (SR,) and item["has_audio"] is True
        assert item["spectrogram"].shape == (1, 64, LogMel().num_frames(SR))
        times = item["start"] + np.arange(8) / 8.0
        after = times >= 2.0
        bright = item["video"].mean(dim=(0, 2, 3)) > -1.0  # dark frames average -1.6, bright -0.3
        assert bright.tolist() == after.tolist(), (item["start"], bright)
        # Loudness 5-55 ms after each frame time; frames just before the switch hear its onset.
        slices = [item["audio"][int((k / 8 + 0.005) * SR):int((k / 8 + 0.055) * SR)] for k in range(8)]
        loud = np.array([s.abs().max().item() > 0.1 for s in slices])
        clear = (times < 1.93) | after
        assert (loud[clear] == after[clear]).all(), (item["start"], loud, after)
        seen.update(after.tolist())
    assert seen == {True, False}  # random clips landed on both sides of the switch


# -- determinism ----------------------------------------------------------------------------

def test_deterministic_for_seed_epoch_index(motion_dir):
    a = VideoDataset(motion_dir, **_small(num_frames=2), seed=1)
    b = VideoDataset(motion_dir, **_small(num_frames=2), seed=1)
    assert torch.equal(a[3]["video"], b[3]["video"]) and a[3]["start"] == b[3]["start"]
    draws = set()
    for epoch in range(6):
        a.set_epoch(epoch)
        it = a[3]
        draws.add((round(it["start"], 6), it["video"].sum().item()))
    assert len(draws) > 1  # set_epoch changes clip position / crop / flip


def test_dataloader_workers_match_single_process(motion_dir):
    ds = VideoDataset(motion_dir, **_small(), audio="waveform", seed=5)
    ds.set_epoch(2)
    batches = {}
    for workers in (0, 2):
        loader = DataLoader(ds, batch_size=3, shuffle=False, num_workers=workers, collate_fn=collate)
        batches[workers] = list(loader)
    assert len(batches[0]) == 2
    for b0, b2 in zip(batches[0], batches[2]):
        assert b0["video"].shape == (3, 3, 4, 16, 16)
        assert torch.equal(b0["video"], b2["video"]) and torch.equal(b0["audio"], b2["audio"])
        assert torch.equal(b0["label"], b2["label"]) and b0["path"] == b2["path"]
        assert isinstance(b0["caption"], list) and b0["start"].dtype == torch.float64


# -- broken files ---------------------------------------------------------------------------

def test_broken_files_are_skipped_and_reported(broken_manifest, caplog):
    ds = VideoDataset(broken_manifest, **_small())
    with caplog.at_level(logging.WARNING, logger="avkit.data"):
        items = [ds[i] for i in range(len(ds))]
        again = ds[1]
    # Items 1 and 2 are unreadable: both are replaced by the next readable one (index 3).
    assert [it["index"] for it in items] == [0, 3, 3, 3]
    assert again["index"] == 3
    assert set(ds.skipped) == {str(broken_manifest.parent / "empty.mp4"), str(broken_manifest.parent / "text.mp4")}
    assert all(reason for reason in ds.skipped.values())
    warned = [r.getMessage() for r in caplog.records if "skipping" in r.getMessage()]
    assert len(warned) == 2  # once per file, not once per attempt
    assert any("empty.mp4" in w for w in warned) and any("text.mp4" in w for w in warned)
    report = ds.skipped_report()
    assert report.startswith("2 of 4 videos skipped") and "empty.mp4" in report and "text.mp4" in report
    assert skips_of(items[1]["skipped"]).keys() == {str(broken_manifest.parent / "empty.mp4"),
                                                    str(broken_manifest.parent / "text.mp4")}


@pytest.mark.parametrize("workers", [0, 2])
def test_plain_dataloader_over_a_broken_file(broken_manifest, workers):
    """Issue #22: PyTorch's own DataLoader (default collate) batches items even when some skipped a
    broken file; the batch's ``skipped`` goes back into the dataset with ``record_skips``."""
    ds = VideoDataset(broken_manifest, **_small())
    batches = list(DataLoader(ds, batch_size=4, num_workers=workers))
    assert len(batches) == 1 and batches[0]["index"].tolist() == [0, 3, 3, 3]
    assert batches[0]["video"].shape[0] == 4 and len(batches[0]["skipped"]) == 4  # one JSON string per item
    ds.record_skips(batches[0]["skipped"])
    assert set(ds.skipped) == {str(broken_manifest.parent / "empty.mp4"), str(broken_manifest.parent / "text.mp4")}
    with pytest.raises(AvkitError, match="on_unreadable"):
        ds.set_on_unreadable("drop")


def test_loader_with_workers_gathers_skips(broken_manifest):
    ds = VideoDataset(broken_manifest, **_small(), mode="test", num_clips=1)
    batches = list(ds.loader(batch_size=2, num_workers=2))
    assert sum(len(b["path"]) for b in batches) == 4
    assert len(ds.skipped) == 2 and "text.mp4" in ds.skipped_report()


def test_skip_mode_gives_stubs_that_collate_readable_leaves_out(broken_manifest):
    """Evaluation's mode: an unreadable video is a stub, not the next video counted twice."""
    from avkit.data.dataset import collate_readable

    ds = VideoDataset(broken_manifest, **_small(), mode="test", num_clips=2, on_unreadable="skip")
    items = [ds[i] for i in range(len(ds))]
    assert [it["index"] for it in items] == [0, 1, 2, 3]
    assert ["video" in it for it in items] == [True, False, False, True]
    empty, text = str(broken_manifest.parent / "empty.mp4"), str(broken_manifest.parent / "text.mp4")
    assert items[1]["unreadable"] == ds.skipped[empty] and skips_of(items[2]["skipped"]) == {text: ds.skipped[text]}
    assert skips_of(items[0]["skipped"]) == {} and ds[1]["unreadable"]  # a known broken file is not opened again
    batch = collate_readable(items)
    assert batch["video"].shape == (2, 2, 3, 4, 16, 16) and batch["index"].tolist() == [0, 3]
    assert batch["kept"].tolist() == [True, False, False, True] and set(batch["skipped"]) == {empty, text}
    only_broken = collate_readable(items[1:3])
    assert set(only_broken) == {"skipped", "kept"} and not only_broken["kept"].any()
    # With workers the records come back with the batches.
    fresh = VideoDataset(broken_manifest, **_small(), mode="test", num_clips=1, on_unreadable="skip")
    loader = DataLoader(fresh, batch_size=2, num_workers=2, collate_fn=collate_readable)
    batches = list(loader)
    assert sum(len(b["index"]) for b in batches if "index" in b) == 2
    assert set().union(*(b["skipped"] for b in batches)) == {empty, text}
    with pytest.raises(AvkitError, match="on_unreadable"):
        VideoDataset(broken_manifest, on_unreadable="drop")


def test_all_unreadable_raises(tmp_path):
    (tmp_path / "a.mp4").write_bytes(b"")
    (tmp_path / "m.jsonl").write_text(json.dumps({"path": "a.mp4", "label": "x"}) + "\n")
    ds = VideoDataset(tmp_path / "m.jsonl")
    with pytest.raises(AvkitError, match="no readable video"):
        ds[0]


# -- whole-video clips and collate ----------------------------------------------------------

def test_video_clips_cover_whole_video(colour_root):
    ds = VideoDataset(colour_root, **_small(), audio="waveform")  # clip = 1 s
    batches = list(ds.video_clips(0, batch_size=3))
    starts = torch.cat([b["start"] for b in batches])
    assert torch.allclose(starts, torch.tensor([0.0, 1.0, 2.0, 3.0], dtype=torch.float64))
    assert batches[0]["video"].shape == (3, 3, 4, 16, 16) and batches[1]["video"].shape[0] == 1
    assert batches[0]["audio"].shape == (3, SR)
    half = list(ds.video_clips(0, stride=0.5, batch_size=16))[0]
    assert half["video"].shape[0] == 7  # 0, 0.5, ..., 3.0


def test_collate_merges_metadata():
    items = [{"video": torch.zeros(3, 2, 4, 4), "label": 1, "path": "a", "start": 0.0, "caption": "x",
              "skipped": {"bad.mp4": "empty"}},
             {"video": torch.ones(3, 2, 4, 4), "label": 0, "path": "b", "start": 1.5, "caption": "",
              "skipped": {}}]
    batch = collate(items)
    assert batch["video"].shape == (2, 3, 2, 4, 4) and batch["video"][1].eq(1).all()
    assert batch["label"].tolist() == [1, 0] and batch["path"] == ["a", "b"]
    assert batch["start"].tolist() == [0.0, 1.5] and batch["caption"] == ["x", ""]
    assert batch["skipped"] == {"bad.mp4": "empty"}


@pytest.mark.media
def test_real_videos_train_and_test(media_dir, tmp_path):
    """Real files (audio as stream 0, Opus/Vorbis/MP3, MPEG-4 AVI, VP8) through both modes with sound."""
    videos = [p for p in sorted((media_dir / "video").iterdir()) if p.suffix in (".mp4", ".mkv", ".webm", ".avi")]
    rows = [{"path": str(p), "label": p.suffix} for p in videos]
    (tmp_path / "real.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    train = VideoDataset(tmp_path / "real.jsonl", num_frames=4, fps=4.0, size=16, audio="waveform", seed=0,
                         allow_outside=True)
    test = VideoDataset(tmp_path / "real.jsonl", num_frames=4, fps=4.0, size=16, audio="spectrogram",
                        mode="test", num_clips=2, allow_outside=True)
    for i in range(len(rows)):
        a, b = train[i], test[i]
        assert a["index"] == b["index"] == i  # nothing skipped
        assert a["video"].shape == (3, 4, 16, 16) and a["audio"].shape == (SR,)
        assert a["audio"].abs().max() > 1e-3  # real sound was read, not silence
        assert b["video"].shape == (2, 3, 4, 16, 16) and b["spectrogram"].shape[:2] == (2, 1)
        assert b["video"][0].std() > 0.05  # real picture content
    assert train.skipped == {} and test.skipped == {}


def test_audio_transform_applies_in_train_mode_only(colour_root):
    from avkit.data import RandomGain

    plain = VideoDataset(colour_root, **_small(), audio="waveform", seed=2)
    louder = VideoDataset(colour_root, **_small(), audio="waveform", seed=2, audio_transform=RandomGain(6, 6))
    a, b = plain[2], louder[2]
    assert a["start"] == b["start"]  # same clip
    assert torch.allclose(b["audio"], a["audio"] * 10 ** (6 / 20), atol=1e-6)
    clips = next(louder.video_clips(2))
    assert torch.allclose(clips["audio"], next(plain.video_clips(2))["audio"])  # no augmentation


# -- in-memory cache ------------------------------------------------------------------------

def _same_items(a: VideoDataset, b: VideoDataset, epochs: int = 2, audio_atol: float | None = 1e-4) -> None:
    """Equal frames; audio within ``audio_atol`` (a read after a seek warms the AAC decoder up
    differently from one continuous read; None skips the audio comparison)."""
    for epoch in range(epochs):
        a.set_epoch(epoch)
        b.set_epoch(epoch)
        for i in range(len(a)):
            x, y = a[i], b[i]
            assert torch.equal(x["video"], y["video"]), (epoch, i)
            assert x["start"] == y["start"] and x["label"] == y["label"]
            if "audio" in x and audio_atol is not None:  # (log-mel magnifies differences in silent bins)
                torch.testing.assert_close(x["audio"], y["audio"], atol=audio_atol, rtol=0)
            if "spectrogram" in x:
                assert x["spectrogram"].shape == y["spectrogram"].shape


def test_cache_gives_the_same_items_as_decoding(motion_dir, colour_root):
    """cache=True serves the same frames and sound as opening the file each time, in both modes."""
    for root in (motion_dir, colour_root):
        for mode in ("train", "test"):
            kw = dict(num_frames=8, fps=8.0, size=16, mode=mode, num_clips=3, audio="both", seed=4)
            plain, cached = VideoDataset(root, **kw), VideoDataset(root, cache=True, **kw)
            _same_items(plain, cached)
            assert len(cached._decoded) == len(cached)  # every file decoded once, kept


def test_cache_on_real_files_and_broken_ones(media_dir, broken_manifest, tmp_path):
    videos = [p for p in sorted((media_dir / "video").iterdir()) if p.suffix in (".mp4", ".mkv", ".webm")]
    rows = "".join(json.dumps({"path": str(p), "label": "x"}) + "\n" for p in videos)
    manifest = tmp_path / "real.jsonl"
    manifest.write_text(rows)
    kw = dict(num_frames=4, fps=4.0, size=16, audio="waveform", seed=1, allow_outside=True)
    # Audio is not compared: after a seek, the real AAC and Vorbis streams decode to samples that
    # differ from one continuous decode (decoder warm-up; Vorbis timestamps), see docs/decoding.md.
    _same_items(VideoDataset(manifest, **kw), VideoDataset(manifest, cache=True, **kw), epochs=1, audio_atol=None)
    broken = VideoDataset(broken_manifest, cache=True, **_small())
    assert [broken[i]["index"] for i in range(4)] == [0, 3, 3, 3]
    assert sorted(Path(p).name for p in broken.skipped) == ["empty.mp4", "text.mp4"]
