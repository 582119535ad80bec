"""The cheap preview: a saliency score (and class scores) for every candidate clip of a video.

Two previews share one interface, ``preview.run(path, windows) -> PreviewResult``:

- :class:`EnergyPreview`, analytic and parameter-free: how far the loudest 25 ms frame of each
  window rises above the video's median level (an onset detector). It finds sound events, and it
  is fooled by loud sounds with nothing to see.
- :class:`NetPreview`, a trained :class:`PreviewNet` (``avkit train recipes/longvideo_preview.yaml``):
  an audio encoder on every window and, optionally, a very cheap visual encoder on one 16x16 frame
  per window (image + audio previews, as in SCSampler and "Listen to Look"). It outputs a saliency
  logit (trained to say "the action is visible here") and class logits per window.

The audio front end works on the whole soundtrack at once: mono 8 kHz, a log-mel spectrogram
(32 bands, 25 ms hop), then a 1-D convolution stack (mel bands as channels) that turns it into one
feature vector every 0.1 s. A window's audio embedding pools (mean and max) the feature vectors
inside it, so overlapping windows share their convolutions and the cost grows with the video's
length, not with the number of windows. FLOPs are counted the avkit way
(:mod:`avkit.models.flops`: multiply-adds of matmuls and convolutions, on the exact input shapes the
preview ran on, the mel filterbank included; the FFT is not a matmul and is not counted).

Audio that is missing or silent (peak below ``SILENT_DB`` dBFS) gives ``status`` ``"missing"`` or
``"silent"`` and no scores: the selection policies then fall back to uniform sampling.
"""
from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from avkit.data.audio_features import LogMel
from avkit.data.sampling import ClipWindow
from avkit.errors import AvkitError
from avkit.models.flops import FlopCache, count_gflops_call

SAMPLE_RATE = 8000  # the preview listens at 8 kHz: every class sound of the synthetic data is below 4 kHz
HOP = 200  # 25 ms spectrogram hop -> 40 frames per second
N_FFT = 256
N_MELS = 32
NET_STRIDE = 4  # the conv stack downsamples time by 4 -> one feature vector every 0.1 s
FEATURE_RATE = SAMPLE_RATE / HOP / NET_STRIDE  # 10 Hz
FRAME_SIZE = 16  # the visual preview sees one 16x16 frame per window
SILENT_DB = -60.0  # peak level (dBFS) below which the soundtrack counts as silent

_FRONT_END = LogMel(sample_rate=SAMPLE_RATE, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS)


def front_end() -> LogMel:
    """The preview's log-mel settings (shared by training and inference)."""
    return _FRONT_END


# ---------------------------------------------------------------------------------------------
# inputs


@dataclass
class PreviewInputs:
    """What the preview reads from a file: the soundtrack and one small frame per window."""

    duration: float
    wave: torch.Tensor | None  # float32 [S] at SAMPLE_RATE; None when there is no audio stream
    frames: torch.Tensor | None  # float [N, 3, FRAME_SIZE, FRAME_SIZE] (normalised) or None
    status: str  # "ok" | "missing" | "silent"
    peak_db: float  # peak level of the soundtrack in dBFS (-inf when silent or missing)
    seconds: float = 0.0  # decoding time

    @property
    def reason(self) -> str | None:
        """Why the audio cannot guide the selection (None when it can)."""
        if self.status == "missing":
            return "the video has no audio stream"
        if self.status == "silent":
            level = "-inf" if not math.isfinite(self.peak_db) else f"{self.peak_db:.0f}"
            return f"the audio is silent (peak {level} dBFS < {SILENT_DB:.0f} dBFS)"
        return None


def audio_status(wave: torch.Tensor | None) -> tuple[str, float]:
    """``("missing" | "silent" | "ok", peak dBFS)`` of a waveform."""
    if wave is None or wave.numel() == 0:
        return "missing", -math.inf
    peak = float(wave.abs().max())
    peak_db = 20 * math.log10(peak) if peak > 0 else -math.inf
    return ("silent" if peak_db < SILENT_DB else "ok"), peak_db


def frames_to_input(frames: torch.Tensor, size: int = FRAME_SIZE) -> torch.Tensor:
    """uint8 ``[N, H, W, 3]`` -> normalised float ``[N, 3, size, size]`` (short side resized, centre crop)."""
    x = frames.permute(0, 3, 1, 2).float() / 255.0
    h, w = x.shape[-2:]
    if min(h, w) != size:
        scale = size / min(h, w)
        x = F.interpolate(x, size=(max(size, round(h * scale)), max(size, round(w * scale))), mode="bilinear",
                          antialias=True, align_corners=False)
        h, w = x.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    return (x[..., top:top + size, left:left + size] - 0.45) / 0.25


def read_inputs(path: str | Path, windows: Sequence[ClipWindow], *, frames: bool = True,
                audio: bool = True) -> PreviewInputs:
    """Decode what the preview needs from ``path``: the whole soundtrack at 8 kHz and, with
    ``frames``, the frame at the centre of each window at :data:`FRAME_SIZE` px (short side)."""
    from avkit.io import VideoReader

    start = time.perf_counter()
    with VideoReader(path) as reader:
        duration = reader.duration
        if duration is None or not duration > 0:
            from avkit.errors import MediaError

            raise MediaError(path, "unknown or zero duration")
        wave = None
        if audio and reader.audio is not None:
            wave = reader.read_audio(0.0, duration, sample_rate=SAMPLE_RATE)
        x = None
        if frames and windows:
            centres = np.array([(w.start + min(w.end, duration)) / 2 for w in windows])
            raw, _ = reader.frames_at(centres, size=FRAME_SIZE)
            x = frames_to_input(raw)
    status, peak = audio_status(wave)
    return PreviewInputs(duration, wave, x, status, peak, time.perf_counter() - start)


def window_index(windows: Sequence[ClipWindow], rate: float = FEATURE_RATE) -> torch.Tensor:
    """``long [N, L]``: the feature-sequence positions (at ``rate`` Hz) inside each window."""
    if not windows:
        return torch.zeros(0, 1, dtype=torch.long)
    length = max(1, int(round((windows[0].end - windows[0].start) * rate)))
    first = torch.tensor([int(round(w.start * rate)) for w in windows], dtype=torch.long)
    return first[:, None] + torch.arange(length)[None, :]


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run tiny networks on one intra-op thread: their ops are far too small to split, and on a
    busy CPU a second thread makes each op wait for a free core (measured 8x slower under load)."""
    before = torch.get_num_threads()
    if before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# ---------------------------------------------------------------------------------------------
# FLOP counting


_FRONT_END_GFLOPS: dict[int, float] = {}


def front_end_gflops(num_samples: int) -> float:
    """Counted GFLOPs of the log-mel front end on ``num_samples`` (the mel filterbank matmul)."""
    if num_samples not in _FRONT_END_GFLOPS:
        _FRONT_END_GFLOPS[num_samples] = count_gflops_call(_FRONT_END, torch.zeros(num_samples))
    return _FRONT_END_GFLOPS[num_samples]


# ---------------------------------------------------------------------------------------------
# the network


def _conv1d(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm1d(cout),
                         nn.ReLU(inplace=True))


def _conv2d(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class PreviewNet(nn.Module):
    """Audio (+ one-frame visual) preview: per-window features, a saliency logit and class logits.

    ``forward(spectrogram [1, n_mels, T], index [N, L], frames [N, 3, 16, 16] | None)`` returns
    ``{"features": [N, D], "saliency": [N], "logits": [N, num_classes]}``. ``index`` holds the
    positions of each window in the 10 Hz feature sequence (:func:`window_index`).
    """

    def __init__(self, num_classes: int, width: int = 16, visual: bool = True, frame_width: int = 8,
                 hidden: int = 32, n_mels: int = N_MELS) -> None:
        super().__init__()
        self.options = {"num_classes": num_classes, "width": width, "visual": visual, "frame_width": frame_width,
                        "hidden": hidden, "n_mels": n_mels}
        self.visual = bool(visual)
        self.input_norm = nn.BatchNorm1d(n_mels)  # log-mel dB values -> roughly unit range (as PANNs' bn0)
        self.audio = nn.Sequential(_conv1d(n_mels, width), _conv1d(width, 2 * width, 2),
                                   _conv1d(2 * width, 2 * width, 2), _conv1d(2 * width, 2 * width))
        dim = 4 * width
        if self.visual:
            self.frame = nn.Sequential(_conv2d(3, frame_width), _conv2d(frame_width, 2 * frame_width))
            dim += 4 * frame_width
        self.feature_dim = dim
        self.fuse = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(inplace=True))
        self.saliency_head = nn.Linear(hidden, 1)
        self.class_head = nn.Linear(hidden, num_classes)

    def forward(self, spectrogram: torch.Tensor, index: torch.Tensor,
                frames: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        x = spectrogram.reshape(1, spectrogram.shape[-2], spectrogram.shape[-1])
        seq = self.audio(self.input_norm(x))[0]  # [C, T']
        idx = index.clamp(0, seq.shape[-1] - 1)
        inside = seq[:, idx]  # [C, N, L]
        parts = [inside.mean(dim=-1).t(), inside.amax(dim=-1).t()]
        if self.visual:
            if frames is None:
                raise AvkitError("this preview has a visual branch: it needs one frame per window")
            fmap = self.frame(frames)  # [N, 2fw, 4, 4]
            parts += [fmap.mean(dim=(2, 3)), fmap.amax(dim=(2, 3))]
        features = torch.cat(parts, dim=1)
        h = self.fuse(features)
        return {"features": features, "saliency": self.saliency_head(h).squeeze(-1), "logits": self.class_head(h)}


# ---------------------------------------------------------------------------------------------
# previews


@dataclass
class PreviewResult:
    """Scores of every candidate window (or none, with ``reason``, when the audio cannot guide)."""

    kind: str  # "energy" | "net"
    windows: list[ClipWindow]
    saliency: np.ndarray | None  # [N] in [0, 1]
    class_probs: np.ndarray | None = None  # [N, C]
    features: torch.Tensor | None = None  # [N, D] (net preview: what the learned sampler ranks)
    saliency_logits: torch.Tensor | None = None  # [N]
    status: str = "ok"
    peak_db: float = 0.0
    reason: str | None = None
    gflops: float = 0.0  # counted on the shapes it ran on (front end + network)
    seconds: float = 0.0  # decoding + compute
    decode_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.saliency is not None


class EnergyPreview:
    """Analytic audio saliency: the loudest 25 ms frame of each window above the video's median level."""

    kind = "energy"
    visual = False
    name = "energy (analytic onset strength, no model)"

    def run(self, path: str | Path, windows: Sequence[ClipWindow], inputs: PreviewInputs | None = None
            ) -> PreviewResult:
        inputs = inputs if inputs is not None else read_inputs(path, windows, frames=False)
        start = time.perf_counter()
        windows = list(windows)
        if inputs.status != "ok" or inputs.wave is None:
            return PreviewResult(self.kind, windows, None, status=inputs.status, peak_db=inputs.peak_db,
                                 reason=inputs.reason, seconds=inputs.seconds, decode_seconds=inputs.seconds)
        saliency = energy_saliency(inputs.wave, windows)
        return PreviewResult(self.kind, windows, saliency, status="ok", peak_db=inputs.peak_db,
                             seconds=inputs.seconds + time.perf_counter() - start, decode_seconds=inputs.seconds)


def frame_levels(wave: torch.Tensor, hop: int = HOP) -> np.ndarray:
    """Level (dB) of each ``hop``-sample frame of a waveform."""
    x = wave.detach().cpu().numpy().astype(np.float64)
    n = max(1, len(x) // hop)
    x = np.pad(x, (0, max(0, n * hop - len(x))))[: n * hop].reshape(n, hop)
    return 10 * np.log10(np.mean(x * x, axis=1) + 1e-12)


def energy_saliency(wave: torch.Tensor, windows: Sequence[ClipWindow]) -> np.ndarray:
    """``[N]`` in [0, 1]: how far each window's loudest frame rises above the median frame (scaled by the max)."""
    levels = frame_levels(wave)
    rate = SAMPLE_RATE / HOP
    rise = np.clip(levels - np.median(levels), 0.0, None)
    if not windows:
        return np.zeros(0)
    first = np.floor(np.array([w.start for w in windows]) * rate).astype(np.int64)
    last = np.maximum(first + 1, np.ceil(np.array([w.end for w in windows]) * rate).astype(np.int64))
    length = int((last - first).max())
    idx = first[:, None] + np.arange(length)[None, :]  # [N, L] frames of each window (shorter ones masked)
    valid = (idx < last[:, None]) & (idx < len(rise))
    out = np.where(valid, rise[np.clip(idx, 0, len(rise) - 1)], 0.0).max(axis=1)
    top = out.max() if out.size else 0.0
    return out / top if top > 0 else out


class NetPreview:
    """A trained :class:`PreviewNet` run on every candidate window of a video."""

    kind = "net"

    def __init__(self, net: PreviewNet, class_names: Sequence[str], run_dir: str | Path | None = None) -> None:
        self.net = net.eval()
        self.class_names = list(class_names)
        self.run_dir = str(run_dir) if run_dir is not None else None
        self.visual = net.visual
        self.name = f"{'audio + frame' if net.visual else 'audio'} preview net" + (f" ({run_dir})" if run_dir else "")
        self.flops = FlopCache(self.net)

    @classmethod
    def from_run(cls, run_dir: str | Path, device: str | torch.device | None = "cpu",
                 checkpoint: str = "best") -> NetPreview:
        """The preview trained in ``run_dir`` (``task: clip_selection``, ``task_options.model: preview``),
        rebuilt from the network options stored with its weights."""
        from avkit.engine.checkpoint import load_trained, open_run

        run = open_run(run_dir, checkpoint)
        if run.config.task != "clip_selection" or run.meta.get("model") != "preview":
            raise AvkitError(f"{run_dir}: not a preview run (it trained {run.meta.get('model') or run.config.task!r}; "
                             "train one with recipes/longvideo_preview.yaml)")
        net = load_trained(PreviewNet(**run.meta["options"]), run, device, "its preview network")
        return cls(net, list(run.meta.get("class_names") or []), run_dir)

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    def tensors(self, inputs: PreviewInputs, windows: Sequence[ClipWindow]) -> tuple[torch.Tensor, torch.Tensor,
                                                                                       torch.Tensor | None]:
        """``(spectrogram [1, F, T], index [N, L], frames | None)`` for the network."""
        if inputs.wave is None:
            raise AvkitError("the preview network needs the video's sound (it has none)")
        spec = _FRONT_END(inputs.wave)  # [1, F, T]
        index = window_index(windows)
        frames = inputs.frames if self.visual else None
        dev = self.device
        return spec.to(dev), index.to(dev), (frames.to(dev) if frames is not None else None)

    def gflops(self, num_samples: int, spec: torch.Tensor, index: torch.Tensor, frames: torch.Tensor | None) -> float:
        return front_end_gflops(num_samples) + self.flops(spec, index, frames)

    @torch.no_grad()
    def run(self, path: str | Path, windows: Sequence[ClipWindow], inputs: PreviewInputs | None = None
            ) -> PreviewResult:
        windows = list(windows)
        inputs = inputs if inputs is not None else read_inputs(path, windows, frames=self.visual)
        if inputs.status != "ok" or inputs.wave is None:
            return PreviewResult(self.kind, windows, None, status=inputs.status, peak_db=inputs.peak_db,
                                 reason=inputs.reason, seconds=inputs.seconds, decode_seconds=inputs.seconds)
        start = time.perf_counter()
        with single_thread():
            spec, index, frames = self.tensors(inputs, windows)
            out = self.net(spec, index, frames)
        seconds = inputs.seconds + time.perf_counter() - start
        gflops = self.gflops(int(inputs.wave.numel()), spec, index, frames)
        return PreviewResult(self.kind, windows, torch.sigmoid(out["saliency"]).cpu().numpy().astype(np.float64),
                             class_probs=out["logits"].softmax(-1).cpu().numpy(), features=out["features"].cpu(),
                             saliency_logits=out["saliency"].cpu(), status="ok", peak_db=inputs.peak_db,
                             gflops=gflops, seconds=seconds, decode_seconds=inputs.seconds)


def make_preview(preview: str | Path | None, device: str | torch.device | None = "cpu") -> EnergyPreview | NetPreview:
    """A trained preview from its run directory (best weights), or the analytic :class:`EnergyPreview` for None."""
    if preview is None or str(preview) in ("", "energy"):
        return EnergyPreview()
    return NetPreview.from_run(preview, device)


__all__ = ["EnergyPreview", "NetPreview", "PreviewNet", "PreviewInputs", "PreviewResult", "read_inputs",
           "window_index", "energy_saliency", "make_preview", "front_end",
           "front_end_gflops"]
