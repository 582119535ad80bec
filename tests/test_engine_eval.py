"""Metrics on hand-computed examples; multi-view evaluation and classify on a tiny trained run."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch

from avkit.engine.build import build_dataset
from avkit.engine.classify import classify, read_views
from avkit.engine.config import load_config
from avkit.engine.evaluate import evaluate, load_run
from avkit.engine.metrics import (
    average_precision,
    classification_metrics,
    confusion_matrix,
    mean_average_precision,
    mean_class_accuracy,
    topk_accuracy,
)
from avkit.engine.trainer import train
from avkit.errors import AvkitError

ROOT = Path(__file__).resolve().parents[1]


def test_topk_and_mean_class_accuracy() -> None:
    scores = torch.tensor([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.1, 0.3, 0.6]])
    target = torch.tensor([0, 1, 1, 1])
    assert topk_accuracy(scores, target, 1) == 0.5  # predictions 0, 1, 0, 2
    assert topk_accuracy(scores, target, 2) == 1.0
    assert topk_accuracy(scores, target, 5) == 1.0  # k capped at the number of classes
    # class 0: 1/1 right, class 1: 1/3 right -> mean 2/3, while top-1 is 0.5
    assert mean_class_accuracy(scores, target) == pytest.approx((1.0 + 1 / 3) / 2)
    cm = confusion_matrix(scores, target, 3)
    assert cm.tolist() == [[1, 0, 0], [1, 1, 1], [0, 0, 0]]


def test_average_precision_known_values() -> None:
    # ranking: pos, neg, pos -> precision at positives 1/1 and 2/3 -> AP = (1 + 2/3) / 2
    assert average_precision(torch.tensor([0.9, 0.8, 0.7]), torch.tensor([1, 0, 1])) == pytest.approx(5 / 6)
    assert average_precision(torch.tensor([0.9, 0.8]), torch.tensor([0, 0])) != average_precision(
        torch.tensor([0.9, 0.8]), torch.tensor([0, 0]))  # NaN: no positives
    multi = torch.tensor([[1, 0], [0, 1], [1, 1]])
    scores = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.3, 0.4]])
    # class 0: ranking 0.9(+) 0.3(+) 0.2(-) -> AP 1; class 1: 0.8(+) 0.4(+) 0.1(-) -> AP 1
    assert mean_average_precision(scores, multi) == 1.0
    assert classification_metrics(scores, multi) == {"mAP": 1.0}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from avkit.data.synthetic import generate

    data = tmp_path_factory.getbasetemp() / "engine_motion"
    if not (data / "manifest.jsonl").is_file():
        generate("motion", data, 12, seed=0, duration=1.0, overwrite=True)
    out = tmp_path_factory.mktemp("eval") / "run"
    cfg = load_config(ROOT / "recipes" / "motion_c3d.yaml", [
        f"data.source={data}", f"train.output_dir={out}", "train.epochs=1", "train.progress=false",
        "train.tensorboard=false", "data.batch_size=4", "data.num_frames=8", "data.fps=8",
        "model.video_options.fc_dim=16"])
    train(cfg, quiet=True)
    return out


def test_evaluate_multi_view(run_dir: Path) -> None:
    result = evaluate(run_dir, clips=2, crops=3)
    manifest = Path(load_config(run_dir).data.source) / "manifest.jsonl"
    num_val = sum(json.loads(line)["split"] == "val" for line in manifest.read_text().splitlines())
    assert num_val >= 2 and result["num_videos"] == num_val and result["num_views"] == num_val * 6
    for level in ("clip", "video"):
        assert set(result[level]) == {"top1", "top5", "mean_class_acc", "mAP"}
        assert all(0.0 <= v <= 1.0 for v in result[level].values())
    assert sum(map(sum, result["confusion"])) == num_val and result["skipped"] == {}
    saved = json.loads((run_dir / "eval.json").read_text())
    assert saved["video"] == result["video"] and saved["clips"] == 2 and saved["crops"] == 3
    one = evaluate(run_dir, clips=1, crops=1, write=False)
    assert one["clip"] == one["video"]  # a single view: clip and video accuracy coincide


def test_classify_matches_dataset_views(run_dir: Path) -> None:
    model, cfg, names = load_run(run_dir)
    dataset = build_dataset(cfg.data, cfg.data.val_split, train=False, num_clips=3, num_crops=1)
    item = dataset[0]
    views = read_views(item["path"], cfg, clips=3)
    # classify reads the file with io.read_clip; the dataset with VideoReader: same clips, same pixels
    torch.testing.assert_close(views["video"], item["video"], atol=1e-5, rtol=0)
    labels = classify(item["path"], run_dir, top=3, clips=3)
    with torch.no_grad():
        expected = model(item["video"]).softmax(-1).mean(0)
    assert [x["label"] for x in labels] == [names[i] for i in expected.topk(3).indices.tolist()]
    assert labels[0]["score"] == pytest.approx(float(expected.max()), abs=1e-5)
    assert labels[0]["score"] >= labels[1]["score"] >= labels[2]["score"]


def test_eval_and_classify_cli(run_dir: Path, capsys: pytest.CaptureFixture) -> None:
    from avkit.cli import classify as classify_cli
    from avkit.cli import eval as eval_cli

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    eval_cli.register(sub)
    classify_cli.register(sub)
    from avkit.cli.main import main

    if not (run_dir / "eval.json").is_file():
        evaluate(run_dir, clips=1, crops=1)
    before = (run_dir / "eval.json").read_bytes()
    capsys.readouterr()
    assert main(["eval", str(run_dir), "--clips", "1", "--crops", "1"]) == 2  # an earlier eval.json is kept
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "eval.json: already exists (pass --overwrite" in err, err
    assert (run_dir / "eval.json").read_bytes() == before
    args = parser.parse_args(["eval", str(run_dir), "--clips", "1", "--crops", "1", "--json", "--overwrite"])
    assert args.func(args) == 0
    assert json.loads(capsys.readouterr().out)["clips"] == 1
    args = parser.parse_args(["eval", str(run_dir), "--clips", "1", "--crops", "1", "--overwrite"])
    assert args.func(args) == 0
    assert "top1" in capsys.readouterr().out
    video = load_config(run_dir).data.source + "/clips/000000.mp4"
    args = parser.parse_args(["classify", video, "--run", str(run_dir), "--top", "2", "--clips", "1", "--json"])
    assert args.func(args) == 0
    assert len(json.loads(capsys.readouterr().out)["labels"]) == 2
    args = parser.parse_args(["classify", video, "--run", str(run_dir.parent / "nope")])
    with pytest.raises(AvkitError, match="run directory not found"):
        args.func(args)


def test_load_run_needs_no_starting_weights(run_dir: Path, tmp_path: Path) -> None:
    """A run fine-tuned from torchvision weights is evaluated offline: its checkpoint replaces every
    tensor, so load_run must not ask for the starting weights file (gone here, as on a machine without network)."""
    import shutil

    import yaml

    moved = tmp_path / "run"
    shutil.copytree(run_dir, moved)
    cfg = yaml.safe_load((moved / "config.yaml").read_text())
    cfg["model"]["video_options"]["weights"] = str(tmp_path / "missing" / "r2plus1d_18-91a641e6.pth")
    cfg["model"]["init"] = str(tmp_path / "missing" / "init.safetensors")
    (moved / "config.yaml").write_text(yaml.safe_dump(cfg))
    model, _, _ = load_run(moved, device="cpu")
    reference, _, _ = load_run(run_dir, device="cpu")
    for (name, a), (_, b) in zip(model.state_dict().items(), reference.state_dict().items()):
        assert torch.equal(a, b), name


def test_video_scores_average_every_view(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Video metrics come from the mean of all the views' softmax, not from one view: each video's
    first view is confidently wrong and its three others mildly right, so the mean is right on every
    video (video top-1 100%, clip top-1 75%); the first view alone would be wrong on every video."""
    import importlib

    engine_evaluate = importlib.import_module("avkit.engine.evaluate")  # the module, not the function

    real = engine_evaluate.forward_views

    def planted(model: torch.nn.Module, batch: dict) -> torch.Tensor:
        b, k, c = real(model, batch).shape
        rows, label = torch.arange(b), batch["label"]
        logits = torch.zeros(b, k, c)
        logits[rows, 1:, label] = 2.0  # p(label) 0.45 with 10 classes
        logits[rows, 0, (label + 1) % c] = 5.0  # p(another class) 0.94
        return logits

    monkeypatch.setattr(engine_evaluate, "forward_views", planted)
    result = evaluate(run_dir, clips=4, crops=1, write=False)
    assert result["num_views"] == 4 * result["num_videos"]
    assert result["clip"]["top1"] == pytest.approx(0.75)
    assert result["video"]["top1"] == pytest.approx(1.0)
