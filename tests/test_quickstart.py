"""The quickstart's data path (generate -> VideoDataset -> summary) and its accuracy bookkeeping."""
from __future__ import annotations

import json

import pytest

from avkit.cli.main import main
from avkit.quickstart import QuickstartConfig, group_accuracy, run_quickstart


def test_quickstart_generates_and_reads_back(tmp_path):
    out = tmp_path / "qs"
    summary = run_quickstart(QuickstartConfig(out=str(out), num=16, compare=False), quiet=True)
    assert summary["read_back"]["clips"] == 16
    assert summary["read_back"]["item_shapes"]["video"] == [3, 8, 32, 32]
    assert summary["read_back"]["skipped"] == {}
    assert json.loads((out / "results.json").read_text())["data"]["num"] == 16
    # A second run refuses to replace the results without overwrite.
    with pytest.raises(ValueError, match="--overwrite"):
        run_quickstart(QuickstartConfig(out=str(out), num=16, compare=False), quiet=True)


def test_quickstart_comparison_end_to_end(tmp_path):
    """The training step on a tiny budget: every chosen model gets a run, a row, and the files."""
    out = tmp_path / "qs"
    cfg = QuickstartConfig(out=str(out), num=24, epochs=3, warmup_epochs=0, test_clips=2,
                           models=["single_frame", "late_fusion_pool", "c3d+audio"])
    summary = run_quickstart(cfg, quiet=True)
    manifest = [json.loads(line) for line in (out / "data" / "manifest.jsonl").read_text().splitlines()]
    num_val = sum(row["split"] == "val" for row in manifest)
    rows = {r["model"]: r for r in summary["results"]}
    assert list(rows) == ["single_frame", "late_fusion_pool", "c3d+audio"]
    assert rows["single_frame"]["epochs"] == 3 and rows["c3d+audio"]["epochs"] == 1  # epoch_share 1/3
    for r in rows.values():
        assert 0.0 <= r["motion_acc"] <= 1.0 and 0.0 <= r["appearance_acc"] <= 1.0
        assert r["params"] > 0 and r["gflops"] > 0
        assert (out / "runs" / r["model"].replace("+", "_") / "best.safetensors").is_file()
        # evaluated once, last weights, on the val split that `avkit eval RUN_DIR` also defaults to
        saved = json.loads((out / "runs" / r["model"].replace("+", "_") / "eval.json").read_text())
        assert saved["split"] == "val" and saved["checkpoint"] == "last" and saved["num_videos"] == num_val
    assert (out / "comparison.png").stat().st_size > 0
    assert "| late_fusion_pool |" in (out / "results.md").read_text()


def test_group_accuracy_from_confusion():
    names = ["left", "right", "stripes"]
    groups = {"left": "motion", "right": "motion", "stripes": "appearance"}
    confusion = [[3, 1, 0],   # left: 3 of 4 right
                 [2, 2, 0],   # right: 2 of 4
                 [0, 0, 5]]   # stripes: all 5
    acc = group_accuracy(confusion, names, groups)
    assert acc["motion"] == pytest.approx(5 / 8)
    assert acc["appearance"] == pytest.approx(1.0)
    assert acc["overall"] == pytest.approx(10 / 13)


def test_cli_unknown_quickstart_model_exits_2(tmp_path, capsys):
    code = main(["quickstart", "--out", str(tmp_path / "q"), "--models", "nope"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope" in err[0]
