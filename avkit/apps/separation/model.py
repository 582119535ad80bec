"""The mix-and-separate network: an audio U-Net, a visual CNN and the mask synthesizer.

- :class:`AudioUNet`: ``log|X| [B, 1, F, T] -> [B, K, F, T]`` (K feature channels, no activation).
  Stride-2 4x4 convolutions down, upsample + 3x3 convolutions up with skip connections, and a
  full-resolution stem and head so the mask keeps single-bin detail (harmonics).
- :class:`VisualNet`: frames ``[B*, T, 3, H, W]`` (uint8) -> per-position features
  ``[B*, K, H/4, W/4]`` in [0, 1] (sigmoid), max-pooled over the T frames. Max-pooling the map
  over space gives the per-clip feature ``[B*, K]``.
- :class:`MotionNet` (``visual: motion``): every frame and its difference to the previous frame
  through a 2D CNN, then temporal convolutions per position: features ``[B*, T', K, h, w]`` per
  video frame, so a source's feature can change at its notes' onsets (motion-sound synchrony, in the
  spirit of "The Sound of Motions", Zhao et al. 2019). They are interpolated to the STFT frames
  (:func:`frame_weights`) and the mask follows them over time.
- :class:`SeparationNet`: the mask of visual source ``n`` is
  ``sigmoid(sum_k v_nk(t) * s_k * a_k(f, t) + b)`` (inner product with learned per-channel scales
  ``s`` and a bias: the Sound of Pixels synthesizer; ``v`` constant over time with ``visual:
  appearance``). Applying it to every position's feature instead of the pooled one gives a mask per
  pixel: the sound map. ``visual: none`` is the same audio network with no pictures: one learned
  vector per output slot instead of a source's feature, trained permutation-invariantly (the
  audio-only baseline).

``forward(log_mag, frames)`` returns mask **logits** on the network's (warped) frequency grid;
:meth:`SeparationNet.separate` goes from a waveform to separated waveforms through
:class:`avkit.apps.separation.stft.Spectral`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from avkit.apps.separation.stft import Spectral, STFTConfig
from avkit.errors import AvkitError

# ImageNet-like statistics; the network is trained from scratch, this only centres the input.
_MEAN = 0.45  # the same for every channel
_STD = 0.225
_DIFF_STD = 0.05  # frame differences are mostly 0; the moving parts change by a few tenths
VISUALS = ("appearance", "motion", "none")


@dataclass(frozen=True)
class NetConfig:
    """What :class:`SeparationNet` builds (``model.audio_options`` / ``video_options`` in a recipe, plus
    ``task_options.channels`` / ``mask``; read by :class:`avkit.apps.separation.options.SeparationSpec`)."""

    channels: int = 16  # K: audio feature channels = visual feature size
    unet_width: int = 8  # channels of the U-Net's first level (doubling per level, capped at 16x)
    unet_depth: int = 5  # stride-2 levels; T is padded to a multiple of 2 ** depth
    unet_blocks: int = 1  # extra 3x3 convolutions per level on the way down
    visual_width: int = 16
    mask: str = "ratio"  # ratio (L1 loss) | binary (weighted BCE)
    visual: str = "appearance"  # appearance (max over frames) | motion (per-frame, with differences) | none
    slots: int = 2  # visual none: output slots (sources per mixture)
    fps: float = 8.0  # frame rate of the pictures (motion: maps video frames to STFT frames)
    # scene: the U-Net's coarsest level is modulated (FiLM) by what the picture holds (the max of the
    # sources' visual features), so its K channels can describe the instruments present, which the inner
    # product cannot do alone when two instruments share every harmonic (unison). none: not modulated.
    condition: str = "none"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __post_init__(self) -> None:
        if self.visual not in VISUALS:
            raise AvkitError(f"task_options.visual must be one of {', '.join(VISUALS)}, got {self.visual!r}")
        if self.condition not in ("none", "scene"):
            raise AvkitError(f"model.audio_options.condition must be 'none' or 'scene', got {self.condition!r}")
        if self.condition == "scene" and self.visual == "none":
            raise AvkitError("model.audio_options.condition: scene needs pictures (task_options.visual is none)")
        if self.mask not in ("ratio", "binary"):
            raise AvkitError(f"task_options.mask must be 'ratio' or 'binary', got {self.mask!r}")
        if self.channels < 1 or self.unet_width < 1 or self.visual_width < 1 or not 1 <= self.unet_depth <= 7:
            raise AvkitError(f"separation model needs channels, widths >= 1 and 1 <= unet_depth <= 7, got "
                             f"channels {self.channels}, unet_width {self.unet_width}, visual_width "
                             f"{self.visual_width}, unet_depth {self.unet_depth}")


def _block(cin: int, cout: int, kernel: int = 3, stride: int = 1, leaky: bool = False) -> nn.Sequential:
    pad = (kernel - stride + 1) // 2 if stride > 1 else kernel // 2
    act: nn.Module = nn.LeakyReLU(0.2, inplace=True) if leaky else nn.ReLU(inplace=True)
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, pad, bias=False), nn.BatchNorm2d(cout), act)


class AudioUNet(nn.Module):
    """U-Net over the log-magnitude spectrogram: ``[B, 1, F, T] -> [B, K, F, T]``.

    ``depth`` stride-2 levels of 4x4 convolutions (``width`` channels at the first, doubling, capped
    at 16x: the many fine cells get few channels, the few coarse cells many), ``blocks`` extra 3x3 convolutions per level, nearest upsampling + 3x3 convolutions with
    skip connections on the way up, and a full-resolution 3x3 head that also sees the input, so the
    mask can follow single frequency bins. CPU-sized: the cost per time-frequency cell is a few
    thousand multiply-adds at width 16.
    """

    def __init__(self, out_channels: int = 16, width: int = 16, depth: int = 5, blocks: int = 0,
                 condition_size: int = 0) -> None:
        super().__init__()
        self.depth = depth
        widths = [width * min(2 ** i, 16) for i in range(depth)]
        # FiLM of the coarsest level by a condition vector; zero at the start, so the U-Net starts as the
        # unconditioned one (and takes its weights unchanged)
        self.film: nn.Linear | None = None
        if condition_size:
            self.film = nn.Linear(condition_size, 2 * widths[-1])
            nn.init.zeros_(self.film.weight)
            nn.init.zeros_(self.film.bias)
        self.input_bn = nn.BatchNorm2d(1)
        self.down = nn.ModuleList()
        for i in range(depth):
            cin = 1 if i == 0 else widths[i - 1]
            layers = [_block(cin, widths[i], 4, 2, leaky=True)]
            layers += [_block(widths[i], widths[i], leaky=True) for _ in range(blocks)]
            self.down.append(nn.Sequential(*layers))
        # up[i] takes level i + 1 (upsampled) and the skip of level i
        self.up = nn.ModuleList(_block(widths[i + 1] + widths[i], widths[i]) for i in range(depth - 1))
        self.head = nn.Sequential(_block(widths[0] + 1, widths[0]), nn.Conv2d(widths[0], out_channels, 1))
        self.widths = widths

    def forward(self, log_mag: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """``condition [B, C]`` scales and shifts the coarsest level's channels (only with ``condition_size``)."""
        f, t = log_mag.shape[-2:]
        m = 2 ** self.depth
        if f % m:
            raise AvkitError(f"the U-Net needs a multiple of {m} frequency bins, got {f}")
        pad = (-t) % m
        x0 = self.input_bn(F.pad(log_mag, (0, pad, 0, 0), mode="replicate") if pad else log_mag)
        x = x0
        skips = []
        for down in self.down:
            x = down(x)
            skips.append(x)
        x = skips.pop()
        if self.film is not None:
            if condition is None:
                raise AvkitError("this U-Net is conditioned: pass the condition vector")
            scale, shift = self.film(condition.to(x.dtype)).chunk(2, dim=-1)
            x = x * (1 + scale[..., None, None]) + shift[..., None, None]
        for i in reversed(range(self.depth - 1)):
            skip = skips[i]
            x = self.up[i](torch.cat([F.interpolate(x, size=skip.shape[-2:], mode="nearest"), skip], dim=1))
        x = F.interpolate(x, size=x0.shape[-2:], mode="nearest")
        return self.head(torch.cat([x, x0], dim=1))[..., :t]


class VisualNet(nn.Module):
    """2D CNN over frames: ``[B, T, 3, H, W]`` uint8 -> per-position features ``[B, K, H/4, W/4]`` (max over T).

    Receptive field 15 px (3x3 stride 2, 3x3 stride 2, 3x3, then 1x1): at the default 32 px frames
    a position sees one sprite and little of its neighbour, so per-position features can say which
    pixels make which sound.
    """

    stride = 4

    def __init__(self, out_channels: int = 16, width: int = 16) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(_block(3, w, 3, 2), _block(w, 2 * w, 3, 2), _block(2 * w, 2 * w),
                                      _block(2 * w, 2 * w, 1), nn.Conv2d(2 * w, out_channels, 1))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        b, t = frames.shape[:2]
        x = frames.reshape(b * t, *frames.shape[2:]).float() / 255.0
        x = (x - _MEAN) / _STD
        maps = torch.sigmoid(self.features(x))
        return maps.view(b, t, *maps.shape[1:]).amax(dim=1)


class MotionNet(nn.Module):
    """Per-frame features with motion: ``[B, T, 3, H, W]`` uint8 -> ``[B, T, K, h, w]`` in [0, 1].

    Each frame and its difference to the previous one (zero for the first) go through the
    :class:`VisualNet` CNN (6 input channels); two temporal 3-tap convolutions per position (dilation
    1 and 2: 7 frames, 0.875 s at 8 fps) relate a part's movement to the frames around it, so the
    feature can say "a note of mine starts / sounds here" and not only "I look like a violin".
    """

    stride = 4

    def __init__(self, out_channels: int = 16, width: int = 16) -> None:
        super().__init__()
        w = width
        self.spatial = nn.Sequential(_block(6, w, 3, 2), _block(w, 2 * w, 3, 2), _block(2 * w, 2 * w),
                                     _block(2 * w, 2 * w, 1))
        self.temporal = nn.Sequential(
            nn.Conv3d(2 * w, 2 * w, (3, 1, 1), padding=(1, 0, 0), bias=False), nn.BatchNorm3d(2 * w),
            nn.ReLU(inplace=True),
            nn.Conv3d(2 * w, 2 * w, (3, 1, 1), padding=(2, 0, 0), dilation=(2, 1, 1), bias=False),
            nn.BatchNorm3d(2 * w), nn.ReLU(inplace=True))
        self.head = nn.Conv3d(4 * w, out_channels, 1)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        b, t = frames.shape[:2]
        x = frames.float() / 255.0
        diff = torch.cat([torch.zeros_like(x[:, :1]), x[:, 1:] - x[:, :-1]], dim=1) / _DIFF_STD
        x = torch.cat([(x - _MEAN) / _STD, diff], dim=2)
        y = self.spatial(x.flatten(0, 1))  # [B*T, C, h, w]
        y = y.view(b, t, *y.shape[1:]).transpose(1, 2)  # [B, C, T, h, w]
        y = self.head(torch.cat([y, self.temporal(y)], dim=1))  # the frame's own features and their context
        return torch.sigmoid(y).transpose(1, 2)  # [B, T, K, h, w]


def frame_weights(stft_frames: int, video_frames: int, hop_s: float, fps: float,
                  device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Where each STFT frame falls between the video frames: ``(lo, hi, w)`` per STFT frame, so that its
    visual feature is ``(1 - w) v[lo] + w v[hi]`` (linear interpolation; frame ``j`` is at ``j / fps`` s,
    STFT frame ``i`` at ``i * hop_s`` s; beyond the last frame its feature holds)."""
    pos = (torch.arange(stft_frames, device=device, dtype=torch.float32) * (hop_s * fps)).clamp(0, video_frames - 1)
    lo = pos.floor().long()
    hi = (lo + 1).clamp(max=video_frames - 1)
    return lo, hi, pos - lo


class SeparationNet(nn.Module):
    """Audio U-Net + visual CNN + inner-product mask synthesizer (see the module docstring)."""

    def __init__(self, net: NetConfig | None = None, stft: STFTConfig | None = None) -> None:
        super().__init__()
        self.net_cfg = net or NetConfig()
        self.spectral = Spectral(stft or STFTConfig())
        c = self.net_cfg
        if self.spectral.cfg.net_bins % (2 ** c.unet_depth):
            raise AvkitError(f"stft.freq_bins ({self.spectral.cfg.net_bins}) must be a multiple of 2 ** unet_depth "
                             f"({2 ** c.unet_depth})")
        self.audio_net = AudioUNet(c.channels, c.unet_width, c.unet_depth, c.unet_blocks,
                                   condition_size=c.channels if c.condition == "scene" else 0)
        self.visual_net: nn.Module | None = None
        if c.visual == "appearance":
            self.visual_net = VisualNet(c.channels, c.visual_width)
        elif c.visual == "motion":
            self.visual_net = MotionNet(c.channels, c.visual_width)
        else:
            self.slots = nn.Parameter(torch.randn(c.slots, c.channels))
        self.scale = nn.Parameter(torch.ones(c.channels))
        self.bias = nn.Parameter(torch.zeros(1))

    # -- the pieces ------------------------------------------------------------------------------

    @property
    def conditioned(self) -> bool:
        """Whether the audio features depend on the picture (``condition: scene``)."""
        return self.net_cfg.condition == "scene"

    @staticmethod
    def scene(visual: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """The scene's feature ``[B, K]``: the max over the sources (``valid [B, N]`` ones only) and over time
        of their pooled features ``[B, N, K]`` or ``[B, N, T', K]``."""
        per_source = visual.amax(dim=2) if visual.ndim == 4 else visual
        if valid is not None:
            per_source = per_source.masked_fill(~valid[..., None].bool(), 0.0)  # features are >= 0
        return per_source.amax(dim=1)

    @property
    def temporal(self) -> bool:
        """Whether the visual features change over time (``visual: motion``)."""
        return self.net_cfg.visual == "motion"

    def visual_maps(self, frames: torch.Tensor) -> torch.Tensor:
        """``frames [B, N, T, 3, H, W]`` (uint8) -> per-position features ``[B, N, K, h, w]``
        (``visual: motion``: ``[B, N, T, K, h, w]``, one per frame)."""
        if self.visual_net is None:
            raise AvkitError("this separation model has no visual pathway (visual: none, audio only)")
        b, n = frames.shape[:2]
        maps = self.visual_net(frames.flatten(0, 1))
        return maps.view(b, n, *maps.shape[1:])

    def per_stft_frame(self, visual: torch.Tensor, stft_frames: int) -> torch.Tensor:
        """Per-video-frame features ``[..., T', K]`` interpolated to ``[..., T, K]`` (:func:`frame_weights`)."""
        lo, hi, w = frame_weights(stft_frames, visual.shape[-2], self.spectral.cfg.hop / self.spectral.cfg.sample_rate,
                                  self.net_cfg.fps, visual.device)
        w = w[:, None].to(visual.dtype)
        return visual[..., lo, :] * (1 - w) + visual[..., hi, :] * w

    @staticmethod
    def pool(maps: torch.Tensor, region: torch.Tensor | None = None) -> torch.Tensor:
        """Max over space of ``[..., K, h, w]`` (inside the boolean ``region [h, w]`` if given) -> ``[..., K]``."""
        if region is not None:
            maps = maps.masked_fill(~region.to(maps.device), float("-inf"))
        return maps.flatten(-2).amax(dim=-1)

    def synthesize(self, visual: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """Mask logits ``[B, N, F, T]`` from visual features ``[B, N, K]`` (or per STFT frame ``[B, N, T, K]``)
        and audio features ``[B, K, F, T]``."""
        if visual.ndim == 4:
            return torch.einsum("bntk,bkft->bnft", visual * self.scale, audio) + self.bias
        return torch.einsum("bnk,bkft->bnft", visual * self.scale, audio) + self.bias

    def forward(self, log_mag: torch.Tensor, frames: torch.Tensor, valid: torch.Tensor | None = None
                ) -> torch.Tensor:
        """Mask logits ``[B, N, Fw, T]`` for the mixture ``log_mag [B, 1, Fw, T]`` and each source's
        frames ``frames [B, N, T', 3, H, W]`` (frame ``j`` at ``j / fps`` s of the mixture with ``visual:
        motion``; ``visual: none`` uses only N, the slots' count). ``valid [B, N]`` says which sources are
        real (the others are padding; they do not count in the scene of ``condition: scene``)."""
        if self.visual_net is None:
            audio = self.audio_net(log_mag)
            n = frames.shape[1]
            if n > self.net_cfg.slots:
                raise AvkitError(f"this audio-only model separates {self.net_cfg.slots} sources, asked for {n}")
            return self.synthesize(self.slots[:n].expand(audio.shape[0], n, -1), audio)
        visual = self.pool(self.visual_maps(frames))  # [B, N, K] or [B, N, T', K]
        audio = self.audio_net(log_mag, self.scene(visual, valid) if self.conditioned else None)
        if self.temporal:
            visual = self.per_stft_frame(visual, audio.shape[-1])
        return self.synthesize(visual, audio)

    def masks(self, logits: torch.Tensor, threshold: float | None = None) -> torch.Tensor:
        """Masks in [0, 1] from logits; binary models threshold at ``threshold`` (default 0.5) unless it is < 0."""
        prob = torch.sigmoid(logits.float())
        if self.net_cfg.mask == "binary":
            thr = 0.5 if threshold is None else threshold
            if thr >= 0:
                return (prob > thr).float()
        return prob

    # -- inference -------------------------------------------------------------------------------

    @torch.no_grad()
    def separate(self, mixture: torch.Tensor, frames: torch.Tensor, threshold: float | None = None
                 ) -> torch.Tensor:
        """Waveforms ``[B, N, S]`` of the sources shown in ``frames [B, N, T', 3, H, W]`` in ``mixture [B, S]``."""
        spec, mag = self.spectral.features(mixture.float())
        logits = self(self.spectral.log_magnitude(mag).unsqueeze(1), frames)
        return self.spectral.apply_warped_mask(spec, self.masks(logits, threshold), mixture.shape[-1])
