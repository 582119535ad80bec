"""A visual-token budget: how many frames, at what resolution, fit in ``max_tokens``.

A video-LLM turns every frame (or pair of frames) into visual tokens; a long video sampled
densely can need more tokens than memory (or the context) holds. :func:`plan_budget` takes the
frame count and frame size the user asked for, a function that says how many tokens one frame
costs at a given size, and the budget, and returns the plan:

1. if the asked frames fit, nothing changes;
2. else fewer frames (down to ``min_frames``) at the asked size;
3. else ``min_frames`` frames at a lower resolution (the short side shrinks by 3/4 per step,
   down to ``min_side`` pixels) -- only sizes that really cost fewer tokens count, so a processor
   that resizes every frame to a fixed size keeps its resolution;
4. else fewer than ``min_frames`` frames at the cheapest size found (at least ``step``); if even
   that is over budget the plan says so (``over_budget``) rather than refusing to answer.

Frame counts stay multiples of ``step`` (Qwen2-VL-style models take frames in pairs). The module
knows nothing about models: the caller measures ``tokens_per_frame`` with its processor.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from avkit.errors import AvkitError

Size = tuple[int, int]  # (height, width) in pixels

SHRINK = 0.75  # short side factor per resolution step
MIN_SIDE = 28  # smallest short side the budget tries (one 2x2 group of 14 px patches)


@dataclass
class BudgetPlan:
    """What to read: ``frames`` frames of ``size`` (H, W), costing about ``tokens`` visual tokens."""

    max_tokens: int | None  # None: no budget
    asked_frames: int
    asked_size: Size
    frames: int
    size: Size
    tokens: int  # estimated visual tokens of the plan
    asked_tokens: int  # estimated visual tokens of what was asked
    over_budget: bool = False  # even the smallest plan exceeds max_tokens

    @property
    def changed(self) -> bool:
        return self.frames != self.asked_frames or tuple(self.size) != tuple(self.asked_size)

    def describe(self) -> str | None:
        """One line saying what the budget changed (None when it changed nothing)."""
        if not self.changed and not self.over_budget:
            return None
        parts = []
        if self.frames != self.asked_frames:
            parts.append(f"{self.asked_frames} -> {self.frames} frames")
        if tuple(self.size) != tuple(self.asked_size):
            parts.append(f"{_wxh(self.asked_size)} -> {_wxh(self.size)} pixels")
        what = ", ".join(parts) if parts else "no smaller plan"
        line = (f"visual-token budget {self.max_tokens}: {what} "
                f"(about {self.asked_tokens} -> {self.tokens} tokens)")
        if self.over_budget:
            line += "; still over budget: raise --max-visual-tokens or ask for fewer frames"
        return line

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["asked_size"], d["size"] = list(self.asked_size), list(self.size)
        d["changed"] = self.changed
        d["message"] = self.describe()
        return d


def _wxh(size: Size) -> str:
    return f"{size[1]}x{size[0]}"


def round_frames(n: float, step: int) -> int:
    """``n`` rounded down to a multiple of ``step``, at least ``step``."""
    return max(step, int(math.floor(n / step + 1e-9)) * step)


def scaled(size: Size, factor: float) -> Size:
    """``size`` with both sides times ``factor`` (aspect kept), even numbers, at least 2."""
    h, w = size
    return max(2, int(round(h * factor / 2)) * 2), max(2, int(round(w * factor / 2)) * 2)


def plan_budget(frames: int, size: Size, tokens_per_frame: Callable[[Size], float],
                max_tokens: int | None, *, step: int = 1, min_frames: int = 8,
                min_side: int = MIN_SIDE) -> BudgetPlan:
    """The frames and size to read so that ``frames x tokens_per_frame(size) <= max_tokens``.

    ``frames`` must already be a multiple of ``step``. ``max_tokens`` None or 0: no budget.
    """
    if frames < 1 or step < 1:
        raise AvkitError(f"frames and step must be positive, got {frames} and {step}")
    size = (int(size[0]), int(size[1]))
    per_frame = float(tokens_per_frame(size))
    asked = int(math.ceil(frames * per_frame))
    if not max_tokens or asked <= max_tokens:
        return BudgetPlan(max_tokens or None, frames, size, frames, size, asked, asked)
    if max_tokens < 0:
        raise AvkitError(f"max visual tokens must be positive (0 = no budget), got {max_tokens}")

    def plan(n: int, s: Size, cost: float, over: bool = False) -> BudgetPlan:
        return BudgetPlan(max_tokens, frames, size, n, s, int(math.ceil(n * cost)), asked, over)

    floor = min(frames, round_frames(min_frames, step))
    fitting = round_frames(max_tokens / per_frame, step) if per_frame > 0 else frames
    if fitting >= floor and fitting * per_frame <= max_tokens:
        return plan(min(fitting, frames), size, per_frame)

    best, best_cost = size, per_frame  # cheapest size seen that really costs fewer tokens
    s, k = size, 0
    while True:
        k += 1
        smaller = scaled(size, SHRINK ** k)  # from the asked size each time, so the aspect holds
        if smaller == s or min(smaller) < min_side:
            break
        s = smaller
        cost = float(tokens_per_frame(s))
        if cost < best_cost:
            best, best_cost = s, cost
            if floor * cost <= max_tokens:
                return plan(floor, s, cost)
    n = round_frames(max_tokens / best_cost, step) if best_cost > 0 else step
    n = min(n, floor)
    return plan(n, best, best_cost, over=n * best_cost > max_tokens)
