"""CNN+LSTM (many-to-one, many-to-many, causality) and ConvGRU/ConvLSTM (spatial recurrence)."""
from __future__ import annotations

import pytest
import torch
from model_helpers import motion_clips, overfit, tiny

from avkit.errors import AvkitError
from avkit.models.conv_recurrent import ConvGRUCell, ConvLSTMCell


@pytest.fixture(scope="module")
def clips():
    return motion_clips()


def test_many_to_many_outputs_per_frame(clips):
    videos = clips[0][:2]
    model = tiny("cnn_lstm", num_classes=5, per_frame=True)
    with torch.no_grad():
        out = model(videos)
        steps = model.forward_tokens(videos)
    assert out.shape == (2, 8, 5)
    assert torch.allclose(out, model.head(steps))
    one = tiny("cnn_lstm", num_classes=5)  # many-to-one reads the last step
    with torch.no_grad():
        assert torch.allclose(one(videos), one.head(one.forward_tokens(videos)[:, -1]))
        assert torch.allclose(one.forward_features(videos), steps[:, -1])  # same seed, same weights


@pytest.mark.parametrize("chunk", [1, 2])
def test_lstm_is_causal(clips, chunk):
    videos = clips[0][:2]
    model = tiny("cnn_lstm", num_classes=5, per_frame=True, chunk=chunk)
    changed = videos.clone()
    changed[:, :, 4] = torch.rand_like(changed[:, :, 4])  # frame 4 (chunk 2 when chunk=2)
    with torch.no_grad():
        a, b = model(videos), model(changed)
    first = 4 // chunk
    assert a.shape[1] == 8 // chunk
    assert torch.equal(a[:, :first], b[:, :first])  # earlier outputs cannot see the future
    assert (a[:, first:] - b[:, first:]).abs().amax(dim=(0, 2)).min() > 1e-6  # later ones all change


def test_chunk_must_divide_clip(clips):
    with pytest.raises(AvkitError, match="multiple of chunk"):
        tiny("cnn_lstm", chunk=3)(clips[0][:2])


def test_conv_gru_hidden_maps(clips):
    model = tiny("conv_gru", num_classes=4)
    states = model.hidden_states(clips[0][:2])
    assert [tuple(s.shape) for s in states] == [(2, 8, 8, 8), (2, 16, 4, 4)]  # stem /2, then layer 2 /2
    assert model.forward_tokens(clips[0][:2]).shape == (2, 16, 16)
    assert torch.allclose(model.forward_features(clips[0][:2]), states[-1].mean(dim=(2, 3)))


@pytest.mark.parametrize("cell_cls", [ConvGRUCell, ConvLSTMCell])
def test_cell_update_is_a_spatial_convolution(cell_cls):
    torch.manual_seed(0)
    cell = cell_cls(3, 4, kernel_size=3)
    x = torch.randn(1, 3, 12, 12)
    poked = x.clone()
    poked[0, :, 6, 6] += 1.0

    def run(inputs, steps):
        state = None
        for _ in range(steps):
            state = cell(inputs, state)
        return state if cell_cls is ConvGRUCell else state[0]

    with torch.no_grad():
        diff = (run(x, 1) - run(poked, 1)).abs()[0].sum(0)
        assert diff[6, 7] > 0 and diff[7, 7] > 0  # neighbours see the poked pixel through the 3x3 conv
        assert diff[6, 9] == 0 and diff[2, 6] == 0  # beyond the kernel: untouched
        # A second step spreads further, through the hidden-to-hidden convolutions (GRU: gate conv,
        # then candidate conv on r*h, so up to 3 pixels; LSTM: 2), but stays local.
        diff2 = (run(x, 2) - run(poked, 2)).abs()[0].sum(0)
        assert diff2[6, 8] > 0 and diff2[6, 10] == 0 and diff2[6, 2] == 0


def test_layers_take_previous_layer_current_state(clips):
    model = tiny("conv_gru")
    videos = clips[0][:2]
    changed = videos.clone()
    changed[:, :, -1] = 0  # only the last frame
    with torch.no_grad():
        a, b = model.hidden_states(videos), model.hidden_states(changed)
    assert not torch.allclose(a[0], b[0]) and not torch.allclose(a[1], b[1])  # reaches the top layer at once


@pytest.mark.parametrize("name", ["cnn_lstm", "conv_gru", "conv_lstm"])
def test_tiny_recurrent_models_overfit_motion(clips, name):
    model = tiny(name, num_classes=4)
    assert overfit(model, *clips) is not None
