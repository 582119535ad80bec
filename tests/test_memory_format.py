"""Channels-last conv weights: same outputs, saved checkpoints identical to contiguous ones."""
import torch

from avkit.engine.checkpoint import load_weights, save_weights
from avkit.engine.memory_format import to_channels_last
from avkit.models import create_model


def _pair(name: str, **options):
    torch.manual_seed(0)
    plain = create_model(name, num_classes=5, **options).eval()
    torch.manual_seed(0)
    fast = to_channels_last(create_model(name, num_classes=5, **options)).eval()
    return plain, fast


def test_channels_last_keeps_outputs_and_gradients():
    video = torch.randn(2, 3, 8, 32, 32)
    for name, options in [("c3d", {"width": 4, "fc_dim": None, "batch_norm": True}),
                          ("single_frame", {"backbone": "cnn", "width": 8})]:
        plain, fast = _pair(name, **options)
        conv = next(p for p in fast.parameters() if p.dim() in (4, 5))
        fmt = torch.channels_last if conv.dim() == 4 else torch.channels_last_3d
        assert conv.is_contiguous(memory_format=fmt) and not conv.is_contiguous()
        torch.testing.assert_close(fast(video), plain(video), rtol=1e-4, atol=1e-5)
        plain(video).square().sum().backward()
        fast(video).square().sum().backward()
        for (_, a), (_, b) in zip(plain.named_parameters(), fast.named_parameters()):
            torch.testing.assert_close(b.grad, a.grad, rtol=1e-3, atol=1e-5)


def test_channels_last_checkpoint_round_trip(tmp_path):
    plain, fast = _pair("c3d", width=4, fc_dim=None, batch_norm=True)
    save_weights(tmp_path / "w.safetensors", fast)
    loaded = load_weights(tmp_path / "w.safetensors")
    for key, value in plain.state_dict().items():
        assert loaded[key].is_contiguous()
        torch.testing.assert_close(loaded[key], value)
