"""Retrieval between the two modalities: recall@k of paired embeddings."""
from __future__ import annotations

from collections.abc import Sequence

import torch


def recall_at_k(queries: torch.Tensor, gallery: torch.Tensor, ks: Sequence[int] = (1, 5)) -> dict[int, float]:
    """Share of queries whose own pair (``gallery[i]`` for ``queries[i]``) is among the ``k`` most similar
    gallery items (dot product; unit embeddings make it the cosine). A tie with the pair counts
    against it, so constant embeddings score 0, not 1."""
    if queries.shape != gallery.shape or queries.dim() != 2:
        raise ValueError(f"queries {tuple(queries.shape)} and gallery {tuple(gallery.shape)} must be the same [N, D]")
    sims = queries.float() @ gallery.float().t()
    own = sims.diagonal()[:, None]
    rank = (sims >= own).sum(dim=1) - 1  # gallery items at least as close as the pair, the pair excluded
    return {k: float((rank < k).float().mean()) for k in ks}


def retrieval_metrics(audio: torch.Tensor, video: torch.Tensor, ks: Sequence[int] = (1, 5)) -> dict[str, float]:
    """``a2v_r1``, ``a2v_r5``, ``v2a_r1``, ``v2a_r5`` (for ``ks`` = 1, 5) and ``chance_r{k}`` = k / N."""
    out: dict[str, float] = {}
    for name, (q, g) in {"a2v": (audio, video), "v2a": (video, audio)}.items():
        for k, value in recall_at_k(q, g, ks).items():
            out[f"{name}_r{k}"] = value
    for k in ks:
        out[f"chance_r{k}"] = min(1.0, k / max(1, audio.shape[0]))
    return out
