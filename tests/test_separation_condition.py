"""``condition: scene``: the separation U-Net's coarsest level modulated by what the picture holds.

It starts as the unconditioned network (so it can take a trained one's weights unchanged), a source's
mask then depends on the other sources' pictures (the only way two instruments on the same notes can
be told apart), padding sources do not count, and the array API conditions on every source's picture
whatever their order.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from avkit.apps.separation.inference import Separator
from avkit.apps.separation.model import NetConfig, SeparationNet
from avkit.apps.separation.options import SeparationOptions
from avkit.apps.separation.stft import STFTConfig
from avkit.errors import AvkitError

STFT = STFTConfig(sample_rate=8000, n_fft=254, hop=64, freq_bins=64)


def _net(condition: str, seed: int = 0) -> SeparationNet:
    torch.manual_seed(seed)
    cfg = NetConfig(channels=8, unet_width=4, unet_depth=3, visual_width=4, visual="motion", condition=condition)
    return SeparationNet(cfg, STFT).eval()


def _inputs(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    log_mag = torch.randn(2, 1, 64, 40, generator=g)
    frames = torch.randint(0, 256, (2, 2, 5, 3, 16, 16), generator=g, dtype=torch.uint8)
    return log_mag, frames


def _stir(net: SeparationNet) -> None:
    """Give the FiLM layer weights as training would (it starts at zero)."""
    film = net.audio_net.film
    assert film is not None
    with torch.no_grad():
        film.weight.normal_(0, 2.0, generator=torch.Generator().manual_seed(5))
        film.bias.normal_(0, 0.5, generator=torch.Generator().manual_seed(6))


def test_it_starts_as_the_unconditioned_network_and_takes_its_weights() -> None:
    plain, cond = _net("none"), _net("scene", seed=3)
    missing, unexpected = cond.load_state_dict(plain.state_dict(), strict=False)
    assert set(missing) == {"audio_net.film.weight", "audio_net.film.bias"} and not unexpected
    log_mag, frames = _inputs()
    with torch.no_grad():
        assert torch.equal(cond(log_mag, frames), plain(log_mag, frames))


def test_a_source_mask_depends_on_the_other_sources_picture() -> None:
    log_mag, frames = _inputs()
    other = frames.clone()
    other[:, 1] = 255 - other[:, 1]  # only source 1's picture changes
    for condition, changes in (("none", False), ("scene", True)):
        net = _net(condition)
        if condition == "scene":
            _stir(net)
        with torch.no_grad():
            a, b = net(log_mag, frames), net(log_mag, other)
        assert torch.equal(a[:, 0], b[:, 0]) != changes, condition


def test_padding_sources_are_not_in_the_scene() -> None:
    visual = torch.tensor([[[0.1, 0.9], [0.7, 0.2], [1.0, 1.0]]])  # [B=1, N=3, K=2]; the third is padding
    valid = torch.tensor([[True, True, False]])
    assert torch.equal(SeparationNet.scene(visual, valid), torch.tensor([[0.7, 0.9]]))
    over_time = visual[:, :, None].expand(1, 3, 4, 2)  # [B, N, T', K]
    assert torch.equal(SeparationNet.scene(over_time, valid), torch.tensor([[0.7, 0.9]]))
    net = _net("scene")
    _stir(net)
    log_mag, frames = _inputs()
    padded = torch.cat([frames, torch.zeros_like(frames[:, :1])], dim=1)  # a third, black, padding source
    with torch.no_grad():
        two = net(log_mag, frames)
        three = net(log_mag, padded, torch.tensor([[True, True, False]] * 2))
    assert torch.allclose(three[:, :2], two, atol=1e-5)


def test_separate_conditions_on_every_source_whatever_the_order() -> None:
    net = _net("scene")
    _stir(net)
    sep = Separator(net, SeparationOptions(stft=STFT, channels=8, visual="motion", image_size=16), torch.device("cpu"))
    rng = np.random.default_rng(0)
    mixture = rng.standard_normal(8000).astype(np.float32) * 0.1
    a = rng.integers(0, 256, (8, 16, 16, 3), dtype=np.uint8)
    b = (255 - a) // 2
    ab = sep.separate_clips(mixture, [a, b], fps=8.0)
    ba = sep.separate_clips(mixture, [b, a], fps=8.0)
    np.testing.assert_allclose(ab, ba[::-1], atol=1e-5)


def test_scene_needs_pictures() -> None:
    with pytest.raises(AvkitError, match="condition: scene needs pictures"):
        NetConfig(visual="none", condition="scene")
    with pytest.raises(AvkitError, match="condition must be"):
        NetConfig(condition="everything")
