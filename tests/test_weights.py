"""Pretrained weights without network: where torchvision and Hugging Face look, what loads, what is said.

The checkpoints are made here (a fresh torchvision mc3_18, 11.7M parameters, the smallest Kinetics
model; a tiny VideoMAE) and put where the real ones would be, with downloads made impossible.
torchvision checks a checkpoint's hash only while downloading it (``torch.hub.load_state_dict_from_url``:
``check_hash`` feeds ``download_url_to_file``), so a cached file of the right name is used as it is.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn as nn

from avkit.cli.main import main
from avkit.engine.build import build_model
from avkit.engine.checkpoint import compare_state_dict
from avkit.engine.config import ModelConfig
from avkit.errors import AvkitError
from avkit.models import create_model


class Toy:  # a pickled object: loading it would need code
    def __init__(self, n: int) -> None:
        self.n = n


@pytest.fixture()
def offline_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty torch hub cache under ``tmp_path`` (TORCH_HOME) and no way to download."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def no_network(url: str, *args: object, **kwargs: object) -> None:
        raise OSError(f"network is unreachable ({url})")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    return tmp_path / "torch" / "hub" / "checkpoints"


def _kinetics_mc3(checkpoints: Path) -> dict[str, torch.Tensor]:
    """A fresh torchvision mc3_18 saved under the Kinetics checkpoint's file name; its state_dict."""
    import torchvision

    torch.manual_seed(0)
    state = torchvision.models.get_model("mc3_18").state_dict()
    checkpoints.mkdir(parents=True, exist_ok=True)
    torch.save(state, checkpoints / "mc3_18-a90a0ba3.pth")
    return state


def test_kinetics_enum_loads_a_local_file_from_the_hub_cache_and_says_so(offline_hub: Path) -> None:
    from torchvision.models.video import MC3_18_Weights

    from avkit.models.weights import hub_file

    assert hub_file(MC3_18_Weights.KINETICS400_V1) == offline_hub / "mc3_18-a90a0ba3.pth"
    state = _kinetics_mc3(offline_hub)
    lines: list[str] = []
    cfg = ModelConfig(video="mc3_18", video_options={"weights": "KINETICS400_V1"})
    model: Any = build_model(cfg, num_classes=5, log=lines.append)
    got = model.backbone.state_dict()
    assert all(torch.equal(got[k], v) for k, v in state.items() if not k.startswith("fc."))
    assert model.head.weight.shape == (5, 512)
    assert lines == [f"loaded mc3_18 KINETICS400_V1 from {offline_hub / 'mc3_18-a90a0ba3.pth'}: "
                     f"{len(state) - 2}/{len(state)} tensors, head replaced (400 -> 5 classes)"]


def test_missing_checkpoint_names_the_exact_file_to_put_where(offline_hub: Path) -> None:
    with pytest.raises(AvkitError) as err:
        create_model("mc3_18", weights="KINETICS400_V1")
    message = str(err.value)
    assert "\n" not in message
    assert f"put it at {offline_hub / 'mc3_18-a90a0ba3.pth'} " in message
    assert "https://download.pytorch.org/models/mc3_18-a90a0ba3.pth" in message
    with pytest.raises(AvkitError, match=r"unknown weights IMAGENET1K_V1 \(choose DEFAULT, KINETICS400_V1;"):
        create_model("mc3_18", weights="IMAGENET1K_V1")


def test_cached_file_with_pickled_code_is_refused_before_torchvision_unpickles_it(offline_hub: Path) -> None:
    offline_hub.mkdir(parents=True)
    torch.save({"conv.weight": torch.zeros(1), "obj": Toy(1)}, offline_hub / "mc3_18-a90a0ba3.pth")
    with pytest.raises(AvkitError, match="mc3_18-a90a0ba3.pth: cannot read weights safely.*pickled code is refused"):
        create_model("mc3_18", weights="DEFAULT")


def _tiny_videomae(folder: Path) -> dict[str, torch.Tensor]:
    from transformers import VideoMAEConfig, VideoMAEModel

    from avkit.models.hf_video import VIDEOMAE_TINY

    torch.manual_seed(0)
    options: dict[str, Any] = dict(VIDEOMAE_TINY)
    model = VideoMAEModel(VideoMAEConfig(**options))
    model.save_pretrained(str(folder))
    return model.state_dict()


def test_hugging_face_id_loads_from_the_cache_and_a_missing_one_names_the_folder_layout(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from huggingface_hub import constants

    cache = tmp_path / "hf"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    # the layout huggingface_hub writes: models--ORG--NAME/refs/main -> snapshots/<commit>/
    repo = cache / "models--someone--videomae-tiny"
    state = _tiny_videomae(repo / "snapshots" / "abc123")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")

    lines: list[str] = []
    cfg = ModelConfig(video="hf_videomae", video_options={"pretrained": "someone/videomae-tiny"})
    model: Any = build_model(cfg, num_classes=3, log=lines.append)
    assert all(torch.equal(model.model.state_dict()[k], v) for k, v in state.items())
    weights_file = repo / "snapshots" / "abc123" / "model.safetensors"
    assert lines == [f"loaded hf_videomae someone/videomae-tiny from {weights_file}: "
                     f"{len(state)}/{len(state)} tensors, new head (3 classes)"]

    # check: compared through transformers' loading, which renames keys (VideoMAE's q_bias -> query.bias)
    assert main(["weights", "check", str(weights_file.parent), "--model", "hf_videomae", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["fits"] and report["missing"] == [] and report["unexpected"] == []
    assert report["matched"] == report["model_tensors"] == len(state)

    with pytest.raises(AvkitError) as err:
        create_model("hf_videomae", pretrained="MCG-NJU/videomae-base")
    message = str(err.value)
    assert "\n" not in message
    assert str(cache / "models--MCG-NJU--videomae-base") in message
    assert "config.json, model.safetensors" in message and "pretrained=<that folder>" in message


def test_compare_state_dict_finds_missing_unexpected_and_mis_shaped_tensors() -> None:
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    source = {"module.0.weight": torch.zeros(3, 4), "module.0.bias": torch.zeros(3),
              "module.1.weight": torch.zeros(5, 3), "module.extra": torch.zeros(1)}
    fit = compare_state_dict(model, source)
    assert (fit.matched, fit.total, fit.model_total) == (2, 4, 4)
    assert fit.missing == ["1.bias"]  # 1.weight is there, of another shape
    assert fit.unexpected == ["module.extra"]
    assert fit.mismatched == [("module.1.weight", [5, 3], [2, 3])]
    assert not fit.fits


def test_cli_weights_list_and_check(offline_hub: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = _kinetics_mc3(offline_hub)
    assert main(["weights", "list", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    rows = {r["option"] + " " + ",".join(r["models"]): r for r in listing["weights"]}
    assert rows["weights=KINETICS400_V1 mc3_18"]["present"] is True
    assert rows["weights=KINETICS400_V1 mc3_18"]["path"] == str(offline_hub / "mc3_18-a90a0ba3.pth")
    assert rows["weights=KINETICS400_V1 r3d_18"]["present"] is False
    assert {"hf_videomae", "hf_timesformer", "ast"} <= {m for r in listing["weights"] for m in r["models"]}
    assert any(r["family"] == "image_backbone" and "single_frame" in r["models"] for r in listing["weights"])

    file = str(offline_hub / "mc3_18-a90a0ba3.pth")
    assert main(["weights", "check", file, "--model", "mc3_18", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["fits"] and report["missing"] == [] and report["mismatched"] == []
    assert report["unexpected"] == ["fc.weight", "fc.bias"] and report["file_tensors"] == len(state)

    # another architecture: exit 2, one line with the counts
    assert main(["weights", "check", file, "--model", "r3d_18"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"avkit weights: error: {file}: does not fit r3d_18 (") and "\n" not in err
    assert "of another shape" in err

    torch.save({"w": torch.zeros(1), "obj": Toy(2)}, tmp_path / "evil.pth")
    assert main(["weights", "check", str(tmp_path / "evil.pth"), "--model", "mc3_18"]) == 2
    assert "pickled code is refused" in capsys.readouterr().err
