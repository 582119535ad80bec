"""Optical flow: direction and magnitude on a synthetic moving square, RAFT loading, stacking, caching."""
from __future__ import annotations

import os

import cv2
import numpy as np
import pytest
import torch

import avkit.flow as flow_mod
from avkit.errors import AvkitError
from avkit.flow import FlowStack, build_raft, cached_flow, compute_flow, flow_cache_path, raft_flow, stack_flow

DX, DY = 2, -1  # pixels/frame: right and up


def moving_square(t: int = 6, h: int = 64, w: int = 80, size: int = 24, dx: int = DX, dy: int = DY, seed: int = 0):
    """A smooth-textured square on a flat background moving (dx, dy) pixels per frame; frames and masks."""
    rng = np.random.default_rng(seed)
    tex = cv2.GaussianBlur(rng.uniform(0, 255, (size, size, 3)).astype(np.float32), (0, 0), 1.5)
    tex = cv2.normalize(tex, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    frames = np.full((t, h, w, 3), 90, np.uint8)
    masks = np.zeros((t, h, w), bool)
    for i in range(t):
        x0, y0 = 10 + dx * i, 30 + dy * i
        frames[i, y0:y0 + size, x0:x0 + size] = tex
        masks[i, y0 + 3:y0 + size - 3, x0 + 3:x0 + size - 3] = True  # interior, away from the edges
    return torch.from_numpy(frames), torch.from_numpy(masks)


@pytest.fixture(scope="module")
def square():
    return moving_square()


@pytest.mark.parametrize("method", ["dis", "farneback", "lk"])
def test_flow_of_moving_square_has_right_sign_and_magnitude(square, method):
    frames, masks = square
    flow = compute_flow(frames, method)
    assert flow.dtype == torch.float32 and flow.shape == (5, 2, 64, 80)
    inside = flow.permute(0, 2, 3, 1)[masks[:-1]]  # [pixels, 2]
    median = inside.median(dim=0).values
    assert abs(median[0] - DX) < 0.25, median
    assert abs(median[1] - DY) < 0.25, median


def test_flow_of_static_clip_is_zero(square):
    frames = square[0][:1].repeat(3, 1, 1, 1)
    for method in ("dis", "farneback", "lk"):
        assert compute_flow(frames, method).abs().max() < 0.05, method


def test_tvl1_needs_contrib_or_works(square):
    frames, masks = square
    if not hasattr(cv2, "optflow"):
        with pytest.raises(AvkitError, match="contrib"):
            compute_flow(frames, "tvl1")
    else:
        median = compute_flow(frames, "tvl1").permute(0, 2, 3, 1)[masks[:-1]].median(dim=0).values
        assert abs(median[0] - DX) < 0.3 and abs(median[1] - DY) < 0.3


def test_bad_input_raises(square):
    with pytest.raises(AvkitError, match="unknown flow method"):
        compute_flow(square[0], "magic")
    with pytest.raises(AvkitError, match="at least 2 frames"):
        compute_flow(square[0][:1], "dis")
    with pytest.raises(AvkitError, match="uint8"):
        compute_flow(square[0].float(), "dis")
    with pytest.raises(AvkitError, match="preset"):
        compute_flow(square[0], "dis", preset="slowest")


def test_raft_shapes_and_local_weights(tmp_path, square):
    torch.manual_seed(0)
    frames = square[0][:3, :36, :44]  # not a multiple of 8, smaller than RAFT's minimum: padded inside
    model = build_raft("small")
    out = raft_flow(frames, model, num_flow_updates=2)
    assert out.shape == (2, 2, 36, 44) and out.dtype == torch.float32 and torch.isfinite(out).all()
    path = tmp_path / "raft_small.pth"
    torch.save(model.state_dict(), path)
    loaded = build_raft("small", weights=path)
    assert torch.equal(raft_flow(frames, loaded, num_flow_updates=2), out)
    # compute_flow's "raft" goes through the same path
    assert torch.equal(compute_flow(frames, "raft", model=loaded, num_flow_updates=2), out)
    with pytest.raises(AvkitError, match="not found"):
        build_raft("small", weights=tmp_path / "missing.pth")
    torch.save({"bogus": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(AvkitError, match="state_dict"):
        build_raft("small", weights=tmp_path / "bad.pth")


def test_stack_flow_order_and_middle_fields():
    # field k has x = k, y = -k everywhere
    flow = torch.stack([torch.stack([torch.full((4, 5), float(k)), torch.full((4, 5), -float(k))]) for k in range(7)])
    stacked = stack_flow(flow, num_fields=3)
    assert stacked.shape == (6, 4, 5)
    assert stacked[:, 0, 0].tolist() == [2, -2, 3, -3, 4, -4]  # middle fields 2..4, x then y
    assert stack_flow(flow[None].repeat(2, 1, 1, 1, 1), 3).shape == (2, 6, 4, 5)
    assert stack_flow(flow, 3, subtract_mean=True).abs().max() == 0  # uniform motion is removed
    with pytest.raises(AvkitError, match="needs 9 frames"):
        stack_flow(flow, 8)


def test_flow_stack_transform(square):
    frames, _ = square
    transform = FlowStack("dis", num_fields=4, subtract_mean=False)
    out = transform(frames)
    assert out.shape == (8, 64, 80)
    assert torch.equal(out, stack_flow(compute_flow(frames, "dis"), 4))


def test_flow_cache_miss_then_hit(tmp_path, square, monkeypatch):
    frames, _ = square
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"not decoded by the cache")
    times = np.arange(6) / 30.0
    calls = []
    real = flow_mod.compute_flow
    monkeypatch.setattr(flow_mod, "compute_flow", lambda *a, **k: calls.append(a[1]) or real(*a, **k))

    first = cached_flow(video, frames, times, "farneback", winsize=11)
    path = flow_cache_path(video, times, "farneback", {"winsize": 11}, (64, 80))
    assert path.is_file() and path.parent == tmp_path
    assert path.name.startswith("clip.mp4.flow-farneback-") and path.suffix == ".npz"
    assert len(calls) == 1
    second = cached_flow(video, frames, times, "farneback", winsize=11)
    assert len(calls) == 1 and torch.equal(first, second)  # hit: loaded, not recomputed
    assert torch.allclose(first, real(frames, "farneback", winsize=11))

    cached_flow(video, frames, times + 0.5, "farneback", winsize=11)  # other frame times: miss
    cached_flow(video, frames, times, "farneback", winsize=13)  # other parameters: miss
    assert len(calls) == 3
    stat = video.stat()
    os.utime(video, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # the video changed: miss
    cached_flow(video, frames, times, "farneback", winsize=11)
    assert len(calls) == 4
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary files left

    cache_dir = tmp_path / "cache"
    cached_flow(video, frames, times, "dis", cache_dir=cache_dir)
    assert len(list(cache_dir.glob("clip.mp4.flow-dis-*.npz"))) == 1


def test_lucas_kanade_sees_an_edge_of_equal_brightness():
    """A red square on a green background of the same luma moves: colour LK follows it, grey LK is blind."""
    from avkit.flow import lucas_kanade_flow

    red, green = np.array([200.0, 0, 0]), np.array([0, 200 * 0.299 / 0.587, 0])  # equal Rec. 601 luma
    frames = np.tile(green, (4, 40, 40, 1))
    for i in range(4):
        frames[i, 12:28, 8 + 2 * i:24 + 2 * i] = red  # 2 px/frame to the right
    video = torch.from_numpy(frames).float().permute(3, 0, 1, 2)[None]  # [1, 3, T, H, W]
    edges = torch.zeros(40, 40, dtype=torch.bool)
    edges[14:26, 6:12] = edges[14:26, 20:28] = True  # around the left and right edges of frame 0
    colour = lucas_kanade_flow(video)[0, 0, 0][edges].median()
    grey = lucas_kanade_flow(video, color=False)[0, 0, 0][edges].abs().max()
    assert abs(colour - 2) < 0.5, colour
    assert grey < 1e-3, grey


def test_lucas_kanade_blur_is_an_edge_replicated_separable_gaussian():
    # The shifted-slice blur must equal the plain definition: a grouped conv2d with the Gaussian
    # taps along each axis, on an edge-replicated input.
    import torch.nn.functional as F

    from avkit.flow.lucas_kanade import _blur, _gaussian_window

    torch.manual_seed(0)
    x = torch.randn(3, 2, 13, 17)
    g = _gaussian_window(2.0, x.device, x.dtype)
    r, c = g.numel() // 2, x.shape[1]
    ref = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), g.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    ref = F.conv2d(F.pad(ref, (0, 0, r, r), mode="replicate"), g.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    torch.testing.assert_close(_blur(x, g), ref, rtol=1e-5, atol=1e-6)
    flat = torch.full((1, 1, 9, 9), 2.5)
    torch.testing.assert_close(_blur(flat, g), flat)  # the taps sum to 1 and the edges are replicated


class _ShiftMatcher(torch.nn.Module):
    """A stand-in for RAFT with its call signature: the whole-image integer shift (within +-4 px)
    that maps ``img1`` onto ``img2``, as a constant flow field. RAFT's own accuracy needs trained
    weights, which cannot be had offline (torchvision downloads them); this checks what avkit does
    around the network: the direction of the flow, which frames are paired, batching, the value
    range, padding to RAFT's sizes and cropping back, and pixel units."""

    def __init__(self) -> None:
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # raft_flow reads the device from it
        self.sizes: list[tuple[int, int]] = []

    def forward(self, img1: torch.Tensor, img2: torch.Tensor, num_flow_updates: int = 12) -> list[torch.Tensor]:
        assert img1.min() >= -1 and img1.max() <= 1  # RAFT takes [-1, 1]
        self.sizes.append(tuple(img1.shape[-2:]))
        flows = []
        for a, b in zip(img1, img2):
            shifts = [(dx, dy) for dx in range(-4, 5) for dy in range(-4, 5)]
            err = [float((torch.roll(a, (dy, dx), dims=(1, 2)) - b).abs().mean()) for dx, dy in shifts]
            dx, dy = shifts[int(np.argmin(err))]
            flows.append(torch.tensor([dx, dy], dtype=torch.float32)[:, None, None].expand(2, *a.shape[-2:]))
        return [torch.stack(flows)]


def test_raft_flow_plumbing_on_a_known_translation():
    """Each frame is the previous one moved by a known step (different for each pair): raft_flow gives
    that step, in pixels and in the right direction, for every pair across batch boundaries, at the
    input's size (see _ShiftMatcher for why this is not RAFT's accuracy)."""
    rng = np.random.default_rng(0)
    base = cv2.GaussianBlur(rng.uniform(0, 255, (60, 84, 3)).astype(np.float32), (0, 0), 2.0)
    base = cv2.normalize(base, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    steps = [(2, -1), (-3, 0), (1, 3), (0, -2), (4, 1)]  # (dx, dy) from frame t to t+1
    frames, shift = [base], np.zeros(2, int)
    for dx, dy in steps:
        shift += (dx, dy)
        frames.append(np.roll(base, (shift[1], shift[0]), axis=(0, 1)))
    net = _ShiftMatcher()
    flow = raft_flow(np.stack(frames), net, batch_size=2)
    assert flow.shape == (5, 2, 60, 84) and flow.dtype == torch.float32
    assert all(h >= 128 and w >= 128 and h % 8 == 0 and w % 8 == 0 for h, w in net.sizes)  # padded for RAFT
    assert len(net.sizes) == 3  # 5 pairs in batches of 2
    for t, (dx, dy) in enumerate(steps):
        assert torch.equal(flow[t, 0], torch.full((60, 84), float(dx))), t
        assert torch.equal(flow[t, 1], torch.full((60, 84), float(dy))), t


# -- the RAFT avkit ships (avkit.flow.raft_synthetic) -----------------------------------------------

@pytest.fixture(scope="module")
def shipped_raft():
    return build_raft("small")  # weights="shipped"


def test_shipped_raft_recovers_a_subpixel_translation(shipped_raft):
    """A smooth random texture (the scale of the training textures) moved by a known sub-pixel step
    (image content at x goes to x + d): the flow is d away from the border, to 0.15 px in the median and
    0.3 px on average. The shipped weights are far less accurate on fine texture (0.6-3 px: the model
    card and benchmarks/flow_accuracy.py); this checks the weights and avkit's wrapper together (sign,
    units, channel order, padding), which the stand-in above cannot."""
    rng = np.random.default_rng(3)
    base = cv2.GaussianBlur(rng.uniform(0, 255, (136, 144, 3)).astype(np.float32), (0, 0), 6.0)
    base = cv2.normalize(base, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    for dx, dy in [(1.5, -2.5), (-3.25, 0.75), (4.0, 3.0)]:
        moved = cv2.warpAffine(base, np.float32([[1, 0, dx], [0, 1, dy]]), (144, 136), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REFLECT)
        flow = raft_flow(np.stack([base, moved]), shipped_raft)[0, :, 12:-12, 12:-12]
        median = flow.flatten(1).median(dim=1).values
        assert abs(median[0] - dx) < 0.15 and abs(median[1] - dy) < 0.15, (dx, dy, median)
        assert (flow - torch.tensor([dx, dy]).view(2, 1, 1)).norm(dim=0).mean() < 0.3, (dx, dy)
    # the randomly initialised network is nowhere near: what is tested is the weights, not the plumbing
    random = raft_flow(np.stack([base, moved]), build_raft("small", weights=None))[0, :, 12:-12, 12:-12]
    assert (random - torch.tensor([dx, dy]).view(2, 1, 1)).norm(dim=0).mean() > 2


def test_shipped_raft_gets_the_moving_square_roughly_right(square, shipped_raft):
    """The classical methods' scene (a finely textured square moving (2, -1) px on a flat background):
    right direction and size to half a pixel in the median (DIS: 0.25)."""
    frames, masks = square
    flow = raft_flow(frames[:3], shipped_raft)
    median = flow.permute(0, 2, 3, 1)[masks[:2]].median(dim=0).values
    assert abs(median[0] - DX) < 0.5 and abs(median[1] - DY) < 0.5, median


def test_shipped_raft_errors(monkeypatch, tmp_path):
    import avkit.flow.raft as raft_mod

    with pytest.raises(AvkitError, match="raft_small only"):
        build_raft("large")
    monkeypatch.setattr(raft_mod, "SHIPPED_RAFT", tmp_path / "gone.safetensors")
    with pytest.raises(AvkitError, match="gone.safetensors: the RAFT weights shipped with avkit are missing; reinstall"):
        build_raft("small")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(AvkitError, match="bad.safetensors: unreadable RAFT weights"):
        build_raft("small", weights=bad)


def test_synthetic_pairs_flow_maps_the_first_image_onto_the_second():
    """The training data's flow is right: sampling img2 at x + flow(x) gives img1(x) (up to the frames'
    noise and the occluded pixels), and the flow with its sign flipped does not."""
    from avkit.flow.raft_synthetic import synthetic_pairs

    img1, img2, flow = synthetic_pairs(4, seed=5)
    n, _, h, w = img1.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")

    def warp(f: torch.Tensor) -> torch.Tensor:
        grid = torch.stack([(xs + f[:, 0] + 0.5) / (w / 2) - 1, (ys + f[:, 1] + 0.5) / (h / 2) - 1], dim=-1)
        return torch.nn.functional.grid_sample(img2, grid, align_corners=False)

    assert flow.abs().amax() > 2  # real motion
    right = (warp(flow) - img1).abs().median()
    assert right < 0.05  # the frames' noise is 0.02 each
    assert (warp(-flow) - img1).abs().median() > 2 * right
    assert torch.equal(synthetic_pairs(4, seed=5)[2], flow)  # deterministic in the seed


def test_raft_training_writes_loadable_half_precision_weights(tmp_path):
    from safetensors.torch import load_file

    from avkit.flow.raft_synthetic import train

    out = tmp_path / "raft.safetensors"
    result = train(2, out, batch_size=1, updates=2, log_every=100, eval_pairs=8)
    assert out.is_file() and result["epe"] > 0 and result["epe_zero"] > 1
    assert all(t.dtype == torch.float16 for t in load_file(str(out)).values())
    assert build_raft("small", weights=out) is not None
