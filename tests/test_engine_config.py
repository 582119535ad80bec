"""Recipes <-> dataclasses: YAML loading, key.sub=value overrides, type conversion, clear errors."""
from __future__ import annotations

from pathlib import Path

import pytest

from avkit.engine.config import Config, apply_overrides, config_diff, config_from_dict, dump_config, load_config
from avkit.errors import AvkitError

RECIPES = sorted((Path(__file__).resolve().parents[1] / "recipes").glob("*.yaml"))


def test_defaults_and_yaml_roundtrip(tmp_path: Path) -> None:
    cfg = config_from_dict({"data": {"source": "d", "num_frames": 4}, "optim": {"lr": "1e-3"},
                            "model": {"video": "c3d", "video_options": {"width": 8, "layers": (1, 1)}}})
    assert cfg.data.num_frames == 4 and cfg.data.size == 112  # given and default
    assert cfg.optim.lr == pytest.approx(1e-3) and isinstance(cfg.optim.lr, float)  # YAML reads 1e-3 as str
    assert cfg.model.video_options["layers"] == [1, 1]  # tuples become lists so YAML can hold them
    path = tmp_path / "r.yaml"
    path.write_text(dump_config(cfg))
    again = load_config(path)
    assert again == cfg and config_diff(cfg, again) == {}


def test_overrides_convert_types() -> None:
    cfg = apply_overrides(Config(), [
        "optim.lr=0.02", "train.epochs=3", "data.audio=true", "data.fps=4", "model.video=i3d",
        "data.mean=[0.5, 0.5, 0.5]", "model.video_options.width=16", "model.video_options.layers=[1, 2]",
        "model.fusion_options={heads: 2}", "optim.betas=0.8,0.9",
    ])
    assert cfg.optim.lr == 0.02 and cfg.train.epochs == 3 and cfg.data.audio is True
    assert cfg.data.fps == 4.0 and isinstance(cfg.data.fps, float)
    assert cfg.data.mean == [0.5, 0.5, 0.5] and cfg.optim.betas == [0.8, 0.9]
    assert cfg.model.video_options == {"width": 16, "layers": [1, 2]}
    assert cfg.model.fusion_options == {"heads": 2}
    assert Config().model.video_options == {}  # overrides never mutate the input


@pytest.mark.parametrize("override, message", [
    ("optim.lrr=0.1", "did you mean lr"),
    ("trian.epochs=3", "did you mean train"),
    ("train.epochs=three", "expected an integer"),
    ("data.audio=maybe", "expected true/false"),
    ("optim.lr", "not key=value"),
    ("optim=3", "is a section"),
    ("train.epochs.x=1", "unknown config key"),
])
def test_override_errors(override: str, message: str) -> None:
    with pytest.raises(AvkitError, match=message):
        apply_overrides(Config(), [override])


def test_yaml_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("data:\n  num_frmaes: 8\n")
    with pytest.raises(AvkitError, match="data.num_frmaes.*did you mean num_frames"):
        load_config(bad)
    bad.write_text("optim:\n  lr: [1, 2]\n")
    with pytest.raises(AvkitError, match="optim.lr"):
        load_config(bad)
    bad.write_text("data: [oops\n")
    with pytest.raises(AvkitError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(AvkitError, match="not found"):
        load_config(tmp_path / "missing.yaml")


@pytest.mark.parametrize("recipe", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipes_load_and_start_with_a_comment(recipe: Path) -> None:
    first = recipe.read_text().splitlines()[0]
    assert first.startswith("# ") and len(first) > 20
    cfg = load_config(recipe)
    assert cfg.train.output_dir
    if cfg.task == "captioning":  # the captioner reads its sources from task_options
        assert cfg.task_options["sources"] and cfg.task_options["stage"] in ("lm", 1, 2)
        if cfg.task_options["stage"] != "lm":
            assert cfg.model.video
    elif cfg.task == "clip_selection":  # preview or sampler, built from task_options
        assert cfg.task_options["model"] in ("preview", "sampler") and cfg.data.source
    elif cfg.task == "localization":  # trains on per-window features; the method is in task_options
        assert cfg.task_options["method"] in ("sliding", "proposals", "onestage") and cfg.data.source
    else:
        assert cfg.model.video or cfg.model.audio
        assert cfg.data.source


def test_recipe_set_covers_the_issue() -> None:
    cfgs = [load_config(p) for p in RECIPES]
    fusions = {c.model.fusion for c in cfgs if c.model.fusion}
    assert fusions == {"late", "concat", "gated", "cross_attention", "bottleneck"}
    assert any(c.model.linear_probe for c in cfgs)
    assert any(c.model.video == "r2plus1d_18" and c.model.init for c in cfgs)
