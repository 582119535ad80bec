"""The motion generator's sound pair (``sound_pair``): ``still_low`` and ``still_high`` look the same
(the same drawing for the same random stream, and still) and differ only by their tone, so only a
model that hears can tell them apart (the quickstart's "sound classes")."""
from __future__ import annotations

import numpy as np

from avkit.data.synthetic.motion import SOUND_CLASSES, MotionConfig, classes, render


def _peak_hz(audio: np.ndarray, sample_rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(audio))
    return float(np.fft.rfftfreq(len(audio), 1 / sample_rate)[int(spectrum.argmax())])


def test_the_pair_looks_the_same_and_sounds_different() -> None:
    cfg = MotionConfig(sound_pair=True)
    for seed in range(3):
        low = render(cfg, "still_low", np.random.default_rng(seed))
        high = render(cfg, "still_high", np.random.default_rng(seed))
        assert np.array_equal(low.frames, high.frames)  # nothing to see between them
        assert all(np.array_equal(f, low.frames[0]) for f in low.frames)  # still
        assert low.meta["shape"] in cfg.shapes
        assert abs(_peak_hz(low.audio, cfg.sample_rate) - 330) < 2
        assert abs(_peak_hz(high.audio, cfg.sample_rate) - 990) < 2
        assert low.caption.endswith("with a steady low tone.") and high.caption.endswith("with a steady high tone.")


def test_the_pair_is_a_group_of_its_own_and_off_by_default() -> None:
    on = classes(MotionConfig(sound_pair=True))
    assert [(c.name, c.group) for c in on if c.group == "sound"] == [(n, "sound") for n in SOUND_CLASSES]
    assert [c.name for c in classes(MotionConfig())] == [c.name for c in on if c.group != "sound"]
