"""Distributed data parallel plumbing for ``torchrun`` (NCCL on GPU, gloo on CPU).

``torchrun --nproc_per_node N -m avkit.cli.main train recipe.yaml`` sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK`` and ``MASTER_ADDR/PORT``; :func:`init_distributed` reads them.
Without them everything runs as a single process (``world_size == 1``) and no process group
is created. Only rank 0 logs and writes files.
"""
from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from avkit.engine.device import resolve_device


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str = "auto") -> DistInfo:
    """Join the ``torchrun`` process group when launched by it; otherwise single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    if world > 1:
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank, device=dev)


def cleanup(info: DistInfo) -> None:
    if info.distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()


def all_reduce_sum(info: DistInfo, tensor: torch.Tensor) -> torch.Tensor:
    """Sum of ``tensor`` over ranks (in place on a copy; works for gloo and NCCL)."""
    if not info.distributed:
        return tensor
    backend_device = info.device if info.device.type == "cuda" else torch.device("cpu")
    t = tensor.detach().to(backend_device).clone()
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.to(tensor.device)


def all_gather_objects(info: DistInfo, obj: Any) -> list[Any]:
    """``[obj of rank 0, obj of rank 1, ...]`` on every rank."""
    if not info.distributed:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(info: DistInfo, obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (e.g. an error message found only on rank 0)."""
    if not info.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


class ShardSampler(Sampler[int]):
    """Indices ``rank, rank + world, ...`` in order, without the padding DistributedSampler adds,
    so distributed evaluation sees every item exactly once."""

    def __init__(self, length: int, rank: int = 0, world_size: int = 1) -> None:
        self.indices = list(range(rank, length, world_size))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


class SkipSampler(Sampler[int]):
    """Drops the first ``skip`` indices of ``base``: resuming in the middle of an epoch replays
    the same order without decoding the clips already trained on."""

    def __init__(self, base: Sampler[int], skip: int = 0) -> None:
        self.base = base
        self.skip = skip

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(iter(self.base), self.skip, None)

    def __len__(self) -> int:
        return max(len(self.base) - self.skip, 0)  # type: ignore[arg-type]
