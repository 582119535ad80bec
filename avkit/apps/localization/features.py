"""Per-window features of a long video, extracted once and shared by every localisation method.

Windows of ``window`` seconds every ``stride`` seconds (:func:`avkit.data.sampling.sliding_windows`)
go through :func:`avkit.data.batch.clip_batch` (the frames decoded once, sound centred on each
window) and then through avkit encoders: a video model's ``forward_features`` on the clip, an
audio model's on the window's log-mel spectrogram, or both concatenated (``modality="av"``).
The encoders are the registry's tiny presets with weights drawn from ``seed``: fixed random
features, so extraction needs no trained run and every method sees exactly the same input. The spec is stored with a localiser run, so ``avkit localize`` extracts the same way.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from avkit.errors import AvkitError, MediaError

MODALITIES = ("video", "audio", "av")


@dataclass
class FeatureSpec:
    """How windows become features (stored with every localiser run)."""

    modality: str = "av"  # video | audio | av (both, concatenated)
    video_model: str = "c3d"
    audio_model: str = "audio_cnn"
    window: float = 1.0  # s per window (num_frames / fps)
    stride: float = 0.5  # s between window starts
    fps: float = 8.0
    size: int = 32
    seed: int = 0  # the encoders' random weights

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise AvkitError(f"feature modality must be one of {MODALITIES}, got {self.modality!r}")
        if not (self.window > 0 and self.stride > 0):
            raise AvkitError(f"window and stride must be positive seconds, got {self.window}, {self.stride}")

    @property
    def num_frames(self) -> int:
        return max(1, int(round(self.window * self.fps)))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Features:
    """One video's window features: ``starts``/``ends`` float64 ``[N]`` s, ``feats`` float32 ``[N, D]``."""

    path: str
    duration: float
    starts: np.ndarray
    ends: np.ndarray
    feats: np.ndarray

    @property
    def centres(self) -> np.ndarray:
        return (self.starts + self.ends) / 2


class Extractor:
    """The encoders of a :class:`FeatureSpec`, built once; :meth:`__call__` extracts one video."""

    def __init__(self, spec: FeatureSpec, batch_size: int = 32) -> None:
        from avkit.models import create_model
        from avkit.models.registry import model_entry

        self.spec = spec
        self.batch_size = batch_size
        torch.manual_seed(spec.seed)
        self.video: Any = None
        self.audio: Any = None
        if spec.modality in ("video", "av"):
            self.video = create_model(spec.video_model, **model_entry(spec.video_model).tiny).eval()
        if spec.modality in ("audio", "av"):
            self.audio = create_model(spec.audio_model, **model_entry(spec.audio_model).tiny).eval()

    @property
    def dim(self) -> int:
        return sum(int(m.out_dim) for m in (self.video, self.audio) if m is not None)

    def __call__(self, path: str | Path) -> Features:
        from avkit.data.batch import clip_batch
        from avkit.data.sampling import sliding_windows
        from avkit.data.transforms import eval_transform
        from avkit.io.read import VideoReader

        spec = self.spec
        with VideoReader(path) as reader:
            duration = float(reader.duration or 0.0)
            if duration < spec.window - 1e-6:
                raise MediaError(path, f"video is {duration:.2f} s, shorter than one {spec.window:g} s window")
            windows = sliding_windows(duration, spec.num_frames, spec.fps, spec.stride, drop_last=True)
            transform = eval_transform(spec.size, 1, spec.size)
            parts = []
            with torch.inference_mode():
                for b in range(0, len(windows), self.batch_size):
                    chunk = windows[b:b + self.batch_size]
                    batch = clip_batch(reader, chunk, num_frames=spec.num_frames, size=spec.size, transform=transform,
                                       spectrogram=self.audio is not None, audio_seconds=spec.window)
                    out = []
                    if self.video is not None:
                        out.append(self.video.forward_features(batch["video"]))
                    if self.audio is not None:
                        out.append(self.audio.forward_features(batch["spectrogram"]))
                    parts.append(torch.cat(out, dim=1).float().numpy())
        return Features(str(path), duration, np.array([w.start for w in windows]), np.array([w.end for w in windows]),
                        np.concatenate(parts).astype(np.float32))


def extract_all(paths: list[str], spec: FeatureSpec, progress: Callable[[int, int], None] | None = None) -> list[Features]:
    """Features of every video in ``paths`` (one :class:`Extractor`)."""
    extractor = Extractor(spec)
    out = []
    for i, p in enumerate(paths):
        out.append(extractor(p))
        if progress is not None:
            progress(i + 1, len(paths))
    return out


def save_features(path: str | Path, feats: list[Features], spec: FeatureSpec) -> Path:
    """Every video's features in one ``.npz`` (written atomically) with the spec, for training runs."""
    import json

    from avkit.utils import atomic_path

    arrays: dict[str, Any] = {"spec": np.array(json.dumps(spec.to_dict())),
                              "paths": np.array([f.path for f in feats]),
                              "durations": np.array([f.duration for f in feats])}
    for i, f in enumerate(feats):
        arrays[f"starts_{i}"], arrays[f"ends_{i}"], arrays[f"feats_{i}"] = f.starts, f.ends, f.feats
    with atomic_path(Path(path)) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
    return Path(path)


def load_features(path: str | Path) -> tuple[list[Features], FeatureSpec]:
    """What :func:`save_features` wrote; a missing or foreign file is one line naming it."""
    import json

    path = Path(path)
    try:
        data = np.load(path, allow_pickle=False)
        spec = FeatureSpec(**json.loads(str(data["spec"])))
        feats = [Features(str(p), float(d), data[f"starts_{i}"], data[f"ends_{i}"], data[f"feats_{i}"])
                 for i, (p, d) in enumerate(zip(data["paths"], data["durations"]))]
    except (OSError, KeyError, ValueError) as err:
        raise AvkitError(f"{path}: not a localisation features file ({err})") from None
    return feats, spec
