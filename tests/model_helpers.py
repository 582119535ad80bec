"""Helpers shared by the model tests: tiny motion clips, an overfit loop, tiny-preset builders."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from avkit.models import create_model, model_entry

DIRS = [(1, 0), (-1, 0), (0, 1), (0, -1)]


def motion_clips(n: int = 16, t: int = 8, size: int = 16, sq: int = 6, seed: int = 0):
    """``n`` clips of a random-textured square moving 1 px/frame; label = direction (right, left, down, up)."""
    g = torch.Generator().manual_seed(seed)
    videos, labels = torch.zeros(n, 3, t, size, size), torch.arange(n) % 4
    for i in range(n):
        dx, dy = DIRS[labels[i]]
        tex = torch.rand(3, sq, sq, generator=g)
        x0, y0 = (int(v) for v in torch.randint(4, size - sq - 3, (2,), generator=g))
        for k in range(t):
            x, y = x0 + dx * (k - t // 2), y0 + dy * (k - t // 2)
            videos[i, :, k, y:y + sq, x:x + sq] = tex
    return videos, labels


def overfit(model, videos, labels, steps: int = 100, lr: float = 1e-2, **kwargs) -> int | None:
    """Full-batch Adam until every clip is classified right in eval mode; the step count, or None."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for step in range(steps):
        model.train()
        logits = model(videos, **kwargs)
        loss = F.cross_entropy(logits, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if (logits.argmax(1) == labels).all():
            model.eval()
            with torch.no_grad():
                if (model(videos, **kwargs).argmax(1) == labels).all():
                    return step + 1
    return None


def tiny(name: str, **options):
    """``create_model(name)`` with its registry tiny preset (options override), seeded, in eval mode."""
    torch.manual_seed(0)
    return create_model(name, **{**model_entry(name).tiny, **options}).eval()
