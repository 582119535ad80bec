"""Audio encoders: spectrogram CNNs and the Audio Spectrogram Transformer (Hugging Face ASTModel)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from avkit.errors import AvkitError
from avkit.models import create_model, list_models, model_entry
from avkit.models.audio_ast import AST_TINY, ASTFeatures, ast


def spec(batch: int = 2, f: int = 64, t: int = 100, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 1, f, t, generator=torch.Generator().manual_seed(seed))


def test_audio_models_registered_with_audio_modality() -> None:
    names = list_models(modality="audio")
    assert {"audio_cnn", "audio_resnet", "ast"} <= set(names)
    assert not set(names) & set(list_models(modality="video"))
    for name in ("audio_cnn", "audio_resnet", "ast"):
        assert model_entry(name).tiny_input == (1, 64, 100)


@pytest.mark.parametrize("name", ["audio_cnn", "audio_resnet"])
def test_cnn_tokens_are_the_time_frequency_map(name: str) -> None:
    model = create_model(name, **model_entry(name).tiny).eval()
    x = spec()
    with torch.no_grad():
        fmap = model.feature_map(x)  # [B, D, F', T']
        tokens = model.forward_tokens(x)
        feats = model.forward_features(x)
    b, d, fq, tm = fmap.shape
    assert d == model.out_dim and fq < 64 and tm < 100
    assert tokens.shape == (b, fq * tm, d)
    # frequency-major flattening: token (f, t) is map cell [:, :, f, t]
    torch.testing.assert_close(tokens[:, 1 * tm + 2], fmap[:, :, 1, 2])
    # pooled = mean over frequency, then mean + max over time
    per_time = fmap.mean(dim=2)
    torch.testing.assert_close(feats, per_time.mean(-1) + per_time.amax(-1))


def test_cnn_width_scales_out_dim_and_rejects_bad_input() -> None:
    assert create_model("audio_cnn", width=4).out_dim == 32
    assert create_model("audio_cnn", width=8).out_dim == 64
    assert create_model("audio_resnet", width=8, layers=(1, 1, 1)).out_dim == 32
    with pytest.raises(AvkitError, match=r"\[B, 1, F, T\]"):
        create_model("audio_cnn", width=4)(torch.randn(2, 64, 100))


def test_cnn_pooling_keeps_a_short_event() -> None:
    """Max over time: a short loud event changes the pooled features even in a long clip."""
    model = create_model("audio_cnn", width=4).eval()
    quiet = torch.zeros(1, 1, 64, 400)
    event = quiet.clone()
    event[..., 20:30, 200:210] = 5.0
    with torch.no_grad():
        diff = (model.forward_features(event) - model.forward_features(quiet)).abs().max()
    assert diff > 1e-3


@pytest.fixture(scope="module")
def tiny_ast():
    torch.manual_seed(0)
    return ast(num_classes=3, **AST_TINY).eval()


def test_ast_tokens_pooling_and_padding(tiny_ast) -> None:
    x = spec(t=100)
    with torch.no_grad():
        hidden = tiny_ast.ast(input_values=x[:, 0].transpose(1, 2)).last_hidden_state
        tokens = tiny_ast.forward_tokens(x)
        pooled = tiny_ast.forward_features(x)
        # shorter input is zero-padded to max_length, as the feature extractor does
        short = x[..., :60]
        padded = torch.nn.functional.pad(short, (0, 40))
        torch.testing.assert_close(tiny_ast(short), tiny_ast(padded))
    # (64 - 16) // 10 + 1 = 5 frequency x (100 - 16) // 10 + 1 = 9 time patches
    assert tokens.shape == (2, 45, 32) and tiny_ast.out_dim == 32
    torch.testing.assert_close(tokens, hidden[:, 2:])
    torch.testing.assert_close(pooled, (hidden[:, 0] + hidden[:, 1]) / 2)
    with pytest.raises(AvkitError, match="64"):
        tiny_ast(spec(f=128))


def test_ast_save_and_load_local_folder(tiny_ast, tmp_path) -> None:
    tiny_ast.save_pretrained(tmp_path / "ast")
    assert (tmp_path / "ast" / "config.json").is_file()
    assert (tmp_path / "ast" / "preprocessor_config.json").is_file()
    loaded = create_model("ast", pretrained=tmp_path / "ast").eval()
    x = spec()
    with torch.no_grad():
        torch.testing.assert_close(loaded.forward_features(x), tiny_ast.forward_features(x))
    fe = loaded.feature_extractor()
    assert (fe.num_mel_bins, fe.max_length) == (64, 100)
    with pytest.raises(AvkitError, match="config.json"):
        create_model("ast", pretrained=tmp_path / "missing")


def test_ast_features_match_hugging_face_extractor() -> None:
    from transformers import ASTFeatureExtractor

    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    waves = np.stack([0.3 * np.sin(2 * np.pi * 440 * t), 0.1 * rng.standard_normal(16000)]).astype(np.float32)
    ref = ASTFeatureExtractor(max_length=120)(list(waves), sampling_rate=16000, return_tensors="pt").input_values
    ours = ASTFeatures(max_length=120)(torch.from_numpy(waves))
    assert ours.shape == (2, 1, 128, 120)
    torch.testing.assert_close(ours, ref.transpose(1, 2)[:, None], rtol=1e-5, atol=1e-5)
    # the 440 Hz tone peaks in a low mel bin, the noise spreads over all of them
    frame = ours[0, 0, :, 50]
    assert int(frame.argmax()) < 40


@pytest.mark.parametrize("num_mel_bins", [64, 128])
def test_kaldi_fbank_equals_torchaudio_compliance_kaldi(num_mel_bins: int) -> None:
    """avkit's own Kaldi fbank (torch ops only) against torchaudio's reference implementation."""
    kaldi = pytest.importorskip("torchaudio.compliance.kaldi")
    from avkit.models.audio_ast import kaldi_fbank

    rng = np.random.default_rng(1)
    t = np.arange(24000) / 16000
    waves = np.stack([0.5 * np.sin(2 * np.pi * 1000 * t) + 0.2,  # a DC offset the frames remove
                      0.05 * rng.standard_normal(24000),
                      np.zeros(24000)]).astype(np.float32)  # silence hits the log floor
    ours = kaldi_fbank(torch.from_numpy(waves), 16000, num_mel_bins)
    for i, wave in enumerate(waves):
        ref = kaldi.fbank(torch.from_numpy(wave)[None], sample_frequency=16000, window_type="hanning",
                          num_mel_bins=num_mel_bins, dither=0.0, frame_shift=10, use_energy=False)
        assert ours[i].shape == ref.shape == (148, num_mel_bins)
        torch.testing.assert_close(ours[i], ref, rtol=0, atol=2e-4)
