"""The learned sampler: an SCSampler-style ranker of candidate clips, trained on what helps the heavy model.

Korbar, Tran and Torresani (2019), "SCSampler: Sampling Salient Clips from Video for Efficient
Action Recognition": a cheap network scores every clip and the expensive classifier runs only on
the top-ranked ones; the sampler is trained with a ranking loss to order clips by how useful they
are to the classifier. Here:

- **features** of a candidate clip (:func:`sampler_features`): the frozen preview's per-window
  embedding (audio, plus the one-frame visual branch when the preview has it), its saliency logit
  and its class probabilities;
- **target**: the heavy model's probability of the video's true class on that clip (computed once
  on every candidate of every training video, :mod:`avkit.apps.clip_selection.task`), so the sampler
  learns which sounds and sights go with clips the heavy model gets right, without any segment
  labels;
- **loss** (:func:`ranking_loss`): pairwise margin ranking inside each video, over the pairs whose
  targets differ by more than ``min_diff``: ``relu(margin - (s_i - s_j))`` for ``target_i > target_j``;
- **network** (:class:`SamplerNet`): a two-layer MLP, a few thousand multiply-adds per window.

``avkit train recipes/longvideo_sampler.yaml`` trains it (``task: clip_selection`` with
``task_options.model: sampler``); :meth:`LearnedSampler.from_run` loads it with its preview.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from avkit.apps.clip_selection.preview import NetPreview, PreviewResult
from avkit.errors import AvkitError
from avkit.models.flops import FlopCache


class SamplerNet(nn.Module):
    """``[N, in_dim]`` clip features -> ``[N]`` ranking scores (higher = more useful to the heavy model)."""

    def __init__(self, in_dim: int, hidden: int = 32, dropout: float = 0.1) -> None:
        super().__init__()
        self.options = {"in_dim": in_dim, "hidden": hidden, "dropout": dropout}
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
                                 nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.mlp(features).squeeze(-1)


def sampler_features(result: PreviewResult) -> torch.Tensor:
    """``[N, D + 1 + C]``: preview embedding, saliency logit, class probabilities of each window."""
    if result.features is None or result.saliency_logits is None or result.class_probs is None:
        raise AvkitError("the learned sampler needs a trained preview network's outputs (not the energy preview)")
    return torch.cat([result.features.float(), result.saliency_logits.float()[:, None],
                      torch.as_tensor(result.class_probs, dtype=torch.float32)], dim=1)


def ranking_loss(scores: torch.Tensor, target: torch.Tensor, margin: float = 0.5, min_diff: float = 0.05
                 ) -> torch.Tensor:
    """Pairwise margin ranking loss over the pairs of one video whose targets differ by > ``min_diff``."""
    diff_t = target[:, None] - target[None, :]  # [N, N]: > 0 where i should rank above j
    pairs = diff_t > min_diff
    if not pairs.any():
        return scores.sum() * 0.0
    diff_s = scores[:, None] - scores[None, :]
    return torch.relu(margin - diff_s)[pairs].mean()


class LearnedSampler:
    """A trained :class:`SamplerNet` with the preview it was trained on."""

    def __init__(self, net: SamplerNet, preview: NetPreview, run_dir: str | Path | None = None,
                 heavy_run: str | None = None) -> None:
        self.net = net.eval()
        self.preview = preview
        self.run_dir = str(run_dir) if run_dir is not None else None
        self.heavy_run = heavy_run
        self.flops = FlopCache(self.net)

    @classmethod
    def from_run(cls, run_dir: str | Path, device: str | torch.device | None = "cpu",
                 checkpoint: str = "best") -> LearnedSampler:
        """The sampler trained in ``run_dir`` (``task_options.model: sampler``) with the preview it ranks."""
        from avkit.engine.checkpoint import load_trained, open_run

        run = open_run(run_dir, checkpoint)
        meta = run.meta
        if run.config.task != "clip_selection" or meta.get("model") != "sampler":
            raise AvkitError(f"{run_dir}: not a learned-sampler run (it trained {meta.get('model') or run.config.task!r}; "
                             "train one with recipes/longvideo_sampler.yaml)")
        preview_dir = _existing(meta.get("preview_run"), meta.get("preview_run_abs"), run.run_dir)
        net = load_trained(SamplerNet(**meta["options"]), run, device, "its sampler network")
        return cls(net, NetPreview.from_run(preview_dir, device), run_dir, meta.get("heavy_run"))

    @torch.no_grad()
    def score(self, result: PreviewResult) -> tuple[np.ndarray, float]:
        """Ranking scores ``[N]`` of the preview's windows and the sampler's counted GFLOPs."""
        x = sampler_features(result).to(next(self.net.parameters()).device)
        return self.net(x).cpu().numpy().astype(np.float64), self.flops(x)


def _existing(relative: Any, absolute: Any, run_dir: Path) -> Path:
    """The preview run a sampler records: as given at training time, else its absolute path."""
    for cand in (relative, absolute):
        if cand and (Path(cand) / "best.safetensors").is_file():
            return Path(cand)
    raise AvkitError(f"{run_dir}: its preview run {relative or absolute!r} is gone (the sampler ranks that preview's "
                     "features; retrain the sampler or restore the preview run)")
