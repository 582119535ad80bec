"""Grad-CAM over space and time, overlay videos, and class model visualisation by gradient ascent."""
from __future__ import annotations

import matplotlib.image
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from avkit.errors import AvkitError, OutputExistsError
from avkit.models import create_model, model_entry
from avkit.viz import grad_cam, overlay_cam, save_class_visualization, visualize_class, write_cam_video

T, H, W = 8, 32, 32
BLOB_T, BLOB_Y, BLOB_X = slice(4, 6), slice(18, 26), slice(4, 12)  # the one place that matters


def blob_clips(n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise clips; label 1 clips have a bright 8x8 patch in 2 consecutive frames somewhere."""
    x = 0.2 * torch.randn(n, 3, T, H, W, generator=gen)
    y = torch.randint(0, 2, (n,), generator=gen)
    for i in torch.nonzero(y).flatten().tolist():
        t0, y0, x0 = (int(torch.randint(0, k, (1,), generator=gen)) for k in (T - 1, H - 8, W - 8))
        x[i, :, t0:t0 + 2, y0:y0 + 8, x0:x0 + 8] += 1.5
    return x, y


class Tiny3D(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv3d(3, 8, 3, padding=1), nn.ReLU(inplace=True),
                                      nn.Conv3d(8, 8, 3, padding=1), nn.ReLU(inplace=True))
        self.fc = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).mean(dim=(2, 3, 4)))


@pytest.fixture(scope="module")
def trained_3d() -> Tiny3D:
    """A tiny 3D CNN trained for a few steps to say whether a bright patch appears anywhere, any time."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    model = Tiny3D()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(30):
        x, y = blob_clips(8, gen)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    opt.zero_grad(set_to_none=True)
    return model.eval()


@pytest.fixture(scope="module")
def blob_clip() -> torch.Tensor:
    x = 0.2 * torch.randn(3, T, H, W, generator=torch.Generator().manual_seed(5))
    x[:, BLOB_T, BLOB_Y, BLOB_X] += 1.5
    return x


def test_grad_cam_3d_peaks_where_and_when_the_evidence_is(trained_3d, blob_clip) -> None:
    with torch.no_grad():
        assert trained_3d(blob_clip[None]).argmax().item() == 1
    before = [p.detach().clone() for p in trained_3d.parameters()]
    cam = grad_cam(trained_3d, blob_clip, target_layer="features.2", class_idx=1)
    assert cam.shape == (T, H, W) and cam.min() >= 0 and cam.max() == pytest.approx(1.0)
    t, y, x = np.unravel_index(int(cam.argmax()), cam.shape)
    assert 3 <= t <= 6 and 16 <= y <= 27 and 2 <= x <= 13, f"peak at {(t, y, x)}"
    inside = cam[BLOB_T, BLOB_Y, BLOB_X].mean()
    mask = torch.ones_like(cam, dtype=torch.bool)
    mask[2:8, 14:30, 0:16] = False  # away from the patch and its receptive-field halo
    assert inside > 4 * cam[mask].mean()
    # frames far from the patch get little attention: time matters, not only space
    assert cam[0].max() < 0.5 * cam[BLOB_T].max()
    assert all(torch.equal(a, b) for a, b in zip(before, trained_3d.parameters()))
    assert all(p.grad is None for p in trained_3d.parameters())


def test_grad_cam_defaults_to_the_last_conv(trained_3d, blob_clip) -> None:
    torch.testing.assert_close(grad_cam(trained_3d, blob_clip, class_idx=1),
                               grad_cam(trained_3d, blob_clip, target_layer=trained_3d.features[2], class_idx=1))


class PerFrameBrightness(nn.Module):
    """A 2D network applied to every frame (frames folded into the batch): 'is there a bright patch'."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        with torch.no_grad():
            self.conv.weight.fill_(1 / 27)
            self.conv.bias.fill_(-0.5)
        self.fc = nn.Linear(4, 2)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor([[-1.0] * 4, [1.0] * 4]))
            self.fc.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        frames = x.transpose(1, 2).reshape(b * t, c, h, w)
        per_frame = F.relu(self.conv(frames)).mean(dim=(2, 3)).view(b, t, -1).mean(1)
        return self.fc(per_frame)


def test_grad_cam_2d_per_frame_maps() -> None:
    x = torch.zeros(3, T, H, W)
    x[:, 2, 4:10, 20:26] = 1.0
    cam = grad_cam(PerFrameBrightness(), x, class_idx=1)
    assert cam.shape == (T, H, W)
    assert cam[2].max() == pytest.approx(1.0)
    assert cam[[0, 1, 3, 4, 5, 6, 7]].abs().max() == 0  # no patch in those frames: nothing to see
    y, x_ = np.unravel_index(int(cam[2].argmax()), (H, W))
    assert 4 <= y < 10 and 20 <= x_ < 26


@pytest.mark.parametrize("name", ["c3d", "single_frame", "early_fusion"])
def test_grad_cam_on_registered_models(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, **model_entry(name).tiny, num_classes=3)
    cam = grad_cam(model, torch.randn(3, T, H, W))
    assert cam.shape == (T, H, W) and 0 <= cam.min() and cam.max() <= 1
    assert model.training  # the caller's mode is restored
    if name == "early_fusion":  # a 2D network over the whole clip: one map for every frame
        assert torch.equal(cam[0], cam[-1])


def test_grad_cam_errors() -> None:
    model = create_model("c3d", **model_entry("c3d").tiny, num_classes=3)
    with pytest.raises(AvkitError, match="no layer"):
        grad_cam(model, torch.randn(3, T, H, W), target_layer="nope")
    with pytest.raises(AvkitError, match="one clip"):
        grad_cam(model, torch.randn(2, 3, T, H, W))
    with pytest.raises(AvkitError, match="not used"):
        grad_cam(model, torch.randn(3, T, H, W), target_layer=nn.Conv3d(3, 3, 1))


def test_overlay_video_written_and_readable(trained_3d, blob_clip, tmp_path) -> None:
    from avkit.io import read_clip

    cam = grad_cam(trained_3d, blob_clip, class_idx=1)
    frames = torch.full((T, H, W, 3), 128, dtype=torch.uint8)
    over = overlay_cam(frames, cam, alpha=0.6)
    assert over.shape == (T, H, W, 3) and over.dtype == np.uint8
    path = write_cam_video(tmp_path / "cam.mp4", frames, cam, fps=8)
    with pytest.raises(OutputExistsError):
        write_cam_video(path, frames, cam, fps=8)
    clip = read_clip(path, audio=False)
    assert tuple(clip.frames.shape) == (T, H, W, 3)
    got = clip.frames.float()
    # jet colormap: the peak is red, cold places are blue (lossy video: compare channels, not values)
    hot = got[4, 20:24, 6:10].mean(dim=(0, 1))
    cold = got[0, 2:6, 26:30].mean(dim=(0, 1))
    assert hot[0] > hot[2] + 40 and cold[2] > cold[0] + 40
    # a float model clip [3, T, H, W] is accepted as the frames too
    assert overlay_cam(blob_clip, cam).shape == (T, H, W, 3)


def test_class_visualization_appearance_increases_the_score(trained_3d, tmp_path) -> None:
    vis = visualize_class(trained_3d, 1, (3, T, H, W), steps=30, lr=0.05)
    assert vis.final_score > vis.start_score + 1.0
    assert len(vis.scores) == 31 and vis.input.shape == (3, T, H, W)
    paths = save_class_visualization(vis, tmp_path, name="blob")
    assert paths[0].name == "blob.png" and len(paths) == 1 + T
    img = matplotlib.image.imread(paths[0])
    assert img.shape[0] == H and img.shape[1] == T * (W + 2) - 2
    assert img[..., :3].std() > 0.01  # not a blank image
    with pytest.raises(OutputExistsError):
        save_class_visualization(vis, tmp_path, name="blob")


def test_class_visualization_regularisers_do_their_job(trained_3d) -> None:
    """Temporal smoothness removes frame-to-frame change; L2 keeps the input small (from the same noisy start)."""
    shape = (3, 8, 16, 16)  # the network is fully convolutional: a smaller input is quicker
    init = 0.5 * torch.randn(shape, generator=torch.Generator().manual_seed(1))
    def run(l2: float, smooth: float):
        return visualize_class(trained_3d, 1, shape, steps=15, l2=l2, smooth=smooth, init=init)

    free, slow, small = run(0.0, 0.0), run(0.0, 100.0), run(300.0, 0.0)
    motion = lambda v: (v.input[:, 1:] - v.input[:, :-1]).pow(2).mean()  # noqa: E731
    assert motion(slow) < 0.3 * motion(free)
    assert small.input.pow(2).mean() < 0.5 * free.input.pow(2).mean()
    assert free.final_score > slow.final_score  # the regularisers cost some class score


def test_class_visualization_of_a_two_stream_temporal_stream(tmp_path) -> None:
    torch.manual_seed(0)
    model = create_model("two_stream", **model_entry("two_stream").tiny, num_classes=3)
    fields = model.flow_fields
    vis = visualize_class(model, 2, (2 * fields, H, W), kind="flow", steps=15, lr=0.5,
                          forward=lambda f: model.temporal_head(model.temporal(f)))
    assert vis.final_score > vis.start_score + 0.5
    assert all(b > a for a, b in zip(vis.scores[::5], vis.scores[5::5]))
    assert model.training
    (path,) = save_class_visualization(vis, tmp_path)
    assert path.name == "class2_flow.png"
    img = matplotlib.image.imread(path)
    assert img.shape[:2] == (3 * H + 4, fields * (W + 2) - 2)  # rows: x, y, colour-coded flow
    with pytest.raises(AvkitError, match="2L"):
        visualize_class(model, 0, (3, H, W), kind="flow")
