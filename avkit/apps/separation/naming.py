"""Which instrument a source's picture shows: a small video classifier beside the separator.

The shipped separator separates two or more *different* instruments by their timbres
(:mod:`avkit.apps.separation.timbre`) once it knows which they are; this names them from the pictures.
It is an ordinary avkit classification run (``recipes/separation_instrument_names.yaml``, a single-frame CNN
trained on the gm_instruments pictures), shipped in ``assets/separation/instrument_names/``.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from avkit.errors import AvkitError

CONFIDENT = 0.9  # a name counts at this probability: the lowest at which none of 2280 held-out draw pictures was misnamed (docs/separation.md)


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
