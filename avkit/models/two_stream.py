"""Two-stream network (Simonyan & Zisserman 2014): appearance from RGB, motion from optical flow.

- Spatial stream: a 2D CNN on each RGB frame; its features are averaged over the clip's frames.
- Temporal stream: a 2D CNN whose input is ``L`` consecutive flow fields stacked on channels
  (``2L`` channels, ordered ``x_1, y_1, x_2, y_2, ...``; see ``avkit.flow.stack_flow``).
- Fusion: ``"average"`` averages the two streams' class scores (the paper's late fusion; each
  stream has its own linear head, and ``stream_logits`` returns both for per-stream losses);
  ``"concat"`` puts one linear head on the concatenated features.

Input: ``forward(video, flow=None)``. ``video`` is ``float [B, 3, T, H, W]``; ``flow`` is the
stacked flow ``float [B, 2L, H, W]`` in pixels/frame, usually precomputed by the dataset with
``avkit.flow.FlowStack`` (DIS, TV-L1, RAFT; optionally cached). When ``flow`` is None the model
computes it from the clip with a torch-only method, ``flow_method="lk"`` (pyramidal Lucas-Kanade,
no weights) or ``"raft"`` (torchvision RAFT: ``raft_weights="shipped"``, avkit's raft_small weights, or
a local file; the clip is rescaled to
[-1, 1] per clip first), from the ``L`` fields in the middle of the clip (needs ``T >= L + 1``),
with each field's mean subtracted, as ``FlowStack`` does by default. That flow carries no gradient.

``forward_features`` returns the concatenated features ``[B, D_spatial + D_temporal]``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from avkit.errors import AvkitError
from avkit.flow import build_raft, lucas_kanade_flow, raft_pairs, stack_flow
from avkit.models.base import VideoClassifier, check_clip, image_backbone, per_frame
from avkit.models.registry import register_model


class TwoStream(VideoClassifier):
    """Spatial (RGB frames) and temporal (stacked flow) 2D CNNs, fused by score averaging or concatenation."""

    def __init__(self, num_classes: int | None = None, backbone: str = "resnet18", width: int | None = None,
                 weights: Any = None, flow_fields: int = 10, fusion: str = "average", flow_method: str = "lk",
                 raft_size: str = "small", raft_weights: str | Path | None = "shipped", raft_updates: int = 12,
                 dropout: float = 0.0) -> None:
        super().__init__()
        if fusion not in ("average", "concat"):
            raise AvkitError(f"fusion must be 'average' or 'concat', got {fusion!r}")
        if flow_method not in ("lk", "raft"):
            raise AvkitError(f"on-the-fly flow_method must be 'lk' or 'raft', got {flow_method!r}")
        self.flow_fields, self.fusion, self.flow_method, self.raft_updates = flow_fields, fusion, flow_method, raft_updates
        self.spatial, d_spatial = image_backbone(backbone, width, weights)
        # Pretrained RGB kernels are averaged over channels and repeated 2L times (cross-modality init).
        self.temporal, d_temporal = image_backbone(backbone, width, weights, in_channels=2 * flow_fields)
        self.raft = build_raft(raft_size, raft_weights).requires_grad_(False) if flow_method == "raft" else None
        self.init_head(d_spatial + d_temporal, num_classes if fusion == "concat" else None, dropout)
        self.num_classes = num_classes
        self.spatial_head: nn.Module | None = None
        self.temporal_head: nn.Module | None = None
        if fusion == "average" and num_classes is not None:
            self.spatial_head = nn.Sequential(nn.Dropout(dropout), nn.Linear(d_spatial, num_classes))
            self.temporal_head = nn.Sequential(nn.Dropout(dropout), nn.Linear(d_temporal, num_classes))
        self.spatial_dim = d_spatial

    def train(self, mode: bool = True) -> TwoStream:
        super().train(mode)
        if self.raft is not None:
            self.raft.eval()  # a frozen flow estimator, never in training mode
        return self

    @torch.no_grad()
    def compute_flow(self, video: torch.Tensor) -> torch.Tensor:
        """Stacked flow ``[B, 2L, H, W]`` computed from the clip itself (see the module docstring)."""
        b, _, t, h, w = video.shape
        if t < self.flow_fields + 1:
            raise AvkitError(f"two_stream with flow_fields={self.flow_fields} needs T >= {self.flow_fields + 1} "
                             f"frames to compute flow, got T={t} (or pass flow=)")
        if self.flow_method == "lk":
            start = (t - 1 - self.flow_fields) // 2
            fields = lucas_kanade_flow(video[:, :, start:start + self.flow_fields + 1].float())
        else:
            lo = video.amin(dim=(1, 2, 3, 4), keepdim=True)
            hi = video.amax(dim=(1, 2, 3, 4), keepdim=True)
            images = ((video.float() - lo) / (hi - lo).clamp_min(1e-6) * 2 - 1).transpose(1, 2)  # [B, T, 3, H, W]
            first = images[:, :-1].reshape(-1, 3, h, w)
            second = images[:, 1:].reshape(-1, 3, h, w)
            fields = raft_pairs(self.raft, first, second, self.raft_updates).view(b, t - 1, 2, h, w)
        return stack_flow(fields, self.flow_fields, subtract_mean=True).to(video.dtype)

    def _streams(self, video: torch.Tensor, flow: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        check_clip(video)
        if flow is None:
            flow = self.compute_flow(video)
        expected = (video.shape[0], 2 * self.flow_fields, *video.shape[-2:])
        if tuple(flow.shape) != expected:
            raise AvkitError(f"flow must be stacked [B, 2L, H, W] = {list(expected)}, got {list(flow.shape)}")
        spatial = per_frame(self.spatial, video).mean(1)
        temporal = self.temporal(flow.to(video.dtype))
        return spatial, temporal

    def forward_features(self, video: torch.Tensor, flow: torch.Tensor | None = None) -> torch.Tensor:
        """Concatenated pooled features ``[B, D_spatial + D_temporal]``."""
        return torch.cat(self._streams(video, flow), dim=1)

    def stream_logits(self, video: torch.Tensor, flow: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Class scores of the spatial and of the temporal stream (``fusion="average"`` only)."""
        if self.spatial_head is None or self.temporal_head is None:
            raise AvkitError("stream_logits needs fusion='average' and num_classes")
        spatial, temporal = self._streams(video, flow)
        return self.spatial_head(spatial), self.temporal_head(temporal)

    def forward(self, video: torch.Tensor, flow: torch.Tensor | None = None) -> torch.Tensor:
        if self.num_classes is None:
            return self.forward_features(video, flow)
        if self.fusion == "concat" and self.head is not None:
            return self.head(self.forward_features(video, flow))
        spatial, temporal = self.stream_logits(video, flow)
        return (spatial + temporal) / 2


TWO_STREAM_TINY = {"backbone": "cnn", "width": 8, "flow_fields": 4}


@register_model("two_stream", family="two_stream", tiny=TWO_STREAM_TINY)
def two_stream(num_classes: int | None = None, backbone: str = "resnet18", width: int | None = None,
               weights: Any = None, flow_fields: int = 10, fusion: str = "average", flow_method: str = "lk",
               raft_size: str = "small", raft_weights: str | Path | None = "shipped", raft_updates: int = 12,
               dropout: float = 0.0) -> TwoStream:
    """Two-stream: RGB frames + stacked optical flow (2L channels) 2D CNNs, score-averaged."""
    return TwoStream(num_classes, backbone, width, weights, flow_fields, fusion, flow_method, raft_size,
                     raft_weights, raft_updates, dropout)
