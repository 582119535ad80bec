"""The ideas behind the visual backbones, tested: I3D inflation, temporal equivariance, non-local
blocks, late-fusion parameter growth, overfitting tiny variants, weights loading, FLOPs."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from avkit.errors import AvkitError
from avkit.models import create_model, model_entry
from avkit.models.base import image_backbone
from avkit.models.c3d import c3d
from avkit.models.i3d import i3d, inflate, resnet_time_kernels
from avkit.models.nonlocal_block import NonLocalBlock, add_nonlocal
from avkit.models.torchvision_video import r3d_18


def randomize_batchnorm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BN statistics and affine parameters, so equalities are not an accident of init."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            c = m.num_features
            m.running_mean.copy_(0.1 * torch.randn(c, generator=g))
            m.running_var.copy_(0.5 + torch.rand(c, generator=g))
            with torch.no_grad():
                m.weight.copy_(0.5 + torch.rand(c, generator=g))
                m.bias.copy_(0.1 * torch.randn(c, generator=g))
    return model


def maps_2d(resnet: nn.Module, x: torch.Tensor) -> torch.Tensor:
    n = resnet
    return n.layer4(n.layer3(n.layer2(n.layer1(n.maxpool(n.relu(n.bn1(n.conv1(x))))))))


# ---------------------------------------------------------------------------------------------- I3D


def test_i3d_reproduces_2d_network_on_constant_video(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net2d, _ = image_backbone("resnet18", width=8)
    randomize_batchnorm(net2d).eval()
    net3d = inflate(net2d, resnet_time_kernels(net2d, stem_kt=5, block_kt=3)).eval()
    image = torch.randn(2, 3, 32, 32)
    video = image.unsqueeze(2).repeat(1, 1, 6, 1, 1)  # 6 identical frames
    with torch.no_grad():
        expected = maps_2d(net2d, image)
        got = maps_2d(net3d, video)
        assert got.shape[2] == 6
        for t in range(6):  # every time step, borders included (replicate temporal padding)
            torch.testing.assert_close(got[:, :, t], expected, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(net3d(video), net2d(image), rtol=1e-4, atol=1e-5)
        # inflation really made it temporal: a moving video is not the per-frame 2D average
        moving = torch.randn(2, 3, 6, 32, 32)
        per_frame = torch.stack([net2d(moving[:, :, t]) for t in range(6)], 1).mean(1)
        assert not torch.allclose(net3d(moving), per_frame, atol=1e-3)
    # the 2D weights are repeated kt times and divided by kt
    w2, w3 = net2d.conv1.weight, net3d.conv1.weight
    assert w3.shape[2] == 5
    torch.testing.assert_close(w3.sum(dim=2), w2)
    torch.testing.assert_close(w3[:, :, 0] * 5, w2)


def test_i3d_builder_inflates_pretrained_2d_weights(tmp_path: Path) -> None:
    """i3d(weights=<resnet18 state_dict>) is the 2D network with those weights, inflated."""
    import torchvision

    torch.manual_seed(1)
    resnet = randomize_batchnorm(torchvision.models.resnet18())
    path = tmp_path / "resnet18.pth"
    torch.save(resnet.state_dict(), path)
    model = i3d(weights=str(path), stem_kt=3, num_classes=None).eval()
    resnet.fc = nn.Identity()
    resnet.eval()
    image = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(image.unsqueeze(2).repeat(1, 1, 4, 1, 1)), resnet(image),
                                   rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------------ temporal shifts


def shifted(x: torch.Tensor, k: int) -> torch.Tensor:
    """``x`` delayed by ``k`` frames; the ``k`` new first frames are fresh noise."""
    new = torch.randn_like(x[:, :, :k])
    return torch.cat([new, x[:, :, :-k]], dim=2)


@pytest.mark.parametrize("build", [
    lambda: c3d(width=4, fc_dim=None, temporal_pool=False, batch_norm=True),
    lambda: i3d(width=4, stem_kt=3, block_kt=3),
], ids=["c3d_no_temporal_pool", "i3d"])
def test_3d_conv_without_temporal_stride_is_shift_equivariant(build) -> None:
    torch.manual_seed(0)
    model = randomize_batchnorm(build()).eval()
    x = torch.randn(1, 3, 24, 16, 16)
    k = 3
    with torch.no_grad():
        a = model.forward_maps(x)
        b = model.forward_maps(shifted(x, k))
    assert a.shape[2] == 24
    radius = 9  # temporal receptive-field radius (<= 9 kt=3 convs in both models)
    inner = slice(radius + k, 24 - radius)
    torch.testing.assert_close(b[:, :, inner], a[:, :, inner.start - k:inner.stop - k], rtol=1e-4, atol=1e-5)
    # and the shift is visible: without undoing it the maps differ
    assert not torch.allclose(b[:, :, inner], a[:, :, inner], atol=1e-3)


def test_early_fusion_is_not_shift_equivariant() -> None:
    """Early fusion collapses time in its first layer: a delayed clip is a different input altogether."""
    torch.manual_seed(0)
    model = randomize_batchnorm(create_model("early_fusion", num_frames=8, backbone="cnn", width=8)).eval()
    first = model.encoder[0]  # the conv that sees all 3T channels
    x = torch.randn(1, 3, 8, 16, 16)
    xs = shifted(x, 2)
    with torch.no_grad():
        fa, fb = model(x), model(xs)
        ma = first(x.transpose(1, 2).reshape(1, 24, 16, 16))
        mb = first(xs.transpose(1, 2).reshape(1, 24, 16, 16))
    assert ma.dim() == 4  # no time axis left after the first conv: nothing to shift along
    assert (ma - mb).abs().mean() > 0.2 * ma.abs().mean()
    assert (fa - fb).abs().max() > 1e-2 * fa.abs().max()


# ---------------------------------------------------------------------------------------- non-local


def test_nonlocal_block_starts_as_identity_then_learns() -> None:
    torch.manual_seed(0)
    block = NonLocalBlock(8)
    x = torch.randn(2, 8, 4, 5, 5)
    for mode in (True, False):
        block.train(mode)
        assert torch.equal(block(x), x)
    block.train()
    opt = torch.optim.SGD(block.parameters(), lr=0.1)
    loss = F.mse_loss(block(x), torch.randn_like(x))
    loss.backward()
    opt.step()
    with torch.no_grad():
        assert not torch.allclose(block(x), x, atol=1e-4)
        block.eval()
        out = block(x)
        assert not torch.allclose(out, x, atol=1e-4)
        # non-local: changing one position changes the output at a far away position
        x2 = x.clone()
        x2[:, :, 0, 0, 0] += 3.0
        out2 = block(x2)
        assert (out2[:, :, 3, 4, 4] - out[:, :, 3, 4, 4]).abs().max() > 1e-6


def test_nonlocal_insertion_keeps_a_3d_resnet_output() -> None:
    torch.manual_seed(0)
    model = r3d_18(width=8, layers=(1, 1, 1, 1)).eval()
    randomize_batchnorm(model)
    x = torch.randn(2, 3, 8, 32, 32)
    with torch.no_grad():
        before = model(x)
        add_nonlocal(model.backbone, [2, 3])
        after = model(x)
    assert sum(isinstance(m, NonLocalBlock) for m in model.modules()) == 2
    torch.testing.assert_close(after, before, rtol=0, atol=0)
    with pytest.raises(AvkitError):
        add_nonlocal(model.backbone, [7])


# ----------------------------------------------------------------------------------- late fusion


def test_late_fusion_concat_params_grow_linearly_with_time_pool_does_not() -> None:
    def params(name: str, **kw) -> int:
        return sum(p.numel() for p in create_model(name, backbone="cnn", width=8, **kw).parameters())

    concat = [params("late_fusion_concat", num_frames=t, hidden=32) for t in (4, 8, 16)]
    assert concat[0] < concat[1] < concat[2]
    assert concat[2] - concat[1] == 2 * (concat[1] - concat[0])  # linear in T
    assert concat[1] - concat[0] == 4 * 64 * 32  # 4 more frames x D=64 features x 32 hidden units
    pool = create_model("late_fusion_pool", backbone="cnn", width=8, num_classes=3).eval()
    with torch.no_grad():  # one model, any clip length: no parameter depends on T
        assert pool(torch.randn(1, 3, 4, 32, 32)).shape == pool(torch.randn(1, 3, 16, 32, 32)).shape
    maxpool = create_model("late_fusion_pool", backbone="cnn", width=8, pool="max").eval()
    x = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(maxpool(x), maxpool.forward_tokens(x).amax(1))


# -------------------------------------------------------------------------------------- overfit


def motion_clips(n: int = 16, classes: int = 4, t: int = 8, size: int = 32, seed: int = 0):
    """A bright square moving right/left/down/up (by class) over a static per-clip noise background."""
    g = torch.Generator().manual_seed(seed)
    x = 0.3 * torch.randn(n, 3, 1, size, size, generator=g).repeat(1, 1, t, 1, 1)
    y = torch.arange(n) % classes
    steps = [(0, 2), (0, -2), (2, 0), (-2, 0)]
    for i in range(n):
        dy, dx = steps[int(y[i])]
        r0, c0 = (int(v) for v in torch.randint(8, size - 14, (2,), generator=g))
        for f in range(t):
            r, c = r0 + dy * (f - t // 2), c0 + dx * (f - t // 2)
            x[i, :, f, max(r, 0):max(r + 6, 0), max(c, 0):max(c + 6, 0)] = 2.0
    return x, y


OVERFIT = ["single_frame", "late_fusion_concat", "late_fusion_pool", "early_fusion", "c3d", "r3d_18",
           "r2plus1d_18", "i3d", "i3d_nonlocal"]


@pytest.mark.parametrize("name", OVERFIT)
def test_tiny_variant_overfits_16_clips(name: str) -> None:
    torch.manual_seed(0)
    x, y = motion_clips()
    model = create_model(name, **model_entry(name).tiny, num_classes=4)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    start, acc = time.perf_counter(), 0.0
    for step in range(100):  # noqa: B007  (read after the loop)
        model.train()
        logits = model(x)
        if (logits.argmax(1) == y).all():  # perfect in train mode: confirm with eval-mode statistics
            model.eval()
            with torch.no_grad():
                acc = (model(x).argmax(1) == y).float().mean().item()
            if acc == 1.0:
                break
            model.train()
        loss = F.cross_entropy(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert acc == 1.0, f"{name}: train accuracy {acc:.2f} after {step + 1} steps"
    print(f"{name}: 100% after {step + 1} steps, {time.perf_counter() - start:.1f}s")


# ------------------------------------------------------------------------------------ weights=


def test_torchvision_weights_from_local_file_hub_cache_and_clear_errors(tmp_path: Path, monkeypatch) -> None:
    import torchvision
    from torchvision.models.video import S3D_Weights

    torch.manual_seed(0)
    reference = torchvision.models.video.s3d()
    state = reference.state_dict()
    path = tmp_path / "s3d.pth"
    torch.save(state, path)

    def same_backbone(model: nn.Module) -> None:
        got = model.backbone.state_dict()
        for k, v in state.items():
            if k in got:
                assert torch.equal(got[k], v), k

    same_backbone(create_model("s3d", weights=str(path), num_classes=7))
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "s3d.safetensors"))
    same_backbone(create_model("s3d", weights=tmp_path / "s3d.safetensors"))

    # torchvision's own weights= path: the checkpoint is found in the torch hub cache, no download
    hub = tmp_path / "hub"
    (hub / "checkpoints").mkdir(parents=True)
    torch.save(state, hub / "checkpoints" / Path(S3D_Weights.KINETICS400_V1.url).name)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    same_backbone(create_model("s3d", weights="KINETICS400_V1"))
    same_backbone(create_model("s3d", weights=S3D_Weights.DEFAULT))

    # errors: missing file, wrong architecture, weights that cannot be fetched, unknown weights name
    with pytest.raises(AvkitError, match="not found"):
        create_model("s3d", weights=str(tmp_path / "missing.pth"))
    torch.save(image_backbone("cnn")[0].state_dict(), tmp_path / "other.pth")
    with pytest.raises(AvkitError, match="not a s3d state_dict"):
        create_model("s3d", weights=str(tmp_path / "other.pth"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "empty_hub"))

    def no_network(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    with pytest.raises(AvkitError, match="cannot load s3d weights.*checkpoints"):
        create_model("s3d", weights="DEFAULT")
    with pytest.raises(AvkitError, match="unknown weights"):
        create_model("s3d", weights="NO_SUCH_WEIGHTS")
    with pytest.raises(AvkitError, match="width=64"):
        create_model("r3d_18", weights="DEFAULT", width=8)


# --------------------------------------------------------------------------------------- FLOPs


def test_c3d_flops_match_the_lecture_and_r3d_matches_torchvision() -> None:
    from avkit.models.flops import model_cost

    c3d_cost = model_cost("c3d", (3, 16, 112, 112))
    assert 38.0 <= c3d_cost.gflops <= 40.0  # the lecture's ~39 GFLOP (multiply-adds)
    assert 75e6 < c3d_cost.params < 80e6
    # torchvision documents r3d_18 at 40.70 and r2plus1d_18 at 40.52 GFLOPS for 3x16x112x112
    assert model_cost("r3d_18", (3, 16, 112, 112)).gflops == pytest.approx(40.70, abs=0.01)
    assert model_cost("r2plus1d_18", (3, 16, 112, 112)).gflops == pytest.approx(40.52, abs=0.01)
    # a 2D network per frame is cheaper than C3D; cost grows with clip length
    sf = model_cost("single_frame", (3, 16, 112, 112)).gflops
    assert sf < c3d_cost.gflops / 3
    assert model_cost("single_frame", (3, 8, 112, 112)).gflops == pytest.approx(sf / 2, rel=1e-6)
    fixed = model_cost("mvit_v2_s", (3, 16, 112, 112))
    assert fixed.gflops is None and "fixed 16x224x224" in fixed.note and fixed.params > 30e6


def test_models_cli_table_and_json(capsys) -> None:
    import argparse

    from avkit.cli import models as cli

    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    args = parser.parse_args(["models", "--flops", "--family", "c3d", "--json"])
    assert args.func(args) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == ["c3d"] and 38 < rows[0]["gflops"] < 40
    args = parser.parse_args(["models", "--tiny", "--flops", "--family", "late_fusion"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "late_fusion_concat" in out and "late_fusion_pool" in out and "GFLOPs" in out
    with pytest.raises(AvkitError, match="--input"):
        args = parser.parse_args(["models", "--flops", "--input", "3x16"])
        cli.parse_shape("3xx")
    with pytest.raises(AvkitError, match="no models in family"):
        args = parser.parse_args(["models", "--family", "nope"])
        args.func(args)


def test_mean_pooled_late_fusion_is_single_frame_but_max_pooling_is_not():
    """Why the quickstart's pooled row uses max: mean-pooled features into a linear head compute
    exactly single-frame's mean of per-frame scores; max pooling sees more than that mean."""
    torch.manual_seed(0)
    single = create_model("single_frame", num_classes=5, backbone="cnn", width=8).eval()
    pooled = {pool: create_model("late_fusion_pool", num_classes=5, backbone="cnn", width=8, pool=pool).eval()
              for pool in ("mean", "max")}
    for model in pooled.values():
        model.load_state_dict(single.state_dict())  # same encoder and head
    x = torch.randn(3, 3, 6, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(pooled["mean"](x), single(x), atol=1e-5, rtol=1e-5)
        assert not torch.allclose(pooled["max"](x), single(x), atol=1e-4)


def test_circular_c3d_sees_a_torus():
    """With circular padding, C3D's pooled features do not change when the frames are rolled by the
    network's total spatial stride (16 px): an object across an edge is the same object. With zero
    padding they do."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, 8, 32, 32)
    rolled = torch.roll(x, shifts=(16, -16), dims=(-2, -1))
    for mode, same in (("circular", True), ("zeros", False)):
        net = c3d(width=4, fc_dim=None, batch_norm=False, padding_mode=mode).eval()
        with torch.no_grad():
            a, b = net.forward_features(x), net.forward_features(rolled)
        assert torch.allclose(a, b, atol=1e-5) is same, mode
