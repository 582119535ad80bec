"""Choosing a device: the one resolver every command and application uses."""
from __future__ import annotations

import torch

from avkit.errors import AvkitError


def resolve_device(name: str | torch.device | None = "auto", local_rank: int = 0) -> torch.device:
    """``None``/``"auto"``: the local GPU when CUDA is available, else CPU; otherwise ``cpu``, ``cuda``,
    ``cuda:N`` or ``mps``. Asking for a device that is not here is a one-line user error.

    ``cuda`` without an index means this process's GPU (``local_rank`` under ``torchrun``).
    """
    if name is None or str(name) in ("", "auto"):
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise AvkitError(f"unknown device {str(name)!r} (use auto, cpu, cuda or cuda:N)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise AvkitError(f"device {str(name)!r}: CUDA is not available here (torch {torch.__version__}, "
                             f"CUDA build {torch.version.cuda or 'none'}); use --device cpu")
        if device.index is None:
            device = torch.device("cuda", local_rank)
        if device.index >= torch.cuda.device_count():
            raise AvkitError(f"device {str(name)!r}: this machine has {torch.cuda.device_count()} GPU(s)")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise AvkitError(f"device {str(name)!r}: MPS is not available here; use --device cpu")
    if device.type == "cpu":
        # Unnormalised nets (C3D without BatchNorm) drift into denormal floats, which are ~50x slower on CPUs.
        torch.set_flush_denormal(True)
    return device
