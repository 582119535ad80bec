"""Per-window features of a long video, extracted once and shared by every localisation method.

Windows of ``window`` seconds every ``stride`` seconds (:func:`avkit.data.sampling.sliding_windows`)
go through :func:`avkit.data.batch.clip_batch` (the frames decoded once, sound centred on each
window) and then through avkit encoders: a video model's ``forward_features`` on the clip, an
audio model's on the window's log-mel spectrogram, or both concatenated (``modality="av"``).
By default the encoders are the registry's tiny presets with weights drawn from ``seed``: fixed
random features, so extraction needs no trained run and every method sees exactly the same input.
With ``encoder_run`` (:func:`encoder_spec`) the features come from a trained classification run
instead: its model, read the way the run validates (frames, fps, crop and sound of its recipe), gives
each window's pooled features before its classifier (:func:`avkit.engine.step.pooled_features`:
``forward_features``, or both encoders side by side for an audio-visual run). The spec records the
run's weights file by its SHA-256, so a cache or a localiser never pairs with another run's features.
The spec is stored with a localiser run, so ``avkit localize`` extracts the same way.
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
    encoder_run: str = ""  # a trained classification run (absolute path); "" = the random-weight encoders
    encoder_checkpoint: str = "best"  # of encoder_run: best | last
    encoder_sha256: str = ""  # of encoder_run's weights file: what the features depend on

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


def file_sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def encoder_spec(run_dir: str | Path, checkpoint: str, window: float, stride: float) -> FeatureSpec:
    """The spec of features from trained classification run ``run_dir`` (its ``checkpoint`` weights).

    The window is the run's clip: ``window`` must equal its ``data.num_frames / data.fps`` (else one
    line naming both); fps and crop size are the run's. A run of another task is one line too.
    """
    from avkit.engine.checkpoint import open_run

    run = open_run(run_dir, checkpoint, task="classification",
                   hint="task_options.encoder_run takes a classification run (avkit train a classifier first)")
    data, model = run.config.data, run.config.model
    clip = data.num_frames / data.fps
    if abs(clip - window) > 1e-6:
        raise AvkitError(f"{run_dir}: encoder run's clip is {clip:g} s ({data.num_frames} frames at {data.fps:g} fps) "
                         f"but task_options.window is {window:g} s; set window: {clip:g}")
    audio = bool(model.audio)
    modality = "av" if audio and model.video else "audio" if audio else "video"
    return FeatureSpec(modality=modality, video_model=model.video, audio_model=model.audio, window=window,
                       stride=stride, fps=float(data.fps), size=int(data.size), seed=0,
                       encoder_run=str(Path(run_dir).resolve()), encoder_checkpoint=checkpoint,
                       encoder_sha256=file_sha256(run.weights))


class Extractor:
    """The encoders of a :class:`FeatureSpec`, built once; :meth:`__call__` extracts one video."""

    def __init__(self, spec: FeatureSpec, batch_size: int = 32) -> None:
        from avkit.models import create_model
        from avkit.models.registry import model_entry

        self.spec = spec
        self.batch_size = batch_size
        self.video: Any = None
        self.audio: Any = None
        self.run: Any = None  # (model, config) of spec.encoder_run
        if spec.encoder_run:
            self.run = self._load_run(spec)
            return
        torch.manual_seed(spec.seed)
        if spec.modality in ("video", "av"):
            self.video = create_model(spec.video_model, **model_entry(spec.video_model).tiny).eval()
        if spec.modality in ("audio", "av"):
            self.audio = create_model(spec.audio_model, **model_entry(spec.audio_model).tiny).eval()

    @staticmethod
    def _load_run(spec: FeatureSpec) -> tuple[Any, Any]:
        from avkit.engine.checkpoint import run_checkpoint
        from avkit.engine.evaluate import load_run

        weights = run_checkpoint(spec.encoder_run, spec.encoder_checkpoint, task="classification")
        if spec.encoder_sha256 and file_sha256(weights) != spec.encoder_sha256:
            raise AvkitError(f"{weights}: the encoder run's weights changed since these features were specified "
                             f"(sha256 {spec.encoder_sha256[:12]}...); train the localiser again")
        model, cfg, _ = load_run(spec.encoder_run, spec.encoder_checkpoint, device="cpu")
        return model, cfg

    def _batch_features(self, reader: Any, windows: list[Any]) -> torch.Tensor:
        """``[len(windows), dim]`` of one chunk of windows."""
        from avkit.data.batch import clip_batch
        from avkit.data.transforms import eval_transform

        spec = self.spec
        if self.run is not None:
            from avkit.engine.classify import window_batch
            from avkit.engine.step import pooled_features

            model, cfg = self.run
            batch = window_batch(reader, windows, cfg.data)
            if "has_audio" in batch and not bool(batch["has_audio"].all()) and cfg.data.missing_audio != "zeros":
                raise MediaError(reader.path, f"no audio stream, and encoder run {spec.encoder_run} uses sound "
                                              f"(missing audio: {cfg.data.missing_audio})")
            return pooled_features(model, batch)
        batch = clip_batch(reader, windows, num_frames=spec.num_frames, size=spec.size,
                           transform=eval_transform(spec.size, 1, spec.size),
                           spectrogram=self.audio is not None, audio_seconds=spec.window)
        out = []
        if self.video is not None:
            out.append(self.video.forward_features(batch["video"]))
        if self.audio is not None:
            out.append(self.audio.forward_features(batch["spectrogram"]))
        return torch.cat(out, dim=1)

    def __call__(self, path: str | Path) -> Features:
        from avkit.data.sampling import sliding_windows
        from avkit.io.read import VideoReader

        spec = self.spec
        with VideoReader(path) as reader:
            duration = float(reader.duration or 0.0)
            if duration < spec.window - 1e-6:
                raise MediaError(path, f"video is {duration:.2f} s, shorter than one {spec.window:g} s window")
            windows = sliding_windows(duration, spec.num_frames, spec.fps, spec.stride, drop_last=True)
            with torch.inference_mode():
                parts = [self._batch_features(reader, windows[b:b + self.batch_size]).float().numpy()
                         for b in range(0, len(windows), self.batch_size)]
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
