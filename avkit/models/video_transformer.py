"""A video transformer written out: tubelet embedding, space-time attention, CLS or mean pooling.

- Tubelet embedding: a Conv3d with kernel = stride = ``(tubelet_size, patch_size, patch_size)``
  cuts the clip into ``N = (T/tt) * (H/p) * (W/p)`` non-overlapping tubes (ViViT; ``tt=1`` is
  ViT's per-frame patches), each projected to ``embed_dim``. Tokens are ordered time-major.
- Position: a learned spatial embedding (one per patch position) plus a learned temporal one (one
  per time step), factorised so clips of another size interpolate them. Without the temporal
  embedding (``temporal_pos=False``) the model cannot tell frame order.
- Attention, ``attention=``:
  ``"joint"``: every token attends to every token (cost grows with ``N^2``);
  ``"divided"`` (TimeSformer): in each block, time attention among the tokens at the same spatial
  position, then space attention among the tokens of the same frame (the CLS token joins every
  frame's space attention and its outputs are averaged), then the MLP.
- Pooling, ``pool=``: ``"cls"`` prepends a CLS token and reads it out; ``"mean"`` averages tokens.

Attention uses ``torch.nn.functional.scaled_dot_product_attention`` (fused kernels on GPU).
``encode`` returns every token after the final LayerNorm (``[B, 1 + N, D]`` with CLS first);
``forward_tokens`` the ``N`` patch tokens ``[B, N, D]`` (like the other transformer wrappers).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from avkit.errors import AvkitError
from avkit.models.base import VideoClassifier, check_clip
from avkit.models.registry import register_model


class TubeletEmbed(nn.Module):
    """``[B, C, T, H, W]`` -> tokens ``[B, T', S, D]`` with ``T' = T/tt``, ``S = (H/p) * (W/p)``."""

    def __init__(self, dim: int, patch_size: int = 16, tubelet_size: int = 2, in_channels: int = 3) -> None:
        super().__init__()
        self.patch_size, self.tubelet_size = patch_size, tubelet_size
        size = (tubelet_size, patch_size, patch_size)
        self.proj = nn.Conv3d(in_channels, dim, kernel_size=size, stride=size)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int, int]]:
        t, h, w = x.shape[-3:]
        if t % self.tubelet_size or h % self.patch_size or w % self.patch_size:
            raise AvkitError(f"clip T,H,W = {t},{h},{w} must be multiples of the tubelet "
                             f"({self.tubelet_size}, {self.patch_size}, {self.patch_size})")
        x = self.proj(x)  # [B, D, T', H', W']
        b, d, tp, hp, wp = x.shape
        return x.flatten(3).permute(0, 2, 3, 1), (tp, hp, wp)


class Attention(nn.Module):
    """Multi-head self-attention over ``[N, L, D]`` with fused ``scaled_dot_product_attention``."""

    def __init__(self, dim: int, num_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % num_heads:
            raise AvkitError(f"embed_dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads, self.dropout = num_heads, dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, length, d = x.shape
        q, k, v = self.qkv(x).view(n, length, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        return self.proj(out.transpose(1, 2).reshape(n, length, d))


class Block(nn.Module):
    """Pre-norm transformer block with joint or divided (time, then space) attention."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, attention: str = "joint",
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.attention = attention
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads, dropout)  # joint attention, or space attention when divided
        if attention == "divided":
            self.norm_time = nn.LayerNorm(dim)
            self.attn_time = Attention(dim, num_heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim),
                                 nn.Dropout(dropout))

    def forward(self, x: torch.Tensor, grid: tuple[int, int], has_cls: bool) -> torch.Tensor:
        if self.attention == "joint":
            x = x + self.attn(self.norm1(x))
        else:
            x = self._divided(x, grid, has_cls)
        return x + self.mlp(self.norm2(x))

    def _divided(self, x: torch.Tensor, grid: tuple[int, int], has_cls: bool) -> torch.Tensor:
        t, s = grid
        b, _, d = x.shape
        cls, patches = (x[:, :1], x[:, 1:]) if has_cls else (None, x)
        # Time attention: sequences of the T' tokens at one spatial position.
        seq = patches.view(b, t, s, d).transpose(1, 2).reshape(b * s, t, d)
        seq = seq + self.attn_time(self.norm_time(seq))
        patches = seq.view(b, s, t, d).transpose(1, 2).reshape(b * t, s, d)
        # Space attention: sequences of one frame's S tokens, each with a copy of CLS.
        if cls is not None:
            frames = torch.cat([cls.repeat_interleave(t, dim=0), patches], dim=1)
        else:
            frames = patches
        out = self.attn(self.norm1(frames))
        patches = patches + out[:, -s:]
        patches = patches.reshape(b, t * s, d)
        if cls is None:
            return patches
        cls = cls + out[:, 0].view(b, t, d).mean(1, keepdim=True)
        return torch.cat([cls, patches], dim=1)


class VideoTransformer(VideoClassifier):
    """Tubelet tokens + factorised position + transformer blocks + CLS/mean pooling."""

    def __init__(self, num_classes: int | None = None, num_frames: int = 16, image_size: int = 224,
                 patch_size: int = 16, tubelet_size: int = 2, embed_dim: int = 384, depth: int = 12,
                 num_heads: int = 6, mlp_ratio: float = 4.0, attention: str = "divided", pool: str = "cls",
                 temporal_pos: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        if attention not in ("joint", "divided"):
            raise AvkitError(f"attention must be 'joint' or 'divided', got {attention!r}")
        if pool not in ("cls", "mean"):
            raise AvkitError(f"pool must be 'cls' or 'mean', got {pool!r}")
        self.pool, self.attention = pool, attention
        self.embed = TubeletEmbed(embed_dim, patch_size, tubelet_size)
        grid = image_size // patch_size
        self.grid = (num_frames // tubelet_size, grid, grid)
        self.pos_space = nn.Parameter(torch.zeros(1, grid * grid, embed_dim))
        self.pos_time = nn.Parameter(torch.zeros(1, self.grid[0], embed_dim)) if temporal_pos else None
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim)) if pool == "cls" else None
        self.blocks = nn.ModuleList(Block(embed_dim, num_heads, mlp_ratio, attention, dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(embed_dim)
        self.init_head(embed_dim, num_classes, dropout)
        self._init_weights()

    def _init_weights(self) -> None:
        for p in (self.pos_space, self.pos_time, self.cls_token):
            if p is not None:
                nn.init.trunc_normal_(p, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def _positions(self, tp: int, hp: int, wp: int) -> torch.Tensor:
        """Position embedding ``[1, T', S, D]`` for a token grid, interpolated if it differs from the built one."""
        d = self.pos_space.shape[-1]
        space: torch.Tensor = self.pos_space
        if (hp, wp) != self.grid[1:]:
            space = space.view(1, *self.grid[1:], d).permute(0, 3, 1, 2)
            space = F.interpolate(space, size=(hp, wp), mode="bicubic", align_corners=False)
            space = space.permute(0, 2, 3, 1).reshape(1, hp * wp, d)
        pos = space[:, None]
        if self.pos_time is not None:
            time: torch.Tensor = self.pos_time
            if tp != self.grid[0]:
                time = F.interpolate(time.transpose(1, 2), size=tp, mode="linear", align_corners=False).transpose(1, 2)
            pos = pos + time[:, :, None]
        return pos

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """All tokens after the final LayerNorm: ``[B, 1 + N, D]`` with CLS first (``pool="cls"``), else ``[B, N, D]``."""
        check_clip(x)
        tokens, (tp, hp, wp) = self.embed(x)
        tokens = (tokens + self._positions(tp, hp, wp)).flatten(1, 2)
        if self.cls_token is not None:
            tokens = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        for block in self.blocks:
            tokens = block(tokens, (tp, hp * wp), self.cls_token is not None)
        return self.norm(tokens)

    def forward_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Patch tokens ``[B, N, D]``, ``N = (T/tt) * (H/p) * (W/p)``, time-major (CLS dropped)."""
        tokens = self.encode(x)
        return tokens[:, 1:] if self.cls_token is not None else tokens

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.encode(x)
        return tokens[:, 0] if self.pool == "cls" else tokens.mean(1)


VIDEO_TRANSFORMER_TINY = {"num_frames": 8, "image_size": 32, "patch_size": 8, "tubelet_size": 2, "embed_dim": 32,
                          "depth": 2, "num_heads": 2}


@register_model("video_transformer", family="video_transformer", tiny=VIDEO_TRANSFORMER_TINY)
def video_transformer(num_classes: int | None = None, num_frames: int = 16, image_size: int = 224,
                      patch_size: int = 16, tubelet_size: int = 2, embed_dim: int = 384, depth: int = 12,
                      num_heads: int = 6, mlp_ratio: float = 4.0, attention: str = "divided", pool: str = "cls",
                      temporal_pos: bool = True, dropout: float = 0.0) -> VideoTransformer:
    """Video transformer: tubelet tokens, joint or divided (TimeSformer) space-time attention, CLS/mean pool."""
    return VideoTransformer(num_classes, num_frames, image_size, patch_size, tubelet_size, embed_dim, depth,
                            num_heads, mlp_ratio, attention, pool, temporal_pos, dropout)
