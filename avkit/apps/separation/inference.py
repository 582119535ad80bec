"""Separate the sounds of a video with a trained separation run (``avkit separate``).

:func:`load_separator` rebuilds the network of a run directory (``config.yaml`` + ``best.safetensors``).
:class:`Separator` works on arrays: :meth:`Separator.analyse` computes the mixture STFT, the audio
features and the per-position visual features of every time chunk once; then

- :meth:`Separator.sound_map` gives, per feature-map position, the share of the mixture's energy whose
  mask changes when the position's feature joins the scene's floor (overall and per STFT frame):
  which pixels make which sound;
- :meth:`Separator.find_sources` lets the model find the sources: positions that change the masks are
  grouped by how alike the changes are (greedy, strongest first), plus the rest of the picture when
  the found sources leave much of the sound unexplained;
- :meth:`Separator.separate_regions` separates one source per region (a boolean mask over the feature
  map, pooled like a clip is in training).

:func:`separate_video` does it for a video file and writes one WAV and one video per source, the
residual (mixture minus the sources), the mixture, a sound-map image and video, and
``separation.json``. :func:`separate_pair` is the classic demonstration: mix the sounds of two videos,
separate each again from its own picture, and score the result (BSS-eval and SI-SDR, with the
mixture and the ideal-mask oracles beside it).

Nothing is overwritten without ``overwrite=True``; then the new outputs are written in a staging
folder beside ``out`` and swapped in when complete, and only files an earlier ``avkit separate``
wrote (listed in its ``separation.json``) are replaced.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from avkit.errors import AvkitError, MediaError, OutputExistsError

CHUNK_FRAMES = 128  # STFT frames per visual chunk (2.97 s at the defaults, the training clips' length)
UNET_FRAMES = 1024  # the U-Net runs on pieces of this many STFT frames (plus context) for long audio
UNET_CONTEXT = 32
MIN_OUTPUT_SIDE = 128  # small videos are scaled up (nearest) by an integer factor in the output videos
MAX_OUTPUT_SIDE = 360
JSON_NAME = "separation.json"
REST_SHARE = 0.25  # find_sources: the rest of the picture is a source when this much energy is left over
MAP_STRIDE = 2  # the sound map looks at every other frequency bin and STFT frame


# ---------------------------------------------------------------------------------------------
# loading


def load_separator(run_dir: str | Path, checkpoint: str = "best", device: str = "auto") -> "Separator":
    """The separation model of ``run_dir`` (``best`` or ``last`` weights), in eval mode."""
    from avkit.apps.separation.task import SeparationOptions, model_from_config
    from avkit.engine.checkpoint import load_strict, run_checkpoint
    from avkit.engine.config import load_config
    from avkit.engine.device import resolve_device

    run_dir = Path(run_dir)
    path = run_checkpoint(run_dir, checkpoint, task="separation",
                          hint="train one with recipes/separation_instruments.yaml")
    cfg = load_config(run_dir)
    net = load_strict(model_from_config(cfg), path)
    opts = SeparationOptions.from_dict(cfg.task_options)
    dev = resolve_device(device)
    return Separator(net.to(dev).eval(), opts, dev, run_dir)


# ---------------------------------------------------------------------------------------------
# the array API


@dataclass
class Analysis:
    """What :meth:`Separator.analyse` computes once per input."""

    length: int  # samples
    mix_spec: torch.Tensor  # complex [F, T]
    mix_mag: torch.Tensor  # warped magnitude [Fw, T]
    audio_features: torch.Tensor  # [K, Fw, T]
    maps: torch.Tensor  # per-position visual features per chunk [C, K, h, w]
    chunk_of_frame: torch.Tensor  # long [T]: which chunk each STFT frame belongs to
    grid: tuple[int, int]  # (h, w) of the feature map
    image_size: tuple[int, int]  # (H, W) of the frames the network saw


@dataclass
class Source:
    """One separated source."""

    region: np.ndarray  # bool [h, w] over the feature map
    box: tuple[float, float, float, float]  # (x0, y0, x1, y1) in the frame's pixels (of ``frame_size``)
    audio: np.ndarray | None = None  # float32 [S]
    energy: float = 0.0  # share of the mixture's energy in this source's estimate
    label: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "box": [round(float(v), 2) for v in self.box],
                "cells": int(self.region.sum()), "energy": round(float(self.energy), 4)}


class Separator:
    """A trained separation network with its options (see the module docstring)."""

    def __init__(self, net: Any, opts: Any, device: torch.device, run_dir: Path | None = None) -> None:
        self.net, self.opts, self.device, self.run_dir = net, opts, device, run_dir
        self.spectral = net.spectral
        self.sample_rate = net.spectral.cfg.sample_rate
        self.last_rest = False  # whether the last find_sources added "the rest of the picture"

    # -- analysis --------------------------------------------------------------------------------

    @torch.no_grad()
    def analyse(self, audio: Any, frames: Any, fps: float | None = None) -> Analysis:
        """``audio`` float [S] at :attr:`sample_rate`; ``frames`` uint8 [T, H, W, 3] at ``fps``
        (default: the run's fps) covering the same time span."""
        fps = fps or self.opts.fps
        wave = torch.as_tensor(np.asarray(audio, np.float32)).to(self.device)
        frames = torch.as_tensor(np.asarray(frames, np.uint8))
        if wave.ndim != 1 or wave.numel() < self.spectral.cfg.n_fft:
            raise AvkitError(f"need mono audio of at least {self.spectral.cfg.n_fft} samples, got shape "
                             f"{tuple(wave.shape)}")
        if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
            raise AvkitError(f"need frames uint8 [T, H, W, 3], got shape {tuple(frames.shape)}")
        spec = self.spectral.stft(wave)
        mag = self.spectral.warp(spec.abs())
        feats = self._audio_features(self.spectral.log_magnitude(mag))
        t = spec.shape[-1]
        hop_s = self.spectral.cfg.hop / self.sample_rate
        chunks = max(1, int(np.ceil(t / CHUNK_FRAMES)))
        maps = []
        from avkit.apps.separation.data import frame_indices

        for c in range(chunks):
            start, stop = c * CHUNK_FRAMES, min(t, (c + 1) * CHUNK_FRAMES)
            idx = frame_indices(start * hop_s, (stop - start) * hop_s, fps, len(frames), self.opts.num_frames)
            f = frames[idx].permute(0, 3, 1, 2).unsqueeze(0).to(self.device)  # [1, T', 3, H, W]
            maps.append(self.net.visual_net(f)[0])
        maps_t = torch.stack(maps)
        chunk_of = (torch.arange(t, device=self.device) // CHUNK_FRAMES).clamp(max=chunks - 1)
        return Analysis(wave.numel(), spec, mag, feats, maps_t, chunk_of, tuple(maps_t.shape[-2:]),
                        tuple(frames.shape[1:3]))

    def _audio_features(self, log_mag: torch.Tensor) -> torch.Tensor:
        """The U-Net's ``[K, Fw, T]``, in pieces with context for long inputs."""
        t = log_mag.shape[-1]
        x = log_mag[None, None]
        if t <= UNET_FRAMES + 2 * UNET_CONTEXT:
            return self.net.audio_net(x)[0]
        out = []
        for start in range(0, t, UNET_FRAMES):
            lo, hi = max(0, start - UNET_CONTEXT), min(t, start + UNET_FRAMES + UNET_CONTEXT)
            piece = self.net.audio_net(x[..., lo:hi])[0]
            out.append(piece[..., start - lo:start - lo + min(UNET_FRAMES, t - start)])
        return torch.cat(out, dim=-1)

    def _logits(self, a: Analysis, features: torch.Tensor, chunk: int | None = None) -> torch.Tensor:
        """Mask logits ``[N, Fw, T]`` for visual features ``[N, C, K]`` (one per chunk), or only chunk ``chunk``'s
        frames; one matrix product per chunk."""
        scaled = features * self.net.scale
        chunks = range(a.maps.shape[0]) if chunk is None else [chunk]
        parts = [torch.einsum("nk,kft->nft", scaled[:, c], a.audio_features[..., _chunk(c, a)]) for c in chunks]
        return torch.cat(parts, dim=-1) + self.net.bias

    def _masks(self, logits: torch.Tensor) -> torch.Tensor:
        return self.net.masks(logits, self.opts.mask_threshold)

    # -- sound map -------------------------------------------------------------------------------

    @torch.no_grad()
    def sound_map(self, a: Analysis) -> tuple[np.ndarray, np.ndarray]:
        """``(share [h, w], per_frame [h, w, T])``: the share of the mixture's (warped) energy whose mask
        changes because of each position (see :meth:`_positions`), overall and per STFT frame."""
        share, frame_share, _ = self._positions(a)
        return share, frame_share

    @staticmethod
    def baseline(a: Analysis) -> torch.Tensor:
        """The scene's floor ``[C, K]``: the median visual feature over positions, per chunk (mostly background).

        A clip's feature in training is the max over all its positions, background included, so it never
        falls below this floor; per-position and per-region features are raised to it before synthesis."""
        return a.maps.flatten(-2).median(dim=-1).values

    @torch.no_grad()
    def _positions(self, a: Analysis) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sound map and the correlation ``[P, P]`` of the positions' mask changes, in one pass over the
        chunks (cached on the analysis).

        Position ``p``'s feature (raised to the floor, :meth:`baseline`) gives a mask; the floor alone
        gives the background's mask. The sound map is the share of the mixture's energy whose mask
        changes because of ``p``: ``sum |m_p - m_floor| |X|^2 / sum |X|^2`` (background positions: 0).
        Computed on every other frequency bin and STFT frame (an estimate of shares; 4x less work)."""
        cached = getattr(a, "_positions", None)
        if cached is not None:
            return cached
        h, w = a.grid
        p = h * w
        floor = self.baseline(a)  # [C, K]
        feats = torch.maximum(a.maps.flatten(-2).permute(2, 0, 1), floor) * self.net.scale  # [P, C, K]
        floor = floor * self.net.scale
        energy = a.mix_mag.pow(2)  # [Fw, T]
        claimed = []
        gram = torch.zeros(p, p, device=energy.device)
        sums = torch.zeros(p, device=energy.device)
        cells = 0
        for c in range(a.maps.shape[0]):
            sl = _chunk(c, a)
            e = energy[::MAP_STRIDE, sl][:, ::MAP_STRIDE]
            audio = a.audio_features[:, ::MAP_STRIDE, sl][..., ::MAP_STRIDE]
            masks = self._masks(torch.einsum("pk,kft->pft", feats[:, c], audio) + self.net.bias)  # [P, Fw/2, Tc/2]
            masks = masks - self._masks(torch.einsum("k,kft->ft", floor[c], audio) + self.net.bias)
            claimed.append((masks.abs() * e).sum(1))
            v = torch.nn.functional.avg_pool2d((masks * e.sqrt()).unsqueeze(1), (2, 1), ceil_mode=True).flatten(1)
            gram += v @ v.T
            sums += v.sum(1)
            cells += v.shape[1]
        per_frame = torch.cat(claimed, dim=-1)  # [P, T / stride]
        sub = energy[::MAP_STRIDE, ::MAP_STRIDE]
        share = (per_frame.sum(1) / sub.sum().clamp_min(1e-12)).view(h, w)
        frame_share = (per_frame / sub.sum(0).clamp_min(1e-12)).view(h, w, -1)
        frame_share = frame_share.repeat_interleave(MAP_STRIDE, dim=-1)[..., :energy.shape[-1]]
        cov = gram.double() - torch.outer(sums.double(), sums.double()) / max(cells, 1)
        d = cov.diagonal().clamp_min(1e-20).sqrt()
        corr = cov / torch.outer(d, d)
        result = (share.cpu().numpy(), frame_share.cpu().numpy(), corr.cpu().numpy())
        a._positions = result  # type: ignore[attr-defined]
        return result

    @torch.no_grad()
    def find_sources(self, a: Analysis, max_sources: int = 4, min_share: float = 0.1,
                     similarity: float = 0.6, rest: bool = True) -> list[np.ndarray]:
        """Regions (bool ``[h, w]``) of the sources the model finds: positions that change the mask of at
        least ``min_share`` of the mixture's energy (and half as much as the strongest position), grouped
        greedily (strongest first) with every position whose mask change correlates ``>= similarity``.
        With ``rest``, the rest of the picture is one more source when the found sources leave at least
        ``REST_SHARE`` of the mixture's energy unexplained (a source that looks like the scene's floor, whose
        positions change no mask, shows up there)."""
        h, w = a.grid
        self.last_rest = False
        share, _, corr = self._positions(a)
        flat = share.reshape(-1)
        active = np.flatnonzero((flat >= min_share) & (flat >= 0.5 * flat.max()))
        left = set(active.tolist())
        regions = []
        for seed in active[np.argsort(-flat[active])]:
            if seed not in left or len(regions) >= max_sources:
                continue
            members = [i for i in left if corr[seed, i] >= similarity]
            left -= set(members)
            region = np.zeros(h * w, bool)
            region[members] = True
            regions.append(region.reshape(h, w))
        if rest and regions and len(regions) < max_sources:
            # what the found sources leave unexplained; if that is a lot, the rest of the picture is a source
            found = self.separate_regions(a, regions)
            mixture = self.spectral.istft(a.mix_spec, a.length).cpu().numpy().astype(np.float64)
            residual = mixture - found.sum(0)
            if (residual ** 2).sum() >= REST_SHARE * (mixture ** 2).sum():
                taken = np.any(regions, axis=0)
                # away from the found sources by one cell (their features spill over)
                near = torch.nn.functional.max_pool2d(torch.as_tensor(taken, dtype=torch.float32)[None, None], 3,
                                                      1, 1)[0, 0].numpy() > 0
                others = ~near if (~near).any() else ~taken
                if others.any():
                    regions.append(others)
                    self.last_rest = True
        return regions

    # -- separation ------------------------------------------------------------------------------

    @torch.no_grad()
    def separate_regions(self, a: Analysis, regions: Sequence[np.ndarray]) -> np.ndarray:
        """Waveforms ``[N, S]`` of one source per region (bool ``[h, w]``; max-pooled features inside)."""
        if not regions:
            return np.zeros((0, a.length), np.float32)
        feats = torch.stack([self.net.pool(a.maps, torch.as_tensor(r, device=self.device)) for r in regions])
        feats = torch.maximum(feats, self.baseline(a))  # as in training, the pooled feature includes the scene's floor
        masks = self._masks(self._logits(a, feats))  # [N, Fw, T]
        return self.spectral.apply_warped_mask(a.mix_spec, masks, a.length).cpu().numpy()

    @torch.no_grad()
    def separate_clips(self, mixture: Any, frames_per_source: Sequence[Any], fps: float | None = None) -> np.ndarray:
        """The mix-and-separate case: ``[N, S]`` waveforms of the sources whose own frames are given
        (each source's whole picture is pooled, as in training)."""
        a = self.analyse(mixture, frames_per_source[0], fps)
        out = []
        for frames in frames_per_source:
            b = _with_maps(a, self.analyse_frames(frames, a, fps))
            out.append(self.separate_regions(b, [np.ones(b.grid, bool)])[0])
        return np.stack(out)

    @torch.no_grad()
    def analyse_frames(self, frames: Any, a: Analysis, fps: float | None = None) -> torch.Tensor:
        """Per-chunk visual maps ``[C, K, h, w]`` of other ``frames`` over the same audio as ``a``."""
        from avkit.apps.separation.data import frame_indices

        fps = fps or self.opts.fps
        frames = torch.as_tensor(np.asarray(frames, np.uint8))
        hop_s = self.spectral.cfg.hop / self.sample_rate
        t = a.mix_spec.shape[-1]
        maps = []
        for c in range(a.maps.shape[0]):
            start, stop = c * CHUNK_FRAMES, min(t, (c + 1) * CHUNK_FRAMES)
            idx = frame_indices(start * hop_s, (stop - start) * hop_s, fps, len(frames), self.opts.num_frames)
            maps.append(self.net.visual_net(frames[idx].permute(0, 3, 1, 2).unsqueeze(0).to(self.device))[0])
        return torch.stack(maps)


def _chunk(c: int, a: Analysis) -> slice:
    """The STFT frames of visual chunk ``c``."""
    return slice(c * CHUNK_FRAMES, min(a.mix_spec.shape[-1], (c + 1) * CHUNK_FRAMES))


def _with_maps(a: Analysis, maps: torch.Tensor) -> Analysis:
    return Analysis(a.length, a.mix_spec, a.mix_mag, a.audio_features, maps, a.chunk_of_frame,
                    tuple(maps.shape[-2:]), a.image_size)


# ---------------------------------------------------------------------------------------------
# regions


def parse_regions(spec: str) -> dict[str, Any]:
    """``auto`` | ``whole`` | ``grid:CxR`` (or ``CxR``) | boxes ``x0,y0,x1,y1;...`` (pixels, or fractions
    of the frame when every value is <= 1) -> ``{"kind": ..., ...}``."""
    text = (spec or "auto").strip().lower()
    if text in ("auto", "whole"):
        return {"kind": text}
    m = re.fullmatch(r"(?:grid:)?(\d+)x(\d+)", text)
    if m:
        cols, rows = int(m.group(1)), int(m.group(2))
        if not (1 <= cols <= 16 and 1 <= rows <= 16):
            raise AvkitError(f"--regions {spec!r}: a grid needs 1-16 columns and rows")
        return {"kind": "grid", "cols": cols, "rows": rows}
    boxes = []
    for part in text.split(";"):
        try:
            vals = [float(v) for v in part.split(",")]
        except ValueError:
            vals = []
        if len(vals) != 4 or vals[2] <= vals[0] or vals[3] <= vals[1]:
            raise AvkitError(f"--regions {spec!r}: expected auto, whole, grid:CxR or boxes 'x0,y0,x1,y1;...' "
                             "with x1 > x0 and y1 > y0")
        boxes.append(vals)
    fractions = all(v <= 1.0 for b in boxes for v in b)
    return {"kind": "boxes", "boxes": boxes, "fractions": fractions}


def region_masks(regions: dict[str, Any], grid: tuple[int, int], frame_size: tuple[int, int]
                 ) -> tuple[list[np.ndarray], list[tuple[float, float, float, float]]]:
    """Boolean feature-map masks and their boxes (frame pixels) for a parsed region spec (not ``auto``)."""
    h, w = grid
    height, width = frame_size
    cy = (np.arange(h) + 0.5) / h  # cell centres, as fractions of the frame
    cx = (np.arange(w) + 0.5) / w
    if regions["kind"] == "whole":
        boxes = [(0.0, 0.0, 1.0, 1.0)]
    elif regions["kind"] == "grid":
        c, r = regions["cols"], regions["rows"]
        boxes = [(i / c, j / r, (i + 1) / c, (j + 1) / r) for j in range(r) for i in range(c)]
    else:
        boxes = [tuple(b) if regions["fractions"] else (b[0] / width, b[1] / height, b[2] / width, b[3] / height)
                 for b in regions["boxes"]]
    masks = []
    for x0, y0, x1, y1 in boxes:
        if x1 <= 0 or y1 <= 0 or x0 >= 1 or y0 >= 1:
            raise AvkitError(f"region box {_px((x0, y0, x1, y1), frame_size)} lies outside the {width}x{height} frame")
        m = ((cy[:, None] >= y0) & (cy[:, None] < y1)) & ((cx[None, :] >= x0) & (cx[None, :] < x1))
        if not m.any():  # a box smaller than a cell: the cell under its centre
            m = np.zeros((h, w), bool)
            m[min(h - 1, int((y0 + y1) / 2 * h)), min(w - 1, int((x0 + x1) / 2 * w))] = True
        masks.append(m)
    return masks, [_px(b, frame_size) for b in boxes]


def _px(box: Sequence[float], frame_size: tuple[int, int]) -> tuple[float, float, float, float]:
    height, width = frame_size
    x0, y0, x1, y1 = box
    return (max(0.0, x0) * width, max(0.0, y0) * height, min(1.0, x1) * width, min(1.0, y1) * height)


def region_box(region: np.ndarray, frame_size: tuple[int, int]) -> tuple[float, float, float, float]:
    """The pixel box around the largest connected (8-neighbour) group of cells of a feature-map region."""
    from scipy import ndimage

    labels, count = ndimage.label(region, structure=np.ones((3, 3), int))
    if count > 1:
        sizes = ndimage.sum(region, labels, index=np.arange(1, count + 1))
        region = labels == 1 + int(np.argmax(sizes))
    h, w = region.shape
    ys, xs = np.nonzero(region)
    return _px((xs.min() / w, ys.min() / h, (xs.max() + 1) / w, (ys.max() + 1) / h), frame_size)


# ---------------------------------------------------------------------------------------------
# reading inputs


@dataclass
class VideoInput:
    """A decoded input video: the network's view and the view written to the output videos."""

    path: str
    audio: np.ndarray  # float32 [S] at the model's rate
    net_frames: np.ndarray  # uint8 [T, h, w, 3] at the run's fps and image size
    frames: np.ndarray  # uint8 [T', H, W, 3] for the output videos
    fps: float  # of ``frames``
    frame_size: tuple[int, int]  # (H, W) of the original picture
    duration: float


def read_input(path: str | Path, sep: Separator, *, output_frames: bool = True) -> VideoInput:
    """Decode ``path`` for :func:`separate_video`; one-line errors for what a separation needs."""
    from avkit.io import VideoReader

    path = Path(path)
    if not path.exists():
        raise MediaError(path, "no such file")
    if path.is_dir():
        raise MediaError(path, "is a directory, not a video")
    with VideoReader(path) as reader:
        if reader.video is None:
            raise MediaError(path, "no video stream: avkit separate needs the picture to know which sources "
                                   "to separate")
        if reader.audio is None:
            raise MediaError(path, "no audio stream: there is no sound to separate")
        duration = reader.duration or 0.0
        audio = reader.read_audio(0.0, duration, sample_rate=sep.sample_rate).numpy().astype(np.float32)
        if len(audio) < sep.spectral.cfg.n_fft:
            raise MediaError(path, f"audio is too short to separate ({len(audio) / sep.sample_rate:.3f} s)")
        n = max(1, int(np.ceil(duration * sep.opts.fps - 1e-9)))
        net_frames, _ = reader.frames_at(np.arange(n) / sep.opts.fps, size=sep.opts.image_size)
        height, width = int(reader.video.codec_context.height), int(reader.video.codec_context.width)
        fps = min(float(reader.fps or sep.opts.fps), 30.0)
        frames = np.zeros((0, 1, 1, 3), np.uint8)
        if output_frames:
            short = min(height, width)
            size = None if short <= MAX_OUTPUT_SIDE else MAX_OUTPUT_SIDE
            m = max(1, int(np.ceil(duration * fps - 1e-9)))
            frames_t, _ = reader.frames_at(np.arange(m) / fps, size=size)
            frames = frames_t.numpy()
            height, width = frames.shape[1:3]
    return VideoInput(str(path), audio, net_frames.numpy(), frames, fps, (height, width), duration)


# ---------------------------------------------------------------------------------------------
# writing outputs


def _write_wav(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    import soundfile

    from avkit.utils import atomic_path

    with atomic_path(path, suffix=".wav") as tmp:
        soundfile.write(str(tmp), np.asarray(audio, np.float32), sample_rate, subtype="FLOAT", format="WAV")


def _upscale(frames: np.ndarray) -> np.ndarray:
    short = min(frames.shape[1:3])
    k = int(np.ceil(MIN_OUTPUT_SIDE / short)) if short < MIN_OUTPUT_SIDE else 1
    return frames.repeat(k, axis=1).repeat(k, axis=2) if k > 1 else frames


def _highlight(frames: np.ndarray, box: tuple[float, float, float, float], frame_size: tuple[int, int]) -> np.ndarray:
    """Frames with everything outside ``box`` dimmed."""
    height, width = frames.shape[1:3]
    sy, sx = height / frame_size[0], width / frame_size[1]
    x0, y0, x1, y1 = (int(np.floor(box[0] * sx)), int(np.floor(box[1] * sy)), int(np.ceil(box[2] * sx)),
                      int(np.ceil(box[3] * sy)))
    out = (frames.astype(np.float32) * 0.3).astype(np.uint8)
    out[:, y0:y1, x0:x1] = frames[:, y0:y1, x0:x1]
    return out


def _heat(share: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A map ``[..., h, w]`` in [0, 1] resized (bilinear) to ``size``: ``[..., H, W]``."""
    t = torch.as_tensor(share, dtype=torch.float32)
    lead = t.shape[:-2]
    t = t.reshape(-1, 1, *t.shape[-2:])
    t = torch.nn.functional.interpolate(t, size=size, mode="bilinear", align_corners=False)
    return t.reshape(*lead, *size).clamp(0, 1).numpy()


def _overlay(frames: np.ndarray, heat: np.ndarray) -> np.ndarray:
    """Blend an inferno-coloured ``heat [T, H, W]`` over ``frames [T, H, W, 3]``."""
    from matplotlib import colormaps

    colours = colormaps["inferno"](heat)[..., :3] * 255.0
    alpha = 0.35 + 0.5 * heat[..., None]
    return np.clip(frames * (1 - alpha) + colours * alpha, 0, 255).astype(np.uint8)


def plot_sound_map(path: Path, frame: np.ndarray, share: np.ndarray, sources: Sequence[Source],
                   frame_size: tuple[int, int], title: str = "") -> Path:
    """``soundmap.png``: the frame, the sound map over it, and the sources' regions."""
    from matplotlib.patches import Rectangle

    from avkit.engine.report import new_figure, save_figure

    fig = new_figure(10.5, 3.8)
    height, width = frame.shape[:2]
    extent = (0, frame_size[1], frame_size[0], 0)
    axes = fig.subplots(1, 3)
    axes[0].imshow(frame, extent=extent, interpolation="nearest")
    axes[0].set_title("frame")
    axes[1].imshow(frame, extent=extent, interpolation="nearest")
    im = axes[1].imshow(share, extent=extent, cmap="inferno", alpha=0.65, vmin=0, vmax=max(float(share.max()), 1e-6),
                        interpolation="bilinear")
    fig.colorbar(im, ax=axes[1], fraction=0.046, pad=0.04, label="share of the sound")
    axes[1].set_title("sound map: which pixels make the sound")
    axes[2].imshow(frame, extent=extent, interpolation="nearest")
    colours = ["#00e5ff", "#ffea00", "#ff4081", "#76ff03", "#ff9100", "#d500f9"]
    for k, src in enumerate(sources):
        x0, y0, x1, y1 = src.box
        c = colours[k % len(colours)]
        axes[2].add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=c, linewidth=2))
        axes[2].text(x0 + 0.5, y0 + 0.5, f"{k}: {100 * src.energy:.0f}%" + (" (rest)" if "rest" in src.label else ""),
                     color=c, fontsize=9, va="top", fontweight="bold")
    axes[2].set_title("sources (share of the energy)")
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


class _Outputs:
    """Write into a staging folder beside ``out``; swap the files in at the end (see the module docstring)."""

    def __init__(self, out: str | Path, overwrite: bool) -> None:
        self.out = Path(out)
        if self.out.exists() and not self.out.is_dir():
            raise AvkitError(f"{self.out}: exists and is not a directory")
        self.previous: list[str] = []
        if self.out.is_dir() and any(self.out.iterdir()):
            if not overwrite:
                raise OutputExistsError(self.out)
            record = self.out / JSON_NAME
            if not record.is_file():
                raise AvkitError(f"{self.out}: not an 'avkit separate' output folder (no {JSON_NAME}); "
                                 "refusing to replace its files, choose another --out")
            try:
                self.previous = list(json.loads(record.read_text()).get("files", []))
            except (json.JSONDecodeError, AttributeError):
                raise AvkitError(f"{record}: unreadable; refusing to replace the folder") from None
        self.out.parent.mkdir(parents=True, exist_ok=True)
        import tempfile

        self.stage = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.", suffix=".separating", dir=self.out.parent))
        self.files: list[str] = []

    def path(self, name: str) -> Path:
        self.files.append(name)
        return self.stage / name

    def commit(self, record: dict[str, Any]) -> None:
        from avkit.utils import atomic_write_json

        record["files"] = self.files + [JSON_NAME]
        atomic_write_json(self.stage / JSON_NAME, record)
        self.out.mkdir(parents=True, exist_ok=True)
        for name in self.previous:  # only what an earlier avkit separate wrote
            old = self.out / name
            if name not in record["files"] and old.is_file() and "/" not in name:
                old.unlink()
        for name in record["files"]:
            os.replace(self.stage / name, self.out / name)

    def cleanup(self) -> None:
        shutil.rmtree(self.stage, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# the file-level API


@dataclass
class SeparationResult:
    """What :func:`separate_video` / :func:`separate_pair` did."""

    out: Path
    sources: list[dict[str, Any]]
    files: list[str]
    seconds: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, Any] | None = None
    duration: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        d = {"out": str(self.out), "duration": round(self.duration, 3), "sources": self.sources,
             "files": self.files, "seconds": {k: round(v, 4) for k, v in self.seconds.items()}}
        if self.duration and self.seconds.get("separate"):
            d["real_time_factor"] = round(self.duration / self.seconds["separate"], 1)
        if self.seconds.get("total"):
            d["real_time_factor_total"] = round(self.duration / self.seconds["total"], 1)
        if self.metrics is not None:
            d["metrics"] = self.metrics
        return d


def separate_video(video: str | Path, run_dir: str | Path | Separator, out: str | Path, *, regions: str = "auto",
                   overwrite: bool = False, videos: bool = True, max_sources: int = 4, checkpoint: str = "best",
                   device: str = "auto", progress: Callable[[str], None] | None = None) -> SeparationResult:
    """Separate the sources of ``video`` (see the module docstring); ``regions`` as :func:`parse_regions`."""
    t0 = time.perf_counter()
    spec = parse_regions(regions)
    outputs = _Outputs(out, overwrite)  # refuse early, before any work
    try:
        sep = run_dir if isinstance(run_dir, Separator) else load_separator(run_dir, checkpoint, device)
        step = progress or (lambda msg: None)
        step("reading the video")
        t_read = time.perf_counter()
        clip = read_input(video, sep, output_frames=videos)
        t_sep = time.perf_counter()
        step("separating")
        a = sep.analyse(clip.audio, clip.net_frames)
        if spec["kind"] == "auto":
            masks = sep.find_sources(a, max_sources=max_sources)
            if not masks:
                masks = [np.ones(a.grid, bool)]
            boxes = [region_box(m, clip.frame_size) for m in masks]
            labels = [f"found {k}" for k in range(len(masks))]
            if len(masks) > 1 and sep.last_rest:
                labels[-1] = "rest of the picture"
        else:
            masks, boxes = region_masks(spec, a.grid, clip.frame_size)
            labels = [f"region {k}" for k in range(len(masks))]
        estimates = sep.separate_regions(a, masks)
        share, frame_share = sep.sound_map(a)
        t_write = time.perf_counter()
        mixture = clip.audio
        energy = float((mixture.astype(np.float64) ** 2).sum()) or 1.0
        sources = [Source(m, b, e, float((e.astype(np.float64) ** 2).sum() / energy), label)
                   for m, b, e, label in zip(masks, boxes, estimates, labels)]
        residual = mixture - estimates.sum(0) if len(estimates) else mixture
        step("writing")
        sr = sep.sample_rate
        _write_wav(outputs.path("mixture.wav"), mixture, sr)
        for k, src in enumerate(sources):
            _write_wav(outputs.path(f"source_{k}.wav"), src.audio, sr)
        _write_wav(outputs.path("residual.wav"), residual, sr)
        mid = clip.net_frames[len(clip.net_frames) // 2]
        plot_sound_map(outputs.path("soundmap.png"), mid, share, sources, clip.frame_size,
                       title=f"{Path(video).name}: {len(sources)} source(s)")
        if videos:
            from avkit.io import write_video

            frames = clip.frames
            for k, src in enumerate(sources):
                write_video(outputs.path(f"source_{k}.mp4"), _upscale(_highlight(frames, src.box, clip.frame_size)),
                            clip.fps, src.audio, sr)
            write_video(outputs.path("residual.mp4"), _upscale(frames), clip.fps, residual, sr)
            write_video(outputs.path("soundmap.mp4"), _sound_map_video(frames, clip.fps, frame_share, sep), clip.fps,
                        mixture, sr)
        t_end = time.perf_counter()
        seconds = {"load": t_read - t0, "read": t_sep - t_read, "separate": t_write - t_sep, "write": t_end - t_write}
        seconds["total"] = t_end - t0
        record = {"video": str(video), "run": str(sep.run_dir), "regions": regions, "sample_rate": sr,
                  "duration": clip.duration, "frame_size": list(clip.frame_size),
                  "sources": [dict(s.to_dict(), wav=f"source_{k}.wav", **({"video": f"source_{k}.mp4"} if videos else {}))
                              for k, s in enumerate(sources)],
                  "residual_energy": round(float((residual.astype(np.float64) ** 2).sum() / energy), 4),
                  "seconds": {k: round(v, 4) for k, v in seconds.items()}}
        outputs.commit(record)
        return SeparationResult(outputs.out, record["sources"], record["files"], seconds, None, clip.duration)
    finally:
        outputs.cleanup()


def _sound_map_video(frames: np.ndarray, fps: float, frame_share: np.ndarray, sep: Separator) -> np.ndarray:
    """Frames with the per-time sound map over them (upscaled when small)."""
    big = _upscale(frames)
    h, w, t = frame_share.shape
    hop_s = sep.spectral.cfg.hop / sep.sample_rate
    stft_t = (np.arange(len(big)) / fps / hop_s).round().astype(int).clip(0, t - 1)
    # smooth over ~one video frame of STFT frames
    width = max(1, int(round(1 / fps / hop_s)))
    kernel = np.ones(width) / width
    smooth = np.apply_along_axis(lambda x: np.convolve(x, kernel, mode="same"), 2, frame_share)
    heat = _heat(np.moveaxis(smooth[..., stft_t], 2, 0), big.shape[1:3])
    return _overlay(big, heat)


def separate_pair(video_a: str | Path, video_b: str | Path, run_dir: str | Path | Separator, out: str | Path, *,
                  overwrite: bool = False, videos: bool = True, checkpoint: str = "best", device: str = "auto",
                  progress: Callable[[str], None] | None = None) -> SeparationResult:
    """Mix the sounds of two videos, separate each again from its own picture, and score it."""
    from avkit.apps.separation.metrics import evaluate_mixture, summarize

    t0 = time.perf_counter()
    outputs = _Outputs(out, overwrite)
    try:
        sep = run_dir if isinstance(run_dir, Separator) else load_separator(run_dir, checkpoint, device)
        step = progress or (lambda msg: None)
        step("reading the videos")
        t_read = time.perf_counter()
        clips = [read_input(v, sep, output_frames=videos) for v in (video_a, video_b)]
        n = min(len(c.audio) for c in clips)
        refs = np.stack([c.audio[:n] for c in clips])
        mixture = refs.sum(0)
        t_sep = time.perf_counter()
        step("separating")
        estimates = sep.separate_clips(mixture, [c.net_frames for c in clips])
        t_write = time.perf_counter()
        step("scoring")
        from avkit.apps.separation.stft import Spectral

        scores = evaluate_mixture(Spectral(sep.spectral.cfg), refs, estimates)
        scores["num_sources"] = 2
        summary = summarize([scores])["2"]
        sr = sep.sample_rate
        step("writing")
        _write_wav(outputs.path("mixture.wav"), mixture, sr)
        energy = float((mixture.astype(np.float64) ** 2).sum()) or 1.0
        sources = []
        for k, (clip, est) in enumerate(zip(clips, estimates)):
            _write_wav(outputs.path(f"source_{k}.wav"), est, sr)
            entry = {"label": Path(clip.path).name, "video_in": clip.path,
                     "energy": round(float((est.astype(np.float64) ** 2).sum() / energy), 4), "wav": f"source_{k}.wav",
                     **{m: round(scores["model"][m][k], 3) for m in scores["model"]}}
            if videos:
                from avkit.io import write_video

                frames = clip.frames[: max(1, int(np.ceil(n / sr * clip.fps)))]
                write_video(outputs.path(f"source_{k}.mp4"), _upscale(frames), clip.fps, est, sr)
                entry["video"] = f"source_{k}.mp4"
            sources.append(entry)
        residual = mixture - estimates.sum(0)
        _write_wav(outputs.path("residual.wav"), residual, sr)
        t_end = time.perf_counter()
        seconds = {"load": t_read - t0, "read": t_sep - t_read, "separate": t_write - t_sep, "write": t_end - t_write}
        seconds["total"] = t_end - t0
        metrics = {"per_source": scores, "mean": summary}
        record = {"videos": [str(video_a), str(video_b)], "run": str(sep.run_dir), "mode": "mix", "sample_rate": sr,
                  "duration": n / sr, "sources": sources, "metrics": metrics,
                  "seconds": {k: round(v, 4) for k, v in seconds.items()}}
        outputs.commit(record)
        return SeparationResult(outputs.out, sources, record["files"], seconds, metrics, n / sr)
    finally:
        outputs.cleanup()
