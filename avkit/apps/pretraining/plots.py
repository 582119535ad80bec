"""The reconstruction figure: for a few validation clips, the masked input, the reconstruction and
the original, for the frames and the spectrogram (matplotlib object API on Agg, written atomically)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from avkit.engine.report import new_figure, save_figure

COLUMNS = ("masked input", "reconstruction", "original")


def frame_strip(clip: np.ndarray) -> np.ndarray:
    """``float [T, H, W, 3]`` in 0-1 -> the frames side by side ``[H, T * (W + 1), 3]`` (a white line between)."""
    t, h, w, _ = clip.shape
    strip = np.ones((h, t * (w + 1) - 1, 3), dtype=np.float32)
    for i in range(t):
        strip[:, i * (w + 1):i * (w + 1) + w] = clip[i]
    return strip


def plot_reconstructions(clips: Sequence[Mapping[str, np.ndarray]], path: str | Path, title: str = "") -> Path:
    """One row per clip and modality. ``clips[i]`` holds ``video_masked``, ``video_recon``, ``video``
    (``float [T, H, W, 3]`` in 0-1) and/or ``audio_masked``, ``audio_recon``, ``audio`` (``[F, T]``
    spectrograms; hidden patches NaN in the masked one, drawn blank)."""
    rows = [(i, m) for i, clip in enumerate(clips) for m in ("video", "audio") if m in clip]
    fig = new_figure(10.0, 1.2 + 1.3 * len(rows), dpi=100)
    for r, (i, m) in enumerate(rows):
        clip = clips[i]
        keys = (f"{m}_masked", f"{m}_recon", m)
        lo = float(np.nanmin(clip[m])) if m == "audio" else 0.0
        hi = float(np.nanmax(clip[m])) if m == "audio" else 1.0
        for c, key in enumerate(keys):
            ax = fig.add_subplot(len(rows), 3, r * 3 + c + 1)
            if m == "video":
                ax.imshow(np.clip(frame_strip(clip[key]), 0, 1), interpolation="nearest")
            else:
                ax.imshow(clip[key], origin="lower", aspect="auto", cmap="magma", vmin=lo, vmax=hi,
                          interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(COLUMNS[c], fontsize=9)
            if c == 0:
                ax.set_ylabel(f"clip {i + 1}\n{'frames' if m == 'video' else 'log-mel'}", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, Path(path))
