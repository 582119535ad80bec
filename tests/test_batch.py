"""``avkit batch`` on a local Ray: result and error rows, resume, per-window features, the applications
(caption, select, separate: each row equal to the application run directly), bad input.

Ray starts once for the module (several seconds); the tests that need it run the CLI in this
process, which uses that Ray. The corpus: 6 generated 1 s videos, 2 of 2 s and 2 broken files.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from avkit.cli.main import main
from avkit.engine.config import load_config
from avkit.engine.trainer import train

ROOT = Path(__file__).resolve().parents[1]
TRAIN = 6
GOOD = TRAIN + 2


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny C3D classification run (one epoch on generated clips)."""
    from avkit.data.synthetic import generate

    data = tmp_path_factory.mktemp("batch_data")
    generate("motion", data, TRAIN, seed=0, duration=1.0, overwrite=True)
    out = tmp_path_factory.mktemp("batch_run") / "run"
    cfg = load_config(ROOT / "recipes" / "motion_c3d.yaml", [
        f"data.source={data}", f"train.output_dir={out}", "train.epochs=1", "train.progress=false",
        "train.tensorboard=false", "data.batch_size=4", "data.num_frames=8", "data.fps=8", "data.val_split=",
        "model.video_options.fc_dim=16"])
    train(cfg, quiet=True)
    return out


@pytest.fixture(scope="module")
def corpus(run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run's clips, two longer videos, a file that is not media and a truncated mp4."""
    from avkit.data.synthetic import generate

    folder = tmp_path_factory.mktemp("corpus")
    for f in sorted((Path(load_config(run_dir).data.source) / "clips").glob("*.mp4")):
        shutil.copy(f, folder / f.name)
    long = tmp_path_factory.mktemp("long")
    generate("motion", long, 2, seed=1, duration=2.0, overwrite=True)
    for k, f in enumerate(sorted((long / "clips").glob("*.mp4"))):
        shutil.copy(f, folder / f"long_{k}.mp4")
    good = sorted(folder.glob("*.mp4"))
    assert len(good) == GOOD
    (folder / "junk.mp4").write_bytes(b"not a video" * 200)
    (folder / "truncated.mp4").write_bytes(good[0].read_bytes()[:4000])
    return folder


@pytest.fixture(scope="module")
def ray_local() -> object:
    """One local Ray for the module's tests (2 CPUs, no dashboard)."""
    import ray

    from avkit.apps.batch.pipeline import connect

    connect(None, cpus=2)
    yield ray
    ray.shutdown()


def _batch(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, dict | str]:
    code = main(["batch", *argv, "--json"])
    out, err = capsys.readouterr()
    return code, json.loads(out) if code == 0 else err.strip()


def _parts(out: Path) -> list[dict]:
    return json.loads((out / "batch.json").read_text())["parts"]


def test_classify_corpus_errors_and_resume(ray_local: object, run_dir: Path, corpus: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    import pandas as pd

    from avkit.cli import batch as batch_cli
    from avkit.engine.classify import classify

    out = tmp_path / "labels"
    code, summary = _batch(capsys, "classify", str(corpus), "--run", str(run_dir), "--out", str(out), "--clips", "2")
    assert code == 0, summary
    assert isinstance(summary, dict) and (summary["done"], summary["errors"]) == (GOOD + 2, 2)
    results, errors = pd.read_parquet(out / "results"), pd.read_parquet(out / "errors")
    assert len(results) == GOOD and results["key"].is_unique
    assert sorted(Path(p).name for p in errors["path"]) == ["junk.mp4", "truncated.mp4"]
    assert all(Path(p).name in e for p, e in zip(errors["path"], errors["error"]))  # the reason names the file
    # the probabilities are those of `avkit classify` with the same clips (a fixed-size list per video)
    row = results.sort_values("path").iloc[0]
    direct = classify(row["path"], run_dir, top=100, clips=2, device="cpu")
    assert row["label"] == direct[0]["label"] and row["score"] == pytest.approx(direct[0]["score"], abs=1e-5)
    assert len(row["probs"]) == len(direct) and float(np.sum(row["probs"])) == pytest.approx(1, abs=1e-4)

    # A rerun does no work: nothing to do, no new part; a part no commit lists (a run killed before
    # committing) is removed, so the folder holds exactly the committed rows.
    parts = _parts(out)
    stray = out / "results" / "part-000099.parquet"
    shutil.copy(out / parts[0]["results"], stray)
    code, again = _batch(capsys, "classify", str(corpus), "--run", str(run_dir), "--out", str(out), "--clips", "2")
    assert code == 0 and isinstance(again, dict)
    assert (again["total"], again["done"], again["skipped"]) == (0, 0, GOOD + 2)
    assert _parts(out) == parts and not stray.exists()
    assert len(pd.read_parquet(out / "results")) == GOOD

    # A new file is the only work of the next run, appended as a new part; finished parts are untouched.
    # Without --json and without a terminal (a log file), progress comes as lines on stderr.
    before = {p.name: p.stat().st_mtime_ns for p in (out / "results").iterdir()}
    shutil.copy(sorted(corpus.glob("0*.mp4"))[1], corpus / "new.mp4")
    monkeypatch.setattr(batch_cli, "LOG_SECONDS", 0.0)
    try:
        code = main(["batch", "classify", str(corpus), "--run", str(run_dir), "--out", str(out), "--clips", "2"])
    finally:
        (corpus / "new.mp4").unlink()
    printed, logged = capsys.readouterr()
    assert code == 0 and "1 video(s) processed" in printed and f"{GOOD + 2} already done" in printed, printed
    assert "avkit batch: 0/1 videos" in logged and "avkit batch: 1/1 videos" in logged, logged
    assert len(_parts(out)) == len(parts) + 1 and len(pd.read_parquet(out / "results")) == GOOD + 1
    assert all((out / "results" / n).stat().st_mtime_ns == t for n, t in before.items())


def test_embed_windows_match_direct(ray_local: object, run_dir: Path, corpus: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture) -> None:
    import pyarrow.parquet as pq

    from avkit.data.sampling import sliding_windows
    from avkit.engine.build import clip_transform, short_side_of
    from avkit.engine.evaluate import load_run
    from avkit.io import VideoReader, read_clip

    out = tmp_path / "feats"
    videos = sorted(corpus.glob("long_*.mp4"))
    code, summary = _batch(capsys, "embed", str(corpus / "long_*.mp4"), "--run", str(run_dir), "--out", str(out),
                           "--stride", "0.25", "--batch-size", "1")
    assert code == 0, summary
    table = pq.read_table(out / "results")
    model: Any
    model, cfg, _ = load_run(run_dir, device="cpu")
    data = cfg.data
    assert str(table.schema.field("features").type).startswith(f"fixed_size_list<element: float>[{model.out_dim}]")
    frame = table.to_pandas()
    assert sorted(frame["path"].unique()) == [str(v.absolute()) for v in videos]
    for video in videos:
        rows = frame[frame["path"] == str(video.absolute())].sort_values("window").to_dict("records")
        with VideoReader(video) as reader:
            assert reader.duration is not None and not data.audio
            windows = sliding_windows(reader.duration, data.num_frames, data.fps, 0.25)
        assert len(rows) == len(windows) == 5  # 2 s video, 1 s clips starting every 0.25 s
        assert [r["start"] for r in rows] == pytest.approx([w.start for w in windows])
        # batch decodes a video's windows in one pass (clips_at); here every window is read on its own
        transform = clip_transform(data, train=False)
        clips = [read_clip(video, times=w.times.tolist(), size=short_side_of(data), audio=False).frames for w in windows]
        with torch.no_grad():
            direct = model.forward_features(torch.stack([transform(c) for c in clips])).numpy()
        np.testing.assert_allclose(np.array([r["features"] for r in rows]), direct, rtol=1e-4, atol=1e-5)


def test_bad_input_is_one_line(run_dir: Path, corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import socket

    out = str(tmp_path / "out")
    code, err = _batch(capsys, "classify", str(tmp_path / "nope"), "--run", str(run_dir), "--out", out)
    assert code == 2 and "nope: no such file or folder" in err and "\n" not in err
    (tmp_path / "empty").mkdir()
    code, err = _batch(capsys, "embed", str(tmp_path / "empty"), "--run", str(run_dir), "--out", out)
    assert code == 2 and "no video files in this folder" in err
    code, err = _batch(capsys, "caption", str(corpus), "--run", str(run_dir), "--out", out)
    assert code == 2 and "not a captioning run (task: classification)" in err
    code, err = _batch(capsys, "classify", str(corpus), "--run", str(run_dir), "--out", out, "--stride", "1")
    assert code == 2 and "--stride is for embed" in err
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    code, err = _batch(capsys, "classify", str(corpus), "--run", str(run_dir), "--out", out,
                       "--address", f"ray://127.0.0.1:{port}")
    assert code == 2 and f"127.0.0.1:{port}: cannot reach a Ray cluster" in err
    assert not (tmp_path / "out" / "results").exists()  # nothing was processed


def test_cli_tasks_match_package() -> None:
    from avkit.apps.batch import TASKS
    from avkit.cli import batch

    assert batch.TASKS == TASKS


@pytest.mark.parametrize("cpus, workers", [(2, 1), (2, 2), (2, 4), (1, 1), (3, 1), (16, 4), (96, 8)])
def test_every_core_decodes_beside_the_cpu_actors(cpus: int, workers: int) -> None:
    """A CPU job reserves one slot per actor and still fits a decode task on every core (on 2 cores with one
    actor the old share, cpus / (workers + 1), left room for one decode task)."""
    from avkit.apps.batch.pipeline import BatchJob, cpu_slots

    slot = cpu_slots(BatchJob("embed", "in", "run", "out", workers=workers), cpus)
    assert 0 < slot <= 1
    assert cpus * slot + workers * slot <= cpus + 1e-9  # Ray can place every actor and a task per core
    assert cpu_slots(BatchJob("embed", "in", "run", "out", workers=workers, gpus_per_worker=1), cpus) == 1.0


def test_progress_line_says_rate_and_time_left() -> None:
    """The log line without a terminal: rate from done / seconds, the time left from the rest at that rate."""
    from avkit.apps.batch.pipeline import Progress
    from avkit.cli.batch import progress_line

    assert progress_line(Progress(total=200, done=0)) == "avkit batch: 0/200 videos, 0.00 videos/s, 0 error(s)"
    line = progress_line(Progress(total=50000, done=1200, seconds=175.0, errors=3))
    assert line == "avkit batch: 1200/50000 videos, 6.86 videos/s, about 1 h 59 min left, 3 error(s)"
    assert "about 2 min left" in progress_line(Progress(total=200, done=100, seconds=100.0))
    assert "left" not in progress_line(Progress(total=200, done=200, seconds=30.0))


def test_videos_are_grouped_into_decode_tasks() -> None:
    """Several videos a task (Ray's cost per task was most of the time for short videos), at least four
    tasks a CPU, never more tasks than videos, and a bounded number of tasks for a huge corpus."""
    from avkit.apps.batch.pipeline import MAX_INPUT_BLOCKS, VIDEOS_PER_BLOCK, input_blocks

    assert input_blocks(212, 2) == 14  # 16 videos a task on this machine
    assert input_blocks(212, 100) == 212  # a big cluster: one video a task, every CPU busy
    assert input_blocks(5, 2) == 5 and input_blocks(1, 2) == 1 and input_blocks(0, 2) == 1
    assert input_blocks(10**6, 64) == MAX_INPUT_BLOCKS
    assert input_blocks(1000, 2) == -(-1000 // VIDEOS_PER_BLOCK)


@pytest.fixture(scope="module")
def caption_run(run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny stage-1 captioner (new 1-layer LM, C3D of width 4) trained one epoch on the classifier's clips."""
    out = tmp_path_factory.mktemp("caption_run") / "run"
    train({"task": "captioning",
           "task_options": {"stage": 1, "sources": [str(load_config(run_dir).data.source)], "max_new_tokens": 8,
                            "lm": {"kind": "llama", "hidden_size": 32, "num_layers": 1, "num_heads": 2,
                                   "intermediate_size": 64}, "val_generate": False},
           "data": {"num_frames": 8, "fps": 8.0, "size": 16, "batch_size": 4, "flip": False, "val_split": ""},
           "model": {"video": "c3d", "video_options": {"width": 4, "fc_dim": None}, "audio": ""},
           "optim": {"optimizer": "adamw", "lr": 0.003, "warmup_epochs": 0},
           "train": {"output_dir": str(out), "epochs": 1, "progress": False, "tensorboard": False, "seed": 0}},
          quiet=True)
    return out


def test_caption_from_a_manifest_without_labels(ray_local: object, caption_run: Path, corpus: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    import pandas as pd

    from avkit.apps import captioning

    videos = sorted(corpus.glob("0*.mp4"))[:2] + [corpus / "junk.mp4"]
    manifest = tmp_path / "corpus.jsonl"  # a path column only: a corpus to caption has no labels
    manifest.write_text("".join(json.dumps({"path": str(v)}) + "\n" for v in videos))
    out = tmp_path / "captions"
    code, summary = _batch(capsys, "caption", str(manifest), "--run", str(caption_run), "--out", str(out))
    assert code == 0, summary
    assert isinstance(summary, dict) and (summary["done"], summary["errors"]) == (3, 1)
    rows = pd.read_parquet(out / "results").sort_values("path").to_dict("records")
    assert [r["path"] for r in rows] == [str(v) for v in videos[:2]]
    captioner = captioning.load(caption_run, device="cpu")
    for r in rows:
        direct = captioner.caption(r["path"])
        assert r["caption"] == direct["caption"] and r["caption"].strip()
        assert (r["start"], r["end"]) == pytest.approx((direct["frame_times"][0], direct["frame_times"][-1]))
    errors = pd.read_parquet(out / "errors")
    assert list(errors["path"]) == [str(videos[2])] and "junk.mp4" in errors["error"][0]


def test_select_rows_are_the_selection(ray_local: object, run_dir: Path, corpus: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture) -> None:
    import pandas as pd

    from avkit.apps import clip_selection

    out = tmp_path / "picks"
    code, summary = _batch(capsys, "select", str(corpus / "long_*.mp4"), "--run", str(run_dir), "--out", str(out),
                           "--budget", "2", "--policy", "uniform")
    assert code == 0, summary
    rows = pd.read_parquet(out / "results").sort_values("path").to_dict("records")
    assert [Path(r["path"]).name for r in rows] == ["long_0.mp4", "long_1.mp4"]
    selector = clip_selection.load(str(run_dir), device="cpu")
    for r in rows:
        sel = selector.select(r["path"], budget=2, policy="uniform")
        assert (r["label"], r["policy"]) == (sel.top_label, "uniform")
        assert r["score"] == pytest.approx(sel.prediction[0]["score"], abs=1e-5)
        assert list(r["clip_starts"]) == pytest.approx([c["start"] for c in sel.clips]) and len(r["clip_starts"]) == 2
        assert r["gflops"] == pytest.approx(sel.gflops["total"]) and r["gflops"] > 0


def test_separate_with_the_shipped_model(ray_local: object, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import pandas as pd

    from avkit.apps.separation import separate_video
    from avkit.data.synthetic import generate
    from avkit.io import read_audio

    folder = tmp_path / "duets"
    generate("gm_instruments", folder, 1, seed=4, duets=1.0, duration=2.0)
    (folder / "clips" / "broken.mp4").write_bytes(b"\0" * 3000)
    (folder / "manifest.jsonl").unlink()  # every video of the folder, the broken one too
    out = tmp_path / "sep"
    code, summary = _batch(capsys, "separate", str(folder), "--out", str(out))  # no --run: the shipped model
    assert code == 0, summary
    assert isinstance(summary, dict) and (summary["done"], summary["errors"]) == (2, 1)
    [row] = pd.read_parquet(out / "results").to_dict("records")
    direct = separate_video(row["path"], None, tmp_path / "direct", overwrite=True, videos=False)
    assert row["sources"] == len(direct.sources) == len(row["stems"]) >= 2
    record = json.loads((out / row["json"]).read_text())
    assert [s["wav"] for s in record["sources"]] == [s["wav"] for s in direct.sources]
    for stem, source in zip(row["stems"], direct.sources):
        assert stem == f"{row['folder']}/{source['wav']}"
        ours = read_audio(out / stem)[0].numpy()
        np.testing.assert_allclose(ours, read_audio(tmp_path / "direct" / source["wav"])[0].numpy(), atol=1e-4)
        assert np.abs(ours).max() > 1e-3
    assert "broken.mp4" in pd.read_parquet(out / "errors")["error"][0]
    code, err = _batch(capsys, "caption", str(folder), "--out", str(tmp_path / "x"))
    assert code == 2 and "--run is required for caption" in err
