"""The three localisers, all over the same per-window features (one video = ``feats [T, D]``).

Every network takes an *item* (a dict: ``feats`` float ``[T, D]``, ``centres`` window centres in s
``[T]``, ``stride`` s, ``duration`` s, ``segments`` float ``[S, 3]`` = start, end, class index) and
has ``loss(item)`` and ``detect(item) -> [{"label": index, "start", "end", "score"}]``:

- :class:`WindowClassifier` (``method: sliding``, the baseline): each window classified (background
  + classes); consecutive windows with the same top class merged into one segment scored by their
  mean probability; temporal NMS.
- :class:`ProposalNet` (``method: proposals``, BSN/BMN-like): per-window actionness, start and end
  probabilities -> proposals (start peak x end peak pairs, and actionness runs) scored by
  start x end x mean actionness -> each proposal's pooled features classified -> Soft-NMS.
- :class:`OneStage` (``method: onestage``, ActionFormer-like): a temporal feature pyramid of local
  self-attention blocks; at every time step of every level, class scores (sigmoid focal loss) and
  distances to the start and end (IoU loss), each level responsible for one range of action
  lengths; decoded points -> Soft-NMS.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

METHODS = ("sliding", "proposals", "onestage")


# ------------------------------------------------------------------------------------ post-processing

def _iou_1d(s: torch.Tensor, e: torch.Tensor, ss: torch.Tensor, ee: torch.Tensor) -> torch.Tensor:
    inter = (torch.minimum(e, ee) - torch.maximum(s, ss)).clamp(min=0)
    union = (e - s) + (ee - ss) - inter
    return inter / union.clamp(min=1e-9)


def nms(segments: list[dict[str, Any]], iou: float = 0.5, soft_sigma: float | None = None,
        min_score: float = 1e-3, top: int = 100) -> list[dict[str, Any]]:
    """Per-class temporal NMS: hard (drop overlaps above ``iou``) or Gaussian Soft-NMS (``soft_sigma``:
    each pick decays the others' scores by ``exp(-tIoU^2 / sigma)``); best ``top`` kept, best first."""
    out: list[dict[str, Any]] = []
    for label in sorted({d["label"] for d in segments}):
        group = [d for d in segments if d["label"] == label]
        s = torch.tensor([d["start"] for d in group], dtype=torch.float64)
        e = torch.tensor([d["end"] for d in group], dtype=torch.float64)
        score = torch.tensor([d["score"] for d in group], dtype=torch.float64)
        alive = torch.ones(len(group), dtype=torch.bool)
        while alive.any():
            i = int(torch.where(alive, score, torch.tensor(-1.0, dtype=torch.float64)).argmax())
            if score[i] < min_score:
                break
            out.append({"label": label, "start": float(s[i]), "end": float(e[i]), "score": float(score[i])})
            alive[i] = False
            overlap = _iou_1d(s[i], e[i], s, e)
            if soft_sigma is None:
                alive &= overlap <= iou
            else:
                score = score * torch.exp(-overlap ** 2 / soft_sigma)
    out.sort(key=lambda d: -d["score"])
    return out[:top]


class _Normalise(nn.Module):
    """Standardises features with the training set's mean and std (buffers, saved with the weights)."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, in_dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(in_dim))
        self.register_buffer("std", torch.ones(in_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def _targets(item: dict[str, Any]) -> torch.Tensor:
    """Class index + 1 of the segment covering each window centre (0 = background)."""
    c = item["centres"]
    out = torch.zeros(len(c), dtype=torch.long, device=item["feats"].device)
    for s, e, k in item["segments"].tolist():
        out[(c >= s) & (c < e)] = int(k) + 1
    return out


def _mlp(in_dim: int, hidden: int, out: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, out))


# ------------------------------------------------------------------------------------ 1. sliding windows

class WindowClassifier(nn.Module):
    """Sliding-window classification + merging + NMS (the baseline; module docstring)."""

    def __init__(self, in_dim: int, num_classes: int, hidden: int = 64, dropout: float = 0.1, nms_iou: float = 0.5) -> None:
        super().__init__()
        self.norm = _Normalise(in_dim)
        self.net = _mlp(in_dim, hidden, num_classes + 1, dropout)
        self.nms_iou = nms_iou

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.net(self.norm(feats))

    def loss(self, item: dict[str, Any]) -> torch.Tensor:
        return F.cross_entropy(self(item["feats"]), _targets(item))

    @torch.no_grad()
    def detect(self, item: dict[str, Any]) -> list[dict[str, Any]]:
        probs = self(item["feats"]).softmax(-1).cpu()
        top = probs.argmax(-1).tolist()
        centres, half = item["centres"].cpu().tolist(), item["stride"] / 2
        out, i = [], 0
        while i < len(top):
            j = i
            while j + 1 < len(top) and top[j + 1] == top[i]:
                j += 1
            if top[i] > 0:
                out.append({"label": top[i] - 1, "start": max(0.0, centres[i] - half),
                            "end": min(item["duration"], centres[j] + half),
                            "score": float(probs[i:j + 1, top[i]].mean())})
            i = j + 1
        return nms(out, self.nms_iou)


# ------------------------------------------------------------------------------------ 2. proposals

class ProposalNet(nn.Module):
    """Actionness / boundary proposals, then each proposal classified (module docstring)."""

    def __init__(self, in_dim: int, num_classes: int, hidden: int = 64, dropout: float = 0.1,
                 max_length: float = 8.0, num_proposals: int = 60, soft_sigma: float = 0.5) -> None:
        super().__init__()
        self.norm = _Normalise(in_dim)
        self.trunk = nn.Sequential(nn.Conv1d(in_dim, hidden, 3, padding=1), nn.ReLU(), nn.Dropout(dropout),
                                   nn.Conv1d(hidden, hidden, 3, padding=1), nn.ReLU())
        self.curves = nn.Conv1d(hidden, 3, 3, padding=1)  # actionness, start, end
        self.classifier = _mlp(3 * in_dim, hidden, num_classes, dropout)  # inside, before, after
        self.max_length, self.num_proposals, self.soft_sigma = max_length, num_proposals, soft_sigma

    def curves_of(self, feats: torch.Tensor) -> torch.Tensor:
        """Logits ``[3, T]``: actionness, start, end."""
        return self.curves(self.trunk(self.norm(feats).t().unsqueeze(0)))[0]

    def pooled(self, feats: torch.Tensor, i: int, j: int) -> torch.Tensor:
        """A proposal's features (windows ``i..j``): mean inside, and of two windows before and after."""
        x = self.norm(feats)
        n = len(x)
        before = x[max(0, i - 2):max(1, i)].mean(0)
        after = x[min(n - 1, j + 1):min(n, j + 3)].mean(0)
        return torch.cat([x[i:j + 1].mean(0), before, after])

    def loss(self, item: dict[str, Any]) -> torch.Tensor:
        feats, c, step = item["feats"], item["centres"], item["stride"]
        curves = self.curves_of(feats)
        target = torch.zeros_like(curves)
        pooled, labels = [], []
        for s, e, k in item["segments"].tolist():
            target[0, (c >= s) & (c < e)] = 1
            target[1, (c - s).abs() <= step] = 1
            target[2, (c - e).abs() <= step] = 1
            inside = torch.nonzero((c >= s) & (c < e)).flatten()
            if len(inside):
                i, j = int(inside[0]), int(inside[-1])
                for di, dj in ((0, 0), (1, 0), (0, -1), (-1, 1)):  # the segment and jittered copies
                    a, b = max(0, i + di), min(len(c) - 1, j + dj)
                    if a <= b:
                        pooled.append(self.pooled(feats, a, b))
                        labels.append(int(k))
        pos = target.sum(1, keepdim=True).clamp(min=1)
        weight = torch.where(target > 0, target.shape[1] / (2 * pos), target.shape[1] / (2 * (target.shape[1] - pos).clamp(min=1)))
        loss = F.binary_cross_entropy_with_logits(curves, target, weight=weight)
        if pooled:
            loss = loss + F.cross_entropy(self.classifier(torch.stack(pooled)), torch.tensor(labels, device=feats.device))
        return loss

    def proposals(self, item: dict[str, Any]) -> list[tuple[int, int, float]]:
        """``(first window, last window, score)`` candidates, best first."""
        a, st, en = self.curves_of(item["feats"]).sigmoid().cpu()
        n = len(a)

        def peaks(p: torch.Tensor) -> list[int]:
            left = torch.cat([p[:1] - 1, p[:-1]])
            right = torch.cat([p[1:], p[-1:] - 1])
            keep = ((p >= left) & (p >= right) & (p > 0.5 * float(p.max()))) | (p > 0.5)
            return torch.nonzero(keep).flatten().tolist()

        max_windows = int(round(self.max_length / item["stride"]))
        cands: dict[tuple[int, int], float] = {}
        for i in peaks(st):
            for j in peaks(en):
                if i <= j <= i + max_windows:
                    cands[(i, j)] = float(st[i] * en[j] * a[i:j + 1].mean())
        inside = (a > 0.5).tolist() + [False]
        i = 0
        while i < n:  # actionness runs
            if inside[i]:
                j = i
                while inside[j + 1]:
                    j += 1
                cands[(i, j)] = max(cands.get((i, j), 0.0), float(a[i:j + 1].mean() * st[i] ** 0.5 * en[j] ** 0.5))
                i = j
            i += 1
        best = sorted(cands.items(), key=lambda kv: -kv[1])[:self.num_proposals]
        return [(i, j, s) for (i, j), s in best]

    @torch.no_grad()
    def detect(self, item: dict[str, Any]) -> list[dict[str, Any]]:
        props = self.proposals(item)
        if not props:
            return []
        feats = item["feats"]
        probs = self.classifier(torch.stack([self.pooled(feats, i, j) for i, j, _ in props])).softmax(-1).cpu()
        centres, half = item["centres"].cpu().tolist(), item["stride"] / 2
        out = []
        for (i, j, score), p in zip(props, probs):
            for k in p.topk(min(2, len(p))).indices.tolist():
                out.append({"label": k, "start": max(0.0, centres[i] - half), "end": min(item["duration"], centres[j] + half),
                            "score": score * float(p[k])})
        return nms(out, soft_sigma=self.soft_sigma)


# ------------------------------------------------------------------------------------ 3. one stage

class LocalAttention(nn.Module):
    """Pre-norm transformer block whose attention sees only ``window`` steps on each side."""

    def __init__(self, dim: int, heads: int = 4, window: int = 4, dropout: float = 0.1) -> None:
        super().__init__()
        self.window = window
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(2 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [1, T, dim]
        t = torch.arange(x.shape[1], device=x.device)
        far = (t[:, None] - t[None, :]).abs() > self.window  # True = may not attend
        h = self.norm1(x)
        x = x + self.attn(h, h, h, attn_mask=far, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


def sigmoid_focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0) -> torch.Tensor:
    p = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = p * target + (1 - p) * (1 - target)
    return (ce * (1 - p_t) ** gamma * (alpha * target + (1 - alpha) * (1 - target))).sum()


class OneStage(nn.Module):
    """Anchor-free one-stage localiser over a temporal feature pyramid (ActionFormer-like; module docstring)."""

    def __init__(self, in_dim: int, num_classes: int, dim: int = 64, levels: int = 3, window: int = 4,
                 heads: int = 4, dropout: float = 0.1, soft_sigma: float = 0.5, min_score: float = 0.01) -> None:
        super().__init__()
        self.norm = _Normalise(in_dim)
        self.embed = nn.Sequential(nn.Conv1d(in_dim, dim, 3, padding=1), nn.ReLU(), nn.Conv1d(dim, dim, 3, padding=1), nn.ReLU())
        self.blocks = nn.ModuleList([LocalAttention(dim, heads, window, dropout) for _ in range(levels + 1)])
        self.cls_head = nn.Sequential(nn.Conv1d(dim, dim, 3, padding=1), nn.ReLU(), nn.Conv1d(dim, num_classes, 3, padding=1))
        self.reg_head = nn.Sequential(nn.Conv1d(dim, dim, 3, padding=1), nn.ReLU(), nn.Conv1d(dim, 2, 3, padding=1))
        self.scales = nn.Parameter(torch.ones(levels))
        last = self.cls_head[-1]
        assert isinstance(last, nn.Conv1d) and last.bias is not None
        nn.init.constant_(last.bias, -4.6)  # prior 0.01, as in RetinaNet / ActionFormer
        self.levels, self.soft_sigma, self.min_score = levels, soft_sigma, min_score

    def forward(self, feats: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per level: class logits ``[T_l, C]`` and distances to start/end in level steps ``[T_l, 2]``."""
        x = self.embed(self.norm(feats).t().unsqueeze(0)).transpose(1, 2)  # [1, T, dim]
        x = self.blocks[0](x)
        out = []
        for level in range(self.levels):
            if level:
                x = F.max_pool1d(x.transpose(1, 2), 3, 2, 1).transpose(1, 2)
            x = self.blocks[level + 1](x)
            h = x.transpose(1, 2)
            out.append((self.cls_head(h)[0].t(), F.relu(self.reg_head(h)[0].t() * self.scales[level])))
        return out

    def _points(self, item: dict[str, Any], level: int, count: int) -> tuple[torch.Tensor, float]:
        step = item["stride"] * 2 ** level
        return item["centres"][0] + step * torch.arange(count, device=item["feats"].device, dtype=torch.float64), step

    def _range(self, level: int, stride: float) -> tuple[float, float]:
        """The half-lengths (s) level ``level`` is responsible for: 0-2, 2-4, 4+ level-0 steps x 2 ..."""
        lo = 0.0 if level == 0 else 2.0 * 2 ** level * stride
        hi = float("inf") if level == self.levels - 1 else 4.0 * 2 ** level * stride
        return lo, hi

    def loss(self, item: dict[str, Any]) -> torch.Tensor:
        outs = self(item["feats"])
        segs = item["segments"].to(torch.float64)
        cls_loss = reg_loss = torch.zeros((), device=item["feats"].device)
        num_pos = 0
        for level, (logits, dist) in enumerate(outs):
            t, step = self._points(item, level, len(logits))
            target = torch.zeros_like(logits)
            if len(segs):
                left = t[:, None] - segs[None, :, 0]
                right = segs[None, :, 1] - t[:, None]
                reach = torch.maximum(left, right)
                lo, hi = self._range(level, item["stride"])
                # centre sampling: within 1.5 level steps of the segment's middle, inside it, length in range
                middle = (segs[:, 0] + segs[:, 1]) / 2
                ok = (left > 0) & (right > 0) & (reach >= lo) & (reach < hi) & ((t[:, None] - middle).abs() <= 1.5 * step)
                length = torch.where(ok, segs[None, :, 1] - segs[None, :, 0], torch.full_like(left, float("inf")))
                best = length.argmin(1)
                pos = ok.any(1)
                if pos.any():
                    k = best[pos]
                    target[pos, segs[k, 2].long()] = 1
                    ps = (t[pos] - dist[pos, 0].double() * step)
                    pe = (t[pos] + dist[pos, 1].double() * step)
                    iou = _iou_1d(ps, pe, segs[k, 0], segs[k, 1])
                    reg_loss = reg_loss + (1 - iou).sum().float()
                    num_pos += int(pos.sum())
            cls_loss = cls_loss + sigmoid_focal_loss(logits, target)
        return (cls_loss + reg_loss) / max(1, num_pos)

    @torch.no_grad()
    def detect(self, item: dict[str, Any]) -> list[dict[str, Any]]:
        out = []
        for level, (logits, dist) in enumerate(self(item["feats"])):
            t, step = self._points(item, level, len(logits))
            scores = logits.sigmoid()
            idx = torch.nonzero(scores > self.min_score)
            for p, k in idx.tolist():
                s = max(0.0, float(t[p] - dist[p, 0] * step))
                e = min(item["duration"], float(t[p] + dist[p, 1] * step))
                if e > s:
                    out.append({"label": k, "start": s, "end": e, "score": float(scores[p, k])})
        out.sort(key=lambda d: -d["score"])
        return nms(out[:500], soft_sigma=self.soft_sigma)


def build(method: str, in_dim: int, num_classes: int, **options: Any) -> nn.Module:
    """The network of ``method`` (one of :data:`METHODS`)."""
    cls = {"sliding": WindowClassifier, "proposals": ProposalNet, "onestage": OneStage}[method]
    return cls(in_dim, num_classes, **options)
