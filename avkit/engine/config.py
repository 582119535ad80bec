"""Training configuration: plain dataclasses that a YAML recipe maps onto one-to-one.

A recipe has four sections, ``data``, ``model``, ``optim`` and ``train``; every key is a field
below. ``key.sub=value`` overrides (``optim.lr=0.01``, ``model.video_options.width=8``) are
converted to the field's type, and unknown keys raise :class:`AvkitError` naming the key, so a
typo never silently falls back to a default.
"""
from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, Union

import yaml

from avkit.errors import AvkitError

T = TypeVar("T")


@dataclass
class DataConfig:
    """Where the clips come from and how they are sampled and transformed."""

    source: str = ""  # manifest (.jsonl/.csv) or class-per-folder root
    val_source: str = ""  # separate validation source; "" = ``source`` filtered by ``val_split``
    train_split: str = "train"  # manifest "split" value used for training ("" = every row)
    val_split: str = "val"  # manifest "split" value used for validation ("" = no validation)
    # How data.source is read (docs/training.md, "Standard dataset layouts"): auto | manifest | folder | ucf101 |
    # hmdb51 | kinetics | ssv2 | vggsound | activitynet | ava_activespeaker
    format: str = "auto"
    split_number: int = 1  # UCF-101 / HMDB-51: official split 1, 2 or 3
    path_pattern: str = ""  # Kinetics / VGGSound: a row's file name ("" = the layout's default)
    video_root: str = ""  # where a layout's videos are ("" = beside its annotation files)
    allow_outside_paths: bool = False  # accept manifest rows naming files outside the dataset folder
    duplicates: str = "drop"  # repeated manifest rows (always reported): drop | keep | error
    num_frames: int = 8
    fps: float = 8.0  # frames per second of a sampled clip
    size: int = 112  # side of the square crop fed to the model
    resize: int = 0  # short side before cropping; 0 = size * 8 / 7
    augment: bool = True  # random crop in training, plus a flip when ``flip`` (center crop otherwise)
    flip: bool = False  # also flip clips left-right with ``augment``; off by default: a mirror swaps left/right
    # and cw/ccw motion without changing the label (or the sound). Turn it on for mirror-safe classes (UCF-101).
    mean: list[float] = field(default_factory=lambda: [0.485, 0.456, 0.406])  # ImageNet statistics
    std: list[float] = field(default_factory=lambda: [0.229, 0.224, 0.225])
    audio: bool = False  # load the clip's waveform ("audio")
    spectrogram: bool = False  # compute the log-mel spectrogram ("spectrogram"); implies audio
    sample_rate: int = 16000
    # Videos without an audio stream when the run reads sound: error (stop, naming them) | zeros (keep:
    # silence, marked absent for audio-visual models) | drop (leave them out). Silence is otherwise a class cue.
    missing_audio: str = "error"
    label_fraction: float = 1.0  # train on this share of the training set, the same share of each class
    label_seed: int = 0  # which items label_fraction keeps (avkit.data.subset.stratified_subset)
    batch_size: int = 8  # global batch: divided between the processes of a distributed run
    num_workers: int | str = 0  # DataLoader worker processes; "auto" = from the CPU cores (avkit.engine.build)
    cache: bool = False  # decode each training video once and keep it in memory (small datasets, num_workers 0)
    test_clips: int = 10  # evaluation defaults (avkit eval / classify)
    test_crops: int = 3


@dataclass
class ModelConfig:
    """What to build (names from ``avkit models``) and where its starting weights come from."""

    video: str = ""  # video encoder / classifier name, e.g. "c3d"; "" = audio-only
    video_options: dict[str, Any] = field(default_factory=dict)
    audio: str = ""  # audio encoder name; "" = video-only
    audio_options: dict[str, Any] = field(default_factory=dict)
    fusion: str = ""  # late | concat | gated | cross_attention | bottleneck (AV models)
    fusion_options: dict[str, Any] = field(default_factory=dict)
    modality_dropout: float = 0.0  # AV models: chance, per clip and modality, that training marks it absent
    num_classes: int = 0  # 0 = number of classes of the training data
    init: str = ""  # starting weights: avkit run dir / .safetensors / torchvision .pth / HF folder
    freeze_backbone: bool = False  # train only the head (the backbone still runs in train mode)
    linear_probe: bool = False  # freeze the backbone and keep it in eval mode (BN statistics fixed)
    freeze_bn: bool = False  # keep every BatchNorm in eval mode (small batches, fine-tuning)


@dataclass
class OptimConfig:
    """Optimiser and learning-rate schedule."""

    optimizer: str = "adamw"  # adamw | sgd
    lr: float = 1e-3
    weight_decay: float = 0.05
    momentum: float = 0.9  # sgd only
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])  # adamw only
    schedule: str = "cosine"  # cosine | constant
    warmup_epochs: float = 0.0  # linear warm-up from 0 to lr
    min_lr: float = 0.0  # floor of the cosine
    grad_clip: float = 0.0  # max gradient norm; 0 = off
    accumulate: int = 1  # gradient accumulation: micro-batches per optimiser step


@dataclass
class TrainConfig:
    """Loop length, precision, seed and where the run directory goes."""

    output_dir: str = "runs/run"
    epochs: int = 10
    seed: int = 0
    precision: str = "auto"  # auto (bf16 on CUDA, fp32 on CPU) | bf16 | fp32
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    label_smoothing: float = 0.0
    max_steps: int = 0  # stop after this many optimiser steps (schedule unchanged); 0 = off
    stop_after_epoch: int = 0  # stop after this many epochs (schedule unchanged); 0 = off
    sync_bn: bool = False  # SyncBatchNorm in distributed CUDA runs
    channels_last: bool = True  # conv weights in channels-last layout (avkit.engine.memory_format): same results, faster
    progress: bool = True  # rich progress bar
    tensorboard: bool = True


@dataclass
class Config:
    """A whole recipe."""

    task: str = "classification"  # what is learned: classification | separation | captioning (avkit.engine.task)
    task_options: dict[str, Any] = field(default_factory=dict)  # read by the task (see its docs)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ---------------------------------------------------------------------------------------------
# conversion


def _convert(value: Any, tp: Any, key: str) -> Any:
    """``value`` (from YAML or a command-line string) as type ``tp``; AvkitError if impossible."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "~")):
            if type(None) in args:
                return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, key)
            except AvkitError:
                pass
        raise AvkitError(f"config key {key!r}: cannot use {value!r} (expected {tp})")
    if tp is Any:
        return yaml.safe_load(value) if isinstance(value, str) else value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "on", "1"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "no", "off", "0"):
            return False
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise AvkitError(f"config key {key!r}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise AvkitError(f"config key {key!r}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise AvkitError(f"config key {key!r}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, bool):
            raise AvkitError(f"config key {key!r}: expected a number, got {value!r}")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):  # YAML reads "1e-3" as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise AvkitError(f"config key {key!r}: expected a number, got {value!r}")
    if tp is str:
        if value is None:
            return ""
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise AvkitError(f"config key {key!r}: expected a string, got {value!r}")
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if isinstance(value, str):
            parsed = yaml.safe_load(value)
            value = parsed if isinstance(parsed, list) else [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise AvkitError(f"config key {key!r}: expected a list, got {value!r}")
        return [_convert(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if isinstance(value, str):
            value = yaml.safe_load(value) or {}
        if not isinstance(value, dict):
            raise AvkitError(f"config key {key!r}: expected a mapping, got {value!r}")
        return {str(k): _plain(v) for k, v in value.items()}
    raise TypeError(f"unsupported config field type {tp!r}")  # a bug in this file, not user input


def _plain(value: Any) -> Any:
    """Tuples to lists (recursively), so builder options survive a YAML round trip."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _unknown(key: str, choices: Sequence[str]) -> AvkitError:
    name = key.rsplit(".", 1)[-1]
    close = difflib.get_close_matches(name, list(choices), n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else f" (known: {', '.join(choices)})"
    return AvkitError(f"unknown config key {key!r}{hint}")


def _from_dict(cls: type, data: dict[str, Any], prefix: str) -> Any:
    if not isinstance(data, dict):
        raise AvkitError(f"config section {prefix.rstrip('.') or 'root'!r} must be a mapping, got {data!r}")
    hints = _field_types(cls)
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in hints:
            raise _unknown(prefix + str(key), list(hints))
        tp = hints[key]
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            kwargs[key] = _from_dict(tp, value or {}, f"{prefix}{key}.")
        else:
            kwargs[key] = _convert(value, tp, prefix + key)
    return cls(**kwargs)


def parse_options(cls: type[T], data: Mapping[str, Any] | None, section: str = "task_options") -> T:
    """A typed options dataclass from a recipe section, checked like the recipe itself: unknown keys
    get a did-you-mean, values are converted to the field types, bad values are one-line errors."""
    return _from_dict(cls, dict(data or {}), f"{section}.")


def config_from_dict(data: dict[str, Any] | None) -> Config:
    """Build a :class:`Config` from nested dicts (missing keys keep their defaults)."""
    return _from_dict(Config, data or {}, "")


def apply_overrides(config: Config, overrides: Sequence[str]) -> Config:
    """Return a copy of ``config`` with ``key.sub=value`` strings applied, converting types.

    Keys inside dict fields (``model.video_options.width=8``) are parsed as YAML values.
    """
    config = config_from_dict(config.to_dict())  # deep copy
    for item in overrides:
        if "=" not in item:
            raise AvkitError(f"override {item!r} is not key=value (e.g. optim.lr=0.01)")
        key, raw = item.split("=", 1)
        key = key.strip()
        parts = key.split(".")
        obj: Any = config
        for i, part in enumerate(parts):
            path = ".".join(parts[: i + 1])
            if isinstance(obj, dict):
                rest = parts[i:]
                target = obj
                for p in rest[:-1]:
                    target = target.setdefault(p, {})
                    if not isinstance(target, dict):
                        raise AvkitError(f"override {key!r}: {p!r} is not a mapping")
                target[rest[-1]] = yaml.safe_load(raw) if raw.strip() else None
                break
            hints = _field_types(type(obj))
            if part not in hints:
                raise _unknown(path, list(hints))
            tp = hints[part]
            last = i == len(parts) - 1
            if dataclasses.is_dataclass(tp):
                if last:
                    raise AvkitError(f"override {key!r}: {path!r} is a section; set one of its keys")
                obj = getattr(obj, part)
            elif typing.get_origin(tp) is dict and not last:
                obj = getattr(obj, part)
            else:
                if not last:
                    raise _unknown(".".join(parts[: i + 2]), [])
                setattr(obj, part, _convert(raw, tp, path))
    return config


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> Config:
    """Read a YAML recipe (or a run directory's config.yaml) and apply overrides.

    A run directory's recipe says the run is where that directory is now (``train.output_dir``),
    so a run that was moved or copied resumes, evaluates and reports in its new place.
    """
    path = Path(path)
    run_dir = path if path.is_dir() else None
    if run_dir is not None:
        path = path / "config.yaml"
    if not path.is_file():
        raise AvkitError(f"{path}: recipe not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise AvkitError(f"{path}: not valid YAML ({_yaml_problem(err)})") from None
    except UnicodeDecodeError:
        raise AvkitError(f"{path}: not a text file (a YAML recipe was expected)") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise AvkitError(f"{path}: a recipe must be a YAML mapping of sections (data:, model:, ...), "
                         f"got a {type(data).__name__}")
    cfg = config_from_dict(data)
    if run_dir is not None:
        cfg.train.output_dir = str(run_dir)
    return apply_overrides(cfg, overrides)


def _yaml_problem(err: yaml.YAMLError) -> str:
    """A YAML error on one line: what went wrong and where (``line 2, column 6``)."""
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    mark = getattr(err, "problem_mark", None)
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else problem


def dump_config(config: Config) -> str:
    """The config as YAML text (every field, so a run directory is self-describing)."""
    return yaml.safe_dump(config.to_dict(), sort_keys=False, default_flow_style=None)


def as_config(config: Config | dict | str | Path) -> Config:
    """Accept a Config, a nested dict or a recipe path."""
    if isinstance(config, Config):
        return config
    if isinstance(config, dict):
        return config_from_dict(config)
    return load_config(config)


def config_diff(a: Config, b: Config) -> dict[str, tuple[Any, Any]]:
    """Flat ``{key: (a_value, b_value)}`` of the fields that differ."""
    out: dict[str, tuple[Any, Any]] = {}

    def walk(x: Any, y: Any, prefix: str) -> None:
        if isinstance(x, dict) and isinstance(y, dict):
            for k in sorted(set(x) | set(y)):
                walk(x.get(k), y.get(k), f"{prefix}{k}.")
        elif x != y:
            out[prefix.rstrip(".")] = (x, y)

    walk(a.to_dict(), b.to_dict(), "")
    return out
