"""Every registered model, built from its registry ``tiny`` preset on its ``tiny_input``.

Checks the models contract for all families (video and audio): classifier forward, backward into
every parameter, the declared width of features and tokens, batch independence and determinism
in eval mode.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from avkit.errors import AvkitError
from avkit.models import create_model, list_models, model_entry

VIDEO_INPUT = (3, 8, 32, 32)
NUM_CLASSES = 5


def tiny_input(name: str, batch: int = 2, seed: int = 0) -> torch.Tensor:
    shape = model_entry(name).tiny_input or VIDEO_INPUT
    return torch.randn(batch, *shape, generator=torch.Generator().manual_seed(seed))


def calibrate_batchnorm(model: nn.Module, x: torch.Tensor) -> None:
    """Set BatchNorm running statistics to those of ``x`` (fresh ones make eval outputs near constant)."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average: one pass gives exactly the batch statistics
    model.train()
    with torch.no_grad():
        model(x)


@pytest.mark.parametrize("name", list_models())
def test_tiny_model_contract(name: str) -> None:
    entry = model_entry(name)
    torch.manual_seed(0)
    x = tiny_input(name)
    model = create_model(name, **entry.tiny, num_classes=NUM_CLASSES)
    assert isinstance(model.out_dim, int) and model.out_dim > 0

    # training step: logits, and a gradient reaching every trainable parameter
    model.train()
    logits = model(x)
    assert logits.shape == (2, NUM_CLASSES) and torch.isfinite(logits).all()
    F.cross_entropy(logits, torch.tensor([0, 3])).backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"parameters without gradient: {missing[:5]}"
    assert any(p.grad.abs().sum() > 0 for p in model.parameters() if p.grad is not None)

    calibrate_batchnorm(model, x)
    model.eval()
    with torch.no_grad():
        features = model.forward_features(x)
        assert features.shape == (2, model.out_dim)
        logits = model(x)
        assert torch.equal(logits, model(x)), "eval mode is not deterministic"
        # each clip is encoded on its own: no mixing across the batch (catches B/T reshape bugs)
        scale = 1 + logits.abs().max().item()
        torch.testing.assert_close(model(x[:1]), logits[:1], rtol=1e-3, atol=1e-4 * scale)
        spread = (features[0] - features[1]).abs().max()
        assert spread > 1e-3 * features.abs().max(), "different clips gave the same features"
        try:
            tokens = model.forward_tokens(x)
        except NotImplementedError:
            tokens = None
        if tokens is not None:
            assert tokens.dim() == 3 and tokens.shape[0] == 2 and tokens.shape[2] == model.out_dim


@pytest.mark.parametrize("name", list_models())
def test_tiny_model_as_encoder(name: str) -> None:
    """Without num_classes, forward returns the pooled features of the declared width."""
    model = create_model(name, **model_entry(name).tiny).eval()
    x = tiny_input(name, batch=1)
    with torch.no_grad():
        out = model(x)
        assert out.shape == (1, model.out_dim)
        torch.testing.assert_close(out, model.forward_features(x))


def test_registry_tiny_presets_and_errors() -> None:
    names = list_models()
    assert len(names) == len(set(names)) and names == sorted(names)
    for family in ("single_frame", "late_fusion", "early_fusion", "c3d", "torchvision_video", "i3d", "nonlocal"):
        assert list_models(family=family), family
    assert set(list_models(modality="video")) <= set(names)
    for name in names:
        assert model_entry(name).description, f"{name}: builder has no docstring"
    with pytest.raises(AvkitError, match="did you mean"):
        create_model("c3dd")


def test_wrong_input_shape_is_a_clear_error() -> None:
    model = create_model("c3d", **model_entry("c3d").tiny)
    with pytest.raises(AvkitError, match=r"\[B, 3, T, H, W\]"):
        model(torch.randn(2, 8, 3, 32, 32))
    fixed = create_model("mvit_v2_s", **model_entry("mvit_v2_s").tiny)
    with pytest.raises(AvkitError, match="fixed 8x32x32"):
        fixed(torch.randn(1, 3, 8, 64, 64))
