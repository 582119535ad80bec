"""Evaluate a separation run on mix-and-separate mixtures: ``evaluate_separation(run_dir) -> dict``.

Every mixture is scored four ways on the same sources: the model, the unprocessed mixture (the
baseline every improvement is measured from), and the ideal ratio and ideal binary masks on the
same STFT (the upper bound of a mask with the mixture's phase). Metrics are BSS-eval SDR / SIR / SAR
and SI-SDR (:mod:`avkit.apps.separation.metrics`); the summary gives their means per number of
sources, and the improvements (SDRi, SI-SDRi) over the mixture. ``avkit eval RUN`` reaches it through
:meth:`avkit.apps.separation.task.SeparationTask.evaluate` and prints :func:`format_result`; it writes
``RUN/eval.json`` and ``RUN/eval.md`` (the table).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from avkit.errors import AvkitError


def mixtures_of(source: str | Path, opts: Any, *, split: str = "", num_mix: Sequence[int] | None = None,
                length: int = 0, seed: int = 0) -> Any:
    """Fixed evaluation mixtures (whole clips) of a solo source, as in validation."""
    from avkit.apps.separation.data import MixDataset, SoloLibrary

    lib = SoloLibrary.from_options(source, split, opts)
    return MixDataset(lib, num_mix=list(num_mix or opts.val_num_mix), num_frames=opts.num_frames, train=False,
                      seed=seed, length=length, distinct=opts.distinct, all_frames=opts.visual == "motion")


@torch.no_grad()
def score_mixtures(separator: Any, items: Sequence[dict[str, Any]] | Any, *, oracles: bool = True, bss: bool = True,
                   progress: Callable[[int, int], None] | None = None) -> list[dict[str, Any]]:
    """:func:`~avkit.apps.separation.metrics.evaluate_mixture` of every mix item (dicts with ``audio``,
    ``frames``, ``valid``), the model separating each source from its own frames (as the separator does: with
    an attached audio-only network, its stems in the order of the pictured estimates when it has k slots; with an
    attached namer, by timbre when it names k different instruments)."""
    from avkit.apps.separation.metrics import evaluate_mixture
    from avkit.apps.separation.stft import Spectral

    spectral = Spectral(separator.spectral.cfg)
    net = separator.net
    results = []
    total = len(items)
    for i in range(total):
        item = items[i]
        k = int(item["valid"].sum())
        refs = item["audio"][:k].float()
        mix = refs.sum(0, keepdim=True).to(separator.device)
        frames = item["frames"][:k].unsqueeze(0).to(separator.device)
        names = None
        if getattr(separator, "namer", None) is not None:  # Separator.plan_timbre, on the batch path
            names, named = separator.plan_timbre(list(item["frames"][:k].permute(0, 1, 3, 4, 2).numpy()))
            if names is not None:
                est = separator.separate_by_timbre(spectral.stft(mix[0]), names, mix.shape[-1])
                if separator.unheard(named, est, mix[0].cpu().numpy()) is not None:  # as the separator does
                    names = None
        if names is None:
            est = net.separate(mix, frames, separator.opts.mask_threshold)[0].cpu().numpy()
            if net.visual_net is None:  # audio only: its outputs are in no particular order
                est = best_order(refs.numpy(), est)
            stems = getattr(separator, "stems", None)
            if stems is not None and k == stems.net_cfg.slots:  # Separator.ordered_stems, on the batch path
                est = best_order(est.astype(np.float64), stems.separate(mix, frames)[0].cpu().numpy()).astype(np.float32)
        r: dict[str, Any] = {**evaluate_mixture(spectral, refs.numpy(), est, oracles=oracles, bss=bss), "num_sources": k}
        results.append(r)
        if progress is not None:
            progress(i + 1, total)
    return results


def best_order(references: np.ndarray, estimates: np.ndarray) -> np.ndarray:
    """``estimates [N, S]`` reordered to the permutation of the highest mean SI-SDR against ``references``:
    an audio-only model's outputs have no order, so it is scored as if it had guessed the order right."""
    import itertools

    from avkit.apps.separation.metrics import si_sdr

    perms = list(itertools.permutations(range(len(estimates))))
    best = max(perms, key=lambda p: float(np.mean(si_sdr(references, estimates[list(p)]))))
    return estimates[list(best)]


def evaluate_separation(run_dir: str | Path, *, source: str | None = None, split: str | None = None,
                        checkpoint: str = "best", device: str = "auto", length: int = 0,
                        num_mix: Sequence[int] | None = None, write: bool = True, progress: bool = False,
                        oracles: bool = True) -> dict[str, Any]:
    """Scores of ``run_dir``'s model on the run's validation mixtures (or ``source``), with the mixture and
    the IRM/IBM oracles, per number of sources. Writes ``RUN/eval.json`` and ``RUN/eval.md`` unless ``write=False``."""
    from avkit.apps.separation import TRAIN_HINT
    from avkit.apps.separation.inference import Separator
    from avkit.apps.separation.metrics import summarize
    from avkit.engine.checkpoint import open_run
    from avkit.utils import atomic_write_json, atomic_write_text

    run_dir = Path(run_dir)
    run = open_run(run_dir, checkpoint, task="separation", hint=TRAIN_HINT)
    sep = Separator.from_run(run, device)
    cfg = run.config
    if source is None:
        source = cfg.data.val_source or cfg.data.source
        split = cfg.data.val_split if split is None else split
        if not cfg.data.val_source and not split:
            raise AvkitError(f"{run_dir}: the recipe has no validation data (data.val_source or data.val_split); "
                             "pass a source")
    mixtures = mixtures_of(source, sep.opts, split=split or "", num_mix=num_mix,
                           length=length or sep.opts.val_length, seed=cfg.train.seed)
    start = time.perf_counter()
    if progress:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        with Progress(TextColumn("[bold]eval separation"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      transient=True, console=Console(stderr=True)) as bar:
            task = bar.add_task("mixtures", total=len(mixtures))
            rows = score_mixtures(sep, mixtures, oracles=oracles,
                                  progress=lambda done, total: bar.update(task, completed=done))
    else:
        rows = score_mixtures(sep, mixtures, oracles=oracles)
    summary = summarize(rows)
    result = {"run_dir": str(run_dir), "task": "separation", "checkpoint": checkpoint, "source": str(source),
              "split": split or "", "num_mixtures": len(rows), "seconds": round(time.perf_counter() - start, 2),
              "summary": summary, "mixtures": rows}
    if write:
        atomic_write_json(run_dir / "eval.json", result)
        atomic_write_text(run_dir / "eval.md", "```\n" + format_result(result) + "\n```\n")
    return result


def _title(result: dict[str, Any]) -> str:
    return (f"{result['run_dir']} on {result['source']}: {result['num_mixtures']} mixtures "
            "(dB; model vs unprocessed mixture vs ideal ratio / binary masks)")


def format_result(result: dict[str, Any]) -> str:
    """The tables of :func:`evaluate_separation`'s result, one per number of sources (what ``avkit eval`` prints)."""
    from avkit.apps.separation.metrics import format_table

    return format_table(result["summary"], title=_title(result))


__all__ = ["evaluate_separation", "score_mixtures", "mixtures_of", "format_result"]
