"""Temporal action localisation: the mAP metric on hand-computed cases, annotation checks, the
``longvideo`` actions option, the three methods trained with ``avkit train`` and ``avkit localize``."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from avkit.apps.localization.data import read_videos, window_targets
from avkit.apps.localization.metrics import interpolated_ap, mean_average_precision, tiou
from avkit.apps.localization.model import WindowClassifier, nms
from avkit.data.jsonl import read_jsonl
from avkit.errors import AvkitError

ROOT = Path(__file__).resolve().parents[1]


def _p(start: float, end: float, score: float, label: str = "a", video: str = "v") -> dict:
    return {"video": video, "start": start, "end": end, "label": label, "score": score}


def _g(start: float, end: float, label: str = "a", video: str = "v") -> dict:
    return {"video": video, "start": start, "end": end, "label": label}


# ------------------------------------------------------------------------------------------ metric

def test_tiou() -> None:
    assert tiou(0, 10, np.array([0, 5, 20]), np.array([10, 15, 30])).tolist() == pytest.approx([1.0, 5 / 15, 0.0])


def test_map_threshold_edge() -> None:
    # tIoU exactly 0.5: a hit at 0.5, a miss at 0.6
    out = mean_average_precision([_p(0, 5, 0.9)], [_g(0, 10)], (0.5, 0.6))
    assert out == {0.5: pytest.approx(1.0), 0.6: pytest.approx(0.0)}


def test_map_duplicate_is_a_false_positive() -> None:
    # tp (recall .5, precision 1), duplicate fp (.5, .5), tp (1, 2/3): AP = .5 * 1 + .5 * 2/3
    preds = [_p(0, 10, 0.9), _p(0, 10, 0.8), _p(20, 30, 0.7)]
    out = mean_average_precision(preds, [_g(0, 10), _g(20, 30)], (0.5,))
    assert out[0.5] == pytest.approx(0.5 + 0.5 * 2 / 3)


def test_map_precision_envelope() -> None:
    # fp, tp, tp: raw precision .5 at recall .5 is lifted to the later 2/3 (ActivityNet interpolation)
    preds = [_p(40, 50, 0.9), _p(0, 10, 0.8), _p(20, 30, 0.7)]
    out = mean_average_precision(preds, [_g(0, 10), _g(20, 30)], (0.5,))
    assert out[0.5] == pytest.approx(2 / 3)
    assert interpolated_ap(np.array([0.0, 0.5, 2 / 3]), np.array([0.0, 0.5, 1.0])) == pytest.approx(2 / 3)


def test_map_one_prediction_two_ground_truths() -> None:
    # [0, 12] overlaps [0, 10] (tIoU .83) and [5, 15] (.47): it takes the best one only
    truth = [_g(0, 10), _g(5, 15)]
    assert mean_average_precision([_p(0, 12, 0.9)], truth, (0.3, 0.5)) == {0.3: pytest.approx(0.5), 0.5: pytest.approx(0.5)}
    both = mean_average_precision([_p(0, 12, 0.9), _p(5, 15, 0.8)], truth, (0.3, 0.5))
    assert both[0.5] == pytest.approx(1.0)


def test_map_classes_and_videos() -> None:
    truth = [_g(0, 10, "a"), _g(0, 10, "b")]
    # class b has no prediction: AP 0, so mAP = .5; predictions of class z (no ground truth) are ignored;
    # a prediction in another video is a false positive after the hit
    preds = [_p(0, 10, 0.9, "a"), _p(0, 10, 0.95, "z"), _p(0, 10, 0.5, "a", video="w")]
    assert mean_average_precision(preds, truth, (0.5,))[0.5] == pytest.approx(0.5)
    # the wrong-video prediction ranked first halves class a's AP
    preds[2]["score"] = 0.99
    assert mean_average_precision(preds, truth, (0.5,))[0.5] == pytest.approx(0.25)


def test_map_bad_rows() -> None:
    with pytest.raises(AvkitError, match="no ground-truth"):
        mean_average_precision([_p(0, 1, 0.5)], [], (0.5,))
    with pytest.raises(AvkitError, match="row 0: end"):
        mean_average_precision([_p(5, 1, 0.5)], [_g(0, 1)], (0.5,))


# ------------------------------------------------------------------------------------------ post-processing

def test_nms_hard_and_soft() -> None:
    segs = [{"label": 0, "start": 0.0, "end": 10.0, "score": 0.9}, {"label": 0, "start": 1.0, "end": 10.0, "score": 0.8},
            {"label": 1, "start": 1.0, "end": 10.0, "score": 0.7}]
    hard = nms(segs, iou=0.5)
    assert [(d["label"], d["score"]) for d in hard] == [(0, 0.9), (1, 0.7)]  # other classes are not suppressed
    soft = nms(segs, soft_sigma=0.5)
    assert len(soft) == 3 and soft[-1]["score"] == pytest.approx(0.8 * np.exp(-0.81 / 0.5))


def test_onestage_segments_stay_inside_the_video() -> None:
    """Distances regressed past either end are clipped to [0, duration] (a real clip ends mid-window)."""
    from avkit.apps.localization.model import OneStage

    net = OneStage(4, 2, dim=8, levels=2, heads=2).eval()
    with torch.no_grad():
        net.reg_head[-1].bias.fill_(100.0)  # type: ignore[operator]
        net.cls_head[-1].bias.fill_(0.0)  # type: ignore[operator]
    item = {"feats": torch.randn(10, 4), "centres": torch.arange(10, dtype=torch.float64) * 0.5 + 0.5,
            "stride": 0.5, "duration": 5.2}
    dets = net.detect(item)
    assert dets and all(d["start"] == 0.0 and d["end"] == 5.2 for d in dets)


def test_sliding_windows_merge_into_segments() -> None:
    net = WindowClassifier(2, 2)
    top = torch.tensor([0, 1, 1, 1, 0, 2, 2, 0])
    # a network whose logits are the one-hot of ``top`` (times 10)
    net.forward = lambda feats: 10 * torch.nn.functional.one_hot(top, 3).float()  # type: ignore[method-assign]
    item = {"feats": torch.zeros(8, 2), "centres": torch.arange(8) * 0.5 + 0.5, "stride": 0.5, "duration": 5.0}
    got = sorted((d["label"], d["start"], d["end"]) for d in net.detect(item))
    assert got == [(0, 0.75, 2.25), (1, 2.75, 3.75)]


# ------------------------------------------------------------------------------------------ data

def _manifest(tmp_path: Path, rows: list[dict]) -> Path:
    (tmp_path / "classes.json").write_text(json.dumps(["a", "b"]))
    with open(tmp_path / "manifest.jsonl", "w") as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")
    return tmp_path / "manifest.jsonl"


@pytest.mark.parametrize("segment, duration, problem", [
    ({"label": "a", "start": 5, "end": 25}, 20, "outside the 20 s video"),
    ({"label": "a", "start": 5, "end": 4}, 20, "end 4 s before start 5 s"),
    ({"label": "c", "start": 1, "end": 2}, 20, "unknown label 'c'"),
    ({"label": "a", "start": 0.1, "end": 0.5}, 0.6, "shorter than one 1 s window"),
])
def test_bad_rows_name_file_row_problem(tmp_path: Path, segment: dict, duration: float, problem: str) -> None:
    good = {"path": "g.mp4", "duration": 20, "segments": [{"label": "b", "start": 1, "end": 3}]}
    manifest = _manifest(tmp_path, [good, {"path": "x.mp4", "duration": duration, "segments": [segment]}])
    with pytest.raises(AvkitError, match=f"{manifest}: row 2: .*{problem}"):
        read_videos(manifest, min_duration=1.0)
    videos, names, skipped = read_videos(manifest, strict=False, min_duration=1.0)  # training goes on
    assert [Path(v.path).name for v in videos] == ["g.mp4"] and names == ["a", "b"]
    assert len(skipped) == 1 and "row 2" in skipped[0]


def test_window_targets() -> None:
    starts = np.arange(6) * 0.5
    got = window_targets(starts, starts + 1.0, np.array([[1.0, 2.0, 1]]))  # centres .5, 1, ..., 3
    assert got.tolist() == [0, 2, 2, 0, 0, 0]


def test_longvideo_actions(tmp_path: Path) -> None:
    from avkit.data.synthetic import generate

    actions = ("rotate_cw", "still_low", "still_high")
    generate("longvideo", tmp_path / "d", 3, seed=1, size=16, duration=16.0, actions=actions, segments=(3, 3),
             segment_duration=(1.5, 3.0))
    rows = [json.loads(line) for line in open(tmp_path / "d" / "manifest.jsonl")]
    classes = [c["name"] for c in json.loads((tmp_path / "d" / "classes.json").read_text())]
    assert classes == list(actions)
    labels = {s["label"] for r in rows for s in r["segments"]}
    assert labels <= set(actions) and len(labels) >= 2  # several classes per dataset, per segment
    for r in rows:
        assert len(r["segments"]) == 4  # 3 sounded + 1 silent
        silent = [d for d in r["meta"]["segments"] if not d["sound"]]
        assert all(d["label"] == "rotate_cw" for d in silent)  # silence cannot show a sound-defined class
        assert all(0 <= s["start"] < s["end"] <= r["duration"] for s in r["segments"])


def _avkit(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "avkit", *args], capture_output=True, text=True, cwd=ROOT)


def test_cli_generate_actions(tmp_path: Path) -> None:
    """``avkit generate longvideo --actions ... --segments --segment-duration``: localisation data from the CLI."""
    out = tmp_path / "d"
    done = _avkit("generate", "longvideo", str(out), "--num", "2", "--size", "16", "--duration", "20", "--jobs", "1",
                  "--actions", "rotate_cw", "still_low", "--segments", "2", "2", "--segment-duration", "1.5", "2",
                  "--json")
    assert done.returncode == 0, done.stderr
    assert [c["name"] for c in json.loads((out / "classes.json").read_text())] == ["rotate_cw", "still_low"]
    for r in (json.loads(line) for line in open(out / "manifest.jsonl")):
        assert len(r["segments"]) == 3  # 2 sounded + 1 silent
        assert all(s["label"] in ("rotate_cw", "still_low") for s in r["segments"])
        assert all(1.5 - 1e-6 <= s["end"] - s["start"] <= 2 + 1e-6 for s in r["segments"])


@pytest.mark.parametrize("args, problem", [
    (["--actions", "rotate_cw", "jump"], "unknown action(s) jump; choose from"),
    (["--actions", "rotate_cw"], "at least two different classes"),
    (["--actions", "rotate_cw", "rotate_cw"], "at least two different classes"),
    (["--segments", "3", "2"], "segments must be 0 <= MIN <= MAX, got 3 2"),
    (["--segment-duration", "0", "2"], "segment duration must be 0 < MIN <= MAX"),
])
def test_cli_generate_bad_actions(tmp_path: Path, capsys: pytest.CaptureFixture, args: list[str], problem: str) -> None:
    import avkit.cli.main as cli

    assert cli.main(["generate", "longvideo", str(tmp_path / "d"), "--num", "1", *args]) == 2  # in process: no traceback
    err = capsys.readouterr().err
    assert problem in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "d").exists()


# ------------------------------------------------------------------------------------------ end to end

@pytest.fixture(scope="module")
def long_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from avkit.data.synthetic import generate

    out = tmp_path_factory.mktemp("loc") / "data"
    generate("longvideo", out, 8, seed=0, size=16, duration=12.0, actions=("rotate_cw", "stripes"), segments=(2, 2),
             segment_duration=(1.5, 3.0), sound_distractors=(0, 1), val_fraction=0.25)
    return out


def _train(method: str, data: Path, out: Path, epochs: int = 4, hidden: int = 16, cache: Path | None = None) -> Path:
    from avkit.engine import train
    from avkit.engine.config import load_config

    cache = cache or data / "features.npz"
    cfg = load_config(ROOT / "recipes" / f"localize_{method}.yaml",
                      [f"data.source={data}", f"task_options.cache={cache}", f"train.output_dir={out}",
                       f"train.epochs={epochs}", f"task_options.hidden={hidden}", "train.progress=false", "train.tensorboard=false"])
    train(cfg, quiet=True, overwrite=True)
    return out


@pytest.mark.parametrize("method", ["sliding", "proposals", "onestage"])
def test_methods_train_and_localize(long_data: Path, tmp_path: Path, method: str) -> None:
    from avkit.apps import localization

    run = _train(method, long_data, tmp_path / method)
    assert (long_data / "features.npz").is_file()  # extracted once, shared by the methods
    assert json.loads((run / "classes.json").read_text()) == ["rotate_cw", "stripes"]
    loc = localization.load(run)
    video = next((long_data / "clips").glob("*.mp4"))
    segs = loc.localize(video)
    assert all(s["label"] in ("rotate_cw", "stripes") and 0 <= s["start"] < s["end"] <= 12.0 + 1e-6 for s in segs)
    assert segs == sorted(segs, key=lambda s: -s["score"])
    result = loc.evaluate(long_data, "val")
    assert set(result["mAP"]) == {"0.3", "0.4", "0.5", "0.6", "0.7"}
    assert all(0 <= v <= 1 for v in result["mAP"].values())


def test_onestage_learns(long_data: Path, tmp_path: Path) -> None:
    """On its training videos, the one-stage localiser finds the actions (mAP@0.5 well above chance)."""
    from avkit.apps import localization

    run = _train("onestage", long_data, tmp_path / "one", epochs=30, hidden=64)
    result = localization.load(run).evaluate(long_data, "train")
    assert result["mAP"]["0.5"] > 0.5, result["mAP"]


def test_cli_localize(long_data: Path, tmp_path: Path) -> None:
    run = _train("sliding", long_data, tmp_path / "run", epochs=2)
    video = sorted((long_data / "clips").glob("*.mp4"))[0]
    plot = tmp_path / "t.png"
    cmd = [sys.executable, "-m", "avkit", "localize", str(video), "--run", str(run), "--json", "--plot", str(plot),
           "--min-score", "0"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["method"] == "sliding" and out["duration"] == pytest.approx(12.0, abs=0.2) and plot.stat().st_size > 0
    # a video shorter than one window: one line naming it, exit 2
    from avkit.io.write import write_video

    short = write_video(tmp_path / "short.mp4", np.zeros((4, 16, 16, 3), np.uint8), 8.0)
    done = subprocess.run(cmd[:4] + [str(short)] + cmd[5:7], capture_output=True, text=True)
    assert done.returncode == 2 and "shorter than one 1 s window" in done.stderr and str(short) in done.stderr
    assert "Traceback" not in done.stderr


# ------------------------------------------------------------------------------------------ ActivityNet JSON

def _activitynet_json(folder: Path, long_data: Path) -> Path:
    """``long_data`` as ActivityNet JSON + video folder (``videos/v_<id>.mp4``), plus one bad row of each kind."""
    from avkit.io.write import write_video

    videos = folder / "videos"
    videos.mkdir(parents=True)
    database: dict[str, dict] = {}
    for k, (_, row) in enumerate(read_jsonl(long_data / "manifest.jsonl")):
        vid = Path(row["path"]).stem
        (videos / f"v_{vid}.mp4").symlink_to(long_data / row["path"])
        database[vid] = {"subset": {"train": "training", "val": "validation"}[row["split"]],
                         "annotations": [{"segment": [s["start"], s["end"]], "label": s["label"]} for s in row["segments"]]}
        if k:  # the first one without a duration: read from the video
            database[vid]["duration"] = row["duration"]
    first = next(iter(database))
    for bad, label, segment in (("outside", "stripes", [10.0, 40.0]), ("unknown", "jumping", [1.0, 2.0]),
                                ("gone", "stripes", [1.0, 2.0])):
        if bad != "gone":
            (videos / f"v_{bad}.mp4").symlink_to(videos / f"v_{first}.mp4")
        database[bad] = {"subset": "training", "duration": 12.0, "annotations": [{"segment": segment, "label": label}]}
    write_video(videos / "v_short.mp4", np.zeros((4, 16, 16, 3), np.uint8), 8.0)
    database["short"] = {"subset": "training", "duration": 0.5, "annotations": [{"segment": [0.1, 0.4], "label": "stripes"}]}
    (folder / "classes.json").write_text(json.dumps(["rotate_cw", "stripes"]))
    path = folder / "activity_net.json"
    path.write_text(json.dumps({"version": "1.3", "database": database}))
    return path


def test_activitynet_json_trains_and_evaluates(long_data: Path, tmp_path: Path) -> None:
    """A localiser trained from ActivityNet JSON + videos: bad rows skipped and listed (file, video, problem),
    and the same mAP on the JSON as on the manifest it was written from."""
    from avkit.apps import localization

    anet = _activitynet_json(tmp_path / "anet", long_data)
    with pytest.raises(AvkitError, match=r"activity_net.json: video 'gone': v_gone or gone: video file not found"):
        read_videos(anet, min_duration=1.0)  # strict: the first problem, one line
    run = _train("sliding", anet, tmp_path / "run", epochs=3, cache=tmp_path / "features.npz")
    assert json.loads((run / "classes.json").read_text()) == ["rotate_cw", "stripes"]
    skipped = json.loads((run / "skipped.json").read_text())
    expected = {"gone": "video file not found", "outside": "10-40 s is outside the 12 s video",
                "unknown": "unknown label 'jumping'", "short": "shorter than one 1 s window"}
    assert len(skipped) == len(expected)
    for vid, problem in expected.items():
        assert any(line.startswith(f"{anet}: video '{vid}'") and problem in line for line in skipped), (vid, skipped)
    loc = localization.load(run)
    on_json, on_manifest = loc.evaluate(anet, "val"), loc.evaluate(long_data, "val")
    assert on_json["videos"] == on_manifest["videos"] == 2 and on_json["segments"] == on_manifest["segments"]
    assert on_json["mAP"] == on_manifest["mAP"]
    assert loc.evaluate(anet, "train")["videos"] == 6  # the probed duration counts; the four bad rows do not


def test_activitynet_json_reversed_segment(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A JSON segment ending before it starts stops ``avkit train`` with one line naming file, video and annotation."""
    import avkit.cli.main as cli

    bad = tmp_path / "anet.json"
    bad.write_text(json.dumps({"database": {"x1": {"subset": "training", "duration": 20.0, "annotations": [
        {"segment": [1.0, 3.0], "label": "a"}, {"segment": [5.0, 4.0], "label": "a"}]}}}))
    code = cli.main(["train", str(ROOT / "recipes" / "localize_sliding.yaml"), f"data.source={bad}",
                     f"train.output_dir={tmp_path / 'run'}", f"task_options.cache={tmp_path / 'f.npz'}"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"{bad}: video 'x1': annotation 1 ends (4.0) before it starts (5.0)" in err


# ------------------------------------------------------------------------------------------ real clips

MEDIA = ROOT.parent / "shared" / "media" / "video"


@pytest.fixture(scope="module")
def onestage_run(long_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _train("onestage", long_data, tmp_path_factory.mktemp("real") / "run", epochs=2)


@pytest.mark.parametrize("clip", ["pancake_h264_opus.mkv", "friday_h264_aac.mp4"])
def test_cli_localize_real_clip(onestage_run: Path, tmp_path: Path, clip: str) -> None:
    """``avkit localize`` on recorded clips (Opus audio; audio as stream 0): valid JSON, segments inside the clip."""
    from avkit.io.probe import probe

    video = MEDIA / clip
    if not video.is_file():
        pytest.skip(f"{video} absent (real media live in ../shared/media)")
    run = onestage_run
    plot = tmp_path / "timeline.png"
    done = _avkit("localize", str(video), "--run", str(run), "--json", "--min-score", "0", "--plot", str(plot))
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    duration = probe(video).duration
    assert duration is not None and out["duration"] == pytest.approx(duration, abs=0.1)
    assert out["video"] == str(video) and out["method"] == "onestage" and plot.stat().st_size > 0
    segments = out["segments"]
    assert segments and [s["score"] for s in segments] == sorted((s["score"] for s in segments), reverse=True)
    for s in segments:
        assert set(s) == {"label", "start", "end", "score"} and s["label"] in ("rotate_cw", "stripes")
        assert 0 <= s["start"] < s["end"] <= out["duration"] + 1e-6 and 0 <= s["score"] <= 1
