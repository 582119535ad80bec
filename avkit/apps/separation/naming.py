"""Which instrument a source's picture shows: a small video classifier beside the separator.

The shipped separator separates two or more *different* instruments by their timbres
(:mod:`avkit.apps.separation.timbre`) once it knows which they are; this names them from the pictures.
It is an ordinary avkit classification run (``recipes/separation_instrument_names.yaml``, a single-frame CNN
trained on pictures cut from gm_instruments clips by :func:`write_naming_crops`), shipped in
``assets/separation/instrument_names/``.

A source found in a video (``--regions auto``) is the part of the picture that makes the sound, often a
small part of the instrument; the namer sees :func:`naming_box` around it, the same cut it was trained on.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from avkit.errors import AvkitError, OutputExistsError

NAMING_SIDE = 0.5  # the namer's picture of a source spans at least this share of each side of the frame
CONFIDENT = 0.8  # a name counts at this probability: with the unheard rule, no kind of validation item separates
# worse than at 0.9, and mixtures and two-instrument duets better (benchmarks/separation_unheard.py, docs/separation.md)


class InstrumentNamer:
    """A trained classification run that names the instrument in a picture (see the module docstring)."""

    def __init__(self, net: torch.nn.Module, config: Any, names: list[str], run_dir: Path | None = None) -> None:
        self.net, self.config, self.names, self.run_dir = net, config, names, run_dir

    @classmethod
    def from_run(cls, run: Any, device: str | torch.device | None = None) -> InstrumentNamer:
        """The classifier of ``run`` (:class:`~avkit.engine.checkpoint.RunFiles`), in eval mode on ``device``."""
        from avkit.engine.evaluate import classifier_from_run

        net, config, names = classifier_from_run(run, device)
        if config.model.audio:
            raise AvkitError(f"{run.run_dir}: names instruments from sound too (model.audio: {config.model.audio}); "
                             "the instrument namer must be a video-only classification run")
        return cls(net, config, names, run.run_dir)

    @torch.no_grad()
    def name(self, pictures: Sequence[np.ndarray]) -> list[tuple[str, float]]:
        """The most likely instrument of each picture (uint8 ``[T, H, W, 3]``) and its probability."""
        from avkit.apps.separation.inference import short_side
        from avkit.engine.build import clip_transform, short_side_of
        from avkit.engine.step import forward_batch

        data = self.config.data
        transform = clip_transform(data, train=False)
        clips = []
        for frames in pictures:
            pick = np.linspace(0, len(frames) - 1, data.num_frames).round().astype(int)
            clip = torch.from_numpy(np.ascontiguousarray(frames[pick]))
            # resized here, so the transform's own resize (torchvision: 1-2 s to import) has nothing to do
            clips.append(transform(short_side(clip, short_side_of(data))))
        device = next(self.net.parameters()).device
        probs = forward_batch(self.net, {"video": torch.stack(clips).to(device)}).float().softmax(-1).cpu()
        best = probs.max(-1)
        return [(self.names[int(i)], float(p)) for p, i in zip(best.values, best.indices)]


def timbre_refusals(named: Sequence[tuple[str, float]]) -> list[str]:
    """Why the sources the namer named ``named`` (instrument, probability each) are not separated by timbre:
    one reason per source, all "" when they are (each named surely, all different instruments)."""
    names = [name for name, _ in named]
    own = ["not sure enough to separate by timbre" if p < CONFIDENT else
           "the same instrument as another source: told apart by the networks" if names.count(name) > 1 else ""
           for name, p in named]
    if not any(own):
        return own
    unsure = any(p < CONFIDENT for _, p in named)
    other = ("another source's name is not sure: separated by the networks" if unsure else
             "two other sources are one instrument: separated by the networks")
    return [reason or other for reason in own]


def naming_box(box: Sequence[float], frame_size: tuple[int, int]) -> tuple[float, float, float, float]:
    """The box (x0, y0, x1, y1, pixels) the namer sees for a source at ``box`` in a frame of ``frame_size``
    (H, W): grown about its centre to at least ``NAMING_SIDE`` of each side, moved inside the frame.
    A found region is the sounding part (a bow, a key); the instrument around it is what has a name."""
    height, width = frame_size
    x0, y0, x1, y1 = (float(v) for v in box)
    w, h = min(width, max(x1 - x0, NAMING_SIDE * width)), min(height, max(y1 - y0, NAMING_SIDE * height))
    left = min(max(0.0, (x0 + x1) / 2 - w / 2), width - w)
    top = min(max(0.0, (y0 + y1) / 2 - h / 2), height - h)
    return (left, top, left + w, top + h)


def write_naming_crops(source: str | Path, out: str | Path, *, parts: int = 2, seed: int = 0,
                       overwrite: bool = False) -> int:
    """A classification dataset of the namer's pictures cut from the gm_instruments clips of ``source``.

    For each player of each clip: :func:`naming_box` around its drawn box, and around ``parts`` random
    parts of it (a quarter to two thirds of each side: what ``--regions auto`` finds); for a solo, the whole
    frame too (a picture of one instrument, as :func:`avkit.data.synthetic.instruments.draw` gives). Each cut
    is an mp4 of the clip's frames labelled with the player's instrument; the split is the source clip's.
    Returns the number of pictures written. A folder that holds a dataset already is replaced only with
    ``overwrite``."""
    from avkit.data.synthetic import read_manifest
    from avkit.io import read_clip, write_video
    from avkit.utils import atomic_write_json, atomic_write_text

    source, out = Path(source), Path(out)
    if (out / "manifest.jsonl").exists() and not overwrite:
        raise OutputExistsError(out)
    rows = read_manifest(source)
    (out / "clips").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    manifest = []
    for row in rows:
        if not all("box_per_frame" in p for p in row.get("meta", {}).get("sources") or [{}]):
            raise AvkitError(f"{source / row['path']}: no players' boxes in its manifest row (meta.sources); "
                             "write_naming_crops cuts gm_instruments clips (avkit generate gm_instruments)")
        clip = read_clip(source / row["path"], audio=False)
        frames = clip.frames.numpy()
        size = frames.shape[1:3]
        boxes = []
        for player in row["meta"]["sources"]:
            drawn = np.asarray(player["box_per_frame"], dtype=np.float64)
            whole = (drawn[:, 0].min(), drawn[:, 1].min(), drawn[:, 2].max(), drawn[:, 3].max())
            cuts = [naming_box(whole, size)]
            for _ in range(parts):
                w, h = (whole[2] - whole[0]) * rng.uniform(0.25, 0.67), (whole[3] - whole[1]) * rng.uniform(0.25, 0.67)
                x0, y0 = rng.uniform(whole[0], whole[2] - w), rng.uniform(whole[1], whole[3] - h)
                cuts.append(naming_box((x0, y0, x0 + w, y0 + h), size))
            if len(row["meta"]["sources"]) == 1:
                cuts.append((0.0, 0.0, float(size[1]), float(size[0])))
            boxes += [(player["label"], cut) for cut in cuts]
        for k, (label, (x0, y0, x1, y1)) in enumerate(boxes):
            w, h = 2 * max(1, round((x1 - x0) / 2)), 2 * max(1, round((y1 - y0) / 2))  # even sizes: yuv420p pads nothing
            left, top = min(int(x0), size[1] - w), min(int(y0), size[0] - h)
            cut = frames[:, top:top + h, left:left + w]
            path = f"clips/{Path(row['path']).stem}_{k}.mp4"
            write_video(out / path, cut, float(row["meta"].get("fps", 8.0)), overwrite=True)
            manifest.append({"path": path, "label": label, "duration": row["duration"], "split": row["split"]})
    atomic_write_text(out / "manifest.jsonl", "".join(json.dumps(r) + "\n" for r in manifest))
    atomic_write_json(out / "classes.json", json.loads((source / "classes.json").read_text()))
    return len(manifest)

