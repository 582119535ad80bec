"""Evaluation scores only the videos it can read: an unreadable val file is left out and reported,
not replaced by (and counted as) the next video."""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pytest

from avkit.engine.checkpoint import read_meta
from avkit.engine.config import dump_config, load_config
from avkit.engine.evaluate import evaluate
from avkit.engine.trainer import train
from avkit.errors import AvkitError

ROOT = Path(__file__).resolve().parents[1]


def _motion(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 12-clip motion set the engine tests share (generated once per session)."""
    from avkit.data.synthetic import generate

    data = tmp_path_factory.getbasetemp() / "engine_motion"
    if not (data / "manifest.jsonl").is_file():
        generate("motion", data, 12, seed=0, duration=1.0, overwrite=True)
    return data


def _with_broken(data: Path, out: Path, keep_good_val: bool = True) -> tuple[Path, int]:
    """A copy of ``data``'s manifest (its clips linked in: rows naming files outside the manifest's
    folder are refused) plus an unreadable val video; returns the manifest and how many readable val
    videos it lists."""
    out.mkdir(parents=True)
    (out / "clips").symlink_to((data / "clips").resolve(), target_is_directory=True)
    rows = [json.loads(line) for line in (data / "manifest.jsonl").read_text().splitlines() if line.strip()]
    val = [r for r in rows if r["split"] == "val"]
    if not keep_good_val:
        rows = [r for r in rows if r["split"] != "val"]
    (out / "broken.mp4").write_text("not a video\n" * 10)
    rows.insert(1, {**val[0], "path": "broken.mp4"})  # among the first items: the next one would stand in
    shutil.copy(data / "classes.json", out / "classes.json")
    (out / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out / "manifest.jsonl", len(val) if keep_good_val else 0


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("safety_eval") / "run"
    cfg = load_config(ROOT / "recipes" / "motion_c3d.yaml", [
        f"data.source={_motion(tmp_path_factory)}", f"train.output_dir={out}", "train.epochs=1",
        "train.progress=false", "train.tensorboard=false", "data.batch_size=4", "data.cache=false",
        "model.video_options.fc_dim=16"])
    train(cfg, quiet=True)
    return out


def _pointed_at(run_dir: Path, dest: Path, source: Path, **data: object) -> Path:
    """A copy of ``run_dir`` whose recipe reads ``source`` (and other ``data`` fields)."""
    shutil.copytree(run_dir, dest)
    cfg = load_config(dest)
    cfg.data.source = str(source)
    for key, value in data.items():
        setattr(cfg.data, key, value)
    (dest / "config.yaml").write_text(dump_config(cfg))
    return dest


@pytest.mark.parametrize("workers", [0, 1])
def test_evaluate_leaves_out_and_lists_an_unreadable_video(run_dir: Path, tmp_path: Path, workers: int) -> None:
    manifest, readable = _with_broken(Path(load_config(run_dir).data.source), tmp_path / "data")
    broken_run = _pointed_at(run_dir, tmp_path / "run", manifest, num_workers=workers)
    clean = evaluate(run_dir, clips=2, crops=1, write=False)
    result = evaluate(broken_run, clips=2, crops=1)
    assert result["num_videos"] == clean["num_videos"] == readable
    assert result["num_views"] == 2 * readable
    assert list(result["skipped"]) == [str(tmp_path / "data" / "broken.mp4")] and result["skipped"][str(
        tmp_path / "data" / "broken.mp4")]
    # The same videos are scored, so the same figures: nothing stood in for the broken one.
    assert result["video"] == clean["video"] and result["clip"] == clean["clip"]
    assert result["confusion"] == clean["confusion"] and sum(map(sum, result["confusion"])) == readable
    assert json.loads((broken_run / "eval.json").read_text())["skipped"] == result["skipped"]


def test_eval_cli_reports_skipped_videos(run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from avkit.cli import eval as eval_cli

    manifest, readable = _with_broken(Path(load_config(run_dir).data.source), tmp_path / "data")
    broken_run = _pointed_at(run_dir, tmp_path / "run", manifest)
    parser = argparse.ArgumentParser()
    eval_cli.register(parser.add_subparsers())
    args = parser.parse_args(["eval", str(broken_run), "--clips", "1", "--crops", "1", "--json"])
    assert args.func(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["num_videos"] == readable and list(out["skipped"]) == [str(tmp_path / "data" / "broken.mp4")]
    args = parser.parse_args(["eval", str(broken_run), "--clips", "1", "--crops", "1", "--overwrite"])
    assert args.func(args) == 0
    text = capsys.readouterr().out
    assert f"{readable} videos" in text and "1 unreadable video(s) skipped" in text
    assert str(tmp_path / "data" / "broken.mp4") in text


def test_evaluate_with_nothing_readable_raises(run_dir: Path, tmp_path: Path) -> None:
    manifest, _ = _with_broken(Path(load_config(run_dir).data.source), tmp_path / "data", keep_good_val=False)
    broken_run = _pointed_at(run_dir, tmp_path / "run", manifest)
    with pytest.raises(AvkitError, match="none of the 1 videos.*broken.mp4"):
        evaluate(broken_run, clips=1, crops=1)


def test_validation_during_training_counts_readable_videos_only(run_dir: Path, tmp_path: Path) -> None:
    manifest, readable = _with_broken(Path(load_config(run_dir).data.source), tmp_path / "data")
    cfg = load_config(run_dir)
    cfg.data.source = str(manifest)
    cfg.train.output_dir = str(tmp_path / "run")
    result = train(cfg, quiet=True)
    state = read_meta(result.run_dir / "last.safetensors")["state"]
    assert sum(map(sum, state["last_extras"]["confusion"])) == readable
