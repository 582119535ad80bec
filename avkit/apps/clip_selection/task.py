"""``task: clip_selection``: train the preview network or the learned sampler with ``avkit train``.

Both learn a score for every candidate window of a long video, so one task covers both; the
recipe says which with ``task_options.model``:

``preview`` (``recipes/longvideo_preview.yaml``) trains :class:`~avkit.apps.clip_selection.preview.PreviewNet` on
a ``longvideo`` dataset (``data.source``, its ``train_split`` / ``val_split``). Targets per window
come from the manifest: saliency = the fraction of the window in which the action is visible
(binary cross-entropy on that soft target), and the video's class on windows at least half inside
the action (cross-entropy). Options: ``visual`` (one 16x16 frame per window, default true),
``width``, ``frame_width``, ``hidden``, ``clip_seconds`` (1.0: the heavy clip length),
``stride`` (0.5), ``class_weight`` (0.5), ``gain_db`` (random level change of each training
video's soundtrack, +-6 dB).

``sampler`` (``recipes/longvideo_sampler.yaml``) trains :class:`~avkit.apps.clip_selection.sampler.SamplerNet`
on the frozen preview of ``task_options.preview`` (a preview run) to rank windows by the heavy
model's probability of the true class (``task_options.heavy``, a classifier run; computed once
for every candidate of every video before training). Options: ``hidden``, ``margin`` (0.5),
``dropout``, ``stride``.

An item is one whole video (all its windows); ``data.batch_size`` is videos per step. Features
are decoded once, before the first epoch. Validation: ``val_hit1`` is the share of validation
videos whose top-scored window is "good" (for the preview: at least half inside the action; for
the sampler: the heavy model is right on it); it picks ``best.safetensors``.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from avkit.data.dataset import ItemsDataset
from avkit.engine.config import parse_options
from avkit.engine.task import Task
from avkit.errors import AvkitError, MediaError


@dataclass
class PreviewOptions:
    """``task_options`` of a preview run (``model: preview``; module docstring)."""

    visual: bool = True  # also one 16x16 frame per window
    width: int = 16
    frame_width: int = 8
    hidden: int = 32
    clip_seconds: float = 1.0  # the heavy model's clip length
    stride: float = 0.5
    class_weight: float = 0.5
    gain_db: float = 6.0  # random level change of each training video's soundtrack, +-dB


@dataclass
class SamplerOptions:
    """``task_options`` of a learned-sampler run (``model: sampler``; module docstring)."""

    preview: str = ""  # the preview run whose features are ranked
    heavy: str = ""  # the classifier run whose true-class probability is the target
    hidden: int = 32
    margin: float = 0.5
    dropout: float = 0.1
    stride: float = 0.5
    min_diff: float = 0.05


def _progress(total: int, what: str) -> tuple[Callable[[], None], Callable[[], None]]:
    from rich.progress import Progress

    bar = Progress(transient=True)
    task = bar.add_task(what, total=total)
    bar.start()
    return (lambda: bar.update(task, advance=1)), bar.stop


class ClipSelectionTask(Task):
    """Preview network or learned sampler, trained on the windows of long videos (module docstring)."""

    name = "clip_selection"
    train_columns = ("loss",)
    val_columns = ("loss", "hit1")
    best_key = "val_hit1"
    higher_is_better = True

    def __init__(self, cfg: Any) -> None:
        super().__init__(cfg)
        opts = dict(cfg.task_options)
        self.kind = opts.pop("model", "preview")
        if self.kind not in ("preview", "sampler"):
            raise AvkitError(f"task_options.model must be 'preview' or 'sampler', got {self.kind!r}")
        self.opts: PreviewOptions | SamplerOptions = (
            parse_options(PreviewOptions, opts) if self.kind == "preview" else parse_options(SamplerOptions, opts))
        self.class_names: list[str] = []
        self.in_dim = 0
        self.heavy_clip = self.opts.clip_seconds if isinstance(self.opts, PreviewOptions) else 1.0
        if isinstance(self.opts, SamplerOptions) and (not self.opts.preview or not self.opts.heavy):
            raise AvkitError("the sampler needs task_options.preview (a preview run) and task_options.heavy "
                             "(the classifier run it serves)")

    # -- data ------------------------------------------------------------------------------------

    def datasets(self) -> tuple[Any, Any]:
        from avkit.apps.clip_selection.data import read_long_manifest

        data = self.cfg.data
        if not data.source:
            raise AvkitError("data.source is empty: set it to a longvideo dataset folder")
        train_videos, names = read_long_manifest(data.source, data.train_split or None)
        self.class_names = names
        val_videos: list = []
        if data.val_split:
            try:
                val_videos, _ = read_long_manifest(data.val_source or data.source, data.val_split)
            except AvkitError:
                val_videos = []
        prepare = self._preview_items if self.kind == "preview" else self._sampler_items
        everything = prepare(list(train_videos) + list(val_videos))
        return ItemsDataset(everything[:len(train_videos)]), (ItemsDataset(everything[len(train_videos):]) if val_videos else None)

    def _windows(self, duration: float, clip_seconds: float, fps: float = 8.0) -> list:
        from avkit.apps.clip_selection.policies import candidate_windows

        num_frames = max(1, int(round(clip_seconds * fps)))
        return candidate_windows(duration, num_frames, num_frames / clip_seconds, self.opts.stride)

    def _duration(self, path: str) -> float:
        from avkit.io import VideoReader

        with VideoReader(path) as reader:
            if not reader.duration:
                raise MediaError(path, "unknown or zero video duration")
            return float(reader.duration)

    def _preview_items(self, videos: Sequence[Any]) -> list[dict[str, Any]]:
        from avkit.apps.clip_selection.data import overlap_fraction
        from avkit.apps.clip_selection.preview import front_end, read_inputs, window_index

        opts = self.opts
        assert isinstance(opts, PreviewOptions)
        advance, stop = _progress(len(videos), "decoding previews")
        items = []
        try:
            for v in videos:
                windows = self._windows(self._duration(v.path), opts.clip_seconds)
                inputs = read_inputs(v.path, windows, frames=opts.visual)
                wave = inputs.wave if inputs.wave is not None else torch.zeros(int(inputs.duration * 8000))
                cover = overlap_fraction([w.start for w in windows], [w.end for w in windows], v.segments)
                items.append({"spectrogram": front_end()(wave), "index": window_index(windows),
                              "frames": inputs.frames, "target": torch.tensor(cover, dtype=torch.float32),
                              "label": v.label_index})
                advance()
        finally:
            stop()
        return items

    def _sampler_items(self, videos: Sequence[Any]) -> list[dict[str, Any]]:
        from avkit.apps.clip_selection.inference import HeavyModel
        from avkit.apps.clip_selection.preview import NetPreview
        from avkit.apps.clip_selection.sampler import sampler_features
        from avkit.io.in_memory import InMemoryVideo

        opts = self.opts
        assert isinstance(opts, SamplerOptions)
        preview = NetPreview.from_run(opts.preview)
        heavy = HeavyModel(opts.heavy, device="cpu")
        if len(heavy.class_names) != len(self.class_names):
            raise AvkitError(f"the heavy run has {len(heavy.class_names)} classes, the data {len(self.class_names)}")
        self.heavy_clip = heavy.clip_seconds
        advance, stop = _progress(len(videos), "preview + heavy model on every candidate")
        items = []
        try:
            for v in videos:
                from avkit.apps.clip_selection.policies import candidate_windows

                mem = InMemoryVideo.decode(v.path, size=heavy.short_side, sample_rate=heavy.sample_rate,
                                           audio=heavy.need_audio)
                windows = candidate_windows(mem.duration, heavy.num_frames, heavy.fps, opts.stride)
                result = preview.run(v.path, windows)
                if not result.ok:
                    advance()
                    continue  # a silent video has nothing to rank: the policy falls back to uniform anyway
                probs = torch.cat([heavy.probs(heavy.batch(mem, windows[b:b + 64])) for b in range(0, len(windows), 64)])
                items.append({"features": sampler_features(result), "target": probs[:, v.label_index].float(),
                              "correct": (probs.argmax(1) == v.label_index).float(), "label": v.label_index})
                advance()
        finally:
            stop()
        if not items:
            raise AvkitError("no training video has audio: nothing to rank")
        self.in_dim = int(items[0]["features"].shape[1])
        return items

    def setup(self, train_set: Any) -> None:
        if self.kind == "sampler" and not self.in_dim:
            self.in_dim = int(train_set[0]["features"].shape[1])
        # The networks are tiny: one intra-op thread on CPU (on a busy machine a second thread makes every
        # op wait for a free core: 8x slower measured). Restored by report(), at the end of training.
        self._threads = torch.get_num_threads()
        if self.cfg.train.device in ("auto", "cpu") and not torch.cuda.is_available():
            torch.set_num_threads(1)

    def report(self, run_dir: Path, history: Sequence[dict[str, Any]], best_epoch: int,
               best_extras: dict[str, Any] | None) -> None:
        torch.set_num_threads(getattr(self, "_threads", torch.get_num_threads()))
        super().report(run_dir, history, best_epoch, best_extras)

    def collate(self, items: Sequence[dict[str, Any]]) -> dict[str, Any]:
        return {"videos": list(items)}

    def val_collate(self, items: Sequence[dict[str, Any]]) -> dict[str, Any]:
        return {"videos": list(items), "kept": torch.ones(len(items), dtype=torch.bool)}

    # -- model -----------------------------------------------------------------------------------

    def model_options(self) -> dict[str, Any]:
        """The network's constructor arguments (stored in the run's metadata, which the loaders rebuild it from)."""
        if isinstance(self.opts, PreviewOptions):
            o = self.opts
            return {"num_classes": len(self.class_names), "width": o.width, "visual": o.visual,
                    "frame_width": o.frame_width, "hidden": o.hidden}
        return {"in_dim": self.in_dim, "hidden": self.opts.hidden, "dropout": self.opts.dropout}

    def build_model(self, log: Callable[[str], None] | None = None) -> nn.Module:
        if self.kind == "preview":
            from avkit.apps.clip_selection.preview import PreviewNet

            return PreviewNet(**self.model_options())
        from avkit.apps.clip_selection.sampler import SamplerNet

        return SamplerNet(**self.model_options())

    # -- steps -----------------------------------------------------------------------------------

    def _forward(self, model: nn.Module, item: dict[str, Any], train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """``(loss, window scores)`` of one video."""
        dev = next(model.parameters()).device
        target = item["target"].to(dev)
        o = self.opts
        if isinstance(o, PreviewOptions):
            spec = item["spectrogram"].to(dev)
            if train and o.gain_db:
                spec = spec + (torch.rand(()) * 2 - 1).to(dev) * o.gain_db
            frames = item["frames"].to(dev) if item["frames"] is not None else None
            out = model(spec, item["index"].to(dev), frames)
            loss = F.binary_cross_entropy_with_logits(out["saliency"], target)
            inside = target >= 0.5
            if inside.any() and o.class_weight:
                labels = torch.full((int(inside.sum()),), int(item["label"]), device=dev)
                loss = loss + o.class_weight * F.cross_entropy(out["logits"][inside], labels)
            return loss, out["saliency"]
        from avkit.apps.clip_selection.sampler import ranking_loss

        scores = model(item["features"].to(dev))
        return ranking_loss(scores, target, o.margin, o.min_diff), scores

    def train_step(self, model: nn.Module, batch: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, float], int]:
        losses = [self._forward(model, item, True)[0] for item in batch["videos"]]
        loss = torch.stack(losses).mean()
        n = len(losses)
        return loss, {"loss": float(loss.detach()) * n}, n

    def _hit(self, item: dict[str, Any], scores: torch.Tensor) -> float:
        best = int(scores.argmax())
        if self.kind == "preview":
            return float(item["target"][best] >= 0.5)
        return float(item["correct"][best])

    def val_outputs(self, model: nn.Module, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        losses, hits = [], []
        for item in batch["videos"]:
            loss, scores = self._forward(model, item, False)
            losses.append(float(loss))
            hits.append(self._hit(item, scores.detach().cpu()))
        return {"loss": torch.tensor(losses), "hit1": torch.tensor(hits)}

    def val_metrics(self, outputs: dict[str, torch.Tensor]) -> tuple[dict[str, Any], dict[str, Any]]:
        return {"val_loss": float(outputs["loss"].mean()), "val_hit1": float(outputs["hit1"].mean())}, {}

    # -- run directory ---------------------------------------------------------------------------

    def meta(self) -> dict[str, Any]:
        meta: dict[str, Any] = {"model": self.kind, "options": self.model_options(),
                                "num_classes": len(self.class_names), "class_names": self.class_names,
                                "clip_seconds": self.heavy_clip, "stride": self.opts.stride}
        if isinstance(self.opts, SamplerOptions):
            meta.update(preview_run=self.opts.preview, preview_run_abs=str(Path(self.opts.preview).resolve()),
                        heavy_run=self.opts.heavy)
        return meta

    def write_files(self, run_dir: Path) -> None:
        from avkit.utils import atomic_write_json

        atomic_write_json(run_dir / "classes.json", self.class_names)

    def describe(self, row: Mapping[str, Any]) -> str:
        text = f"train loss {row['train_loss']:.4f}"
        if row.get("val_hit1") is not None:
            what = "in the action" if self.kind == "preview" else "heavy right"
            text += f", val loss {row['val_loss']:.4f}, top-1 clip {what} {row['val_hit1']:.3f}"
        return text
