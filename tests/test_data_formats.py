"""Standard dataset layouts (issue #22) and manifest safety (issue #26).

Each layout is built in the test as it is downloaded (tiny generated clips; one UCF-101 tree cut from
the shared real clips), read by ``VideoDataset`` from its path alone, and a malformed row of each
gives a one-line error naming the file and the line (or the video id).
"""
from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import numpy as np
import pytest

from avkit.data import VideoDataset, load_records
from avkit.data.formats import FormatOptions, detect_format, read_format
from avkit.errors import AvkitError
from avkit.io import read_clip
from avkit.io.write import write_video

SMALL = dict(num_frames=2, fps=4.0, size=16)


def _clip(path: Path, seconds: float = 1.0, shade: int = 0) -> Path:
    """A tiny real clip (16x16, 4 fps, with sound) at ``path`` (any suffix; the content is mp4)."""
    n = max(1, int(seconds * 4))
    frames = np.full((n, 16, 16, 3), shade, np.uint8)
    t = np.arange(int(seconds * 8000)) / 8000
    write_video(path, frames, 4, 0.2 * np.sin(2 * np.pi * 440 * t).astype(np.float32), 8000, overwrite=True)
    return path


def _lines(path: Path, *lines: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines))
    return path


def _one_line_error(fn, *must_contain: str) -> str:
    with pytest.raises(AvkitError) as info:
        fn()
    message = str(info.value)
    assert "\n" not in message, message
    for text in must_contain:
        assert text in message, message
    return message


# -- UCF-101 ----------------------------------------------------------------------------------

def _ucf(root: Path) -> Path:
    """UCF-101 as downloaded: UCF-101/<Class>/v_*.avi and ucfTrainTestlist/ (classInd + split lists)."""
    for cls, group in (("PlayingCello", 1), ("PlayingCello", 2), ("ApplyEyeMakeup", 1), ("ApplyEyeMakeup", 2),
                       ("HandstandPushups", 1)):
        _clip(root / "UCF-101" / cls / f"v_{cls}_g0{group}_c01.avi", shade=40 * group)
    lists = root / "ucfTrainTestlist"
    # Not alphabetical: the order of classInd.txt is the label order.
    _lines(lists / "classInd.txt", "1 PlayingCello", "2 ApplyEyeMakeup", "3 HandstandPushups")
    _lines(lists / "trainlist01.txt", "PlayingCello/v_PlayingCello_g02_c01.avi 1",
           "ApplyEyeMakeup/v_ApplyEyeMakeup_g02_c01.avi 2",
           # The official lists spell this folder with a capital S; the files do not.
           "HandStandPushups/v_HandStandPushups_g01_c01.avi 3")
    _lines(lists / "testlist01.txt", "PlayingCello/v_PlayingCello_g01_c01.avi",
           "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi",
           "ApplyEyeMakeup/v_ApplyEyeMakeup_g03_c01.avi")  # not downloaded
    _lines(lists / "trainlist02.txt", "PlayingCello/v_PlayingCello_g01_c01.avi 1",
           "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi 2")
    _lines(lists / "testlist02.txt", "PlayingCello/v_PlayingCello_g02_c01.avi")
    return root


def test_ucf101_official_splits(tmp_path, caplog):
    root = _ucf(tmp_path / "ucf")
    assert detect_format(root) == "ucf101"
    with caplog.at_level(logging.WARNING, logger="avkit.data"):
        train = VideoDataset(root, split="train", **SMALL)
    assert train.classes == ["PlayingCello", "ApplyEyeMakeup", "HandstandPushups"]
    assert [Path(r.path).name for r in train.records] == [
        "v_PlayingCello_g02_c01.avi", "v_ApplyEyeMakeup_g02_c01.avi", "v_HandstandPushups_g01_c01.avi"]
    assert [r.label for r in train.records] == [0, 1, 2]
    assert train[2]["video"].shape == (3, 2, 16, 16)
    val = VideoDataset(root, split="val", **SMALL)
    assert [Path(r.path).name for r in val.records] == ["v_PlayingCello_g01_c01.avi", "v_ApplyEyeMakeup_g01_c01.avi"]
    # The test-list video that is not there is listed and counted, not fatal.
    assert "1 of 6 videos not found" in caplog.text and "v_ApplyEyeMakeup_g03_c01.avi" in caplog.text
    table = read_format(root)
    assert table is not None and table.missing == [
        f"{root / 'ucfTrainTestlist' / 'testlist01.txt'} line 3: ApplyEyeMakeup/v_ApplyEyeMakeup_g03_c01.avi"]
    split2 = VideoDataset(root, split="train", format_options=FormatOptions(split_number=2), **SMALL)
    assert [Path(r.path).name for r in split2.records] == ["v_PlayingCello_g01_c01.avi", "v_ApplyEyeMakeup_g01_c01.avi"]


def test_ucf101_malformed_rows(tmp_path):
    root = _ucf(tmp_path / "ucf")
    lists = root / "ucfTrainTestlist"
    _lines(lists / "trainlist01.txt", "PlayingCello/v_PlayingCello_g02_c01.avi 1",
           "ApplyEyeMakeup/v_ApplyEyeMakeup_g02_c01.avi 1")  # index of the wrong class
    _one_line_error(lambda: load_records(root), "trainlist01.txt line 2", "does not match 'ApplyEyeMakeup'")
    _lines(lists / "trainlist01.txt", "PlayingCello/v_PlayingCello_g02_c01.avi 1", "Juggling/v_x.avi 4")
    _one_line_error(lambda: load_records(root), "trainlist01.txt line 2", "'Juggling' is not in classInd.txt")
    _lines(lists / "classInd.txt", "1 PlayingCello", "3 ApplyEyeMakeup")
    _one_line_error(lambda: load_records(root), "classInd.txt line 2", "expected '2 ClassName'")
    with pytest.raises(AvkitError, match="split_number must be 1, 2 or 3"):
        load_records(root, format_options=FormatOptions(split_number=4))


@pytest.mark.media
def test_ucf101_from_real_clips(media_dir, tmp_path):
    """Real clips cut into 1 s segments, one class per source, mixed codecs: the official layout reads."""
    root = tmp_path / "ucf"
    sources = {"Cooking": "pancake_h264_opus.mkv", "Talking": "friday_h264_aac.mp4", "Movie": "test_mpeg4_mp3.avi"}
    train, test = [], []
    for k, (cls, name) in enumerate(sources.items(), 1):
        for g in (1, 2):
            clip = read_clip(media_dir / "video" / name, g, g + 1.0, fps=8, size=64, sample_rate=16000)
            write_video(root / "UCF-101" / cls / f"v_{cls}_g0{g}_c01.avi", clip.frames, 8, clip.audio, 16000,
                        overwrite=True)
        train.append(f"{cls}/v_{cls}_g02_c01.avi {k}")
        test.append(f"{cls}/v_{cls}_g01_c01.avi")
    _lines(root / "ucfTrainTestlist" / "classInd.txt", *(f"{k} {c}" for k, c in enumerate(sources, 1)))
    _lines(root / "ucfTrainTestlist" / "trainlist01.txt", *train)
    _lines(root / "ucfTrainTestlist" / "testlist01.txt", *test)
    ds = VideoDataset(root, split="val", mode="test", num_clips=1, audio="waveform", num_frames=4, fps=4.0, size=32)
    assert len(ds) == 3 and ds.classes == list(sources)
    for i in range(3):
        item = ds[i]
        assert item["label"] == i and item["video"].shape == (1, 3, 4, 32, 32) and item["audio"].abs().max() > 1e-3


# -- HMDB-51 -----------------------------------------------------------------------------------

def test_hmdb51_split_files(tmp_path):
    root = tmp_path / "hmdb"
    for cls in ("brush_hair", "cartwheel"):
        for k in range(3):
            _clip(root / "hmdb51_org" / cls / f"{cls}_{k}.avi")
    splits = root / "testTrainMulti_7030_splits"
    # 1 = train, 2 = test, 0 = in neither split (trailing spaces as in the official files)
    _lines(splits / "brush_hair_test_split1.txt", "brush_hair_0.avi 1 ", "brush_hair_1.avi 2 ", "brush_hair_2.avi 0 ")
    _lines(splits / "cartwheel_test_split1.txt", "cartwheel_0.avi 2 ", "cartwheel_1.avi 1 ", "cartwheel_2.avi 1 ")
    _lines(splits / "brush_hair_test_split2.txt", "brush_hair_2.avi 1 ")
    _lines(splits / "cartwheel_test_split2.txt", "cartwheel_2.avi 2 ")
    assert detect_format(root) == "hmdb51"
    train = VideoDataset(root, split="train", **SMALL)
    assert train.classes == ["brush_hair", "cartwheel"]
    assert sorted(Path(r.path).name for r in train.records) == ["brush_hair_0.avi", "cartwheel_1.avi", "cartwheel_2.avi"]
    val = VideoDataset(root, split="val", **SMALL)
    assert sorted((Path(r.path).name, r.label) for r in val.records) == [("brush_hair_1.avi", 0), ("cartwheel_0.avi", 1)]
    assert val[1]["video"].shape == (3, 2, 16, 16)
    split2, _, _ = load_records(root, format_options=FormatOptions(split_number=2))
    assert [(Path(r.path).name, r.split) for r in split2] == [("brush_hair_2.avi", "train"), ("cartwheel_2.avi", "val")]
    _lines(splits / "cartwheel_test_split1.txt", "cartwheel_0.avi 2", "cartwheel_1.avi 3")
    _one_line_error(lambda: load_records(root), "cartwheel_test_split1.txt line 2", "expected 'video.avi 0|1|2'")


# -- Kinetics ---------------------------------------------------------------------------------

def _kinetics(root: Path) -> Path:
    _clip(root / "train" / "abc_000010_000020.mp4")
    _clip(root / "train" / "x-Y_z_000000_000010.mkv")  # ids may hold '-' and '_'; any video suffix
    _clip(root / "val" / "def_000005_000015.mp4")
    with (root / "kinetics.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["label", "youtube_id", "time_start", "time_end", "split", "is_cc"])
        w.writerow(["playing cello", "abc", "10", "20", "train", "0"])
        w.writerow(["abseiling", "x-Y_z", "0", "10", "train", "0"])
        w.writerow(["abseiling", "gone", "30", "40", "train", "0"])  # not downloaded
        w.writerow(["playing cello", "def", "5", "15", "validate", "0"])
    return root / "kinetics.csv"


def test_kinetics_csv_and_missing_downloads(tmp_path, caplog):
    csv_file = _kinetics(tmp_path / "k400")
    assert detect_format(csv_file) == "kinetics"
    with caplog.at_level(logging.WARNING, logger="avkit.data"):
        ds = VideoDataset(csv_file, split="train", **SMALL)
    assert ds.classes == ["abseiling", "playing cello"]  # every row's label, downloaded or not
    assert [(Path(r.path).name, r.label, r.start) for r in ds.records] == [
        ("abc_000010_000020.mp4", 1, None), ("x-Y_z_000000_000010.mkv", 0, None)]
    assert ds[1]["video"].shape == (3, 2, 16, 16)
    assert "1 of 4 videos not found" in caplog.text and "line 4: gone_000030_000040" in caplog.text
    val, _, _ = load_records(csv_file, "val")  # "validate" is the val split
    assert [Path(r.path).name for r in val] == ["def_000005_000015.mp4"]


def test_kinetics_pattern_for_whole_videos_and_bad_rows(tmp_path):
    root = tmp_path / "k"
    _clip(root / "videos" / "abc.mp4", seconds=3.0)
    _lines(root / "train.csv", "label,youtube_id,time_start,time_end,split", "cello,abc,1,2.5,train")
    # A pattern without {time_start} names the whole video: the row reads its [time_start, time_end).
    ds = VideoDataset(root / "train.csv", format="kinetics", format_options=FormatOptions(path_pattern="{youtube_id}"),
                      **SMALL)
    assert (ds.records[0].start, ds.records[0].end) == (1.0, 2.5)
    item = ds[0]
    assert 1.0 - 1e-6 <= item["start"] and item["end"] <= 2.5 + 1e-6
    _lines(root / "train.csv", "label,youtube_id,time_start,time_end,split", "cello,abc,1,2,train",
           "cello,def,ten,20,train")
    _one_line_error(lambda: load_records(root / "train.csv"), "train.csv line 3", "time_start must be a number, got 'ten'")
    _lines(root / "train.csv", "label,youtube_id,time_start,time_end,split", "cello,abc,5,2,train")
    _one_line_error(lambda: load_records(root / "train.csv"), "train.csv line 2", "time_end (2) must be after")
    _lines(root / "train.csv", "label,youtube_id,time_start,time_end,split", "cello,abc,1,2")
    _one_line_error(lambda: load_records(root / "train.csv"), "train.csv line 2", "4 fields, the header has 5")
    with pytest.raises(AvkitError, match="unknown: id"):
        load_records(root / "train.csv", format_options=FormatOptions(path_pattern="{id}"))


# -- Something-Something v2 --------------------------------------------------------------------

def test_ssv2_json_labels(tmp_path):
    root = tmp_path / "ssv2"
    for vid in ("1", "2", "3"):
        _clip(root / "20bn-something-something-v2" / f"{vid}.webm")
    labels = {"Holding something next to something": "1", "Pushing something from left to right": "0"}
    _lines(root / "labels" / "labels.json", json.dumps(labels))
    train = [{"id": "1", "label": "holding a cup next to a pen", "template": "Holding [something] next to [something]",
              "placeholders": ["a cup", "a pen"]},
             {"id": "2", "label": "pushing a box from left to right", "template": "Pushing [something] from left to right",
              "placeholders": ["a box"]}]
    (root / "labels" / "train.json").write_text(json.dumps(train, indent=4))
    (root / "labels" / "validation.json").write_text(json.dumps([{**train[0], "id": "3"}], indent=4))
    assert detect_format(root) == "ssv2"
    ds = VideoDataset(root, split="train", **SMALL)
    assert ds.classes == ["Pushing something from left to right", "Holding something next to something"]
    assert [(Path(r.path).name, r.label, r.caption) for r in ds.records] == [
        ("1.webm", 1, "holding a cup next to a pen"), ("2.webm", 0, "pushing a box from left to right")]
    assert ds[0]["caption"] == "holding a cup next to a pen" and ds[0]["video"].shape == (3, 2, 16, 16)
    assert [Path(r.path).name for r in load_records(root, "val")[0]] == ["3.webm"]
    bad = [train[0], {"id": "9", "template": "Spinning [something]"}]
    (root / "labels" / "train.json").write_text(json.dumps(bad, indent=4))
    # The second entry starts on line 11 of the pretty-printed file.
    _one_line_error(lambda: load_records(root), "train.json line 11", "'Spinning [something]' is not in labels.json")


# -- VGGSound ---------------------------------------------------------------------------------

def test_vggsound_csv(tmp_path):
    root = tmp_path / "vgg"
    _clip(root / "video" / "---g-f_I2yQ_000001.mp4")
    _clip(root / "video" / "abc_000030.mp4")
    # The official file has no header; labels with commas are quoted.
    _lines(root / "vggsound.csv", "---g-f_I2yQ,1,people marching,test", 'abc,30,"dog barking, growling",train',
           "zzz,0,people marching,train")
    assert detect_format(root / "vggsound.csv") == "vggsound"
    ds = VideoDataset(root / "vggsound.csv", split="train", audio="waveform", **SMALL)
    assert ds.classes == ["dog barking, growling", "people marching"]
    assert [(Path(r.path).name, r.label) for r in ds.records] == [("abc_000030.mp4", 0)]
    assert ds[0]["audio"].abs().max() > 1e-3
    assert [Path(r.path).name for r in load_records(root / "vggsound.csv", "test")[0]] == ["---g-f_I2yQ_000001.mp4"]
    _lines(root / "vggsound.csv", "abc,30,dog,train", "abc,30,dog")
    _one_line_error(lambda: load_records(root / "vggsound.csv"), "vggsound.csv line 2", "expected 4 fields")


# -- ActivityNet / THUMOS ----------------------------------------------------------------------

def test_activitynet_segments(tmp_path):
    root = tmp_path / "anet"
    _clip(root / "videos" / "v_abc.mp4", seconds=3.0)
    _clip(root / "videos" / "video_validation_0000051.mp4", seconds=3.0)  # THUMOS names, no v_ prefix
    database = {
        "abc": {"subset": "training", "duration": 3.0, "annotations": [
            {"segment": [0.2, 0.8], "label": "Long jump"}, {"segment": [1.0, 2.9], "label": "High jump"}]},
        "video_validation_0000051": {"subset": "validation", "duration": 3.0, "annotations": [
            {"segment": [0.5, 1.5], "label": "Long jump"}]},
        "test1": {"subset": "testing", "duration": 3.0, "annotations": []},
    }
    (root / "activity_net.v1-3.min.json").write_text(json.dumps({"version": "1.3", "database": database}))
    source = root / "activity_net.v1-3.min.json"
    assert detect_format(source) == "activitynet"
    ds = VideoDataset(source, split="train", **SMALL)
    assert ds.classes == ["High jump", "Long jump"]
    rec = ds.records[0]
    assert rec.label == 0  # the class that covers most of the video
    assert rec.segments == ({"label": "Long jump", "start": 0.2, "end": 0.8},
                            {"label": "High jump", "start": 1.0, "end": 2.9})
    assert rec.meta == {"id": "abc", "duration": 3.0} and ds[0]["video"].shape == (3, 2, 16, 16)
    val, _, _ = load_records(source, "val")
    assert [Path(r.path).name for r in val] == ["video_validation_0000051.mp4"]
    database["abc"]["annotations"][1]["segment"] = [2.9, 1.0]
    source.write_text(json.dumps({"database": database}))
    _one_line_error(lambda: load_records(source), "video 'abc'", "annotation 1 ends (1.0) before it starts (2.9)")


# -- AVA-ActiveSpeaker ------------------------------------------------------------------------

def test_ava_activespeaker_tracks(tmp_path):
    root = tmp_path / "ava"
    _clip(root / "vid1.mkv", seconds=3.0)
    rows = [  # video_id,frame_timestamp,x1,y1,x2,y2,label,entity_id (entity 1 speaks, then stops)
        "vid1,1.00,0.1,0.1,0.5,0.6,SPEAKING_AUDIBLE,vid1_0900_0930:1",
        "vid1,1.05,0.1,0.1,0.5,0.6,SPEAKING_AUDIBLE,vid1_0900_0930:1",
        "vid1,1.10,0.1,0.1,0.5,0.6,SPEAKING_AUDIBLE,vid1_0900_0930:1",
        "vid1,1.15,0.1,0.1,0.5,0.6,NOT_SPEAKING,vid1_0900_0930:1",
        "vid1,2.00,0.6,0.2,0.9,0.8,NOT_SPEAKING,vid1_0900_0930:2",
        "vid1,2.05,0.6,0.2,0.9,0.8,NOT_SPEAKING,vid1_0900_0930:2",
        "vid2,1.00,0.6,0.2,0.9,0.8,NOT_SPEAKING,vid2_0900_0930:1",  # video not downloaded
    ]
    source = _lines(root / "ava_activespeaker_train_v1.0" / "vid1-activespeaker.csv", *rows)
    assert detect_format(source) == "ava_activespeaker"
    # The videos are beside the annotation folder, not in it: data.video_root says where.
    ds = VideoDataset(source, format_options=FormatOptions(video_root=str(root)), split="train", **SMALL)
    assert ds.classes == ["NOT_SPEAKING", "SPEAKING_AUDIBLE"]
    first, second = ds.records
    assert first.label == 1 and first.start == 1.0 and first.end == pytest.approx(1.2)
    assert [(s["label"], s["start"], round(s["end"], 2)) for s in first.segments] == [
        ("SPEAKING_AUDIBLE", 1.0, 1.15), ("NOT_SPEAKING", 1.15, 1.2)]
    assert first.meta["boxes"][0] == [1.0, 0.1, 0.1, 0.5, 0.6] and len(first.meta["labels"]) == 4
    assert second.label == 0 and second.meta["entity_id"] == "vid1_0900_0930:2"
    assert 1.0 - 1e-6 <= ds[0]["start"] < 1.2  # the clip starts in the track (and is padded past its end)
    _lines(source, rows[0], "vid1,1.05,0.5,0.1,0.1,0.6,SPEAKING_AUDIBLE,vid1_0900_0930:1")
    _one_line_error(lambda: load_records(source), "vid1-activespeaker.csv line 2", "x1 < x2")


# -- detection and recipes ----------------------------------------------------------------------

def test_explicit_format_and_recipe_options(tmp_path):
    from avkit.engine.build import build_datasets
    from avkit.engine.config import DataConfig

    csv_file = _kinetics(tmp_path / "k")
    renamed = csv_file.with_name("my_list.txt")  # no name or suffix to detect it by
    renamed.write_text(csv_file.read_text())
    assert detect_format(renamed) == "manifest"
    cfg = DataConfig(source=str(renamed), format="kinetics", num_frames=2, fps=4.0, size=16)
    train, val = build_datasets(cfg)
    assert len(train) == 2 and len(val) == 1 and train.classes == val.classes
    with pytest.raises(AvkitError, match="unknown dataset format 'kinetic'"):
        load_records(renamed, format="kinetic")


# -- manifest safety (issue #26) ---------------------------------------------------------------

def _manifest(folder: Path, rows: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder / "manifest.jsonl"


def test_rows_outside_the_dataset_folder_are_refused(tmp_path):
    elsewhere = _clip(tmp_path / "private" / "secret.mp4")
    data = tmp_path / "data"
    _clip(data / "clips" / "a.mp4")
    for bad in ("../../etc/passwd", "clips/../../private/secret.mp4", str(elsewhere)):
        m = _manifest(data, [{"path": "clips/a.mp4", "label": "x"}, {"path": bad, "label": "x"}])
        _one_line_error(lambda m=m: VideoDataset(m, **SMALL), f"{m} line 2", repr(bad), "outside the dataset folder",
                        "allow_outside_paths")
    # Allowed when the user says so.
    ds = VideoDataset(m, allow_outside=True, **SMALL)
    assert ds.records[1].path == str(elsewhere) and ds[1]["video"].shape == (3, 2, 16, 16)
    # Inside the folder: relative, absolute, and through a link the folder's owner made.
    (data / "linked").symlink_to(tmp_path / "private", target_is_directory=True)
    m = _manifest(data, [{"path": "clips/a.mp4", "label": "x"}, {"path": str(data / "clips" / "a.mp4"), "label": "y"},
                         {"path": "linked/secret.mp4", "label": "z"}])
    assert len(VideoDataset(m, **SMALL)) == 3


def test_outside_rows_refused_through_a_recipe_unless_allowed(tmp_path):
    from avkit.engine.build import build_datasets
    from avkit.engine.config import DataConfig

    elsewhere = _clip(tmp_path / "other" / "b.mp4")
    m = _manifest(tmp_path / "data", [{"path": str(elsewhere), "label": "x", "split": "train"}])
    with pytest.raises(AvkitError, match="line 1: path .* points outside"):
        build_datasets(DataConfig(source=str(m), num_frames=2, fps=4.0, size=16))
    train, _ = build_datasets(DataConfig(source=str(m), num_frames=2, fps=4.0, size=16, allow_outside_paths=True))
    assert len(train) == 1


def test_duplicated_rows_are_reported_and_dropped(tmp_path, caplog):
    data = tmp_path / "data"
    for name in ("a", "b"):
        _clip(data / f"{name}.mp4")
    rows = [{"path": "a.mp4", "label": "x"}, {"path": "b.mp4", "label": "y"}, {"path": "a.mp4", "label": "x"},
            {"path": "./b.mp4", "label": "y"},  # the same file spelled otherwise
            {"path": "a.mp4", "label": "x", "start": 0.5}]  # another segment: not a duplicate
    m = _manifest(data, rows)
    with caplog.at_level(logging.WARNING, logger="avkit.data"):
        ds = VideoDataset(m, **SMALL)
    assert [(Path(r.path).name, r.start) for r in ds.records] == [("a.mp4", None), ("b.mp4", None), ("a.mp4", 0.5)]
    warnings = [r.getMessage() for r in caplog.records if "duplicated" in r.getMessage()]
    assert warnings == [f"{m}: 2 duplicated row(s) dropped: line 3 repeats line 1; line 4 repeats line 2"]
    assert len(VideoDataset(m, duplicates="keep", **SMALL)) == 5
    _one_line_error(lambda: VideoDataset(m, duplicates="error", **SMALL), "2 duplicated row(s)", "line 3 repeats line 1")
    with pytest.raises(AvkitError, match="data.duplicates must be one of"):
        VideoDataset(m, duplicates="ignore", **SMALL)
