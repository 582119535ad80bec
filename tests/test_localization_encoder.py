"""Localisation features from a trained classification run (``task_options.encoder_run``): the features
are the run model's, a run of another task or another window is one line, a cache or a localiser never
pairs with another run's features, and a one-stage localiser trains on them end to end."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from avkit.engine.config import load_config
from avkit.errors import AvkitError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def long_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from avkit.data.synthetic import generate

    out = tmp_path_factory.mktemp("enc_loc") / "data"
    generate("longvideo", out, 4, seed=0, size=16, duration=8.0, actions=("rotate_cw", "stripes"), segments=(1, 2),
             segment_duration=(1.5, 2.5), val_fraction=0.25)
    return out


def _classifier(recipe: str, source: str, tmp: pytest.TempPathFactory, *extra: str) -> Path:
    """A tiny classification run: one epoch on 4 generated 1 s clips (8 frames at 8 fps)."""
    from avkit.data.synthetic import generate
    from avkit.engine.trainer import train

    data = tmp.mktemp(f"enc_{source}")
    generate(source, data, 4, seed=0, duration=1.0, overwrite=True)
    out = tmp.mktemp("enc_run") / "run"
    cfg = load_config(ROOT / "recipes" / recipe, [
        f"data.source={data}", f"train.output_dir={out}", "train.epochs=1", "train.progress=false",
        "train.tensorboard=false", "data.batch_size=4", "data.num_frames=8", "data.fps=8", "data.val_split=",
        "data.cache=false", *extra])
    train(cfg, quiet=True)
    return out


@pytest.fixture(scope="module")
def video_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _classifier("motion_c3d.yaml", "motion", tmp_path_factory, "model.video_options.fc_dim=16")


@pytest.fixture(scope="module")
def av_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _classifier("av_instruments_concat.yaml", "instruments", tmp_path_factory)


def _spec(run: Path, window: float = 1.0) -> Any:
    from avkit.apps.localization.features import encoder_spec

    return encoder_spec(run, "best", window, 0.5)


def _video(data: Path) -> Path:
    return sorted((data / "clips").glob("*.mp4"))[0]


def test_features_are_the_run_models(video_run: Path, long_data: Path) -> None:
    from avkit.apps.localization.features import Extractor
    from avkit.data.sampling import sliding_windows
    from avkit.engine.classify import window_batch
    from avkit.engine.evaluate import load_run
    from avkit.io.read import VideoReader

    spec = _spec(video_run)
    assert (spec.modality, spec.fps, spec.size, spec.num_frames) == ("video", 8.0, 32, 8)
    video = _video(long_data)
    feats = Extractor(spec, batch_size=5)(video)  # several chunks
    model: Any
    model, cfg, _ = load_run(video_run, device="cpu")
    with VideoReader(video) as reader:
        windows = sliding_windows(float(reader.duration or 0), 8, 8.0, 0.5, drop_last=True)
        with torch.no_grad():
            direct = model.forward_features(window_batch(reader, windows, cfg.data)["video"]).numpy()
    assert feats.feats.shape == direct.shape == (len(windows), model.out_dim)
    np.testing.assert_allclose(feats.feats, direct, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(feats.starts, [w.start for w in windows])


def test_av_features_are_both_encoders(av_run: Path, long_data: Path) -> None:
    """An audio-visual run gives its two encoders' features side by side (what its fusion head takes)."""
    from avkit.apps.localization.features import Extractor
    from avkit.data.sampling import sliding_windows
    from avkit.engine.classify import window_batch
    from avkit.engine.evaluate import load_run
    from avkit.engine.step import pooled_features
    from avkit.io.read import VideoReader

    spec = _spec(av_run)
    assert spec.modality == "av"
    video = _video(long_data)
    feats = Extractor(spec)(video)
    model: Any
    model, cfg, _ = load_run(av_run, device="cpu")
    with VideoReader(video) as reader:
        windows = sliding_windows(float(reader.duration or 0), 8, 8.0, 0.5, drop_last=True)
        batch = window_batch(reader, windows, cfg.data)
    assert bool(batch["has_audio"].all())
    with torch.no_grad():
        direct = torch.cat([model.encoders["video"].forward_features(batch["video"]),
                            model.encoders["audio"].forward_features(model.spectrogram(batch))], dim=1).numpy()
        # the same clips marked without sound: the audio half is the run's learned "absent" embedding
        silent = pooled_features(model, {**batch, "has_audio": torch.zeros(len(windows), dtype=torch.bool)})
    np.testing.assert_allclose(feats.feats, direct, rtol=1e-4, atol=1e-5)
    width = model.encoders["video"].out_dim
    np.testing.assert_allclose(silent[:, width:].numpy(), model.absent["audio"].detach().expand(len(windows), -1))


def test_bad_runs_and_windows_are_one_line(video_run: Path, long_data: Path, tmp_path: Path) -> None:
    from safetensors.torch import save_file

    from avkit.apps.localization.task import features_for
    from avkit.engine.checkpoint import load_weights

    with pytest.raises(AvkitError) as err:
        _spec(video_run, window=2.0)
    assert "1 s (8 frames at 8 fps)" in str(err.value) and "window is 2 s" in str(err.value)
    assert "\n" not in str(err.value)
    # a localisation run is not an encoder
    loc = tmp_path / "loc"
    loc.mkdir()
    (loc / "config.yaml").write_text("task: localization\n")
    with pytest.raises(AvkitError, match="not a classification run .task: localization.") as err:
        _spec(loc)
    assert "\n" not in str(err.value)
    # weights that changed after the spec was taken (a run trained again in place) are refused
    copy = tmp_path / "copy"
    shutil.copytree(video_run, copy)
    spec = _spec(copy)
    state = {k: v + 1 if v.is_floating_point() else v for k, v in load_weights(copy / "best.safetensors").items()}
    save_file(state, str(copy / "best.safetensors"))
    with pytest.raises(AvkitError, match="weights changed since"):
        features_for([str(_video(long_data))], spec, "", log=lambda _: None)


def test_cache_is_not_reused_across_runs(video_run: Path, av_run: Path, long_data: Path, tmp_path: Path) -> None:
    from avkit.apps.localization.task import features_for

    cache = tmp_path / "features.npz"
    paths = [str(_video(long_data))]
    first = features_for(paths, _spec(video_run), str(cache), log=lambda _: None)
    again = features_for(paths, _spec(video_run), str(cache), log=lambda _: None)
    np.testing.assert_array_equal(first[paths[0]].feats, again[paths[0]].feats)
    renamed = tmp_path / "renamed"
    shutil.copytree(video_run, renamed)  # the same weights under another run's name
    for other in (av_run, renamed):
        with pytest.raises(AvkitError, match="features extracted with") as err:
            features_for(paths, _spec(other), str(cache), log=lambda _: None)
        assert "\n" not in str(err.value)


def test_onestage_trains_on_run_features(av_run: Path, long_data: Path, tmp_path: Path) -> None:
    from avkit.apps import localization
    from avkit.engine import train

    out = tmp_path / "loc"
    cfg = load_config(ROOT / "recipes" / "localize_onestage.yaml",
                      [f"data.source={long_data}", f"task_options.encoder_run={av_run}", "task_options.cache=",
                       f"train.output_dir={out}", "train.epochs=1", "train.max_steps=2", "task_options.hidden=16",
                       "train.progress=false", "train.tensorboard=false"])
    train(cfg, quiet=True, overwrite=True)
    loc = localization.load(out, checkpoint="last")
    assert loc.spec.encoder_run == str(av_run.resolve()) and loc.spec.modality == "av"
    model: Any = loc.model
    encoder = loc.extractor.run[0]
    assert model.norm.mean.shape[0] == encoder.encoders["video"].out_dim + encoder.encoders["audio"].out_dim
    segments = loc.localize(_video(long_data))
    assert all(s["label"] in ("rotate_cw", "stripes") and 0 <= s["start"] < s["end"] <= 8.0 + 1e-6 for s in segments)
    # that localiser run is no encoder
    with pytest.raises(AvkitError, match="not a classification run"):
        _spec(out)
