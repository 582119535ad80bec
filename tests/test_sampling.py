"""Clip samplers: coverage, bounds, strides, padding, VFR snapping, determinism."""
from __future__ import annotations

import numpy as np
import pytest

from avkit.data.sampling import ClipWindow, clip_at, multi_view, random_clip, sliding_windows, uniform_clips
from avkit.errors import AvkitError


def test_clip_times_are_spaced_at_fps():
    w = clip_at(1.0, duration=10.0, num_frames=8, fps=5)
    assert isinstance(w, ClipWindow)
    assert w.times.dtype == np.float64 and w.times.shape == (8,)
    np.testing.assert_allclose(w.times, 1.0 + np.arange(8) / 5)
    assert w.start == 1.0 and w.end == pytest.approx(1.0 + 8 / 5)


def test_uniform_clips_cover_video_evenly():
    dur, n, fps = 10.0, 8, 4  # a clip spans 2 s
    clips = uniform_clips(dur, n, fps, num_clips=5)
    starts = np.array([c.start for c in clips])
    assert starts[0] == pytest.approx(0.0)
    assert clips[-1].end == pytest.approx(dur)
    np.testing.assert_allclose(np.diff(starts), 2.0)  # (10 - 2) / 4 equal gaps
    # Every time inside the video is covered by some clip, and every sample lies inside.
    grid = np.linspace(0, dur - 1e-6, 200)
    assert all(any(c.start <= g < c.end for c in clips) for g in grid)
    assert all(((c.times >= 0) & (c.times < dur)).all() for c in clips)


def test_single_uniform_clip_is_centred():
    (c,) = uniform_clips(10.0, 8, 4, num_clips=1)
    assert (c.start + c.end) / 2 == pytest.approx(5.0)


def test_random_clips_stay_inside_and_are_deterministic():
    dur = 3.0
    rng = np.random.default_rng(0)
    starts = []
    for _ in range(200):
        c = random_clip(dur, 8, 5, rng)
        assert c.start >= 0 and c.end <= dur + 1e-9
        assert (c.times < dur).all() and (np.diff(c.times) > 0).all()
        starts.append(c.start)
    # Starts spread over the whole slack [0, 3 - 1.6].
    assert min(starts) < 0.1 and max(starts) > 1.3
    a = [random_clip(dur, 8, 5, np.random.default_rng(7)).start for _ in range(3)]
    assert a[0] == a[1] == a[2]
    assert random_clip(dur, 8, 5, 7).start == a[0]  # an int seed means the same generator
    assert random_clip(dur, 8, 5, 8).start != a[0]


def test_sliding_windows_stride_and_tail():
    ws = sliding_windows(10.0, 8, 4, stride=1.5)  # span 2 s
    starts = [w.start for w in ws]
    np.testing.assert_allclose(starts[:-1], np.arange(len(starts) - 1) * 1.5)
    assert starts[-2] + 2.0 <= 10.0  # full windows fit
    # 0, 1.5, ..., 7.5 are full (7.5 + 2 = 9.5 < 10), so one padded tail window at 9.0 covers the rest.
    assert starts[-1] == pytest.approx(9.0)
    assert (ws[-1].times < 10.0).all()
    no_tail = sliding_windows(10.0, 8, 4, stride=1.5, drop_last=True)
    assert len(no_tail) == len(ws) - 1
    exact = sliding_windows(8.0, 8, 4)  # default stride = span, fits exactly: no tail
    assert [w.start for w in exact] == pytest.approx([0.0, 2.0, 4.0, 6.0])


def test_repeat_padding_when_video_shorter_than_clip():
    c = random_clip(1.0, 8, 4, np.random.default_rng(0), pad="repeat")  # clip 2 s, video 1 s
    assert c.start == 0.0
    np.testing.assert_allclose(c.times, [0, 0.25, 0.5, 0.75, 0.75, 0.75, 0.75, 0.75])


def test_loop_padding_wraps_to_start():
    c = clip_at(0.0, 1.0, 8, 4, pad="loop")
    np.testing.assert_allclose(c.times, [0, 0.25, 0.5, 0.75, 0, 0.25, 0.5, 0.75])
    c = clip_at(0.5, 1.0, 4, 4, pad="loop")  # starts late: wraps after 0.75
    np.testing.assert_allclose(c.times, [0.5, 0.75, 0.0, 0.25])


def test_short_video_uniform_clips_all_start_at_zero_and_pad():
    clips = uniform_clips(0.5, 8, 4, num_clips=3)
    assert all(c.start == 0.0 for c in clips)
    assert all((c.times < 0.5).all() for c in clips)


def test_frame_times_snap_to_shown_frames_vfr():
    # Variable frame rate: frames at irregular times, first frame not at 0.
    ft = np.array([0.1, 0.2, 0.25, 0.7, 0.8, 1.5, 1.6])
    c = clip_at(0.1, 2.0, 5, 2, frame_times=ft)  # wanted times 0.1, 0.6, 1.1, 1.6, 2.1 (past end)
    np.testing.assert_allclose(c.times, [0.1, 0.25, 0.8, 1.6, 1.6])
    assert set(c.times) <= set(ft)
    for w in uniform_clips(2.0, 4, 4, 3, frame_times=ft):
        assert w.start >= 0.1 and set(w.times) <= set(ft)


def test_multi_view_is_clips_times_crops():
    views = multi_view(10.0, 8, 4, num_clips=4, num_crops=3)
    assert len(views) == 12
    assert [(v.clip_index, v.crop_index) for v in views[:4]] == [(0, 0), (0, 1), (0, 2), (1, 0)]
    assert views[0].window.start == views[2].window.start != views[3].window.start


@pytest.mark.parametrize("kwargs", [dict(duration=0.0), dict(duration=float("nan")), dict(num_frames=0),
                                    dict(fps=0), dict(pad="zeros")])
def test_bad_arguments_raise(kwargs):
    args = dict(duration=5.0, num_frames=8, fps=4, pad="repeat") | kwargs
    with pytest.raises(AvkitError):
        random_clip(args["duration"], args["num_frames"], args["fps"], 0, pad=args["pad"])
