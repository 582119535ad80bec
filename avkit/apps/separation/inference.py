"""The separation model on arrays: :class:`Separator`.

:meth:`Separator.from_run` rebuilds the network of a trained run (``config.yaml`` + weights; the public
:func:`avkit.apps.separation.load` calls it). :meth:`Separator.analyse` computes the mixture STFT, the audio
features and the per-position visual features of every time chunk once; then

- :meth:`Separator.sound_map` gives, per feature-map position, the share of the mixture's energy whose
  mask changes when the position's feature joins the scene's floor (overall and per STFT frame):
  which pixels make which sound;
- :meth:`Separator.find_sources` lets the model find the sources: positions that change the masks are
  grouped by how alike the changes are (greedy, strongest first), plus the rest of the picture when
  the found sources leave much of the sound unexplained;
- :meth:`Separator.separate_regions` separates one source per region (a boolean mask over the feature
  map, pooled like a clip is in training);
- :meth:`Separator.separate_clips` / :meth:`Separator.separate` are the mix-and-separate case: each
  source's own frames, pooled whole.

A separator may also hold an audio-only network (``visual: none``, :meth:`Separator.attach_stems`; the
shipped model has one). When it has a slot for every source asked for, it gives the sounds and the
pictured network only says whose each is: its stems are put in the order that matches the pictured
network's own estimates best (docs/separation.md: the audio-only network separates better, the pictured
one tells which sound belongs to which picture).

Reading videos and writing the outputs is :mod:`avkit.apps.separation.video`; ``--regions`` is
:mod:`~avkit.apps.separation.regions`, the pictures :mod:`~avkit.apps.separation.plots`.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from avkit.apps.separation.model import SeparationNet
from avkit.apps.separation.options import SeparationOptions, SeparationSpec
from avkit.apps.separation.regions import group_positions
from avkit.errors import AvkitError

if TYPE_CHECKING:
    from avkit.apps.separation.naming import InstrumentNamer
    from avkit.engine.checkpoint import RunFiles

CHUNK_FRAMES = 128  # STFT frames per visual chunk (2.97 s at the defaults, the training clips' length)
UNET_FRAMES = 1024  # the U-Net runs on pieces of this many STFT frames (plus context) for long audio
UNET_CONTEXT = 32
REST_SHARE = 0.6  # find_sources: the rest of the picture is a source when this much energy is unexplained
MAP_STRIDE = 2  # the sound map looks at every other frequency bin and STFT frame
MOTION_FRAMES = 64  # visual: motion runs on pieces of this many video frames ...
MOTION_CONTEXT = 4  # ... with this many frames of context on each side (its temporal receptive field is 7)
# A source the timbre path gives less than this share of the mixture's energy was most likely misnamed: on validation
# duets the namer's wrong names (one instrument's two players named as two) got 0.28% or less, while the rightly
# named got 0.88% and more (benchmarks/separation_unheard.py; docs/separation.md, "A named instrument ...").
UNHEARD_SHARE = 0.005
WINDOW_SECONDS = 60.0  # a longer Recording is analysed and separated a window of this length at a time ...
WINDOW_OVERLAP = 4.0  # ... the windows overlapping by this much, their sounds cross-faded there


@dataclass
class Analysis:
    """What :meth:`Separator.analyse` computes once per input."""

    length: int  # samples
    mix_spec: torch.Tensor  # complex [F, T]
    mix_mag: torch.Tensor  # warped magnitude [Fw, T]
    audio_features: torch.Tensor  # [K, Fw, T]
    maps: torch.Tensor  # per-position visual features per chunk (motion: per video frame) [C, K, h, w]
    lo: torch.Tensor  # long [T]: the chunk / video frame of each STFT frame ...
    hi: torch.Tensor  # long [T]: ... and the next one (motion), whose feature is mixed in with weight
    weight: torch.Tensor  # float [T] (0 for the chunks of visual: appearance)
    grid: tuple[int, int]  # (h, w) of the feature map
    image_size: tuple[int, int]  # (H, W) of the frames the network saw
    positions: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # Separator._positions, computed once
    start: float = 0.0  # seconds into the frames' time of the audio's first sample (a Recording's window)


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


@dataclass(frozen=True)
class Window:
    """Samples ``[start, stop)`` of a recording, cross-faded over its first ``fade_in`` and last ``fade_out``
    samples with its neighbours; it speaks for the STFT frames ``[own_start, own_stop)`` of the whole recording
    (the sound map and the energies count each frame once, from the window where it is furthest from an edge)."""

    start: int
    stop: int
    fade_in: int
    fade_out: int
    own_start: int
    own_stop: int


def window_plan(length: int, sample_rate: int, hop: int, fps: float, seconds: float = WINDOW_SECONDS,
                overlap: float = WINDOW_OVERLAP) -> list[Window]:
    """The windows of a recording of ``length`` samples: one when it is at most ``seconds + overlap`` long,
    else windows of ``seconds`` overlapping by ``overlap`` (both rounded to a unit of time that is a whole
    number of video frames at ``fps`` and of pairs of STFT hops, so every window's frames and STFT frames fall
    on the whole recording's grids); the last window is between ``overlap`` and ``seconds`` long."""
    per_frame = sample_rate / fps
    unit = math.lcm(2 * hop, round(per_frame)) if abs(per_frame - round(per_frame)) < 1e-9 else 2 * hop
    size = max(1, round(seconds * sample_rate / unit)) * unit
    lap = max(1, round(overlap * sample_rate / unit)) * unit
    frames = 1 + length // hop
    if length <= size + lap:
        return [Window(0, length, 0, 0, 0, frames)]
    step = size - lap
    count = math.ceil((length - lap) / step)
    starts = [k * step for k in range(count)]
    owns = [0] + [(s + lap // 2) // (2 * hop) * 2 for s in starts[1:]] + [frames]
    return [Window(s, length if k == count - 1 else s + size, 0 if k == 0 else lap, 0 if k == count - 1 else lap,
                   owns[k], owns[k + 1]) for k, s in enumerate(starts)]


class Recording:
    """A mixture and its frames, for a :class:`Separator` to analyse a :class:`Window` at a time
    (:func:`window_plan`), so that memory does not grow with the recording's length: the sound map, the sources
    found and the separated sounds are gathered over the windows (the sounds cross-faded where they overlap).
    A recording of one window is analysed once and kept; a longer one is analysed again on each pass over it
    (the first window's analysis, made to check the input, serves the first pass)."""

    def __init__(self, sep: Separator, audio: Any, frames: Any, fps: float | None = None,
                 progress: Callable[[str], None] | None = None) -> None:
        self.sep, self.progress = sep, progress
        self.passes = 0  # passes over the windows begun (each analyses every window again)
        self.audio = np.asarray(audio, np.float32)
        self.frames = np.asarray(frames, np.uint8)
        self.fps = fps or sep.opts.fps
        self.length = len(self.audio)
        # windows on the network's own frame grid, so that a window sees the frames the whole recording would
        self.windows = window_plan(self.length, sep.sample_rate, sep.spectral.cfg.hop, sep.opts.fps, WINDOW_SECONDS,
                                   WINDOW_OVERLAP)
        self.positions: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # Separator._positions, once
        self._kept: Analysis | None = None
        first = self._kept = self.analysis(self.windows[0])  # refuses bad input before any other work
        self.grid, self.image_size = first.grid, first.image_size

    def analysis(self, w: Window) -> Analysis:
        """The analysis of window ``w``: its samples, with the frames shown while they play."""
        kept = self._kept
        if kept is not None and w == self.windows[0]:
            if len(self.windows) > 1:
                self._kept = None  # a long recording's windows are not held
            return kept
        audio = self.audio[w.start:w.stop] if len(self.windows) > 1 else self.audio
        return self.sep.analyse(audio, self.frames, self.fps, start=w.start / self.sep.sample_rate)

    def __iter__(self) -> Iterator[tuple[Window, Analysis]]:
        self.passes += 1
        for k, w in enumerate(self.windows):
            if self.progress is not None and len(self.windows) > 1:
                self.progress(f"separating (pass {self.passes}: window {k + 1}/{len(self.windows)})")
            yield w, self.analysis(w)


class Separator:
    """A trained separation network with its options (see the module docstring)."""

    def __init__(self, net: SeparationNet, opts: SeparationOptions, device: torch.device,
                 run_dir: Path | None = None) -> None:
        self.net, self.opts, self.device, self.run_dir = net, opts, device, run_dir
        self.spectral = net.spectral
        self.sample_rate = net.spectral.cfg.sample_rate
        self.hop_s = net.spectral.cfg.hop / self.sample_rate
        self.stems: SeparationNet | None = None  # an audio-only network that gives the sounds (attach_stems) ...
        self.stems_dir: Path | None = None  # ... and where it came from
        self.namer: InstrumentNamer | None = None  # names each source's instrument, to separate by timbre (attach_namer)

    def attach_stems(self, stems: Separator) -> None:
        """Let the audio-only network of ``stems`` (a run with ``visual: none`` and the same STFT) separate
        whenever it has one slot per source; this separator's pictured network then orders its stems."""
        if stems.net.visual_net is not None:
            raise AvkitError(f"{stems.run_dir or 'the stems model'}: not an audio-only model (task_options.visual: "
                             f"{stems.net.net_cfg.visual}); the stems come from a model trained with visual: none")
        if stems.spectral.cfg != self.spectral.cfg:
            raise AvkitError(f"{stems.run_dir or 'the stems model'}: its STFT ({stems.spectral.cfg}) differs from "
                             f"the pictured model's ({self.spectral.cfg})")
        self.stems, self.stems_dir = stems.net.to(self.device).eval(), stems.run_dir

    def detach_stems(self) -> None:
        """Separate with the pictured network alone from now on."""
        self.stems, self.stems_dir = None, None

    def attach_namer(self, namer: InstrumentNamer) -> None:
        """Let ``namer`` name each source's instrument from its picture: when it names two or more different
        instruments, each with probability >= ``naming.CONFIDENT``, they are separated by their timbres
        (:mod:`avkit.apps.separation.timbre`) instead of by the networks (:meth:`plan_timbre`)."""
        self.namer = namer

    def detach_namer(self) -> None:
        """Never separate by timbre unless told the instruments."""
        self.namer = None

    def plan_timbre(self, pictures: Sequence[np.ndarray], instruments: Sequence[str] | None = None
                    ) -> tuple[list[str] | None, list[tuple[str, float]] | None]:
        """Whether to separate the sources of ``pictures`` (one uint8 ``[T, H, W, 3]`` each) by timbre:
        ``(names, named)``, ``names`` the instruments to separate (None: the networks) and ``named`` what the
        namer said (instrument, probability) per picture (None when it was not asked). ``instruments``: the
        user's names, one per source, used as given. Only two or more different instruments are separated by
        timbre (one instrument's players are told apart by their motion); named ones need every probability
        >= ``naming.CONFIDENT``."""
        from avkit.apps.separation.naming import timbre_refusals
        from avkit.apps.separation.timbre import check_instruments

        n = len(pictures)
        if instruments is not None:
            names = check_instruments(instruments)
            if len(names) != n:
                raise AvkitError(f"--instruments: {len(names)} name(s) for {n} source(s); give one per source, "
                                 "in the order of the regions")
            return (names if n >= 2 and len(set(names)) == n else None), None
        if self.namer is None or n < 2:
            return None, None
        named = self.namer.name(pictures)
        return (None if any(timbre_refusals(named)) else [name for name, _ in named]), named

    def separate_by_timbre(self, mix_spec: torch.Tensor, names: Sequence[str], length: int) -> np.ndarray:
        """Waveforms ``[N, length]`` of the instruments ``names`` in the mixture of complex STFT ``mix_spec``."""
        from avkit.apps.separation.timbre import separate_by_timbre

        return separate_by_timbre(self.spectral, mix_spec, names, length)

    def _by_timbre_in_windows(self, wave: np.ndarray, names: Sequence[str]) -> np.ndarray:
        """:meth:`separate_by_timbre` of the waveform ``wave [S]``, a :func:`window_plan` window at a time (no
        network runs: each window's spectrogram is fitted alone), cross-faded: ``[N, S]``."""
        windows = window_plan(len(wave), self.sample_rate, self.spectral.cfg.hop, self.opts.fps, WINDOW_SECONDS,
                              WINDOW_OVERLAP)

        def by_timbre(w: Window) -> np.ndarray:
            part = torch.as_tensor(wave[w.start:w.stop]).to(self.device)
            return self.separate_by_timbre(self.spectral.stft(part), names, len(part))

        return _cross_faded(len(wave), ((w, by_timbre(w)) for w in windows))

    @staticmethod
    def unheard(named: Sequence[tuple[str, float]] | None, estimates: np.ndarray, mixture: np.ndarray
                ) -> list[bool] | None:
        """Whether the timbre path's ``estimates`` for the namer's names (``named``; None: the user's names, which
        always stand) give a source almost none of the ``mixture`` (less than ``UNHEARD_SHARE`` of its energy): then
        that name is most likely wrong and the networks separate instead. None when every source is heard, else
        one flag per source."""
        if named is None:
            return None
        energy = float((np.asarray(mixture, np.float64) ** 2).sum()) or 1.0
        unheard = [float((np.asarray(e, np.float64) ** 2).sum()) < UNHEARD_SHARE * energy for e in estimates]
        return unheard if any(unheard) else None

    def separate_heard(self, names: list[str] | None, named: Sequence[tuple[str, float]] | None, mixture: np.ndarray,
                       separate: Callable[[list[str] | None], np.ndarray]
                       ) -> tuple[list[str] | None, np.ndarray, list[bool] | None]:
        """``separate(names)`` (by timbre; ``names`` None: the networks), or ``separate(None)`` when the namer's
        names are not borne out by the ``mixture`` (:meth:`unheard`): the names used, the estimates ``[N, S]`` and
        the unheard flags (None when the names stood or were not used)."""
        estimates = separate(names)
        unheard = None if names is None else self.unheard(named, estimates, mixture)
        if unheard is not None:  # a name the sound does not bear out: the networks
            return None, separate(None), unheard
        return names, estimates, None

    def uses_stems(self, sources: int) -> bool:
        """Whether separating ``sources`` sources gives the audio-only network's stems (it has that many slots)."""
        return self.stems is not None and sources == self.stems.net_cfg.slots

    @classmethod
    def from_run(cls, run: RunFiles, device: str | torch.device | None = None) -> Separator:
        """The network of a trained run (:func:`avkit.engine.checkpoint.open_run`), rebuilt from its recipe
        by :class:`~avkit.apps.separation.options.SeparationSpec` (as the task built it) and loaded strictly."""
        from avkit.engine.checkpoint import load_trained
        from avkit.engine.device import resolve_device

        spec = SeparationSpec.from_config(run.config)
        dev = resolve_device(device)
        return cls(load_trained(spec.build_net(), run, dev), spec.options, dev, run.run_dir)

    # -- analysis --------------------------------------------------------------------------------

    @torch.no_grad()
    def analyse(self, audio: Any, frames: Any, fps: float | None = None, start: float = 0.0) -> Analysis:
        """``audio`` float [S] at :attr:`sample_rate`; ``frames`` uint8 [T, H, W, 3] at ``fps``
        (default: the run's fps) covering the same time span, or, with ``start``, a longer span whose frame at
        ``start`` seconds is shown with the audio's first sample (a :class:`Recording`'s window)."""
        fps = fps or self.opts.fps
        self._visual_net()  # refuse an audio-only model before any work
        wave = torch.as_tensor(np.asarray(audio, np.float32)).to(self.device)
        frames = torch.as_tensor(np.asarray(frames, np.uint8))
        if wave.ndim != 1 or wave.numel() < self.spectral.cfg.n_fft:
            raise AvkitError(f"need mono audio of at least {self.spectral.cfg.n_fft} samples, got shape "
                             f"{tuple(wave.shape)}")
        if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
            raise AvkitError(f"need frames uint8 [T, H, W, 3], got shape {tuple(frames.shape)}")
        spec = self.spectral.stft(wave)
        mag = self.spectral.warp(spec.abs())
        t = spec.shape[-1]
        maps, lo, hi, weight = self._visual_maps(frames, t, fps, start)
        feats = self._audio_features(self.spectral.log_magnitude(mag), self.scene([maps]))
        return Analysis(wave.numel(), spec, mag, feats, maps, lo, hi, weight,
                        (int(maps.shape[-2]), int(maps.shape[-1])), (int(frames.shape[1]), int(frames.shape[2])),
                        start=start)

    @torch.no_grad()
    def analyse_frames(self, frames: Any, a: Analysis, fps: float | None = None) -> Analysis:
        """``a`` with the visual maps of other ``frames`` over the same audio (a ``condition: scene`` network's
        audio features stay those of ``a``'s picture; :meth:`separate_clips` computes them for every source's)."""
        maps, lo, hi, weight = self._visual_maps(frames, a.mix_spec.shape[-1], fps or self.opts.fps, a.start)
        return Analysis(a.length, a.mix_spec, a.mix_mag, a.audio_features, maps, lo, hi, weight,
                        (int(maps.shape[-2]), int(maps.shape[-1])), a.image_size, start=a.start)

    def _visual_net(self) -> torch.nn.Module:
        """The network's visual pathway; an audio-only model has none and cannot analyse pictures."""
        if self.net.visual_net is None:
            raise AvkitError(f"{self.run_dir or 'this model'}: an audio-only model (task_options.visual: none) cannot "
                             "tell which sound belongs to which picture; use a model trained with pictures")
        return self.net.visual_net

    def _visual_maps(self, frames: Any, stft_frames: int, fps: float, start: float = 0.0
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-position visual features ``[C, K, h, w]`` and, per STFT frame, which of them it uses (``lo``,
        ``hi``, ``weight``; see :class:`Analysis`). ``visual: appearance``: one per chunk of ``CHUNK_FRAMES``
        STFT frames, from ``num_frames`` frames spread over the chunk (as a training crop's);
        ``visual: motion``: one per video frame at the run's fps (:meth:`_motion_maps`). The STFT frames
        begin ``start`` seconds into the frames' time."""
        from avkit.apps.separation.data import frame_indices

        frames = torch.as_tensor(np.asarray(frames, np.uint8))
        if self.net.temporal:
            return self._motion_maps(frames, stft_frames, fps, start)
        visual_net = self._visual_net()
        hop_s = self.hop_s
        maps = []
        for c in range(max(1, int(np.ceil(stft_frames / CHUNK_FRAMES)))):
            first, stop = c * CHUNK_FRAMES, min(stft_frames, (c + 1) * CHUNK_FRAMES)
            idx = frame_indices(start + first * hop_s, (stop - first) * hop_s, fps, len(frames), self.opts.num_frames)
            f = frames[idx].permute(0, 3, 1, 2).unsqueeze(0).to(self.device)  # [1, T', 3, H, W]
            maps.append(visual_net(f)[0])
        chunk_of = (torch.arange(stft_frames, device=self.device) // CHUNK_FRAMES).clamp(max=len(maps) - 1)
        return torch.stack(maps), chunk_of, chunk_of, torch.zeros(stft_frames, device=self.device)

    def _motion_maps(self, frames: torch.Tensor, stft_frames: int, fps: float, start: float = 0.0
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``visual: motion``: the frames resampled to the run's fps (nearest earlier frame), the motion
        network over them in pieces of ``MOTION_FRAMES`` with ``MOTION_CONTEXT`` frames of context on each
        side (its temporal receptive field), and each STFT frame's place between two of them."""
        from avkit.apps.separation.model import frame_weights

        visual_net = self._visual_net()
        rate = self.opts.fps
        duration = stft_frames * self.hop_s
        count = max(1, int(np.ceil(duration * rate - 1e-9)))
        idx = np.clip(np.floor((start + np.arange(count) / rate) * fps + 1e-6).astype(int), 0, len(frames) - 1)
        x = frames[idx].permute(0, 3, 1, 2).unsqueeze(0).to(self.device)  # [1, T', 3, H, W]
        pieces = []
        for start in range(0, count, MOTION_FRAMES):
            lo, hi = max(0, start - MOTION_CONTEXT), min(count, start + MOTION_FRAMES + MOTION_CONTEXT)
            piece = visual_net(x[:, lo:hi])[0]
            pieces.append(piece[start - lo:start - lo + min(MOTION_FRAMES, count - start)])
        lo_i, hi_i, weight = frame_weights(stft_frames, count, self.hop_s, rate, self.device)
        return torch.cat(pieces), lo_i, hi_i, weight

    def scene(self, maps: Sequence[torch.Tensor]) -> torch.Tensor | None:
        """The condition of a ``condition: scene`` network: the max of the visual features ``[C, K, h, w]``
        of every picture given (as training takes it over the sources' pooled features), ``[1, K]``;
        None for a network whose audio features do not depend on the picture."""
        if not self.net.conditioned:
            return None
        return torch.stack([m.amax(dim=(0, 2, 3)) for m in maps]).amax(dim=0, keepdim=True)

    def _audio_features(self, log_mag: torch.Tensor, scene: torch.Tensor | None = None,
                        net: SeparationNet | None = None) -> torch.Tensor:
        """The U-Net's ``[K, Fw, T]`` (given the ``scene``, for a conditioned network), in pieces with
        context for long inputs; ``net``: another network's U-Net (default: this separator's)."""
        unet = (net or self.net).audio_net
        t = log_mag.shape[-1]
        x = log_mag[None, None]
        if t <= UNET_FRAMES + 2 * UNET_CONTEXT:
            return unet(x, scene)[0]
        out = []
        for start in range(0, t, UNET_FRAMES):
            lo, hi = max(0, start - UNET_CONTEXT), min(t, start + UNET_FRAMES + UNET_CONTEXT)
            piece = unet(x[..., lo:hi], scene)[0]
            out.append(piece[..., start - lo:start - lo + min(UNET_FRAMES, t - start)])
        return torch.cat(out, dim=-1)

    def _logits(self, a: Analysis, features: torch.Tensor) -> torch.Tensor:
        """Mask logits ``[N, Fw, T]`` for visual features ``[N, C, K]`` (one per chunk or video frame)."""
        scaled = _per_stft_frame(features * self.net.scale, a, slice(None))  # [N, T, K]
        return torch.einsum("ntk,kft->nft", scaled, a.audio_features) + self.net.bias

    def _masks(self, logits: torch.Tensor) -> torch.Tensor:
        return self.net.masks(logits, self.opts.mask_threshold)

    # -- sound map -------------------------------------------------------------------------------

    @torch.no_grad()
    def sound_map(self, x: Analysis | Recording) -> tuple[np.ndarray, np.ndarray]:
        """``(share [h, w], per_frame [h, w, T])``: the share of the mixture's (warped) energy whose mask
        changes because of each position (see :meth:`_positions`), overall and per STFT frame."""
        share, frame_share, _ = self._positions(x)
        return share, frame_share

    @staticmethod
    def baseline(a: Analysis) -> torch.Tensor:
        """The scene's floor ``[C, K]``: the median visual feature over positions, per chunk (mostly background).

        A clip's feature in training is the max over all its positions, background included, so it never
        falls below this floor; per-position and per-region features are raised to it before synthesis."""
        return a.maps.flatten(-2).median(dim=-1).values

    @torch.no_grad()
    def _positions(self, x: Analysis | Recording) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sound map and the correlation ``[P, P]`` of the positions' mask changes, in one pass over the
        chunks of every window (kept in ``x.positions``, so the sound map and :meth:`find_sources` share it).

        Position ``p``'s feature (raised to the floor, :meth:`baseline`) gives a mask; the floor alone
        gives the background's mask. The sound map is the share of the mixture's energy whose mask
        changes because of ``p``: ``sum |m_p - m_floor| |X|^2 / sum |X|^2`` (background positions: 0).
        Computed on every other frequency bin and STFT frame (an estimate of shares; 4x less work)."""
        if x.positions is not None:
            return x.positions
        h, w = x.grid
        claimed, energy = [], []
        gram = sums = torch.zeros(())
        cells = 0
        for window, a in _windows(x):
            claimed_w, energy_w, gram_w, sums_w, cells_w = self._position_sums(a, window)
            claimed.append(claimed_w)
            energy.append(energy_w)
            gram, sums, cells = gram_w + gram.to(gram_w.device), sums_w + sums.to(sums_w.device), cells + cells_w
        per_frame, sub_energy = torch.cat(claimed, dim=-1), torch.cat(energy)  # [P, T / stride], [T / stride]
        share = (per_frame.sum(1) / sub_energy.sum().clamp_min(1e-12)).view(h, w)
        frame_share = (per_frame / sub_energy.clamp_min(1e-12)).view(h, w, -1)
        frame_share = frame_share.repeat_interleave(MAP_STRIDE, dim=-1)[..., :_windows_of(x)[-1].own_stop]
        cov = gram.double() - torch.outer(sums.double(), sums.double()) / max(cells, 1)
        d = cov.diagonal().clamp_min(1e-20).sqrt()
        corr = cov / torch.outer(d, d)
        result = (share.cpu().numpy(), frame_share.cpu().numpy(), corr.cpu().numpy())
        x.positions = result
        return result

    def _position_sums(self, a: Analysis, window: Window
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int]:
        """:meth:`_positions`' sums over the STFT frames ``window`` speaks for: the energy each position's mask
        change claims per looked-at frame ``[P, T']``, the energy of those frames ``[T']``, and the Gram matrix
        ``[P, P]``, sums ``[P]`` and count of the mask changes (pooled over pairs of bins) that give the correlation."""
        h, w = a.grid
        p = h * w
        floor = self.baseline(a)  # [C, K]
        feats = torch.maximum(a.maps.flatten(-2).permute(2, 0, 1), floor) * self.net.scale  # [P, C, K]
        floor = floor * self.net.scale
        energy = a.mix_mag.pow(2)  # [Fw, T]
        offset = window.start // self.spectral.cfg.hop  # the window's first STFT frame in the recording's
        own = range(window.own_start - offset, min(energy.shape[-1], window.own_stop - offset))
        claimed, frame_energy = [], []
        gram = torch.zeros(p, p, device=energy.device)
        sums = torch.zeros(p, device=energy.device)
        cells = 0
        for start in range(own.start, own.stop, CHUNK_FRAMES):
            sl = slice(start, min(own.stop, start + CHUNK_FRAMES))
            e = energy[::MAP_STRIDE, sl][:, ::MAP_STRIDE]
            audio = a.audio_features[:, ::MAP_STRIDE, sl][..., ::MAP_STRIDE]
            sub = slice(start, sl.stop, MAP_STRIDE)  # the STFT frames looked at
            feats_t = _per_stft_frame(feats, a, sub)  # [P, Tc/2, K]
            masks = self._masks(torch.einsum("ptk,kft->pft", feats_t, audio) + self.net.bias)  # [P, Fw/2, Tc/2]
            floor_t = _per_stft_frame(floor[None], a, sub)[0]
            masks = masks - self._masks(torch.einsum("tk,kft->ft", floor_t, audio) + self.net.bias)
            claimed.append((masks.abs() * e).sum(1))
            frame_energy.append(e.sum(0))
            v = torch.nn.functional.avg_pool2d((masks * e.sqrt()).unsqueeze(1), (2, 1), ceil_mode=True).flatten(1)
            gram += v @ v.T
            sums += v.sum(1)
            cells += v.shape[1]
        return torch.cat(claimed, dim=-1), torch.cat(frame_energy), gram, sums, cells

    @torch.no_grad()
    def find_sources(self, x: Analysis | Recording, max_sources: int = 4, min_share: float = 0.1,
                     similarity: float = 0.4, active: float = 0.2, saddle: float = 0.35, rest: bool = True
                     ) -> tuple[list[np.ndarray], bool]:
        """Regions (bool ``[h, w]``) of the sources the model finds: the sound map's positions grouped by
        :func:`~avkit.apps.separation.regions.group_positions` (touching positions whose mask changes go
        together). With ``rest``, the rest of the picture is one more source when the found sources leave at
        least ``REST_SHARE`` of the mixture's energy unexplained (a source that looks like the scene's floor, whose
        positions change no mask, shows up there). Returns the regions and whether the last one is that rest."""
        added_rest = False
        share, _, corr = self._positions(x)
        regions = group_positions(share, corr, active=active, saddle=saddle, similarity=similarity,
                                  min_share=min_share, max_sources=max_sources)
        if rest and regions and len(regions) < max_sources:
            # what the found sources leave unexplained; if that is a lot, the rest of the picture is a source
            unexplained = total = 0.0
            hop = self.spectral.cfg.hop
            for window, a in _windows(x):
                found = self.separate_regions(a, regions, stems=False)  # what the pictures explain
                mixture = self.spectral.istft(a.mix_spec, a.length).cpu().numpy().astype(np.float64)
                own = slice(window.own_start * hop - window.start, window.own_stop * hop - window.start)
                unexplained += float(((mixture - found.sum(0))[own] ** 2).sum())
                total += float((mixture[own] ** 2).sum())
            if unexplained >= REST_SHARE * total:
                taken = np.any(regions, axis=0)
                # away from the found sources by one cell (their features spill over)
                near = torch.nn.functional.max_pool2d(torch.as_tensor(taken, dtype=torch.float32)[None, None], 3,
                                                      1, 1)[0, 0].numpy() > 0
                others = ~near if (~near).any() else ~taken
                if others.any():
                    regions.append(others)
                    added_rest = True
        return regions, added_rest

    # -- separation ------------------------------------------------------------------------------

    @torch.no_grad()
    def separate_regions(self, x: Analysis | Recording, regions: Sequence[np.ndarray], stems: bool = True,
                         timbre: Sequence[str] | None = None) -> np.ndarray:
        """Waveforms ``[N, S]`` of one source per region (bool ``[h, w]``; max-pooled features inside); with
        ``stems``, the audio-only network's stems in their order when there is one for N sources; with
        ``timbre`` (one instrument per region, from :meth:`plan_timbre`), by their timbres. A long
        :class:`Recording` is separated a window at a time (the stems ordered in each)."""
        if not regions:
            return np.zeros((0, x.length), np.float32)
        if isinstance(x, Recording) and timbre is not None:  # no network: only each window's spectrogram
            return self._by_timbre_in_windows(x.audio, timbre)
        if isinstance(x, Recording):
            return _stitched(x, lambda a: self.separate_regions(a, regions, stems, timbre))
        a = x
        if timbre is not None:
            return self.separate_by_timbre(a.mix_spec, timbre, a.length)
        feats = torch.stack([self.net.pool(a.maps, torch.as_tensor(r, device=self.device)) for r in regions])
        feats = torch.maximum(feats, self.baseline(a))  # as in training, the pooled feature includes the scene's floor
        masks = self._masks(self._logits(a, feats))  # [N, Fw, T]
        estimates = self.spectral.apply_warped_mask(a.mix_spec, masks, a.length).cpu().numpy()
        return self.ordered_stems(a, estimates) if stems else estimates

    @torch.no_grad()
    def ordered_stems(self, a: Analysis, estimates: np.ndarray) -> np.ndarray:
        """The audio-only network's stems ``[N, S]`` of ``a``'s mixture, in the order whose mean SI-SDR against
        the pictured ``estimates [N, S]`` is highest; ``estimates`` themselves when there is no audio-only
        network or its slots are not N."""
        from avkit.apps.separation.evaluate import best_order

        if self.stems is None or not self.uses_stems(len(estimates)):
            return estimates
        feats = self._audio_features(self.spectral.log_magnitude(a.mix_mag), net=self.stems)
        logits = self.stems.synthesize(self.stems.slots[None], feats[None])[0]  # [N, Fw, T]
        stems = self.spectral.apply_warped_mask(a.mix_spec, self.stems.masks(logits), a.length).cpu().numpy()
        return best_order(estimates.astype(np.float64), stems).astype(np.float32)

    @torch.no_grad()
    def separate_clips(self, mixture: Any, frames_per_source: Sequence[Any],
                       fps: float | Sequence[float] | None = None, timbre: Sequence[str] | None = None
                       ) -> np.ndarray:
        """The mix-and-separate case: ``[N, S]`` waveforms of the sources whose own frames are given
        (each source's whole picture is pooled, as in training); ``fps`` one rate for all, or one per source;
        with ``timbre`` (one instrument per source, from :meth:`plan_timbre`), by their timbres."""
        if timbre is not None:
            return self._by_timbre_in_windows(np.asarray(mixture, np.float32), timbre)
        rates: list[float | None] = list(fps) if isinstance(fps, Sequence) else [fps] * len(frames_per_source)
        rec = Recording(self, mixture, frames_per_source[0], rates[0])  # a long mixture: a window at a time
        return _stitched(rec, lambda a: self._separate_clips_in(a, frames_per_source, rates))

    def _separate_clips_in(self, a: Analysis, frames_per_source: Sequence[Any], rates: Sequence[float | None]
                           ) -> np.ndarray:
        """:meth:`separate_clips` of the mixture analysed as ``a`` (with the first source's frames)."""
        per_source = [self.analyse_frames(frames, a, rate) for frames, rate in zip(frames_per_source, rates)]
        scene = self.scene([b.maps for b in per_source])
        if scene is not None:  # the scene is every source's picture, as in training
            feats = self._audio_features(self.spectral.log_magnitude(a.mix_mag), scene)
            per_source = [replace(b, audio_features=feats, positions=None) for b in per_source]
        estimates = np.stack([self.separate_regions(b, [np.ones(b.grid, bool)])[0] for b in per_source])
        return self.ordered_stems(a, estimates)

    def separate(self, mixture: Any, sample_rate: int, sources: Sequence[Any],
                 instruments: Sequence[str] | None = None) -> list[np.ndarray]:
        """:func:`avkit.apps.separation.separate` with this model: float32 ``[S]`` waveforms at ``sample_rate``,
        one per source's frames (uint8 ``[T, H, W, 3]`` spanning the mixture), in the order given;
        ``instruments``: each source's instrument when known (else named from the pictures: :meth:`plan_timbre`)."""
        wave = np.asarray(mixture, dtype=np.float32)
        if wave.ndim != 1 or wave.size == 0:
            raise AvkitError(f"mixture: need mono float32 samples [S], got shape {wave.shape}")
        if int(sample_rate) != sample_rate or sample_rate <= 0:
            raise AvkitError(f"sample_rate must be a positive integer, got {sample_rate!r}")
        if not np.isfinite(wave).all():
            raise AvkitError("mixture: contains NaN or infinite samples")
        if len(sources) == 0:
            raise AvkitError("sources: need one frame array uint8 [T, H, W, 3] per visible source, got none")
        sample_rate = int(sample_rate)
        duration = len(wave) / sample_rate
        frames = [self.fit_frames(f, f"sources[{i}]") for i, f in enumerate(sources)]
        at_model = resample(wave, sample_rate, self.sample_rate)
        if len(at_model) < self.spectral.cfg.n_fft:
            raise AvkitError(f"mixture: too short to separate ({duration:.3f} s; the model needs "
                             f"{self.spectral.cfg.n_fft / self.sample_rate:.3f} s)")
        names, named = self.plan_timbre([np.asarray(f) for f in sources], instruments)  # named at their own size
        rates = [len(f) / duration for f in frames]
        _, estimates, _ = self.separate_heard(names, named, at_model, lambda timbre: self.separate_clips(
            at_model, frames, fps=rates, timbre=timbre))
        out = []
        for est in estimates:
            back = resample(est, self.sample_rate, sample_rate)[:len(wave)]
            out.append(np.pad(back, (0, len(wave) - len(back))).astype(np.float32))
        return out

    def fit_frames(self, frames: Any, what: str = "frames") -> np.ndarray:
        """``frames`` (uint8 ``[T, H, W, 3]``) with the short side the network was trained on (bilinear)."""
        arr = np.asarray(frames)
        if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3 or len(arr) == 0:
            raise AvkitError(f"{what}: need frames uint8 [T, H, W, 3], got {arr.dtype} of shape {arr.shape}")
        return short_side(torch.from_numpy(np.ascontiguousarray(arr)), self.opts.image_size).numpy()


def short_side(frames: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 ``[T, H, W, 3]`` resized (bilinear, antialiased) so that its short side is ``size``."""
    h, w = frames.shape[1:3]
    if min(h, w) == size:
        return frames
    out = (size, max(1, round(w * size / h))) if h <= w else (max(1, round(h * size / w)), size)
    x = torch.nn.functional.interpolate(frames.permute(0, 3, 1, 2).float(), size=out, mode="bilinear",
                                        align_corners=False, antialias=True)
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)


def _per_stft_frame(features: torch.Tensor, a: Analysis, frames: slice) -> torch.Tensor:
    """Features ``[N, C, K]`` (one per chunk or video frame) -> ``[N, T, K]`` for the STFT frames ``frames``
    (interpolated between video frames for ``visual: motion``, as in training)."""
    lo, hi, w = a.lo[frames], a.hi[frames], a.weight[frames][:, None]
    return features[:, lo] * (1 - w) + features[:, hi] * w


def resample(wave: np.ndarray, rate: int, new_rate: int) -> np.ndarray:
    """``wave [S]`` at ``rate`` -> float32 at ``new_rate`` (torchaudio's windowed sinc; a copy when equal)."""
    if rate == new_rate:
        return np.array(wave, dtype=np.float32)
    import torchaudio.functional as AF

    return AF.resample(torch.as_tensor(np.asarray(wave, np.float32)), rate, new_rate).numpy()


def _windows_of(x: Analysis | Recording) -> list[Window]:
    """The windows of ``x``: a :class:`Recording`'s, or one over the whole of an :class:`Analysis`."""
    if isinstance(x, Recording):
        return x.windows
    return [Window(0, x.length, 0, 0, 0, int(x.mix_spec.shape[-1]))]


def _windows(x: Analysis | Recording) -> Iterator[tuple[Window, Analysis]]:
    """Each window of ``x`` with its analysis, one at a time."""
    if isinstance(x, Recording):
        yield from x
    else:
        yield _windows_of(x)[0], x


def _stitched(rec: Recording, separate: Callable[[Analysis], np.ndarray]) -> np.ndarray:
    """``separate``'s waveforms ``[N, w.stop - w.start]`` of each window of ``rec`` laid end to end ``[N, S]``,
    cross-faded linearly where windows overlap (the two weights sum to 1 at every sample)."""
    if len(rec.windows) == 1:
        return separate(rec.analysis(rec.windows[0]))
    return _cross_faded(rec.length, ((w, separate(a)) for w, a in rec))


def _cross_faded(length: int, parts: Iterable[tuple[Window, np.ndarray]]) -> np.ndarray:
    """Waveforms ``[N, length]`` from each window's ``[N, w.stop - w.start]``, one window at a time, weighted by
    :func:`_fade` and summed where they overlap."""
    out: np.ndarray | None = None
    for w, part in parts:
        if out is None:
            out = np.zeros((len(part), length), np.float32)
        out[:, w.start:w.stop] += part * _fade(w)
    assert out is not None  # a plan has at least one window
    return out


def _fade(w: Window) -> np.ndarray:
    """Window ``w``'s weights ``[w.stop - w.start]``: rising over its fade-in, falling over its fade-out (linear;
    a window's falling weights and the next one's rising ones sum to 1), 1 between."""
    weight = np.ones(w.stop - w.start, np.float32)
    if w.fade_in:
        weight[:w.fade_in] = (np.arange(w.fade_in) + 0.5) / w.fade_in
    if w.fade_out:
        weight[-w.fade_out:] = 1.0 - (np.arange(w.fade_out) + 0.5) / w.fade_out
    return weight
