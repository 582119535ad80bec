"""From config sections to objects: datasets, transforms and models (with starting weights and
frozen parts). Shared by training, evaluation and ``classify`` so all three see clips the same way.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch.nn as nn

from avkit.engine.checkpoint import describe_load, load_into, load_weights, read_meta, unwrap
from avkit.engine.config import Config, DataConfig, ModelConfig
from avkit.errors import AvkitError
from avkit.utils import cpu_cores

# ---------------------------------------------------------------------------------------------
# models


def build_model(cfg: ModelConfig, num_classes: int, log: Callable[[str], None] | None = None) -> nn.Module:
    """The classifier ``cfg`` describes, with ``cfg.init`` weights loaded and parts frozen.

    Every pretrained load (the builders' ``weights=`` / ``pretrained=``, then ``init``) is said in one
    line through ``log`` (else the ``avkit.models`` logger): source, tensors used, head replaced.

    An audio encoder or a ``fusion`` head gives an audio-visual model (``build_av_model``, takes the
    batch dict; ``fusion`` defaults to concat, a linear head for one modality); a video model alone
    comes from the zoo with its own head.
    """
    from avkit.models.weights import collect_loads

    with collect_loads() as loads:  # the builders' pretrained loads, said below with the head on top
        model = _build(cfg, num_classes)
    say = log or logging.getLogger("avkit.models").info
    for loaded in loads:
        say(loaded.describe(num_classes))
    if cfg.init:
        say(describe_load(cfg.init, load_init(model, cfg.init)))
    if cfg.freeze_backbone or cfg.linear_probe:
        freeze_backbone(model)
    return model


def load_init(model: nn.Module, init: str) -> dict[str, Any]:
    """Copy ``model.init``'s weights into ``model`` (:func:`~avkit.engine.checkpoint.load_into`'s result).

    A pretraining run (its weights' metadata names an ``encoder_prefix``, as ``task: av_mae`` does)
    gives its encoder only, and all of it: the decoders stay behind, and an encoder tensor that does
    not fit the model (or a model encoder tensor the run lacks) is a one-line error, never a partly
    random encoder."""
    source = load_weights(init)
    prefix = str(_init_meta(Path(init)).get("encoder_prefix") or "")
    if not prefix:
        return load_into(model, source, what=init)
    result = load_into(model, {k: v for k, v in source.items() if k.startswith(prefix)}, what=init)
    lost = result["skipped"] + [k for k in result["missing"] if k.startswith(prefix)]
    if lost:
        raise AvkitError(f"{init}: {len(lost)} tensors of the pretrained encoder do not fit the model "
                         f"({', '.join(lost[:3])}{', ...' if len(lost) > 3 else ''}): build it with the "
                         f"pretraining run's model.video_options")
    return result


def _init_meta(path: Path) -> dict[str, Any]:
    """The avkit metadata of the weights ``model.init`` names (``{}`` for other formats)."""
    if path.is_dir():
        path = next((path / n for n in ("best.safetensors", "last.safetensors") if (path / n).is_file()), path)
    if path.suffix != ".safetensors" or not path.is_file():
        return {}
    meta = read_meta(path)
    return dict(meta.get("state", meta))


def _build(cfg: ModelConfig, num_classes: int) -> nn.Module:
    """The model of ``cfg`` as its builders make it (their pretrained weights, no ``init``)."""
    from avkit.models import create_model

    model: nn.Module
    if not 0.0 <= cfg.modality_dropout < 1.0:
        raise AvkitError(f"model.modality_dropout must be in [0, 1), got {cfg.modality_dropout}")
    if cfg.fusion or cfg.audio:  # audio-only too: the AV wrapper turns waveforms into spectrograms
        from avkit.models.audiovisual import build_av_model

        model = build_av_model(video=cfg.video or None, audio=cfg.audio or None, fusion=cfg.fusion or "concat",
                               num_classes=num_classes, video_options=dict(cfg.video_options),
                               audio_options=dict(cfg.audio_options), fusion_options=dict(cfg.fusion_options),
                               modality_dropout=cfg.modality_dropout)
    elif cfg.modality_dropout:
        raise AvkitError("model.modality_dropout needs an audio-visual model (model.audio and/or model.fusion)")
    elif cfg.video:
        model = create_model(cfg.video, num_classes=num_classes, **cfg.video_options)
    else:
        raise AvkitError("the recipe names no model: set model.video and/or model.audio")
    return model


def head_modules(model: nn.Module) -> list[nn.Module]:
    """The classifier part of ``model``: the fusion head of an audio-visual model, ``head`` and
    ``*_head`` children of a zoo model, else its last ``nn.Linear``."""
    model = unwrap(model)
    if hasattr(model, "fusion") and hasattr(model, "encoders"):
        return [model.get_submodule("fusion")]
    heads = [m for name, m in model.named_children() if m is not None and (name == "head" or name.endswith("_head"))]
    if heads:
        return heads
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise AvkitError(f"cannot find the classifier head of {type(model).__name__} to train alone")
    return [linears[-1]]


def freeze_backbone(model: nn.Module) -> list[nn.Module]:
    """Stop gradients everywhere except the head; returns the head modules."""
    heads = head_modules(model)
    for p in model.parameters():
        p.requires_grad_(False)
    for h in heads:
        for p in h.parameters():
            p.requires_grad_(True)
    return heads


def trainable_summary(model: nn.Module) -> str:
    total = sum(p.numel() for p in model.parameters())
    train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return f"{total / 1e6:.2f}M parameters ({train / 1e6:.2f}M trainable)"


# ---------------------------------------------------------------------------------------------
# data


def class_names_of(dataset: Any) -> list[str]:
    """The dataset's class names in label order (``dataset.classes``: names or dicts with "name")."""
    classes = getattr(dataset, "classes", None) or []
    return [c["name"] if isinstance(c, dict) else getattr(c, "name", c) for c in classes]


def short_side_of(cfg: DataConfig, num_crops: int = 1) -> int:
    """Short side the frames are decoded at: ``data.resize``, else ``size * 8 / 7`` (one crop) or
    ``size`` (three crops covering the frame)."""
    if cfg.resize:
        return cfg.resize
    return cfg.size if num_crops == 3 else round(cfg.size * 8 / 7)


def clip_transform(cfg: DataConfig, train: bool, num_crops: int = 1) -> Callable:
    """Frames ``uint8 [T, H, W, 3]`` decoded at :func:`short_side_of` -> normalised clip(s):
    random crop (+ flip unless ``data.flip`` is false) for training (``data.augment``), centre crop
    or three crops otherwise."""
    from avkit.data.transforms import eval_transform, train_transform

    short = short_side_of(cfg, num_crops)
    if train and cfg.augment:
        return train_transform(cfg.size, short, cfg.mean, cfg.std, flip=cfg.flip)
    return eval_transform(cfg.size, num_crops, short, cfg.mean, cfg.std)


def audio_mode(cfg: DataConfig) -> str | None:
    """``VideoDataset(audio=...)`` for ``data.audio`` / ``data.spectrogram``."""
    if cfg.spectrogram:
        return "both" if cfg.audio else "spectrogram"
    return "waveform" if cfg.audio else None


def build_dataset(cfg: DataConfig, split: str, train: bool, num_clips: int = 1, num_crops: int = 1,
                  seed: int = 0, cache: bool = False) -> Any:
    """A ``VideoDataset`` over ``split`` of ``data.source`` (``data.val_source`` when evaluating and
    set). ``train=False`` gives test-mode items ``video [K, 3, T, H, W]``, ``K = num_clips * num_crops``.
    ``cache`` keeps decoded videos in memory (training and per-epoch validation with ``data.cache``)."""
    from avkit.data import VideoDataset

    source = cfg.val_source if (not train and cfg.val_source) else cfg.source
    if not source:
        raise AvkitError("data.source is empty: set it to a manifest (.jsonl/.csv), a folder with "
                         "manifest.jsonl, or a class-per-folder root")
    if num_crops not in (1, 3):
        raise AvkitError(f"crops must be 1 or 3, got {num_crops}")
    # A class-per-folder root (or a manifest without splits) has no "split": use every video.
    split_arg = split or None
    if split_arg is not None and not _has_split_column(source, source_options(cfg)):
        split_arg = None
    return VideoDataset(source, num_frames=cfg.num_frames, fps=cfg.fps, size=cfg.size,
                        short_side=short_side_of(cfg, num_crops), mode="train" if train else "test",
                        num_clips=num_clips, num_crops=num_crops, audio=audio_mode(cfg),
                        sample_rate=cfg.sample_rate, split=split_arg, seed=seed,
                        transform=clip_transform(cfg, train, num_crops), cache=cache,
                        missing_audio=cfg.missing_audio, **source_options(cfg))


def source_options(cfg: DataConfig) -> dict[str, Any]:
    """``load_records`` / ``VideoDataset`` keywords for how ``data.source`` is read: its layout
    (``data.format`` and the layout's options), outside paths and repeated rows."""
    from avkit.data.formats import FormatOptions

    return dict(format=cfg.format, format_options=FormatOptions(cfg.split_number, cfg.path_pattern, cfg.video_root),
                allow_outside=cfg.allow_outside_paths, duplicates=cfg.duplicates)


def _splits_of(source: str, options: dict[str, Any] | None = None) -> set[str]:
    """The ``split`` values of ``source``'s rows (a manifest's field, or split folders train/ val/ test/);
    ``options``: :func:`source_options`."""
    from avkit.data import load_records

    records, _, _ = load_records(source, **(options or {}))
    return {r.split for r in records if r.split is not None}


def _has_split_column(source: str, options: dict[str, Any] | None = None) -> bool:
    return bool(_splits_of(source, options))


def build_datasets(cfg: DataConfig, seed: int = 0) -> tuple[Any, Any]:
    """``(train, val)`` datasets; ``val`` (one centre clip per video) is None when there is no
    validation data (no ``val_source``, and ``val_split`` empty or without rows in the source:
    e.g. split folders with ``train/`` but no ``val/``; the training log says so).
    ``data.label_fraction`` < 1 trains on that share of each class (``data.label_seed`` picks it)."""
    train = build_dataset(cfg, cfg.train_split, train=True, seed=seed, cache=cfg.cache)
    if cfg.label_fraction != 1.0:
        from avkit.data.subset import stratified_subset

        keep = stratified_subset(train.labels, cfg.label_fraction, cfg.label_seed)
        train.records = [train.records[i] for i in keep]
        kept = {r.path for r in train.records}
        train.without_audio = [p for p in train.without_audio if p in kept]  # report only what trains
    val = None
    if cfg.val_source or (cfg.val_split and cfg.val_split in _splits_of(cfg.source, source_options(cfg))):
        val = build_dataset(cfg, cfg.val_split, train=False, seed=seed, cache=cfg.cache)
        check_classes(class_names_of(train), class_names_of(val))
    return train, val


def check_classes(train_names: Sequence[str], val_names: Sequence[str]) -> None:
    if val_names and list(val_names) != list(train_names):
        raise AvkitError("the validation data names different classes than the training data")


def loader_workers(value: int | str, cache: bool = False) -> int:
    """DataLoader worker processes for ``data.num_workers``: a count as given, or ``"auto"``: one per
    CPU core left beside the training process, at most 8 (none with ``data.cache``, whose decoded
    videos live in the main process, or on one core)."""
    if value == "auto":
        return 0 if cache else min(8, max(0, cpu_cores() - 1))
    if isinstance(value, int) and value >= 0:
        return value
    raise AvkitError(f"data.num_workers must be a number >= 0 or auto, got {value!r}")


def data_notes(cfg: Config, train_set: Any, val_set: Any) -> list[str]:
    """What a user should know about a run's data before it trains, one line each: the split-folder
    layout, that there is no validation data, videos without sound, loader workers beyond the cores."""

    from avkit.data.dataset import describe_paths

    data, notes = cfg.data, []
    splits = getattr(train_set, "split_folders", None)
    if splits:
        line = (f"data: {train_set.source} holds split folders {', '.join(s + '/' for s in splits)}: training on "
                f"{data.train_split}/ ({len(train_set)} videos)")
        if val_set is not None and not data.val_source:
            line += f", validating on {data.val_split}/ ({len(val_set)} videos)"
        notes.append(line)
    if val_set is None:
        source = getattr(train_set, "source", None)
        where = f" and no {data.val_split!r} split in {source}" if source is not None and data.val_split else ""
        notes.append(f"no validation data (no data.val_source{where}): the epochs show training metrics only and "
                     f"best.safetensors is the last epoch")
    for dataset, name in ((train_set, "training"), (val_set, "validation")):
        silent = list(getattr(dataset, "without_audio", None) or [])
        if not silent:
            continue
        root = Path(dataset.source)
        names = describe_paths(silent, root if root.is_dir() else root.parent)
        if dataset.missing_audio == "drop":
            notes.append(f"sound: {len(silent)} {name} video(s) have no audio stream and are left out "
                         f"(data.missing_audio=drop): {names}")
            continue
        line = (f"sound: {len(silent)} of {len(dataset)} {name} video(s) have no audio stream ({names}): kept, "
                f"their sound marked absent (data.missing_audio=zeros)")
        if name == "training" and not cfg.model.modality_dropout:
            line += ("; absence still tells the classes apart if it goes with a class: model.modality_dropout=0.3 "
                     "trains the model to do without the sound on every class")
        notes.append(line)
    workers, cores = loader_workers(data.num_workers, data.cache), cpu_cores()
    if data.num_workers == "auto":
        notes.append(f"data.num_workers=auto: {workers} loader worker(s) for {cores} CPU core(s)")
    elif workers >= cores:
        notes.append(f"data.num_workers={workers} with {cores} CPU core(s) here: the workers compete with training "
                     f"for the cores (data.num_workers=auto picks {loader_workers('auto', data.cache)})")
    return notes
