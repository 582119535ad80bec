"""Parameters and GFLOPs per clip for any registered model, counted without real compute.

FLOPs follow the lecture's (and most vision papers') convention: one multiply-add counts as one
FLOP. ``torch.utils.flop_counter.FlopCounterMode`` counts a multiply-add as two, so its total is
halved here; with this convention the full-size C3D at 3x16x112x112 costs ~38.5 GFLOPs, the
lecture's "39 GFLOP". Only matmuls, convolutions and attention are counted (norms, activations and
pooling are negligible). Models are built and run on the ``meta`` device (shapes only, no memory,
no arithmetic); a model whose ops cannot run on meta falls back to a real CPU forward.
"""
from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from avkit.models.registry import create_model, list_models, model_entry


@dataclass
class ModelCost:
    """One row of the cost table; ``gflops`` is None with ``note`` saying why when it was not counted."""

    name: str
    family: str
    modality: str
    params: int | None
    gflops: float | None
    input: tuple[int, ...]
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_gflops(model: nn.Module, x: torch.Tensor) -> float:
    """Multiply-adds (1e9) of one ``model(x)`` call; run it on meta tensors to avoid real compute."""
    was_training = model.training
    model.eval()
    try:
        return count_gflops_call(model, x)
    finally:
        model.train(was_training)


def count_gflops_call(fn: Any, *args: Any, **kwargs: Any) -> float:
    """Multiply-adds (1e9) of one ``fn(*args, **kwargs)`` call, any callable and inputs."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn(*args, **kwargs)
    return counter.get_total_flops() / 2 / 1e9


def _meta_like(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return torch.empty(x.shape, dtype=x.dtype, device="meta")
    if isinstance(x, dict):
        return {k: _meta_like(v) for k, v in x.items()}
    return x


def _shape_key(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return tuple(x.shape)
    if isinstance(x, dict):
        return tuple(sorted((k, _shape_key(v)) for k, v in x.items()))
    if isinstance(x, (list, tuple)):
        return tuple(_shape_key(v) for v in x)
    return None


class FlopCache:
    """GFLOPs of ``model(*inputs)`` per input shape, counted once on a meta-device copy of the
    model (shapes only, no arithmetic), or on CPU zeros when an op cannot run on meta."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self._meta: nn.Module | None = None
        self._cache: dict[Any, float] = {}

    def __call__(self, *inputs: Any) -> float:
        key = _shape_key(inputs)
        if key not in self._cache:
            self._cache[key] = self._count(inputs)
        return self._cache[key]

    def _count(self, inputs: tuple) -> float:
        try:
            if self._meta is None:
                self._meta = copy.deepcopy(self.model).to("meta").eval()
            return count_gflops_call(self._meta, *[_meta_like(x) for x in inputs])
        except Exception:  # noqa: BLE001 - an op without a meta kernel: count a real forward on zeros
            was = self.model.training
            self.model.eval()
            try:
                dev = next(self.model.parameters()).device
                zeros = [_zeros_like(x, dev) for x in inputs]
                return count_gflops_call(self.model, *zeros)
            finally:
                self.model.train(was)


def _zeros_like(x: Any, device: torch.device) -> Any:
    if isinstance(x, torch.Tensor):
        return torch.zeros(x.shape, dtype=x.dtype, device=device)
    if isinstance(x, dict):
        return {k: _zeros_like(v, device) for k, v in x.items()}
    return x


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"[:160]


def model_cost(name: str, input_shape: Sequence[int] = (3, 16, 112, 112), flops: bool = True,
               **options: Any) -> ModelCost:
    """Parameters and GFLOPs of ``create_model(name, **options)`` on one clip of ``input_shape`` (no batch)."""
    entry = model_entry(name)
    row = ModelCost(name, entry.family, entry.modality, None, None, tuple(input_shape))
    errors = []
    for device in ("meta", "cpu"):
        try:
            with torch.device(device):
                model = create_model(name, **options)
            row.params = count_params(model)
        except Exception as err:  # noqa: BLE001 - the table reports any builder failure as a note
            errors.append(_one_line(err))
            continue
        if not flops:
            return row
        if entry.modality != "video" and len(input_shape) == 4:
            row.note = f"{entry.modality} model: takes {entry.modality} input, not a video clip"
            return row
        try:
            row.gflops = count_gflops(model, torch.zeros(1, *input_shape, device=device))
            return row
        except Exception as err:  # noqa: BLE001
            errors.append(_one_line(err))
            # A clear AvkitError (fixed input size, ...) would be the same on CPU: stop here.
            from avkit.errors import AvkitError

            if isinstance(err, AvkitError):
                break
    row.note = errors[-1] if errors else ""
    return row


def cost_table(names: Sequence[str] | None = None, input_shape: Sequence[int] = (3, 16, 112, 112),
               flops: bool = True, family: str | None = None) -> list[ModelCost]:
    """``model_cost`` for every registered model (default, full-size options), or for ``names``."""
    names = list(names) if names is not None else list_models(family=family)
    return [model_cost(n, input_shape, flops) for n in names]
