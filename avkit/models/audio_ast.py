"""Audio Spectrogram Transformer (AST, Gong et al. 2021) through Hugging Face ``ASTModel``.

AST cuts a log-mel spectrogram into overlapping 16x16 patches (stride 10 in frequency and time),
embeds them like ViT and adds a CLS and a distillation token. avkit wraps ``ASTModel`` so it has
the encoder API: input ``[B, 1, F, T]`` (F == ``config.num_mel_bins``), pooled ``[B, hidden]``
(the mean of the CLS and distillation tokens, as AST classifies), tokens ``[B, N, hidden]``
(the patch tokens only).

Built either at random from an ``ASTConfig`` (or keyword options) or from a local folder written by
``save_pretrained`` / a downloaded checkpoint, or a hub id in the Hugging Face cache (``pretrained=``;
always ``local_files_only``, never remote code; see ``avkit.models.weights``).

Features. AST was trained on Kaldi filter banks, not on a librosa-style log-mel: 16 kHz mono,
25 ms Hann window, 10 ms hop, 128 mel bins, log energies, normalised as ``(x - mean) / (2 * std)``
with the AudioSet statistics (mean -4.2677393, std 4.5689974): the settings of transformers'
``ASTFeatureExtractor``. :class:`ASTFeatures` computes exactly that in torch (waveform
``[B, S]`` -> ``[B, 1, 128, T]``), so a pretrained AST sees what it was trained on. Spectrograms
shorter than ``config.max_length`` frames are zero-padded at the end, longer ones truncated, as
the feature extractor does (the position embeddings have a fixed size).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from avkit.errors import AvkitError
from avkit.models.base import VideoClassifier
from avkit.models.registry import register_model
from avkit.models.weights import load_hf_pretrained

AUDIOSET_MEAN = -4.2677393
AUDIOSET_STD = 4.5689974


class ASTFeatures(nn.Module):
    """Waveform ``[B, S]`` (or ``[S]``) at 16 kHz -> normalised Kaldi fbank ``[B, 1, num_mel_bins, T]``.

    Same numbers as ``transformers.ASTFeatureExtractor`` (torchaudio Kaldi path), computed in torch
    so it can run inside a model on any device. ``max_length`` pads/truncates the time axis.
    """

    sample_rate = 16000

    def __init__(self, num_mel_bins: int = 128, max_length: int | None = None, mean: float = AUDIOSET_MEAN,
                 std: float = AUDIOSET_STD, normalize: bool = True) -> None:
        super().__init__()
        self.num_mel_bins = num_mel_bins
        self.max_length = max_length
        self.mean, self.std, self.normalize = mean, std, normalize

    @classmethod
    def from_pretrained(cls, path: str | Path) -> ASTFeatures:
        """Settings from a local folder's ``preprocessor_config.json`` (written by ASTFeatureExtractor)."""
        from transformers import ASTFeatureExtractor

        fe = ASTFeatureExtractor.from_pretrained(str(path), local_files_only=True)
        return cls(fe.num_mel_bins, fe.max_length, fe.mean, fe.std, fe.do_normalize)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        if waveform.dim() == 1:
            waveform = waveform[None]
        if waveform.dim() != 2:
            raise AvkitError(f"AST features expect a waveform [B, samples], got shape {tuple(waveform.shape)}")
        fb = kaldi_fbank(waveform.float(), self.sample_rate, self.num_mel_bins)  # [B, T, F]
        if self.max_length is not None:
            fb = _fit_length(fb, self.max_length, dim=1)
        spec = fb.transpose(1, 2)[:, None]  # [B, 1, F, T]
        if self.normalize:
            spec = (spec - self.mean) / (self.std * 2)
        return spec


def kaldi_mel_banks(num_bins: int, n_fft: int, sample_rate: float, low_freq: float = 20.0,
                    high_freq: float = 0.0) -> torch.Tensor:
    """Kaldi's triangular mel filters ``float64 [n_fft // 2 + 1, num_bins]`` (mel = 1127 ln(1 + f / 700)).

    Unlike librosa's, the triangles are not area-normalised and the Nyquist bin gets no weight.
    """
    nyquist = 0.5 * sample_rate
    high_freq = high_freq + nyquist if high_freq <= 0.0 else high_freq
    if not 0.0 <= low_freq < high_freq <= nyquist:
        raise AvkitError(f"mel band {low_freq}-{high_freq} Hz must lie inside 0-{nyquist} Hz")
    mel = lambda f: 1127.0 * torch.log1p(torch.as_tensor(f, dtype=torch.float64) / 700.0)  # noqa: E731
    lo, hi = mel(low_freq), mel(high_freq)
    delta = (hi - lo) / (num_bins + 1)
    edges = lo + delta * torch.arange(num_bins + 2, dtype=torch.float64)
    left, center, right = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    fft_mel = mel(sample_rate / n_fft * torch.arange(n_fft // 2, dtype=torch.float64))[None]
    up = (fft_mel - left) / (center - left)
    down = (right - fft_mel) / (right - center)
    banks = torch.clamp(torch.minimum(up, down), min=0.0)
    return F.pad(banks, (0, 1)).T  # the Nyquist bin gets no weight


def kaldi_fbank(waveform: torch.Tensor, sample_rate: int = 16000, num_mel_bins: int = 128,
                frame_length_ms: float = 25.0, frame_shift_ms: float = 10.0,
                preemphasis: float = 0.97) -> torch.Tensor:
    """Kaldi ``compute-fbank-feats`` log filter banks of ``[B, S]`` waveforms -> ``[B, frames, num_mel_bins]``.

    The settings AST was trained with (and ``ASTFeatureExtractor`` uses): frames that fit whole
    (snip edges), DC offset removed per frame, pre-emphasis, symmetric Hann window, FFT size rounded
    up to a power of two, power spectrum, log with float32 epsilon as the floor, no dither. Written
    with torch ops only, batched, so it runs on any device; it equals
    ``torchaudio.compliance.kaldi.fbank(window_type="hanning", dither=0)`` (tests check it).
    """
    shift = int(sample_rate * frame_shift_ms / 1000)
    size = int(sample_rate * frame_length_ms / 1000)
    n_fft = 1 << (size - 1).bit_length()
    if waveform.shape[-1] < size:
        raise AvkitError(f"AST features need at least {size} samples ({frame_length_ms} ms), got {waveform.shape[-1]}")
    frames = waveform.unfold(-1, size, shift)  # [B, T, size]
    frames = frames - frames.mean(dim=-1, keepdim=True)
    previous = torch.cat([frames[..., :1], frames[..., :-1]], dim=-1)
    frames = frames - preemphasis * previous
    frames = frames * torch.hann_window(size, periodic=False, dtype=frames.dtype, device=frames.device)
    power = torch.fft.rfft(frames, n=n_fft).abs().pow(2)
    banks = kaldi_mel_banks(num_mel_bins, n_fft, sample_rate).to(power)
    eps = torch.finfo(torch.float32).eps
    return torch.clamp(power @ banks, min=eps).log()


def _fit_length(x: torch.Tensor, length: int, dim: int) -> torch.Tensor:
    """Zero-pad at the end or truncate ``x`` along ``dim`` to ``length``."""
    n = x.shape[dim]
    if n > length:
        return x.narrow(dim, 0, length)
    if n < length:
        pad = [0, 0] * (x.dim() - 1 - dim) + [0, length - n]
        return F.pad(x, pad)
    return x


class AudioSpectrogramTransformer(VideoClassifier):
    """``ASTModel`` with the avkit encoder API (``out_dim``, ``forward_features``, ``forward_tokens``)."""

    config: Any  # its transformers config (hidden_size, num_mel_bins, max_length)

    ast: Any  # a transformers ASTModel, used through its config and keyword call

    def __init__(self, ast: Any, num_classes: int | None = None, dropout: float = 0.0,
                 pretrained_path: str | None = None) -> None:
        super().__init__()
        self.ast = ast
        self.config = ast.config
        self.pretrained_path = pretrained_path
        self.init_head(ast.config.hidden_size, num_classes, dropout)

    def feature_extractor(self) -> ASTFeatures:
        """The waveform -> spectrogram module this model expects (from the pretrained folder when it has one)."""
        if self.pretrained_path and (Path(self.pretrained_path) / "preprocessor_config.json").is_file():
            return ASTFeatures.from_pretrained(self.pretrained_path)
        return ASTFeatures(self.config.num_mel_bins, self.config.max_length)

    def _hidden(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 1 or x.shape[2] != self.config.num_mel_bins:
            raise AvkitError(f"AST expects a spectrogram [B, 1, {self.config.num_mel_bins}, T], "
                             f"got shape {tuple(x.shape)}")
        values = _fit_length(x[:, 0].transpose(1, 2), self.config.max_length, dim=1)  # [B, T, F]
        return self.ast(input_values=values).last_hidden_state

    def forward_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Patch tokens ``[B, N, hidden]`` (CLS and distillation tokens dropped)."""
        return self._hidden(x)[:, 2:]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        h = self._hidden(x)
        return (h[:, 0] + h[:, 1]) / 2

    def save_pretrained(self, path: str | Path) -> None:
        """Write the transformer (not the avkit head) and its feature settings as a Hugging Face folder."""
        from transformers import ASTFeatureExtractor

        self.ast.save_pretrained(str(path))
        fe = self.feature_extractor()
        ASTFeatureExtractor(num_mel_bins=fe.num_mel_bins, max_length=fe.max_length, mean=fe.mean, std=fe.std,
                            do_normalize=fe.normalize).save_pretrained(str(path))


# Tiny: 64 mel x 100 frames -> 5 x 9 = 45 patch tokens of width 32.
AST_TINY = {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "intermediate_size": 64, "num_mel_bins": 64,
            "max_length": 100}


@register_model("ast", family="ast", modality="audio", tiny=AST_TINY, tiny_input=(1, 64, 100))
def ast(num_classes: int | None = None, pretrained: str | Path | None = None, config: Any = None,
        hidden_size: int = 768, num_layers: int = 12, num_heads: int = 12, intermediate_size: int = 3072,
        num_mel_bins: int = 128, max_length: int = 1024, patch_size: int = 16, frequency_stride: int = 10,
        time_stride: int = 10, dropout: float = 0.0) -> AudioSpectrogramTransformer:
    """Audio Spectrogram Transformer (Hugging Face ASTModel) on 128-bin Kaldi fbanks; random init or local folder."""
    from transformers import ASTConfig, ASTModel

    if pretrained is not None:
        model, folder = load_hf_pretrained(ASTModel, "ast", pretrained)
        return AudioSpectrogramTransformer(model, num_classes, dropout, pretrained_path=str(folder))
    if config is None:
        config = ASTConfig(hidden_size=hidden_size, num_hidden_layers=num_layers, num_attention_heads=num_heads,
                           intermediate_size=intermediate_size, num_mel_bins=num_mel_bins, max_length=max_length,
                           patch_size=patch_size, frequency_stride=frequency_stride, time_stride=time_stride,
                           hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    elif isinstance(config, dict):
        config = ASTConfig(**config)
    return AudioSpectrogramTransformer(ASTModel(config), num_classes, dropout)
