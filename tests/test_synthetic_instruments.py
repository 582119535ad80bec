"""``instruments`` for separation: lossless stems beside each clip, sprite boxes, duets."""
from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from avkit.data.synthetic import generate, read_manifest, read_wav, render_clip

SR = 16000
DUETS = dict(duration=1.5, duets=0.5)


def decode(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Frames uint8 [T,H,W,3] and mono audio float32 [S] of a media file (no video: empty frames)."""
    with av.open(str(path)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)] if c.streams.video else []
    with av.open(str(path)) as c:
        audio = np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(audio=0)])
    return (np.stack(frames) if frames else np.zeros(0)), audio


@pytest.fixture(scope="session")
def duet_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("duets")
    generate("instruments", out, 10, seed=4, **DUETS)
    rows = read_manifest(out)
    return out, rows, [decode(out / r["path"]) for r in rows]


def test_stems_are_lossless_and_sum_to_the_mixture(duet_data):
    out, rows, clips = duet_data
    for r, (_, mixed) in zip(rows, clips):
        sources = r["meta"]["sources"]
        assert len(sources) == (2 if r["meta"]["duet"] else 1)
        stems = []
        for src in sources:
            wave, rate = read_wav(out / src["stem"])
            assert rate == SR and (out / src["stem"]).parent == (out / r["path"]).parent  # beside the clip
            assert np.array_equal(decode(out / src["stem"])[1], wave)  # ffmpeg reads the same samples
            stems.append(wave)
        clean = render_clip("instruments", r["meta"]["index"], seed=4, **DUETS)
        assert all(np.array_equal(w, s) for w, s in zip(stems, clean.stems))  # lossless
        total = np.sum(stems, axis=0)
        assert np.allclose(total, clean.audio, atol=1e-6)
        assert np.abs(total).max() <= 0.46  # peak 0.45, plus a faint noise floor
        # The mp4's AAC audio is the same mixture, give or take the codec.
        n = len(total)
        err = mixed[:n] - total
        assert 10 * np.log10((total ** 2).sum() / (err ** 2).sum()) > 15


def test_duets_show_two_instruments_side_by_side(duet_data):
    _, rows, _ = duet_data
    duets = [r for r in rows if r["meta"]["duet"]]
    assert 2 <= len(duets) <= len(rows) - 2  # both kinds present
    for r in duets:
        a, b = r["meta"]["sources"]
        assert a["label"] == r["label"] != b["label"] and a["colour"] != b["colour"]
        assert {a["side"], b["side"]} == {"left", "right"}
        assert {a["label"], b["label"]} <= {s["label"] for s in r["segments"]}  # each source's notes
        left, right = (a, b) if a["side"] == "left" else (b, a)
        # Boxes never overlap: the left sprite ends before the right one starts, in every frame.
        assert all(lb[2] <= rb[0] for lb, rb in zip(left["box_per_frame"], right["box_per_frame"]))
        assert a["label"] in r["caption"] and b["label"] in r["caption"]


def test_boxes_hold_the_sprites_and_follow_their_loudness(duet_data):
    _, rows, clips = duet_data
    corrs = []
    for r, (frames, _) in zip(rows, clips):
        t, h, w, _ = frames.shape
        f = frames.astype(np.float32)
        bg = np.median(f.reshape(t, -1, 3), axis=1)
        mask = np.linalg.norm(f - bg[:, None, None], axis=-1) > 40
        ys, xs = np.mgrid[0:h, 0:w]
        covered = np.zeros_like(mask)
        for src in r["meta"]["sources"]:
            boxes = np.array(src["box_per_frame"])
            assert boxes.shape == (t, 4)
            assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:] <= [w, h]).all()  # inside the frame
            assert np.allclose(boxes[:, 3] - boxes[:, 1], src["length_per_frame"], atol=1e-3)  # upright sprites
            # Within 2 px: H.264 smears saturated colours by a pixel or two (half-resolution chroma).
            inside = ((xs >= boxes[:, 0, None, None] - 2) & (xs < boxes[:, 2, None, None] + 2)
                      & (ys >= boxes[:, 1, None, None] - 2) & (ys < boxes[:, 3, None, None] + 2))
            covered |= inside
            area = (mask & inside).sum(axis=(1, 2))
            box_area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
            assert (area >= 0.3 * box_area).all()  # the sprite fills its box
            loud = np.array(src["loudness_per_frame"])
            if loud.std() > 0.1:
                corrs.append(np.corrcoef(area, loud)[0, 1])
        assert (mask & ~covered).sum() <= 0.02 * mask.sum()  # nothing drawn outside the boxes
    assert len(corrs) >= 5 and np.median(corrs) > 0.8, corrs
