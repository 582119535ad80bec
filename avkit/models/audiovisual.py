"""Audio-visual models: a video encoder and/or an audio encoder joined by a fusion head.

``build_av_model(video="c3d", audio="audio_cnn", fusion="concat", num_classes=10)`` builds the
encoders with ``create_model`` (no head: they return features) and the fusion head sized from their
``out_dim``. Leave out an encoder (``video=None`` or ``audio=None``) for an audio-only or
video-only model from the same recipe.

The model takes a batch dict (what ``VideoDataset`` + ``collate`` give):

- ``"video"``: ``float [B, 3, T, H, W]`` (and ``"flow"`` too, passed on, for a two-stream encoder);
- ``"spectrogram"``: ``float [B, 1, F, T]``, or else ``"audio"``: a waveform ``float [B, S]``
  that the model turns into a spectrogram itself with ``model.audio_features`` (avkit's
  ``LogMel`` for the CNNs; AST's own Kaldi fbank for ``ast``, which then uses the waveform even
  when the batch also has a spectrogram, because it was trained on those features);
- ``"has_audio"``: ``bool [B]``, False for a clip whose file has no sound (optional: absent = all have).

A missing sound is not silence: the audio features of a clip without sound are replaced by a
learned "absent" embedding (one per modality, starting at zero), so the fusion head is told the
sound is missing instead of hearing a quiet room. ``modality_dropout=p`` marks each modality of each
training clip absent with probability ``p`` (never every modality of a clip), so the model also
learns to classify every class without the sound: then "no sound" cannot stand for one class just
because that class's files lacked sound.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn as nn

from avkit.errors import AvkitError
from avkit.fusion import build_fusion
from avkit.models.registry import create_model, model_entry

# Waveform [B, S] -> spectrogram [B, 1, F, T]: avkit.data.audio_features.LogMel or an nn.Module (ASTFeatures).
AudioFeatures = Callable[[torch.Tensor], torch.Tensor]


class AudioVisualModel(nn.Module):
    """``fusion({modality: encoder(input)})`` over the encoders given; ``forward(batch) -> [B, num_classes]``."""

    # Tells the trainer to pass the whole batch dict rather than ``batch["video"]``.
    takes_batch = True

    def __init__(self, video_encoder: nn.Module | None = None, audio_encoder: nn.Module | None = None,
                 fusion: nn.Module | None = None, audio_features: AudioFeatures | None = None,
                 prefer_waveform: bool = False, modality_dropout: float = 0.0) -> None:
        super().__init__()
        encoders = {m: e for m, e in (("video", video_encoder), ("audio", audio_encoder)) if e is not None}
        if not encoders:
            raise AvkitError("an audio-visual model needs a video encoder, an audio encoder or both")
        if fusion is None:
            raise AvkitError("an audio-visual model needs a fusion head (see avkit.fusion.build_fusion)")
        if sorted(getattr(fusion, "modalities", encoders)) != sorted(encoders):
            raise AvkitError(f"fusion head built for {fusion.modalities} but encoders are {list(encoders)}")
        self.encoders = nn.ModuleDict(encoders)
        self.fusion = fusion
        self.audio_features = audio_features
        # True when audio_features is the encoder's own front end (AST's Kaldi fbank): a waveform in
        # the batch is then used even if the batch also holds a (generic log-mel) spectrogram.
        self.prefer_waveform = prefer_waveform
        self.num_classes = fusion.num_classes
        if not 0.0 <= modality_dropout < 1.0:
            raise AvkitError(f"modality_dropout must be in [0, 1), got {modality_dropout}")
        self.modality_dropout = float(modality_dropout)
        # What the fusion head gets for a modality a clip does not have: [out_dim], broadcast over tokens.
        widths: dict[str, Any] = {m: e.out_dim for m, e in encoders.items()}
        self.absent = nn.ParameterDict({m: nn.Parameter(torch.zeros(int(d))) for m, d in widths.items()})

    @property
    def modalities(self) -> list[str]:
        return list(self.encoders)

    def spectrogram(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """The batch's spectrogram ``[B, 1, F, T]``, computed from ``batch["audio"]`` when not given."""
        use_wave = self.prefer_waveform and self.audio_features is not None and batch.get("audio") is not None
        if batch.get("spectrogram") is not None and not use_wave:
            return batch["spectrogram"]
        if batch.get("audio") is not None:
            if self.audio_features is None:
                raise AvkitError("batch has a waveform but no 'spectrogram' and the model has no audio_features")
            wave = batch["audio"]
            with torch.autocast(wave.device.type, enabled=False):  # spectrograms want full precision
                return self.audio_features(wave.float())
        raise AvkitError("the audio encoder needs batch['spectrogram'] [B,1,F,T] or batch['audio'] [B,S]")

    def encode(self, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """Each modality's encoder output: pooled ``[B, D]`` or tokens ``[B, N, D]`` as the fusion head wants."""
        if not isinstance(batch, Mapping):
            raise AvkitError(f"an audio-visual model takes a batch dict with {self.modalities}, "
                             f"got {type(batch).__name__}")
        tokens = getattr(self.fusion, "inputs", "pooled") == "tokens"
        out = {}
        for m, encoder in self.encoders.items():
            enc: Any = encoder  # a registered avkit encoder: forward_features / forward_tokens
            if m == "video":
                if batch.get("video") is None:
                    raise AvkitError("the video encoder needs batch['video'] [B,3,T,H,W]")
                args: tuple = (batch["video"],)
                kwargs = {"flow": batch["flow"]} if batch.get("flow") is not None else {}
            else:
                args, kwargs = (self.spectrogram(batch),), {}
            if not tokens:
                out[m] = enc.forward_features(*args, **kwargs)
                continue
            try:
                out[m] = enc.forward_tokens(*args, **kwargs)
            except (NotImplementedError, AttributeError) as err:
                raise AvkitError(f"fusion {type(self.fusion).__name__} needs tokens [B,N,D] but the {m} encoder "
                                 f"{type(enc).__name__} has none ({err})") from None
        return out

    def presence(self, batch: Mapping[str, Any], size: int, device: torch.device) -> dict[str, torch.Tensor]:
        """``bool [B]`` per modality: which clips have it. Audio from ``batch["has_audio"]`` (all, when the
        batch does not say); in training, ``modality_dropout`` then marks some present ones absent."""
        present = {m: torch.ones(size, dtype=torch.bool, device=device) for m in self.encoders}
        if "audio" in present and batch.get("has_audio") is not None:
            present["audio"] = torch.as_tensor(batch["has_audio"], device=device).bool().reshape(size)
        if self.training and self.modality_dropout > 0 and len(present) > 1:
            before = torch.stack(list(present.values()))  # [M, B]
            kept = before & (torch.rand(before.shape, device=device) >= self.modality_dropout)
            kept = torch.where(kept.any(dim=0), kept, before)  # a clip keeps at least what it had
            present = dict(zip(present, kept))
        return present

    def forward(self, batch: Mapping[str, Any]) -> torch.Tensor:
        feats = self.encode(batch)
        first = next(iter(feats.values()))
        present = self.presence(batch, first.shape[0], first.device)
        for m, f in feats.items():  # always through where(): no device sync, every parameter in the graph (DDP)
            mask = present[m].view(-1, *([1] * (f.ndim - 1)))
            feats[m] = torch.where(mask, f, self.absent[m].to(f.dtype))
        return self.fusion(feats)


def default_audio_features(audio_encoder: Any, spectrogram_bins: int | None = None) -> AudioFeatures:
    """The waveform -> spectrogram module for ``audio_encoder``: its own (AST) or avkit's log-mel."""
    if hasattr(audio_encoder, "feature_extractor"):
        return audio_encoder.feature_extractor()
    from avkit.data.audio_features import LogMel

    return LogMel(n_mels=spectrogram_bins) if spectrogram_bins else LogMel()


def build_av_model(video: str | nn.Module | None = "c3d", audio: str | nn.Module | None = "audio_cnn",
                   fusion: str = "concat", num_classes: int | None = None, video_options: dict | None = None,
                   audio_options: dict | None = None, fusion_options: dict | None = None,
                   audio_features: AudioFeatures | None = None, n_mels: int | None = None,
                   modality_dropout: float = 0.0) -> AudioVisualModel:
    """Build encoders by registry name (or take built modules) and a fusion head joining them.

    ``video=None`` / ``audio=None`` leaves that modality out. ``*_options`` go to the builders
    (``create_model(video, **video_options)``); encoders are built without a head. ``audio_features``
    (waveform -> ``[B,1,F,T]``) defaults to the audio encoder's own (AST) or avkit's log-mel with
    ``n_mels`` bins (default: the encoder's ``num_mel_bins`` if it declares one, else LogMel's).
    ``modality_dropout``: see the module docstring.
    """
    if num_classes is None:
        raise AvkitError("build_av_model needs num_classes")
    if video is None and audio is None:
        raise AvkitError("build_av_model needs a video encoder, an audio encoder or both")
    video_enc = _encoder(video, video_options, "video")
    audio_enc = _encoder(audio, audio_options, "audio")
    dims = {m: int(e.out_dim) for m, e in (("video", video_enc), ("audio", audio_enc)) if e is not None}
    head = build_fusion(fusion, dims, num_classes, **(fusion_options or {}))
    own_features = audio_enc is not None and audio_features is None and hasattr(audio_enc, "feature_extractor")
    if audio_enc is not None and audio_features is None:
        bins = n_mels or getattr(getattr(audio_enc, "config", None), "num_mel_bins", None)
        audio_features = default_audio_features(audio_enc, bins)
    return AudioVisualModel(video_enc, audio_enc, head, audio_features, prefer_waveform=own_features,
                            modality_dropout=modality_dropout)


def _encoder(spec: str | nn.Module | None, options: dict | None, modality: str) -> Any:
    if spec is None:
        return None
    if isinstance(spec, nn.Module):
        model = spec
    else:
        entry = model_entry(spec)
        if entry.modality != modality:
            raise AvkitError(f"model {spec!r} takes {entry.modality} input; it cannot be the {modality} encoder")
        opts = dict(options or {})
        if opts.get("num_classes") is not None:
            raise AvkitError(f"the {modality} encoder must not have a head (num_classes); the fusion head classifies")
        opts.pop("num_classes", None)
        model = create_model(spec, **opts)
    if not isinstance(getattr(model, "out_dim", None), int):
        raise AvkitError(f"the {modality} encoder {type(model).__name__} does not declare its width (out_dim)")
    return model
