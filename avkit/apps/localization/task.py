"""``task: localization``: train a temporal action localiser on per-window features with ``avkit train``.

``data.source`` is a manifest of long videos with ``segments`` (``train_split`` / ``val_split``);
``task_options.method`` picks the network (``sliding`` | ``proposals`` | ``onestage``, see
:mod:`avkit.apps.localization.model`); the feature options (``modality`` video | audio | av,
``video_model``, ``audio_model``, ``window``, ``stride``, ``seed``) say how windows become features
(:class:`~avkit.apps.localization.features.FeatureSpec`). ``encoder_run`` (a trained classification
run, ``encoder_checkpoint`` best | last) takes the features from that run's model instead: its recipe sets the
frames, fps, crop and sound, ``window`` must equal its clip (``num_frames / fps``), and ``modality``,
``video_model``, ``audio_model`` and ``seed`` are the run's. ``cache`` names an ``.npz`` of extracted
features: written on the first run, reused by every later one with the same spec (so the three
methods train on the very same features). An item is one whole video; ``data.batch_size`` videos
per step. Rows with a bad segment are skipped and listed (the log and ``skipped.json``).
Validation: mAP at tIoU 0.3:0.1:0.7 (``val_mAP`` = their mean picks ``best.safetensors``).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from avkit.data.dataset import ItemsDataset
from avkit.engine.config import parse_options
from avkit.engine.task import Task
from avkit.errors import AvkitError


@dataclass
class LocalizationOptions:
    """``task_options`` of a localisation run (module docstring)."""

    method: str = "onestage"  # sliding | proposals | onestage
    modality: str = "av"
    video_model: str = "c3d"
    audio_model: str = "audio_cnn"
    window: float = 1.0
    stride: float = 0.5
    seed: int = 0
    encoder_run: str = ""  # a trained classification run whose features to use ("" = random-weight encoders)
    encoder_checkpoint: str = "best"  # of encoder_run: best | last
    cache: str = ""  # .npz of extracted features ("" = extract in memory every run)
    hidden: int = 64  # sliding / proposals width; onestage embedding width
    levels: int = 3  # onestage pyramid levels
    attention_window: int = 4  # onestage: steps seen on each side
    dropout: float = 0.1

def feature_spec(opts: LocalizationOptions) -> Any:
    from avkit.apps.localization.features import FeatureSpec, encoder_spec

    if opts.encoder_run:
        return encoder_spec(opts.encoder_run, opts.encoder_checkpoint, opts.window, opts.stride)
    return FeatureSpec(modality=opts.modality, video_model=opts.video_model, audio_model=opts.audio_model,
                       window=opts.window, stride=opts.stride, seed=opts.seed)

def features_for(paths: list[str], spec: Any, cache: str, log: Callable[[str], None] = print) -> dict[str, Any]:
    """``{path: Features}``: from ``cache`` when it holds them with the same spec (for a trained encoder:
    the same run and weights), else extracted (and cached)."""
    from avkit.apps.localization.features import extract_all, load_features, save_features

    have: dict[str, Any] = {}
    if cache and Path(cache).is_file():
        cached, cached_spec = load_features(cache)
        if cached_spec != spec:
            raise AvkitError(f"{cache}: features extracted with {cached_spec.to_dict()}, not {spec.to_dict()}; "
                             f"name another task_options.cache")
        have = {f.path: f for f in cached}
    missing = [p for p in paths if p not in have]
    if missing:
        from rich.progress import Progress

        with Progress(transient=True) as bar:
            task = bar.add_task(f"extracting {spec.modality} features", total=len(missing))
            new = extract_all(missing, spec, progress=lambda done, total: bar.update(task, completed=done))
        have.update({f.path: f for f in new})
        if cache:
            save_features(cache, list(have.values()), spec)
            log(f"features of {len(have)} videos cached in {cache}")
    return have

def make_item(feat: Any, segments: Sequence[Mapping[str, Any]], class_names: list[str], spec: Any) -> dict[str, Any]:
    """A network's input (see :mod:`avkit.apps.localization.model`) from one video's features and segments."""
    segs = [[float(s["start"]), float(s["end"]), class_names.index(str(s["label"]))] for s in segments]
    return {"feats": torch.from_numpy(np.ascontiguousarray(feat.feats)),
            "centres": torch.from_numpy(feat.centres.astype(np.float64)), "stride": float(spec.stride),
            "duration": float(feat.duration), "video": feat.path,
            "segments": torch.tensor(segs, dtype=torch.float64).reshape(-1, 3)}

def to_rows(dets: list[dict[str, Any]], video: str, class_names: list[str]) -> list[dict[str, Any]]:
    """Detections with class names, as the metric and ``avkit localize`` take them."""
    return [{"video": video, "label": class_names[d["label"]], "start": round(d["start"], 3),
             "end": round(d["end"], 3), "score": round(d["score"], 5)} for d in dets]

class LocalizationTask(Task):
    """Temporal action localisation on per-window features (module docstring)."""

    cpu_threads = 1  # tiny networks (Task.cpu_threads)

    name = "localization"
    train_columns = ("loss",)
    val_columns = ("loss", "mAP")
    best_key = "val_mAP"
    higher_is_better = True

    def __init__(self, cfg: Any) -> None:
        super().__init__(cfg)
        self.opts = parse_options(LocalizationOptions, dict(cfg.task_options))
        from avkit.apps.localization.model import METHODS

        if self.opts.method not in METHODS:
            raise AvkitError(f"task_options.method must be one of {', '.join(METHODS)}, got {self.opts.method!r}")
        self.spec = feature_spec(self.opts)
        self.class_names: list[str] = []
        self.skipped: list[str] = []
        self.in_dim = 0
        self.mean: torch.Tensor | None = None
        self.std: torch.Tensor | None = None
        self._val_rows: dict[int, list[dict[str, Any]]] = {}
        self._val_truth: list[dict[str, Any]] = []

    def datasets(self) -> tuple[Any, Any]:
        from avkit.apps.localization.data import ground_truth_rows, read_videos

        data = self.cfg.data
        if not data.source:
            raise AvkitError("data.source is empty: set it to a long-video manifest with segments (docs/localization.md)")
        train, names, skipped = read_videos(data.source, data.train_split or None, strict=False,
                                            min_duration=self.spec.window, format=data.format,
                                            video_root=data.video_root)
        val: list = []
        if data.val_split:
            try:
                val, _, more = read_videos(data.val_source or data.source, data.val_split, class_names=names,
                                           strict=False, min_duration=self.spec.window, format=data.format,
                                           video_root=data.video_root)
                skipped += [m for m in more if m not in skipped]  # a missing video is listed by both reads
            except AvkitError:
                val = []
        self.class_names, self.skipped = names, skipped
        for line in skipped:
            print(f"skipped: {line}")
        feats = features_for([v.path for v in train + val], self.spec, self.opts.cache)
        items = [make_item(feats[v.path], v.segments, names, self.spec) for v in train + val]
        self._val_truth = ground_truth_rows(val)
        return ItemsDataset(items[:len(train)]), (ItemsDataset(items[len(train):]) if val else None)

    def setup(self, train_set: Any) -> None:
        allf = torch.cat([item["feats"] for item in train_set.items])
        self.in_dim = int(allf.shape[1])
        self.mean, self.std = allf.mean(0), allf.std(0).clamp(min=1e-4)

    def model_options(self) -> dict[str, Any]:
        o = self.opts
        if o.method == "onestage":
            return {"dim": o.hidden, "levels": o.levels, "window": o.attention_window, "dropout": o.dropout}
        return {"hidden": o.hidden, "dropout": o.dropout}

    def build_model(self, log: Callable[[str], None] | None = None) -> nn.Module:
        from avkit.apps.localization.model import build

        model: Any = build(self.opts.method, self.in_dim, len(self.class_names), **self.model_options())
        if self.mean is not None:
            model.norm.mean.copy_(self.mean)
            model.norm.std.copy_(self.std)
        return model

    def collate(self, items: Sequence[dict[str, Any]]) -> dict[str, Any]:
        return {"videos": list(items)}

    def val_collate(self, items: Sequence[dict[str, Any]]) -> dict[str, Any]:
        return {"videos": list(items), "kept": torch.ones(len(items), dtype=torch.bool)}

    @staticmethod
    def _on(item: dict[str, Any], model: nn.Module) -> dict[str, Any]:
        dev = next(model.parameters()).device
        return {**item, "feats": item["feats"].to(dev), "centres": item["centres"].to(dev),
                "segments": item["segments"].to(dev)}

    def train_step(self, model: nn.Module, batch: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, float], int]:
        net: Any = getattr(model, "module", model)
        losses = [net.loss(self._on(item, model)) for item in batch["videos"]]
        loss = torch.stack(losses).mean()
        return loss, {"loss": float(loss.detach()) * len(losses)}, len(losses)

    def val_outputs(self, model: nn.Module, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        # Detections are lists of dicts, not tensors: kept here by video index (single process) for val_metrics.
        net: Any = getattr(model, "module", model)
        losses, index = [], []
        for item in batch["videos"]:
            item = self._on(item, model)
            losses.append(float(net.loss(item)))
            k = len(self._val_rows)
            self._val_rows[k] = to_rows(net.detect(item), item["video"], self.class_names)
            index.append(k)
        return {"loss": torch.tensor(losses), "index": torch.tensor(index)}

    def val_metrics(self, outputs: dict[str, torch.Tensor]) -> tuple[dict[str, Any], dict[str, Any]]:
        from avkit.apps.localization.metrics import THUMOS_TIOUS, mean_average_precision

        rows = [r for k in outputs["index"].tolist() for r in self._val_rows.get(int(k), [])]
        self._val_rows = {}
        table = mean_average_precision(rows, self._val_truth, THUMOS_TIOUS) if self._val_truth else {}
        m = float(np.mean(list(table.values()))) if table else 0.0
        return {"val_loss": float(outputs["loss"].mean()), "val_mAP": m}, {"mAP": table}

    def meta(self) -> dict[str, Any]:
        return {"method": self.opts.method, "options": self.model_options(), "in_dim": self.in_dim,
                "num_classes": len(self.class_names), "class_names": self.class_names,
                "features": self.spec.to_dict(), "skipped": self.skipped}

    def write_files(self, run_dir: Path) -> None:
        from avkit.utils import atomic_write_json

        atomic_write_json(run_dir / "classes.json", self.class_names)
        if self.skipped:
            atomic_write_json(run_dir / "skipped.json", self.skipped)

    def describe(self, row: Mapping[str, Any]) -> str:
        text = f"train loss {row['train_loss']:.4f}"
        if row.get("val_mAP") is not None:
            text += f", val loss {row['val_loss']:.4f} mAP@0.3:0.7 {row['val_mAP']:.3f}"
        return text

    def evaluate(self, run_dir: Path, *, checkpoint: str = "best", split: str | None = None, device: str = "auto",
                 progress: bool = False, log: Callable[[str], None] | None = None,
                 **options: Any) -> dict[str, Any]:
        """mAP at tIoU 0.3:0.1:0.7 and 0.5:0.05:0.95 on ``split`` (default: the recipe's val split)."""
        from avkit.apps.localization.inference import Localizer

        loc = Localizer(run_dir, checkpoint=checkpoint, device=device)
        data = self.cfg.data
        return loc.evaluate(data.val_source or data.source, split or data.val_split or None,
                            format=data.format, video_root=data.video_root)

    def format_evaluation(self, result: Mapping[str, Any]) -> str:
        from avkit.apps.localization.inference import format_map

        return format_map(result)
