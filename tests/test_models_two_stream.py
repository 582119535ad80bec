"""Two-stream network: flow input interface, fusion, stream separation, RAFT path, overfitting."""
from __future__ import annotations

import pytest
import torch
from model_helpers import motion_clips, overfit
from model_helpers import tiny as tiny_model

from avkit.errors import AvkitError
from avkit.flow import FlowStack, build_raft, lucas_kanade_flow, stack_flow


def tiny(**options):
    return tiny_model("two_stream", **options)


@pytest.fixture(scope="module")
def clips():
    return motion_clips()


def test_on_the_fly_flow_is_stacked_lucas_kanade(clips):
    videos = clips[0][:2]
    model = tiny(num_classes=4)
    flow = model.compute_flow(videos)
    assert flow.shape == (2, 8, 16, 16)  # 2L channels, L = 4 middle fields of 8 frames
    expected = stack_flow(lucas_kanade_flow(videos[:, :, 1:6]), 4, subtract_mean=True)
    assert torch.allclose(flow, expected)
    with torch.no_grad():
        assert torch.equal(model(videos), model(videos, flow=flow))


def test_average_and_concat_fusion(clips):
    videos = clips[0][:2]
    model = tiny(num_classes=4)
    with torch.no_grad():
        spatial, temporal = model.stream_logits(videos)
        assert torch.allclose(model(videos), (spatial + temporal) / 2)
        assert model.forward_features(videos).shape == (2, model.out_dim)
    concat = tiny(num_classes=4, fusion="concat")
    with torch.no_grad():
        features = concat.forward_features(videos)
        assert torch.allclose(concat(videos), concat.head(features))
    assert tiny().out_dim == model.out_dim == 2 * 64  # no classes: pooled features from both streams
    with pytest.raises(AvkitError, match="fusion"):
        tiny(fusion="max")


def test_streams_see_appearance_and_motion_separately(clips):
    videos = clips[0][:2]
    model = tiny(num_classes=4)
    flow = model.compute_flow(videos)
    with torch.no_grad():
        s1, t1 = model.stream_logits(videos, flow)
        s2, t2 = model.stream_logits(videos, -flow)  # opposite motion, same frames
        s3, t3 = model.stream_logits(videos.flip(2), flow)  # frames reversed, same flow
    assert torch.equal(s1, s2) and not torch.allclose(t1, t2)
    assert torch.allclose(s1, s3, atol=1e-5) and torch.equal(t1, t3)  # spatial stream averages frames


def test_dataset_flow_plugs_in(clips):
    frames = (clips[0][0].permute(1, 2, 3, 0) * 255).to(torch.uint8)  # [T, H, W, 3]
    flow = FlowStack("dis", num_fields=4)(frames)
    model = tiny(num_classes=4)
    with torch.no_grad():
        assert model(clips[0][:1], flow=flow[None]).shape == (1, 4)


def test_bad_flow_or_clip_raises(clips):
    model = tiny(num_classes=4)
    with pytest.raises(AvkitError, match=r"stacked \[B, 2L, H, W\]"):
        model(clips[0][:2], flow=torch.zeros(2, 6, 16, 16))
    with pytest.raises(AvkitError, match="needs T >= 5"):
        model(clips[0][:2, :, :4])


def test_raft_on_the_fly(tmp_path, clips):
    torch.manual_seed(0)
    path = tmp_path / "raft.pth"
    torch.save(build_raft("small").state_dict(), path)
    model = tiny(num_classes=4, flow_fields=2, flow_method="raft", raft_weights=path, raft_updates=2)
    model.train()
    assert not model.raft.training and not any(p.requires_grad for p in model.raft.parameters())
    videos = clips[0][:2, :, :3]
    flow = model.compute_flow(videos)
    assert flow.shape == (2, 4, 16, 16) and torch.isfinite(flow).all()
    model(videos).sum().backward()


def test_tiny_two_stream_overfits_motion(clips):
    videos, labels = clips
    model = tiny(num_classes=4)
    flow = model.compute_flow(videos)  # precomputed once, as a dataset would
    assert overfit(model, videos, labels, flow=flow) is not None
