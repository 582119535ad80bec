"""A trained captioner, for ``avkit caption`` and the benchmark: :func:`load` -> :class:`CaptionerRun`.

```python
from avkit.apps import captioning

run = captioning.load("runs/caption_av_s2", device="cpu")
run.caption("clip.mp4")["caption"]                       # the centre window, greedy
run.caption_batch({"video": video, "audio": audio})      # list of strings
```

:func:`load` rebuilds the captioner from the run's ``config.yaml`` and ``language_model/``
(tokenizer and LM architecture), then loads the checkpoint strictly; no starting weight is read.
:meth:`CaptionerRun.clip_batch` reads a window the way the run was trained (frames, fps, size,
centre crop; the sound of the same window when the run has an audio encoder).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from avkit.apps.captioning.language_model import LM_FOLDER
from avkit.apps.captioning.task import CaptioningTask
from avkit.engine.config import Config
from avkit.errors import AvkitError, MediaError


@dataclass
class CaptionerRun:
    """A trained captioner loaded from its run directory (eval mode)."""

    model: Any  # avkit.apps.captioning.model.Captioner
    task: CaptioningTask
    cfg: Config
    run_dir: Path
    device: torch.device

    @property
    def uses_audio(self) -> bool:
        return self.model.audio_encoder is not None

    def clip_batch(self, video: str | Path, start: float | None = None) -> tuple[dict[str, torch.Tensor], list[float]]:
        """The batch of one window of ``video`` (the run's frames, fps, size and audio); the window
        starts at ``start`` or is the centre of the video; also returns the frame times."""
        from avkit.apps.captioning.data import CaptionRecord, clip_window
        from avkit.data.batch import clip_batch
        from avkit.engine.build import clip_transform, short_side_of
        from avkit.io import VideoReader

        path = Path(video)
        if not path.exists():
            raise MediaError(path, "no such file")
        if not path.is_file():
            raise MediaError(path, "not a file")
        data = self.cfg.data
        rec = CaptionRecord(path=str(path), caption="", start=float(start or 0.0),
                            anchor="start" if start is not None else "random")
        with VideoReader(path) as reader:
            duration = reader.duration
            if duration is None or not duration > 0:
                raise MediaError(path, "unknown or zero video duration")
            if start is not None and not 0 <= start < duration:
                raise AvkitError(f"--start {start:g} s is outside the video (0-{duration:.3g} s)")
            w = clip_window(rec, float(duration), data.num_frames, data.fps)
            batch = clip_batch(reader, [w], num_frames=data.num_frames, size=short_side_of(data, 1),
                               transform=clip_transform(data, train=False), audio=self.uses_audio,
                               sample_rate=data.sample_rate, audio_seconds=data.num_frames / data.fps)
        return {k: v.to(self.device) for k, v in batch.items()}, [float(t) for t in w.times]

    @torch.no_grad()
    def caption_batch(self, batch: Mapping[str, torch.Tensor], *, num_beams: int = 1,
                      max_new_tokens: int = 40) -> list[str]:
        """Captions of a batch (``video [B, 3, T, H, W]``, ``audio [B, S]`` for a run with audio)."""
        ids = self.model.generate(batch, max_new_tokens=max_new_tokens, num_beams=num_beams)
        return [self.task.decode(x) for x in ids]

    def caption(self, video: str | Path, *, start: float | None = None, num_beams: int = 1,
                max_new_tokens: int = 40) -> dict[str, Any]:
        """``{"video", "caption", "frame_times", "modalities", ...}`` for one video file."""
        batch, times = self.clip_batch(video, start)
        text = self.caption_batch(batch, num_beams=num_beams, max_new_tokens=max_new_tokens)[0]
        return {"video": str(video), "run": str(self.run_dir), "caption": text, "frame_times": times,
                "modalities": self.model.modalities, "num_beams": int(num_beams)}


def load(run_dir: str | Path, checkpoint: str = "best", device: str | torch.device | None = None) -> CaptionerRun:
    """The captioner trained in ``run_dir`` (a stage 1 or 2 run), on ``device`` (None: CUDA when available)."""
    from avkit.engine.checkpoint import load_trained, open_run

    run = open_run(run_dir, checkpoint, task="captioning", hint="train one with recipes/caption_*.yaml")
    folder = run.run_dir / LM_FOLDER
    if not folder.is_dir():
        raise AvkitError(f"{run.run_dir}: no {LM_FOLDER}/ folder (the language model's config and tokenizer)")
    task = CaptioningTask.for_trained_run(run.config, folder)
    if task.stage == "lm":
        raise AvkitError(f"{run.run_dir}: a language-model-only run (stage lm) has no video input; caption with a "
                         "stage 1 or 2 run")
    model = load_trained(task.build_model(pretrained=False), run, device, "the captioner of config.yaml")
    return CaptionerRun(model, task, run.config, run.run_dir, next(model.parameters()).device)
