"""Audio-visual masked autoencoder (VideoMAE + CAV-MAE, Gong et al. 2023), and its encoder as a classifier.

Tokens. Video: the video transformer's tubelet embedding (:class:`~avkit.models.video_transformer.TubeletEmbed`)
cuts ``[B, 3, T, H, W]`` into ``(T/tt) * (H/p) * (W/p)`` tubes, time-major. Audio: the waveform becomes
the AST's Kaldi log-mel (:class:`~avkit.models.audio_ast.ASTFeatures`, ``n_mels`` x ``audio_frames``),
cut into non-overlapping ``audio_patch`` squares by the same embedding (one frame, one channel),
frequency-major. AST's own patches overlap (stride 10 of 16); a masked autoencoder needs disjoint
ones, or a visible patch would show part of each hidden neighbour (CAV-MAE uses disjoint ones too).

Encoder (:class:`AVMAEEncoder`): learned positions and a modality embedding, ``modality_depth``
blocks per modality, then ``depth`` joint blocks over the tokens of every modality together (the
video transformer's pre-norm blocks: fused ``scaled_dot_product_attention``). Only the tokens it
is given are encoded: masking keeps a subset, so the cost falls with the masking ratio.

Masking (:func:`tube_mask`, :func:`random_mask`): video hides whole tubes, the same spatial
patches in every time step (VideoMAE: a patch cannot be copied from the next frame); audio hides
random time-frequency patches. Each modality has its own ratio.

Pretraining model (:class:`AVMAE`): the encoder, a light decoder per modality (mask tokens put back
at the hidden places, ``decoder_depth`` narrow blocks, a linear layer to pixels / spectrogram bins)
and a projection per modality for the contrastive term. Targets are normalised per patch (mean 0,
variance 1: VideoMAE's ``norm_pix_loss``); the loss is the mean squared error on hidden patches.
The contrastive embeddings come from each modality alone, unmasked (all its tokens through its
modality blocks, mean-pooled, projected, unit length), so audio can retrieve video and back
(:func:`info_nce`); only the reconstruction path drops tokens. With ``arrow=True`` a third term asks the
video embedding for the direction of motion (:meth:`AVMAE.arrow_loss`: a clip against itself played
backwards), which reconstruction and the audio-visual term leave out of the pooled features.

Classifier (:class:`AVMAEClassifier`, registered as ``av_mae``): the same encoder on every token,
joint outputs mean-pooled per modality and concatenated, plus a linear head; ``model.init`` with
a pretraining run loads the ``encoder.`` tensors (avkit.engine.build). It takes the batch dict
(``video``, ``audio``; ``takes_batch``) or a video tensor; a modality the input lacks (or a clip
with ``has_audio`` False) gets a learned "absent" vector in its place. Options: ``pool`` (``joint``, the
default; ``modality``: each modality's own blocks' tokens; ``both``) and ``head_norm`` (MAE's linear
probe: a BatchNorm without affine parameters before the head); docs/pretraining.md measures both.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from avkit.errors import AvkitError
from avkit.models.audio_ast import ASTFeatures
from avkit.models.base import VideoClassifier, check_clip
from avkit.models.registry import register_model
from avkit.models.video_transformer import Block, TubeletEmbed

MODALITIES = ("video", "audio")
STILL_FRACTION = 0.05  # arrow_loss: a clip this close to itself played backwards has no reversed negative


# ---------------------------------------------------------------------------------------------
# masking


def _keep_smallest(noise: torch.Tensor, keep: int) -> torch.Tensor:
    """Indices of the ``keep`` smallest values of each row, ascending (token order kept)."""
    return noise.argsort(dim=1)[:, :keep].sort(dim=1).values


def visible_count(n: int, ratio: float) -> int:
    """Patches left visible out of ``n`` at masking ``ratio`` (at least one; VideoMAE rounds the hidden count down)."""
    if not 0.0 <= ratio < 1.0:
        raise AvkitError(f"a masking ratio must be in [0, 1), got {ratio}")
    return max(1, n - int(ratio * n))


def random_mask(batch: int, n: int, ratio: float, device: torch.device | str = "cpu",
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Indices ``long [B, keep]`` of the patches left visible, chosen at random per clip (audio)."""
    noise = torch.rand(batch, n, generator=generator).to(device) if generator is not None else \
        torch.rand(batch, n, device=device)
    return _keep_smallest(noise, visible_count(n, ratio))


def tube_mask(batch: int, grid: tuple[int, int], ratio: float, device: torch.device | str = "cpu",
              generator: torch.Generator | None = None) -> torch.Tensor:
    """Indices ``long [B, T' * keep]`` of visible tokens of a ``(T', S)`` grid (time-major): the same
    ``keep`` spatial positions in every time step, so each hidden patch is a whole tube."""
    t, s = grid
    space = random_mask(batch, s, ratio, device, generator)  # [B, keep]
    steps = torch.arange(t, device=space.device).view(1, t, 1) * s
    return (steps + space[:, None, :]).flatten(1)


def hidden_mask(keep: torch.Tensor, n: int) -> torch.Tensor:
    """``bool [B, n]``: True where a token is hidden (not in ``keep``)."""
    mask = torch.ones(keep.shape[0], n, dtype=torch.bool, device=keep.device)
    return mask.scatter(1, keep, False)


def gather_tokens(tokens: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """``tokens [B, N, D]`` at ``keep [B, K]`` -> ``[B, K, D]``."""
    return tokens.gather(1, keep[..., None].expand(-1, -1, tokens.shape[-1]))


# ---------------------------------------------------------------------------------------------
# patches <-> pixels


def patchify_video(x: torch.Tensor, tubelet: int, patch: int) -> torch.Tensor:
    """``[B, C, T, H, W]`` -> ``[B, N, tt * p * p * C]`` in the tubelet embedding's token order."""
    b, c, t, h, w = x.shape
    x = x.reshape(b, c, t // tubelet, tubelet, h // patch, patch, w // patch, patch)
    return x.permute(0, 2, 4, 6, 3, 5, 7, 1).reshape(b, (t // tubelet) * (h // patch) * (w // patch), -1)


def unpatchify_video(p: torch.Tensor, shape: Sequence[int], tubelet: int, patch: int) -> torch.Tensor:
    """Inverse of :func:`patchify_video` for a clip batch of ``shape`` ``(B, C, T, H, W)``."""
    b, c, t, h, w = shape
    x = p.reshape(b, t // tubelet, h // patch, w // patch, tubelet, patch, patch, c)
    return x.permute(0, 7, 1, 4, 2, 5, 3, 6).reshape(b, c, t, h, w)


def patchify_spectrogram(s: torch.Tensor, patch: int) -> torch.Tensor:
    """``[B, 1, F, T]`` -> ``[B, N, p * p]``, frequency-major (the embedding's order)."""
    return patchify_video(s[:, :, None], 1, patch)


def unpatchify_spectrogram(p: torch.Tensor, shape: Sequence[int], patch: int) -> torch.Tensor:
    b, c, f, t = shape
    return unpatchify_video(p, (b, c, 1, f, t), 1, patch)[:, :, 0]


def normalise_patches(p: torch.Tensor, eps: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(normalised, mean, std)`` per patch: the reconstruction target (VideoMAE's ``norm_pix_loss``)."""
    mean = p.mean(dim=-1, keepdim=True)
    std = (p.var(dim=-1, keepdim=True, unbiased=False) + eps).sqrt()
    return (p - mean) / std, mean, std


# ---------------------------------------------------------------------------------------------
# encoder


class AVMAEEncoder(nn.Module):
    """Patch embeddings, modality blocks and joint blocks (module docstring); encodes the tokens it is asked to."""

    def __init__(self, modalities: Sequence[str] = MODALITIES, num_frames: int = 8, image_size: int = 32,
                 patch_size: int = 8, tubelet_size: int = 2, n_mels: int = 32, audio_frames: int = 96,
                 audio_patch: int = 8, embed_dim: int = 64, modality_depth: int = 1, depth: int = 2,
                 num_heads: int = 4, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        modalities = tuple(modalities)
        if not modalities or len(set(modalities)) != len(modalities) or not set(modalities) <= set(MODALITIES):
            raise AvkitError(f"modalities must be distinct names from {list(MODALITIES)}, got {list(modalities)}")
        self.modalities = modalities
        self.embed_dim = embed_dim
        self.tubelet, self.patch, self.audio_patch = tubelet_size, patch_size, audio_patch
        if num_frames % tubelet_size or image_size % patch_size:
            raise AvkitError(f"num_frames {num_frames} / image_size {image_size} must be multiples of the tubelet "
                             f"({tubelet_size}, {patch_size}, {patch_size})")
        if n_mels % audio_patch or audio_frames % audio_patch:
            raise AvkitError(f"n_mels {n_mels} and audio_frames {audio_frames} must be multiples of "
                             f"audio_patch {audio_patch}")
        self.video_shape = (3, num_frames, image_size, image_size)
        self.spec_shape = (1, n_mels, audio_frames)
        g = image_size // patch_size
        self.grids = {"video": (num_frames // tubelet_size, g * g),
                      "audio": (n_mels // audio_patch, audio_frames // audio_patch)}
        self.embeds = nn.ModuleDict()
        self.pos = nn.ParameterDict()
        self.type_embed = nn.ParameterDict()
        self.modality_blocks = nn.ModuleDict()
        for m in modalities:
            if m == "video":
                self.embeds[m] = TubeletEmbed(embed_dim, patch_size, tubelet_size)
            else:
                self.embeds[m] = TubeletEmbed(embed_dim, audio_patch, 1, in_channels=1)
                self.features = ASTFeatures(n_mels, audio_frames)
            self.pos[m] = nn.Parameter(torch.zeros(1, self.num_tokens(m), embed_dim))
            self.type_embed[m] = nn.Parameter(torch.zeros(1, 1, embed_dim))
            self.modality_blocks[m] = nn.ModuleList(Block(embed_dim, num_heads, mlp_ratio, "joint")
                                                    for _ in range(modality_depth))
        self.blocks = nn.ModuleList(Block(embed_dim, num_heads, mlp_ratio, "joint") for _ in range(depth))
        self.norm = nn.LayerNorm(embed_dim)
        init_weights(self)

    def num_tokens(self, modality: str) -> int:
        a, b = self.grids[modality]
        return a * b

    def spectrogram(self, waveform: torch.Tensor) -> torch.Tensor:
        """Waveform ``[B, S]`` (16 kHz) -> the AST's log-mel ``[B, 1, n_mels, audio_frames]``, in full precision."""
        with torch.autocast(waveform.device.type, enabled=False):
            return self.features(waveform.float())

    def inputs(self, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """The model's inputs from a batch dict: ``video [B, 3, T, H, W]`` and ``audio`` as a spectrogram."""
        out = {}
        for m in self.modalities:
            value = batch.get(m)
            if value is None:
                continue
            if m == "video":
                check_clip(value)
                if tuple(value.shape[1:]) != self.video_shape:
                    raise AvkitError(f"av_mae was built for clips {list(self.video_shape)}, got {list(value.shape[1:])}")
                out[m] = value
            else:
                out[m] = self.spectrogram(value) if value.dim() == 2 else value
        return out

    def embed(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        """All tokens of one modality with positions: ``[B, N, D]``."""
        if modality == "audio":
            x = x[:, :, None]  # a spectrogram is a one-frame, one-channel clip
        tokens, _ = self.embeds[modality](x)
        return tokens.flatten(1, 2) + self.pos[modality] + self.type_embed[modality]

    def forward(self, inputs: Mapping[str, torch.Tensor],
                keep: Mapping[str, torch.Tensor | None] | None = None) -> tuple[dict[str, torch.Tensor],
                                                                                dict[str, torch.Tensor]]:
        """``(joint tokens, modality tokens)`` per modality of ``inputs``: ``[B, K, D]`` for the
        tokens ``keep[m]`` names (all when None). Masked tokens never enter a block."""
        own: dict[str, torch.Tensor] = {}
        for m, x in inputs.items():
            tokens = self.embed(m, x)
            idx = (keep or {}).get(m)
            if idx is not None:
                tokens = gather_tokens(tokens, idx)
            blocks: Any = self.modality_blocks[m]
            for block in blocks:
                tokens = block(tokens, (0, 0), False)
            own[m] = tokens
        sizes = [t.shape[1] for t in own.values()]
        joint = torch.cat(list(own.values()), dim=1)
        for block in self.blocks:
            joint = block(joint, (0, 0), False)
        joint = self.norm(joint)
        return dict(zip(own, joint.split(sizes, dim=1))), own


def init_weights(module: nn.Module) -> None:
    """Truncated-normal linear weights and positions, zero biases (the video transformer's init)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    for p in module.parameters():
        if p.dim() == 3:  # positions, modality embeddings, mask tokens (conv weights are 5-D)
            nn.init.trunc_normal_(p, std=0.02)


# ---------------------------------------------------------------------------------------------
# pretraining model


class Decoder(nn.Module):
    """Visible tokens + mask tokens at the hidden places -> narrow blocks -> one prediction per token."""

    def __init__(self, num_tokens: int, in_dim: int, dim: int, depth: int, num_heads: int, out_dim: int) -> None:
        super().__init__()
        self.num_tokens = num_tokens
        self.proj = nn.Linear(in_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.zeros(1, num_tokens, dim))
        self.blocks = nn.ModuleList(Block(dim, num_heads, 4.0, "joint") for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.out = nn.Linear(dim, out_dim)

    def forward(self, visible: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        x = self.proj(visible)
        full = self.mask_token.to(x.dtype).expand(x.shape[0], self.num_tokens, -1)
        full = full.scatter(1, keep[..., None].expand(-1, -1, x.shape[-1]), x) + self.pos
        for block in self.blocks:
            full = block(full, (0, 0), False)
        return self.out(self.norm(full))


@dataclass
class ModalityOutput:
    """One modality of an :class:`AVMAE` pass: prediction and normalised target ``[B, N, P]``, the
    hidden ``bool [B, N]``, the visible indices and the target patches' mean/std (to draw them)."""

    pred: torch.Tensor
    target: torch.Tensor
    hidden: torch.Tensor
    keep: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    input: torch.Tensor  # the clip or spectrogram the patches came from

    def loss(self) -> torch.Tensor:
        """Per-clip mean squared error over the hidden patches ``[B]``."""
        err = (self.pred.float() - self.target.float()).pow(2).mean(dim=-1)
        hidden = self.hidden.float()
        return (err * hidden).sum(1) / hidden.sum(1).clamp(min=1.0)

    def reconstruction(self) -> torch.Tensor:
        """The prediction in input units (each patch de-normalised with the original patch's statistics),
        visible patches copied from the input."""
        pred = self.pred.float() * self.std + self.mean
        original = self.target.float() * self.std + self.mean
        return torch.where(self.hidden[..., None], pred, original)


class AVMAE(nn.Module):
    """The encoder, a light decoder per modality and contrastive projections (module docstring)."""

    takes_batch = True

    def __init__(self, encoder: AVMAEEncoder, decoder_dim: int = 32, decoder_depth: int = 1,
                 decoder_heads: int = 2, proj_dim: int = 32, arrow: bool = False) -> None:
        super().__init__()
        self.encoder = encoder
        e = encoder
        out = {"video": e.tubelet * e.patch * e.patch * 3, "audio": e.audio_patch * e.audio_patch}
        self.decoders = nn.ModuleDict({m: Decoder(e.num_tokens(m), e.embed_dim, decoder_dim, decoder_depth,
                                                  decoder_heads, out[m]) for m in e.modalities})
        # Contrastive projections only where there is a pair to contrast.
        paired = e.modalities if len(e.modalities) == 2 else ()
        self.projections = nn.ModuleDict({m: nn.Sequential(nn.LayerNorm(e.embed_dim), nn.Linear(e.embed_dim, proj_dim))
                                          for m in paired})
        # The arrow-of-time term's projection (:meth:`arrow_loss`): video only, so video-only pretraining has it too.
        self.arrow = (nn.Sequential(nn.LayerNorm(e.embed_dim), nn.Linear(e.embed_dim, proj_dim))
                      if arrow and "video" in e.modalities else None)
        init_weights(self.decoders)
        init_weights(self.projections)
        if self.arrow is not None:
            init_weights(self.arrow)

    @property
    def modalities(self) -> tuple[str, ...]:
        return self.encoder.modalities

    def patches(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        e = self.encoder
        return patchify_video(x, e.tubelet, e.patch) if modality == "video" else patchify_spectrogram(x, e.audio_patch)

    def masks(self, batch: int, ratios: Mapping[str, float], device: torch.device,
              generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Visible indices per modality: tubes for video, time-frequency patches for audio."""
        e = self.encoder
        out = {}
        for m in self.modalities:
            if m == "video":
                out[m] = tube_mask(batch, e.grids[m], ratios[m], device, generator)
            else:
                out[m] = random_mask(batch, e.num_tokens(m), ratios[m], device, generator)
        return out

    def embeddings(self, own: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Unit-length contrastive embeddings ``[B, proj_dim]`` from each modality's own tokens (none for one modality)."""
        return {m: F.normalize(self.projections[m](t.mean(1)).float(), dim=-1) for m, t in own.items()
                if m in self.projections}

    def forward(self, batch: Mapping[str, Any], ratios: Mapping[str, float], generator: torch.Generator | None = None,
                ) -> tuple[dict[str, ModalityOutput], dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Mask, encode the visible tokens, decode every token: ``(outputs per modality, contrastive
        embeddings, the arrow-of-time term per clip [B] when the model has one)``."""
        inputs = self.encoder.inputs(batch)
        missing = [m for m in self.modalities if m not in inputs]
        if missing:
            raise AvkitError(f"av_mae pretraining needs batch[{missing[0]!r}] (data.audio: true for sound)")
        first = next(iter(inputs.values()))
        keep = self.masks(first.shape[0], ratios, first.device, generator)
        joint, _ = self.encoder(inputs, keep)
        outputs = {}
        for m, x in inputs.items():
            target, mean, std = normalise_patches(self.patches(m, x.float()))
            pred = self.decoders[m](joint[m], keep[m])
            outputs[m] = ModalityOutput(pred, target, hidden_mask(keep[m], target.shape[1]), keep[m], mean, std, x)
        # Each modality's whole clip through its own blocks once: the audio-visual term's embeddings and the
        # arrow term's anchor come from the same tokens.
        wanted = set(self.projections) | ({"video"} if self.arrow is not None else set())
        own = {m: self.own_tokens(m, x) for m, x in inputs.items() if m in wanted}
        extra = {}
        if self.arrow is not None:
            extra["arrow"] = self.arrow_loss(inputs["video"], generator, anchor_tokens=own["video"])
        return outputs, self.embeddings(own), extra

    def own_tokens(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        """Every token of ``x`` through its modality's own blocks (no joint block, no masking)."""
        tokens = self.encoder.embed(modality, x)
        blocks: Any = self.encoder.modality_blocks[modality]
        for block in blocks:
            tokens = block(tokens, (0, 0), False)
        return tokens

    def arrow_embeddings(self, video: torch.Tensor, tokens: torch.Tensor | None = None) -> torch.Tensor:
        """Unit-length arrow-of-time embeddings ``[B, proj_dim]`` of whole clips ``[B, 3, T, H, W]`` (``tokens``:
        their :meth:`own_tokens`, when already computed)."""
        assert self.arrow is not None
        tokens = self.own_tokens("video", video) if tokens is None else tokens
        return F.normalize(self.arrow(tokens.mean(1)).float(), dim=-1)

    def arrow_loss(self, video: torch.Tensor, generator: torch.Generator | None = None,
                   temperature: float = 0.1, anchor_tokens: torch.Tensor | None = None) -> torch.Tensor:
        """Arrow of time, per clip ``[B]``: InfoNCE where clip i must match itself shifted in space (a random
        wrap-around shift, so position is not what matches) against the other clips shifted and against
        **itself played backwards**. The reversed clip has the same frames in the opposite order, so the
        opposite motion: only an embedding that encodes which way things move can tell them apart.
        Reconstruction alone does not ask for that in a linearly readable form (docs/pretraining.md). A clip
        that looks the same backwards (no motion) has no reversed negative: it could not be told apart."""
        b, _, _, h, w = video.shape
        shifts = torch.randint(0, h * w, (b,), generator=generator, device="cpu").tolist()
        shifted = torch.stack([torch.roll(v, (s // w, s % w), dims=(-2, -1)) for v, s in zip(video, shifts)])
        backwards = video.flip(2)
        anchor = self.arrow_embeddings(video, anchor_tokens)
        z = self.arrow_embeddings(torch.cat([shifted, backwards]))
        positive, reversed_ = z[:b], z[b:]
        logits = torch.cat([anchor @ positive.t(), (anchor * reversed_).sum(1, keepdim=True)], dim=1) / temperature
        # Still: reversal changes the clip by under 5% of its spread (codec noise on a static shot stays
        # within 3.3% on the generated data, the slowest motion differs by 10%).
        flat = video.float().flatten(1)
        still = (flat - backwards.float().flatten(1)).abs().mean(1) < STILL_FRACTION * flat.std(1).clamp(min=1e-6)
        logits[:, -1] = logits[:, -1].masked_fill(still, float("-inf"))
        return F.cross_entropy(logits, torch.arange(b, device=video.device), reduction="none")

    def contrast(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Contrastive embeddings of whole clips: every token through its modality's blocks only (no
        joint blocks, so neither modality sees the other). Masked tokens would not do: at 90% tube
        masking 2 of 16 patch positions are left, too little to tell which sound goes with a clip
        (measured: the InfoNCE term stayed at chance, ln(batch))."""
        if not self.projections:
            return {}
        return self.embeddings({m: self.own_tokens(m, x) for m, x in inputs.items()})

    @torch.no_grad()
    def embed_unmasked(self, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """Contrastive embeddings ``[B, proj_dim]`` of whole clips: for retrieval."""
        return self.contrast(self.encoder.inputs(batch))


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float = 0.07) -> torch.Tensor:
    """Symmetric InfoNCE between paired unit embeddings ``[B, P]``: clip i's sound matches clip i's
    frames against every other clip of the batch, both ways; per clip ``[B]``."""
    logits = a.float() @ b.float().t() / temperature
    target = torch.arange(a.shape[0], device=a.device)
    return (F.cross_entropy(logits, target, reduction="none") + F.cross_entropy(logits.t(), target, reduction="none")) / 2


# ---------------------------------------------------------------------------------------------
# classifier


# Which tokens the classifier mean-pools: the joint blocks' output, each modality's own blocks'
# output (where the contrastive term trains them, before either modality sees the other), or both.
POOLS = {"joint": ("joint",), "modality": ("modality",), "both": ("joint", "modality")}


class ProbeNorm(nn.BatchNorm1d):
    """BatchNorm without affine parameters (MAE's linear-probe head). A one-clip training batch has
    no spread to normalise by, so it uses the running statistics instead of failing."""

    def __init__(self, num_features: int) -> None:
        super().__init__(num_features, affine=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] == 1:
            return F.batch_norm(x, self.running_mean, self.running_var, training=False, eps=self.eps)
        return super().forward(x)


class AVMAEClassifier(VideoClassifier):
    """The pretrained encoder on whole clips, pooled per modality, plus a linear head (module docstring)."""

    takes_batch = True

    def __init__(self, num_classes: int | None = None, head_norm: bool = False, pool: str = "joint",
                 **options: Any) -> None:
        super().__init__()
        if pool not in POOLS:
            raise AvkitError(f"av_mae pool must be one of {list(POOLS)}, got {pool!r}")
        self.pool = pool
        self.encoder = AVMAEEncoder(**options)
        d = self.encoder.embed_dim * len(POOLS[pool])
        self.absent = nn.ParameterDict({m: nn.Parameter(torch.zeros(d)) for m in self.encoder.modalities})
        self.init_head(d * len(self.encoder.modalities), num_classes)
        if head_norm and self.head is not None:
            # MAE's linear probe: each pooled feature standardised by a BatchNorm without affine
            # parameters (the head stays linear); its running statistics are used in eval mode.
            self.head = nn.Sequential(ProbeNorm(self.out_dim), self.head)

    def forward_features(self, x: torch.Tensor | Mapping[str, Any]) -> torch.Tensor:
        batch: Mapping[str, Any] = {"video": x} if isinstance(x, torch.Tensor) else x
        inputs = self.encoder.inputs(batch)
        if not inputs:
            raise AvkitError(f"av_mae needs batch {list(self.encoder.modalities)}, got {sorted(batch)}")
        joint, own = self.encoder(inputs)
        tokens = {"joint": joint, "modality": own}
        first = next(iter(joint.values()))
        parts = []
        for m in self.encoder.modalities:
            absent = self.absent[m].to(first.dtype)
            if m not in joint:
                parts.append(absent.expand(first.shape[0], -1))
                continue
            present = torch.ones(first.shape[0], 1, dtype=torch.bool, device=first.device)
            if m == "audio" and batch.get("has_audio") is not None:
                present = torch.as_tensor(batch["has_audio"], device=first.device).bool().view(-1, 1)
            pooled = torch.cat([tokens[source][m].mean(1) for source in POOLS[self.pool]], dim=1)
            # always through where(): every parameter is in the graph (DDP), no device sync
            parts.append(torch.where(present, pooled, absent))
        return torch.cat(parts, dim=1)

    def forward(self, x: torch.Tensor | Mapping[str, Any]) -> torch.Tensor:
        features = self.forward_features(x)
        return features if self.head is None else self.head(features)


AV_MAE_TINY = {"modalities": ["video"], "embed_dim": 32, "modality_depth": 1, "depth": 1, "num_heads": 2, "n_mels": 16, "audio_frames": 32}


# The registry's tiny check feeds a video tensor, so its preset is the video-only encoder.
@register_model("av_mae", family="av_mae", tiny=AV_MAE_TINY)
def av_mae(num_classes: int | None = None, **options: Any) -> AVMAEClassifier:
    """Audio-visual MAE encoder (joint video tubes + spectrogram patches) with a linear head; takes the batch."""
    return AVMAEClassifier(num_classes, **options)
