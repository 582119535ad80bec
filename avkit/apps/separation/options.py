"""What a separation recipe sets, read one way, and the network it describes.

:class:`SeparationOptions` is the recipe's ``task_options`` (with the STFT front end as its ``stft``
section, an :class:`~avkit.apps.separation.stft.STFTConfig`); :class:`~avkit.apps.separation.model.NetConfig`
comes from ``model.audio_options`` / ``video_options`` plus ``task_options.channels`` / ``mask``. All
three are built by :func:`avkit.engine.config.parse_options`, so unknown keys get a did-you-mean and
values are converted to the field types like the rest of the recipe; each dataclass checks its own
ranges in ``__post_init__``.

:class:`SeparationSpec` ties them together: the task builds its network from it for training, and
:func:`avkit.apps.separation.load` rebuilds the same network for inference, from the same place.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from avkit.apps.separation.model import NetConfig, SeparationNet
from avkit.apps.separation.stft import STFTConfig
from avkit.engine.config import Config, parse_options
from avkit.errors import AvkitError

WEIGHTS = ("log1p", "magnitude", "none")


@dataclass
class SeparationOptions:
    """``task_options`` of a separation recipe."""

    stft: STFTConfig = field(default_factory=STFTConfig)  # the front end (11025 Hz, 1022, 256, 256 bins)
    channels: int = 16  # K
    mask: str = "ratio"  # ratio | binary
    weight: str = "log1p"  # per-cell loss weight: log1p | magnitude | none
    mask_threshold: float = 0.5  # binary masks at inference (< 0: use the probabilities)
    num_mix: list[int] = field(default_factory=lambda: [2, 3])  # sources per training mixture (drawn per item)
    val_num_mix: list[int] = field(default_factory=lambda: [2, 3])  # validation mixtures cycle through these
    segment_frames: int = 64  # STFT frames of a training crop (1.49 s at the defaults)
    num_frames: int = 3  # frames per source video (max-pooled over time; visual: appearance)
    visual: str = "appearance"  # appearance (frames max-pooled: what a source looks like) | motion (every frame
    # of the crop and its difference to the previous one, features per time step) | none (audio only)
    same_label: float = 0.0  # share of training partners of the *same* label (told apart only by motion)
    unison: float = 0.0  # share of training partners playing the clip's unison melody on another instrument
    # (gm_instruments ``unison``: same notes at the same times, told apart only by timbre), cropped in step
    eq_db: float = 0.0  # a random smooth equaliser per training source, up to +-eq_db dB (data.equalise)
    image_size: int = 32  # frames are decoded with this short side
    fps: float = 8.0  # frames are decoded at this rate
    distinct: bool = True  # partners of a mixture have different labels (when the data has labels)
    gain: list[float] = field(default_factory=lambda: [1.0, 1.0])  # random gain range per training source
    zoom: list[float] = field(default_factory=lambda: [1.0, 1.0])  # half the training sources' frames shrunk by this
    # range (sources look smaller, as in a duet): per-position features then work at other scales
    train_length: int = 0  # mixtures per epoch (0 = one per training clip)
    val_length: int = 0  # validation mixtures (0 = one per validation clip)
    val_bss: bool = True  # BSS-eval SDR/SIR/SAR in validation (SI-SDR always)
    limit: int = 0  # use only the first N clips of each source (quick runs)

    def __post_init__(self) -> None:
        if self.weight not in WEIGHTS:
            raise AvkitError(f"task_options.weight must be log1p, magnitude or none, got {self.weight!r}")
        if self.segment_frames < 2 or self.num_frames < 1 or self.image_size < 8 or self.fps <= 0:
            raise AvkitError("task_options need segment_frames >= 2, num_frames >= 1, image_size >= 8 and fps > 0")
        if self.eq_db < 0:
            raise AvkitError(f"task_options.eq_db must be >= 0, got {self.eq_db}")
        if not 0 <= self.same_label <= 1 or not 0 <= self.unison <= 1:
            raise AvkitError(f"task_options.same_label and unison must be in [0, 1], got {self.same_label} "
                             f"and {self.unison}")
        if self.visual == "none" and (len(set(self.num_mix)) != 1 or set(self.val_num_mix) != set(self.num_mix)):
            raise AvkitError("task_options.visual: none (audio only) needs one number of sources in num_mix and "
                             f"val_num_mix, got {self.num_mix} and {self.val_num_mix}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SeparationSpec:
    """Everything a separation run's ``config.yaml`` says about the model: options, front end, network."""

    options: SeparationOptions
    net: NetConfig

    @property
    def stft(self) -> STFTConfig:
        return self.options.stft

    @classmethod
    def from_config(cls, cfg: Config) -> SeparationSpec:
        """Read ``task_options`` and ``model`` of a separation recipe (one-line errors for bad values)."""
        options = parse_options(SeparationOptions, cfg.task_options, "task_options")
        m = cfg.model
        if m.audio not in ("", "unet"):
            raise AvkitError(f"separation: model.audio must be 'unet' (or empty), got {m.audio!r}")
        if m.video not in ("", "cnn"):
            raise AvkitError(f"separation: model.video must be 'cnn' (or empty), got {m.video!r}")
        net = parse_options(NetConfig, {**m.audio_options, **m.video_options, "channels": options.channels,
                                        "mask": options.mask, "visual": options.visual, "fps": options.fps,
                                        "slots": max(options.num_mix)}, "model.audio_options/video_options")
        return cls(options, net)

    def build_net(self) -> SeparationNet:
        """A freshly initialised network of this spec (load weights into it for inference)."""
        return SeparationNet(self.net, self.stft)
