"""Where the time of a training epoch goes: waiting for data or running the model.

:class:`EpochTimer` wraps the training loader: the time spent inside ``next(loader)`` is the
**data wait**, the rest of the epoch's loop is the model (forward, backward, optimiser). Its
:meth:`~EpochTimer.summary` is one row of ``metrics.csv`` columns (:data:`TIMING_COLUMNS`), and
:func:`bottleneck` says in words which of the two limits the run.
"""
from __future__ import annotations

import resource
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import torch

# metrics.csv columns every training run adds (None where they do not apply, e.g. GPU columns on a CPU).
TIMING_COLUMNS = ("step_seconds", "clips_per_second", "data_wait", "peak_rss_mb", "gpu_peak_mb", "gpu_util")
LOADER_BOUND = 0.5  # a data wait share at or above this calls the loader the bottleneck


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB (``getrusage``; bytes on macOS, KB on Linux)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def gpu_utilisation(device: torch.device) -> float | None:
    """The GPU's utilisation in percent now (NVML through ``torch.cuda.utilization``), None where unknown."""
    if device.type != "cuda":
        return None
    try:
        return float(torch.cuda.utilization(device))
    except Exception:  # no pynvml / NVML: the column stays empty rather than failing the run
        return None


class EpochTimer:
    """Times one epoch of the training loop: ``for batch in timer.batches(loader)``, :meth:`batch_done`
    after each batch, :meth:`step_done` after each optimiser step and :meth:`summary` at the end."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.start = time.perf_counter()
        self.wait = 0.0  # seconds spent waiting for the next batch
        self.steps = 0
        self.clips = 0
        self.utilisation: list[float] = []
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)

    def batches(self, loader: Iterable[Any]) -> Iterator[Any]:
        """``loader``'s batches, adding the time each one took to arrive to the data wait."""
        it = iter(loader)
        while True:
            asked = time.perf_counter()
            try:
                batch = next(it)
            except StopIteration:
                return
            self.wait += time.perf_counter() - asked
            yield batch

    def batch_done(self, clips: int) -> None:
        """A batch of ``clips`` items was trained on."""
        self.clips += clips

    def step_done(self) -> None:
        """An optimiser step finished."""
        self.steps += 1
        if self.device.type == "cuda" and self.steps % 10 == 1:  # NVML reads are cheap but not free
            value = gpu_utilisation(self.device)
            if value is not None:
                self.utilisation.append(value)

    def summary(self) -> dict[str, Any]:
        """The :data:`TIMING_COLUMNS` of the epoch so far."""
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        cuda = self.device.type == "cuda"
        return {
            "step_seconds": round(elapsed / self.steps, 4) if self.steps else None,
            "clips_per_second": round(self.clips / elapsed, 2),
            "data_wait": round(min(self.wait / elapsed, 1.0), 3),
            "peak_rss_mb": round(peak_rss_mb(), 1),
            "gpu_peak_mb": round(torch.cuda.max_memory_allocated(self.device) / 2**20, 1) if cuda else None,
            "gpu_util": round(sum(self.utilisation) / len(self.utilisation), 1) if self.utilisation else None,
        }


def timing_line(row: Mapping[str, Any]) -> str:
    """The timing part of the end-of-epoch log line, e.g. ``0.41 s/step, 19.5 clips/s, data wait 72%, peak RSS 812 MB``."""
    parts = []
    if row.get("step_seconds") is not None:
        parts.append(f"{row['step_seconds']:.3g} s/step")
    if row.get("clips_per_second") is not None:
        parts.append(f"{row['clips_per_second']:.3g} clips/s")
    if row.get("data_wait") is not None:
        parts.append(f"data wait {row['data_wait']:.0%}")
    if row.get("peak_rss_mb") is not None:
        parts.append(f"peak RSS {row['peak_rss_mb']:.0f} MB")
    if row.get("gpu_peak_mb") is not None:
        parts.append(f"GPU peak {row['gpu_peak_mb']:.0f} MB")
    if row.get("gpu_util") is not None:
        parts.append(f"GPU util {row['gpu_util']:.0f}%")
    return ", ".join(parts)


def bottleneck(row: Mapping[str, Any], workers: int, cores: int) -> str:
    """Which part limits the run, with the numbers and what to try (``row``: :data:`TIMING_COLUMNS`)."""
    wait, step = row.get("data_wait"), row.get("step_seconds")
    if wait is None or step is None:
        return "no complete optimiser step was timed"
    waited = f"{wait * step:.3g} of {step:.3g} s per step ({wait:.0%}) waiting for data"
    if wait >= LOADER_BOUND:
        return (f"the loader is the bottleneck: {waited}. Try more loader workers (data.num_workers is {workers}, "
                f"{cores} CPU core(s) here; data.num_workers=auto), data.cache=true for a small dataset, "
                f"or clips cut shorter and smaller")
    return (f"the model is the bottleneck: {waited}, {1 - wait:.0%} in the model (forward, backward, optimiser). "
            f"A smaller model, input or batch, or a GPU, makes it faster; more loader workers would not")
