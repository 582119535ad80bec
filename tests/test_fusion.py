"""Fusion heads and audio-visual models: the semantics of each head, and training on an audio-only cue."""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from avkit.data.audio_features import LogMel
from avkit.errors import AvkitError
from avkit.fusion import FUSIONS, BottleneckFusion, CrossAttentionFusion, GatedFusion, LateFusion, build_fusion
from avkit.models.audiovisual import AudioVisualModel, build_av_model

DIMS = {"video": 12, "audio": 20}
VIDEO = {"width": 4, "fc_dim": None, "batch_norm": True}  # tiny C3D with tokens
AUDIO = {"width": 4}
SMALL = {"cross_attention": {"dim": 16, "heads": 2}, "bottleneck": {"dim": 16, "heads": 2},
         "gated": {"dim": 16}, "concat": {"hidden": 16}, "late": {}}


def randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def pooled(seed: int = 0) -> dict[str, torch.Tensor]:
    return {"video": randn(3, 12, seed=seed), "audio": randn(3, 20, seed=seed + 100)}


def tokens(seed: int = 0) -> dict[str, torch.Tensor]:
    return {"video": randn(3, 6, 12, seed=seed), "audio": randn(3, 9, 20, seed=seed + 100)}


def test_late_fusion_fixed_weights_is_weighted_average_of_logits() -> None:
    torch.manual_seed(0)
    head = LateFusion(DIMS, num_classes=4, weights={"video": 1.0, "audio": 3.0})
    f = pooled()
    per = head.modality_logits(f)
    torch.testing.assert_close(per["video"], head.heads["video"](f["video"]))
    torch.testing.assert_close(head(f), 0.25 * per["video"] + 0.75 * per["audio"])
    assert not any("weight_logits" in n for n, _ in head.named_parameters())


def test_late_fusion_learnable_weights_train_and_stay_normalised() -> None:
    torch.manual_seed(0)
    head = LateFusion(DIMS, num_classes=4, weights=[1.0, 1.0], learnable=True)
    torch.testing.assert_close(head.weights(), torch.tensor([0.5, 0.5]))
    opt = torch.optim.SGD(head.parameters(), lr=1.0)
    F.cross_entropy(head(pooled()), torch.tensor([0, 1, 2])).backward()
    assert head.weight_logits.grad.abs().sum() > 0
    opt.step()
    w = head.weights()
    assert not torch.allclose(w, torch.tensor([0.5, 0.5])) and torch.isclose(w.sum(), torch.tensor(1.0))
    with pytest.raises(AvkitError, match="one non-negative weight"):
        LateFusion(DIMS, 4, weights=[1.0])


def test_gated_fusion_gates_in_unit_interval_and_mix_the_modalities() -> None:
    torch.manual_seed(0)
    head = GatedFusion(DIMS, num_classes=4, dim=8)
    f = pooled()
    g = head.gates(f)
    assert g.shape == (3, 2, 8)
    assert (g > 0).all() and (g < 1).all()
    torch.testing.assert_close(g.sum(1), torch.ones(3, 8))
    hv, ha = torch.tanh(head.proj["video"](f["video"])), torch.tanh(head.proj["audio"](f["audio"]))
    torch.testing.assert_close(head.fuse(f), g[:, 0] * hv + (1 - g[:, 0]) * ha)
    # the gate depends on the sample (not a fixed mixing weight)
    assert not torch.allclose(g[0], g[1])


def test_cross_attention_output_depends_on_the_other_modality() -> None:
    torch.manual_seed(0)
    head = CrossAttentionFusion(DIMS, num_classes=4, dim=16, heads=2).eval()
    t1 = tokens(0)
    t2 = dict(t1, audio=tokens(7)["audio"])  # same video, different audio
    with torch.no_grad():
        a1, a2 = head.attend(t1), head.attend(t2)
        assert not torch.allclose(a1["video"], a2["video"], atol=1e-4), "video tokens ignore the audio"
        assert not torch.allclose(head(t1), head(t2), atol=1e-4)
        # and the other way round
        t3 = dict(t1, video=tokens(9)["video"])
        assert not torch.allclose(head.attend(t3)["audio"], a1["audio"], atol=1e-4)
    with pytest.raises(AvkitError, match="two or more"):
        CrossAttentionFusion({"video": 12}, num_classes=4)


@pytest.mark.parametrize("num_bottlenecks,depth,fusion_layer,isolated", [
    (0, 2, 0, True),   # bottleneck removed: no path between the modalities
    (4, 1, 0, True),   # one layer reads the previous (initial) bottleneck: audio not there yet
    (4, 2, 1, True),   # first layer unimodal, second reads the initial bottleneck
    (4, 2, 0, False),  # layer 2 reads the bottleneck that layer 1 wrote from the audio
    (1, 3, 1, False),  # even a single bottleneck token carries audio into the video branch
])
def test_bottleneck_is_the_only_path_between_modalities(num_bottlenecks, depth, fusion_layer, isolated) -> None:
    torch.manual_seed(0)
    head = BottleneckFusion(DIMS, num_classes=4, dim=16, heads=2, depth=depth, num_bottlenecks=num_bottlenecks,
                            fusion_layer=fusion_layer).eval()
    t1 = tokens(0)
    t2 = dict(t1, audio=tokens(5)["audio"] * 3)
    with torch.no_grad():
        v1, v2 = head.branches(t1)["video"], head.branches(t2)["video"]
        a1, a2 = head.branches(t1)["audio"], head.branches(t2)["audio"]
    assert not torch.allclose(a1, a2)  # the audio branch sees its own input
    if isolated:
        torch.testing.assert_close(v1, v2, rtol=0, atol=1e-6)
    else:
        assert (v1 - v2).abs().max() > 1e-4


def test_bottleneck_classifies_by_averaging_branch_logits() -> None:
    torch.manual_seed(0)
    head = BottleneckFusion(DIMS, num_classes=4, dim=16, heads=2).eval()
    t = tokens()
    with torch.no_grad():
        per = head.modality_logits(t)
        torch.testing.assert_close(head(t), (per["video"] + per["audio"]) / 2)


def test_build_fusion_errors() -> None:
    with pytest.raises(AvkitError, match="unknown fusion"):
        build_fusion("sum", DIMS, 4)
    with pytest.raises(AvkitError, match="bogus"):
        build_fusion("concat", DIMS, 4, bogus=1)
    with pytest.raises(AvkitError, match=r"needs inputs for \['audio'\]"):
        build_fusion("concat", DIMS, 4)({"video": randn(2, 12)})


# ------------------------------------------------------------------------------------------------
# Audio-visual models


def av_batch(b: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    return {"video": randn(b, 3, 8, 32, 32, seed=seed), "spectrogram": randn(b, 1, 64, 100, seed=seed + 1),
            "label": torch.zeros(b, dtype=torch.long)}


@pytest.mark.parametrize("fusion", sorted(FUSIONS))
@pytest.mark.parametrize("modalities", [("video",), ("audio",), ("video", "audio")])
def test_av_builder_any_combination_of_encoders(fusion: str, modalities: tuple[str, ...]) -> None:
    kwargs = dict(video="c3d" if "video" in modalities else None, audio="audio_cnn" if "audio" in modalities else None,
                  fusion=fusion, num_classes=3, video_options=VIDEO, audio_options=AUDIO, fusion_options=SMALL[fusion])
    if fusion == "cross_attention" and len(modalities) == 1:
        with pytest.raises(AvkitError, match="two or more"):
            build_av_model(**kwargs)
        return
    torch.manual_seed(0)
    model = build_av_model(**kwargs)
    assert model.modalities == list(modalities)
    batch = av_batch()
    logits = model(batch)
    assert logits.shape == (2, 3) and torch.isfinite(logits).all()
    logits.sum().backward()
    assert all(p.grad is not None for p in model.encoders.parameters())
    # a modality the model does not use may be missing from the batch
    if modalities == ("video",):
        model({"video": batch["video"]})
    if modalities == ("audio",):
        model({"spectrogram": batch["spectrogram"]})


def test_av_model_computes_log_mel_from_the_waveform() -> None:
    torch.manual_seed(0)
    model = build_av_model("c3d", "audio_cnn", "concat", num_classes=3, video_options=VIDEO, audio_options=AUDIO,
                           n_mels=64).eval()
    assert isinstance(model.audio_features, LogMel) and model.audio_features.n_mels == 64
    wave = 0.1 * randn(2, 8000)
    video = randn(2, 3, 8, 32, 32)
    with torch.no_grad():
        from_wave = model({"video": video, "audio": wave})
        from_spec = model({"video": video, "spectrogram": LogMel(n_mels=64)(wave)})
    torch.testing.assert_close(from_wave, from_spec)


def test_av_model_with_ast_uses_its_own_fbank_features() -> None:
    from avkit.models.audio_ast import AST_TINY, ASTFeatures

    torch.manual_seed(0)
    model = build_av_model(None, "ast", "late", num_classes=3, audio_options=AST_TINY).eval()
    assert isinstance(model.audio_features, ASTFeatures) and model.prefer_waveform
    wave = 0.1 * randn(2, 16000)
    generic = LogMel(n_mels=64)(wave)  # what a dataset may put in "spectrogram": not AST's features
    with torch.no_grad():
        out = model({"audio": wave, "spectrogram": generic})
        torch.testing.assert_close(out, model({"spectrogram": ASTFeatures(64, 100)(wave)}))
        assert not torch.allclose(out, model({"spectrogram": generic}))


def test_av_model_errors() -> None:
    with pytest.raises(AvkitError, match="needs tokens"):
        build_av_model("c3d", "audio_cnn", "bottleneck", num_classes=3,
                       video_options={"width": 4, "fc_dim": 16}, audio_options=AUDIO)(av_batch())
    with pytest.raises(AvkitError, match="takes video input"):
        build_av_model(None, "c3d", "concat", num_classes=3)
    with pytest.raises(AvkitError, match="needs a video encoder, an audio encoder or both"):
        build_av_model(None, None, "concat", num_classes=3)
    model = build_av_model("c3d", "audio_cnn", "concat", num_classes=3, video_options=VIDEO, audio_options=AUDIO)
    with pytest.raises(AvkitError, match="spectrogram"):
        model({"video": av_batch()["video"]})
    with pytest.raises(AvkitError, match="batch dict"):
        model(av_batch()["video"])
    with pytest.raises(AvkitError, match="fusion head built for"):
        AudioVisualModel(model.encoders["video"], None, model.fusion)


def tone_batch(n: int, rng: np.random.Generator, freqs=(300.0, 700.0, 1500.0, 3000.0), sr: int = 16000,
               seconds: float = 0.5) -> dict[str, torch.Tensor]:
    """Class = the pitch of a tone in noise; the video is pure noise, so only the audio has the label."""
    labels = rng.integers(0, len(freqs), n)
    t = np.arange(int(sr * seconds)) / sr
    amp = rng.uniform(0.1, 0.5, (n, 1))
    phase = rng.uniform(0, 2 * np.pi, (n, 1))
    f = np.asarray(freqs)[labels][:, None] * rng.uniform(0.97, 1.03, (n, 1))
    wave = amp * np.sin(2 * np.pi * f * t + phase) + 0.05 * rng.standard_normal((n, t.size))
    video = rng.standard_normal((n, 3, 4, 16, 16))
    return {"audio": torch.tensor(wave, dtype=torch.float32), "video": torch.tensor(video, dtype=torch.float32),
            "label": torch.tensor(labels)}


def test_tiny_av_model_learns_a_label_that_is_only_in_the_audio() -> None:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = build_av_model("c3d", "audio_cnn", "concat", num_classes=4, n_mels=32, fusion_options={"hidden": None},
                           video_options={"width": 4, "fc_dim": 16, "batch_norm": True, "dropout": 0.0,
                                          "temporal_pool": False},
                           audio_options={"width": 4, "convs": (1, 1, 1)})
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    start = time.perf_counter()
    model.train()
    for _ in range(60):
        batch = tone_batch(16, rng)
        loss = F.cross_entropy(model(batch), batch["label"])
        opt.zero_grad()
        loss.backward()
        opt.step()
    train_s = time.perf_counter() - start
    model.eval()
    test = tone_batch(64, np.random.default_rng(123))
    with torch.no_grad():
        acc = (model(test).argmax(1) == test["label"]).float().mean().item()
    assert acc > 0.9, f"held-out accuracy {acc:.2f} after {train_s:.1f}s"
