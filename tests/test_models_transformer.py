"""Video transformer (joint/divided attention, tokens, positions) and the Hugging Face wrappers."""
from __future__ import annotations

import pytest
import torch
from model_helpers import motion_clips, overfit, tiny

from avkit.errors import AvkitError
from avkit.models import create_model
from avkit.models.video_transformer import Block


@pytest.fixture(scope="module")
def clip():
    torch.manual_seed(1)
    return torch.randn(2, 3, 8, 32, 32)


@pytest.mark.parametrize("attention", ["joint", "divided"])
@pytest.mark.parametrize("pool", ["cls", "mean"])
def test_token_count_and_pooling(clip, attention, pool):
    model = tiny("video_transformer", attention=attention, pool=pool)
    with torch.no_grad():
        tokens = model.forward_tokens(clip)
        everything = model.encode(clip)
        features = model.forward_features(clip)
    n = (8 // 2) * (32 // 8) * (32 // 8)
    assert tokens.shape == (2, n, model.out_dim)
    assert everything.shape[1] == n + (pool == "cls")
    assert torch.allclose(features, everything[:, 0] if pool == "cls" else tokens.mean(1))


def test_divided_attention_factorises_time_and_space():
    torch.manual_seed(0)
    t, s, d = 3, 4, 8
    block = Block(d, 2, attention="divided").eval()
    block.mlp[-2].weight.data.zero_()  # isolate the attention paths
    block.mlp[-2].bias.data.zero_()
    x = torch.randn(1, t * s, d)
    poked = x.clone()
    poked[0, 0] += torch.randn(d)  # token (time 0, position 0); not a constant, which LayerNorm removes

    def changed():
        with torch.no_grad():
            return ((block(x, (t, s), False) - block(poked, (t, s), False)).abs().sum(-1) > 1e-6).view(t, s)

    block.attn.proj.weight.data.zero_()  # no space attention: only position 0 at every time changes
    assert changed().tolist() == [[True, False, False, False]] * t
    torch.manual_seed(0)
    block.attn.proj.weight.data.normal_()
    block.attn_time.proj.weight.data.zero_()  # no time attention: only frame 0 changes
    assert changed().tolist() == [[True] * s] + [[False] * s] * (t - 1)


@pytest.mark.parametrize("attention", ["joint", "divided"])
def test_time_order_matters_only_through_temporal_position(attention):
    torch.manual_seed(2)
    clip = torch.randn(1, 3, 4, 16, 16)
    perm = torch.tensor([2, 0, 3, 1])
    kwargs = {"num_frames": 4, "image_size": 16, "tubelet_size": 1, "attention": attention, "pool": "mean"}
    with torch.no_grad():
        model = tiny("video_transformer", **kwargs)
        assert not torch.allclose(model(clip), model(clip[:, :, perm]), atol=1e-4)
        bag = tiny("video_transformer", temporal_pos=False, **kwargs)
        assert torch.allclose(bag(clip), bag(clip[:, :, perm]), atol=1e-5)  # a bag of frames


def test_other_clip_sizes_interpolate_positions():
    model = tiny("video_transformer")
    with torch.no_grad():
        assert model.forward_tokens(torch.randn(1, 3, 4, 48, 48)).shape == (1, 2 * 6 * 6, 32)
    with pytest.raises(AvkitError, match="multiples"):
        model(torch.randn(1, 3, 5, 32, 32))


def test_tiny_video_transformer_overfits_motion():
    videos, labels = motion_clips()
    model = tiny("video_transformer", num_classes=4, image_size=16)
    assert overfit(model, videos, labels, lr=2e-3) is not None


HF = ["hf_videomae", "hf_timesformer", "hf_vivit"]


@pytest.mark.parametrize("name", HF)
def test_hf_input_layout_and_tokens(clip, name):
    model = tiny(name, num_classes=3)
    with torch.no_grad():
        direct = model.model(pixel_values=clip.permute(0, 2, 1, 3, 4)).last_hidden_state
        tokens = model.forward_tokens(clip)
        assert model(clip).shape == (2, 3)
    assert torch.equal(tokens, direct[:, 1:] if model.has_cls else direct)
    per_frame_tokens = 8 if name == "hf_timesformer" else 4  # TimeSformer patches every frame
    assert tokens.shape == (2, per_frame_tokens * 16, model.out_dim)
    with pytest.raises(AvkitError, match="built for clips of 8 frames"):
        model(clip[:, :, :4])


@pytest.mark.parametrize("name", HF)
def test_hf_save_pretrained_round_trip(tmp_path, clip, name):
    model = tiny(name)
    model.save_pretrained(tmp_path / name)
    loaded = create_model(name, pretrained=tmp_path / name).eval()
    with torch.no_grad():
        assert torch.equal(model.forward_features(clip), loaded.forward_features(clip))
    with pytest.raises(AvkitError, match="no config.json"):
        create_model(name, pretrained=tmp_path / "missing")


@pytest.mark.parametrize("name", HF)
def test_tiny_hf_models_overfit_motion(name):
    videos, labels = motion_clips()
    model = tiny(name, num_classes=4, image_size=16)
    assert overfit(model, videos, labels, lr=2e-3) is not None
