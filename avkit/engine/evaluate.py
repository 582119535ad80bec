"""Multi-view evaluation of a run: ``evaluate(run_dir, clips=10, crops=3) -> dict``.

Every video is seen as ``clips`` uniformly spaced clips x ``crops`` spatial crops. **Clip**
metrics score each view on its own; **video** metrics average the views' softmax
probabilities first (the usual test protocol, several points better than one clip).

Only the videos that can be read are scored: an unreadable file is left out (not replaced by
another video, as training does) and listed with its reason under ``"skipped"``, so
``num_videos`` is the number of videos the metrics are over. Videos without an audio stream (runs
that use sound) are listed under ``"without_audio"`` with what the run's ``data.missing_audio`` did.

Evaluation costs videos x clips x crops forward passes (10 x 3 by default): with ``log``, the plan
is said first and, after the first batch, an estimate of the whole and the flags that make it cheaper.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from avkit.engine.build import build_dataset, build_model, loader_workers
from avkit.engine.checkpoint import RunFiles, load_trained, open_run
from avkit.engine.config import Config
from avkit.engine.memory_format import to_channels_last
from avkit.engine.metrics import classification_metrics, confusion_matrix
from avkit.engine.step import autocast_context, forward_views, to_device
from avkit.errors import AvkitError
from avkit.utils import atomic_write_json


def load_run(run_dir: str | Path, checkpoint: str = "best", device: str | torch.device | None = "auto") -> tuple[nn.Module, Config, list[str]]:
    """The trained model of ``run_dir`` (eval mode, on ``device``), its config and class names.

    ``checkpoint`` is ``best`` or ``last``; the model is rebuilt from ``config.yaml`` without its
    starting weights (``init`` and torchvision ``weights=``: the checkpoint replaces every tensor, so a
    fine-tuned run is evaluated offline) and loaded strictly. Hugging Face ``pretrained`` folders stay:
    they define the architecture.
    """
    return classifier_from_run(open_run(run_dir, checkpoint), device)


def classifier_from_run(run: RunFiles, device: str | torch.device | None = "auto"
                        ) -> tuple[nn.Module, Config, list[str]]:
    """:func:`load_run` for the files :func:`~avkit.engine.checkpoint.open_run` found (or a shipped folder's)."""
    state = run.meta
    names = state.get("class_names") or []
    num_classes = int(state.get("num_classes") or len(names))
    if not num_classes:
        raise AvkitError(f"{run.weights}: does not record the number of classes")
    model_cfg = run.config.model
    model_cfg.init = ""
    for options in (model_cfg.video_options, model_cfg.audio_options):
        options.pop("weights", None)
    model = load_trained(build_model(model_cfg, num_classes), run, device)
    names = list(names) if len(names) == num_classes else [str(i) for i in range(num_classes)]
    if run.config.train.channels_last:
        to_channels_last(model)
    return model, run.config, names


@torch.no_grad()
def evaluate(run_dir: str | Path, clips: int | None = None, crops: int | None = None, *, split: str | None = None,
             checkpoint: str = "best", batch_size: int | None = None, device: str = "auto",
             write: bool = True, progress: bool = False, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Clip and video accuracy (top-1, top-5, mean class accuracy, mAP) of ``run_dir``'s model.

    ``clips`` / ``crops`` (1 or 3) default to the recipe's ``data.test_clips`` / ``test_crops``;
    ``split`` to ``data.val_split`` (of ``data.val_source`` when set). Writes ``RUN/eval.json``
    (replacing the previous evaluation) unless ``write=False``; returns the same dict.
    Unreadable videos are not scored: ``num_videos`` counts the videos read, ``skipped`` maps
    each unreadable file to the reason. Raises ``AvkitError`` when none can be read. ``log`` gets the
    expected cost (see the module docstring).
    """
    from torch.utils.data import DataLoader

    from avkit.data.dataset import collate_readable

    run_dir = Path(run_dir)
    model, cfg, names = load_run(run_dir, checkpoint, device)
    clips = cfg.data.test_clips if clips is None else int(clips)
    crops = cfg.data.test_crops if crops is None else int(crops)
    if clips < 1:
        raise AvkitError(f"clips must be >= 1, got {clips}")
    split = cfg.data.val_split if split is None else split
    dataset = build_dataset(cfg.data, split, train=False, num_clips=clips, num_crops=crops, seed=cfg.train.seed)
    dataset.set_on_unreadable("skip")  # a broken video is left out, not replaced by (and counted as) the next one
    views = clips * crops
    batch_size = batch_size or max(1, cfg.data.batch_size // views)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=loader_workers(cfg.data.num_workers),
                        collate_fn=collate_readable)
    device_t = next(model.parameters()).device
    if log is not None:
        log(f"eval: {len(dataset)} videos x {views} views ({clips} clips x {crops} crops) = {len(dataset) * views} "
            f"clips through the model")
    start = time.perf_counter()
    view_scores, targets = [], []
    skipped: dict[str, str] = {}  # gathered from the batches: workers' datasets are copies
    bar = None
    if progress:
        from rich.progress import Progress

        bar = Progress(transient=True)
        bar.start()
        task = bar.add_task("eval", total=len(dataset))
    try:
        for batch in loader:
            skipped.update(batch.pop("skipped"))
            kept = batch.pop("kept")
            if bar is not None:
                bar.update(task, advance=len(kept))
            if not kept.any():
                continue
            batch = to_device(batch, device_t)
            with autocast_context(device_t, cfg.train.precision):
                logits = forward_views(model, batch).float()  # [B, K, C]
            view_scores.append(logits.softmax(dim=-1).cpu())
            targets.append(batch["label"].cpu())
            if log is not None and len(view_scores) == 1:
                note = cost_note(time.perf_counter() - start, len(kept), len(dataset), clips, crops)
                if note:
                    log(note)
    finally:
        if bar is not None:
            bar.stop()
    if not view_scores:
        first = next(iter(sorted(skipped.items())), ("?", "?"))
        raise AvkitError(f"{dataset.source}: none of the {len(dataset)} videos of split {split or 'all'!r} "
                         f"can be read (first: {first[0]}: {first[1]})")
    probs = torch.cat(view_scores)  # [N, K, C]
    target = torch.cat(targets)
    n, k, c = probs.shape
    clip_target = target.repeat_interleave(k, dim=0)
    video_probs = probs.mean(dim=1)
    result: dict[str, Any] = {
        "run_dir": str(run_dir), "checkpoint": checkpoint, "split": split or "all",
        "source": cfg.data.val_source or cfg.data.source, "clips": clips, "crops": crops,
        "num_videos": n, "num_views": n * k,
        "clip": classification_metrics(probs.reshape(n * k, c), clip_target),
        "video": classification_metrics(video_probs, target),
        "skipped": dict(sorted(skipped.items())),
        "without_audio": {"policy": dataset.missing_audio, "videos": list(dataset.without_audio)},
        "seconds": round(time.perf_counter() - start, 3),
        "class_names": names,
    }
    if target.ndim == 1:
        result["confusion"] = confusion_matrix(video_probs, target, c).tolist()
    if write:
        atomic_write_json(run_dir / "eval.json", result)
    return result


def cost_note(seconds: float, done: int, total: int, clips: int, crops: int, long: float = 30.0) -> str | None:
    """After the first batch (``done`` videos in ``seconds``): the estimated whole and the cheaper flags,
    when the whole looks longer than ``long`` seconds; else None."""
    estimate = seconds / max(done, 1) * total
    if estimate < long:
        return None
    cheap_clips = min(clips, 2)
    cheaper = clips * crops / cheap_clips
    text = f"eval: about {estimate / 60:.1f} min in all (first batch: {done} videos in {seconds:.1f} s)"
    if cheaper > 1:
        text += f"; --clips {cheap_clips} --crops 1 is about {cheaper:.0f}x cheaper"
    return text


def format_table(result: dict[str, Any]) -> str:
    """The clip/video metrics as a small text table."""
    keys = [k for k in ("top1", "top5", "mean_class_acc", "mAP") if k in result["video"]]
    lines = [f"{result['run_dir']} ({result['checkpoint']}), split {result['split']}: {result['num_videos']} videos x "
             f"{result['clips']} clips x {result['crops']} crops",
             f"{'':8}" + "".join(f"{k:>16}" for k in keys)]
    for level in ("clip", "video"):
        lines.append(f"{level:8}" + "".join(f"{result[level][k]:>16.4f}" for k in keys))
    silent = result.get("without_audio") or {}
    if silent.get("videos"):
        done = ("left out, not counted" if silent["policy"] == "drop"
                else "scored with their sound marked absent")
        lines.append(f"{len(silent['videos'])} video(s) without an audio stream, {done} "
                     f"(data.missing_audio={silent['policy']}):")
        lines += [f"  {path}" for path in silent["videos"]]
    if result.get("skipped"):
        lines.append(f"{len(result['skipped'])} unreadable video(s) skipped, not counted:")
        lines += [f"  {path}: {reason}" for path, reason in result["skipped"].items()]
    return "\n".join(lines)
