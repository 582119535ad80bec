"""Pretrained weights: which ones each model family can use, where they live on disk, and one line when they load.

- torchvision enums (``weights="KINETICS400_V1"``, ``"DEFAULT"``, ``R2Plus1D_18_Weights.KINETICS400_V1``)
  are read from the torch hub cache, ``torch.hub.get_dir()/checkpoints/<file name of the enum's url>``
  (``$TORCH_HOME/hub/checkpoints``, default ``~/.cache/torch/hub/checkpoints``). torchvision checks a
  file's hash only when it downloads it, so a file copied there by hand is used as it is.
- Hugging Face checkpoints (``pretrained=``) are a local folder (``config.json``, ``model.safetensors``
  or ``pytorch_model.bin``, ``preprocessor_config.json``) or a hub id found in the Hugging Face cache
  (``$HF_HOME/hub/models--ORG--NAME/snapshots/<commit>/``); avkit never downloads them.
- :func:`collect_loads` gathers what the builders loaded (:class:`LoadedWeights`) so the caller can
  say it in one line each, knowing the head it put on top; without a collector the line goes to the
  ``avkit.models`` logger.

``catalog()`` lists all of it for ``avkit weights list``; nothing here touches the network.
"""
from __future__ import annotations

import contextlib
import inspect
import logging
import re
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
import torch.nn as nn

from avkit.errors import AvkitError

# avkit's torchvision video models carry torchvision's names (avkit/models/torchvision_video.py).
TORCHVISION_VIDEO = ("r3d_18", "mc3_18", "r2plus1d_18", "s3d", "mvit_v2_s", "swin3d_t")
# 2D ImageNet backbones of the frame-based families (``backbone=NAME, weights=...``).
IMAGE_BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101", "mobilenet_v3_small", "efficientnet_b0",
                   "convnext_tiny")
# Hugging Face checkpoints whose bare model the avkit builders load (``pretrained=ID`` or its folder).
HF_CHECKPOINTS: dict[str, tuple[str, ...]] = {
    "hf_videomae": ("MCG-NJU/videomae-base", "MCG-NJU/videomae-base-finetuned-kinetics"),
    "hf_timesformer": ("facebook/timesformer-base-finetuned-k400", "facebook/timesformer-base-finetuned-k600"),
    "hf_vivit": ("google/vivit-b-16x2-kinetics400",),
    "ast": ("MIT/ast-finetuned-audioset-10-10-0.4593",),
}
HF_FOLDER = "config.json, model.safetensors (or pytorch_model.bin), preprocessor_config.json"
_HF_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")

log = logging.getLogger("avkit.models")


# ---------------------------------------------------------------------------------------------
# torchvision: enums and the torch hub cache


def torchvision_weights(name: str, weights: Any) -> Any:
    """The torchvision ``Weights`` enum member for ``weights`` (a name, ``"DEFAULT"`` or a member) of model ``name``.

    An unknown model name raises torchvision's ValueError (callers word it for their context);
    an unknown weights name is an AvkitError listing the valid ones.
    """
    import torchvision

    enum = torchvision.models.get_model_weights(name)
    try:
        return enum.verify(weights)
    except (KeyError, TypeError):
        names = ", ".join(["DEFAULT", *(w.name for w in enum)])
        raise AvkitError(f"{name}: unknown weights {weights!s} (choose {names}; see 'avkit weights list')") from None


def hub_file(weights: Any) -> Path:
    """Where torchvision reads a weights enum's checkpoint: ``torch.hub.get_dir()/checkpoints/<url file name>``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(weights.url).path).name


def hub_file_missing(name: str, weights: Any, err: BaseException) -> AvkitError:
    """The one-line error for a torchvision checkpoint that is not cached and could not be downloaded."""
    file = hub_file(weights)
    first = (str(err).strip().splitlines() or [""])[0]
    return AvkitError(
        f"cannot load {name} weights {weights} ({type(err).__name__}: {first}); without network, download "
        f"{weights.url} elsewhere and put it at {file} (same file name; $TORCH_HOME moves the cache), "
        f"or pass weights=<path of a saved {name} state_dict>")


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state_dict from ``.safetensors`` or a torch file read with ``weights_only=True`` (no pickled code)."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - pickle, zip and safetensors errors have many types
        first = (str(err).strip().splitlines() or [""])[0]
        raise AvkitError(f"{path}: cannot read weights safely: not a plain file of tensors, pickled code is "
                         f"refused ({type(err).__name__}: {first})") from None
    for key in ("state_dict", "model", "model_state"):  # common wrappers around a state_dict
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise AvkitError(f"{path}: does not hold a state_dict of tensors")
    return state


# ---------------------------------------------------------------------------------------------
# Hugging Face: local folders and the hub cache


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache (``$HF_HUB_CACHE``, default ``$HF_HOME/hub`` = ``~/.cache/huggingface/hub``)."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def hf_cached_folder(repo_id: str) -> Path | None:
    """The cached snapshot folder of ``repo_id`` holding ``config.json`` and weights, or None (no network)."""
    from huggingface_hub import try_to_load_from_cache

    config = try_to_load_from_cache(repo_id, "config.json", cache_dir=hf_cache_dir())
    if not isinstance(config, str):
        return None
    folder = Path(config).parent
    return folder if hf_weights_file(folder) is not None else None


def hf_weights_file(folder: Path) -> Path | None:
    """The weights file of a Hugging Face folder (``model.safetensors`` preferred), or None."""
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (folder / name).is_file():
            return folder / name
    return None


def resolve_pretrained(pretrained: str | Path) -> Path:
    """The local folder for ``pretrained=``: a folder with ``config.json``, or a hub id found in the HF cache.

    Never downloads. A missing folder or uncached id is one line naming the folder layout and where
    the cache would hold it.
    """
    path = Path(pretrained)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise AvkitError(f"{path}: not a Hugging Face model folder (no config.json; it needs {HF_FOLDER})")
        return path
    text = str(pretrained)
    if not _HF_ID.match(text):
        raise AvkitError(f"{path}: folder not found (no config.json there; a Hugging Face model folder holds "
                         f"{HF_FOLDER})")
    folder = hf_cached_folder(text)
    if folder is None:
        org, name = text.split("/")
        raise AvkitError(
            f"{text}: no folder of that name and not in the Hugging Face cache "
            f"({hf_cache_dir() / f'models--{org}--{name}'}); avkit does not download: run "
            f"'huggingface-cli download {text}' where there is network and copy that cache folder, or save the "
            f"model's files ({HF_FOLDER}) in a folder and pass pretrained=<that folder>")
    return folder


# ---------------------------------------------------------------------------------------------
# saying what was loaded


@dataclass
class LoadedWeights:
    """One pretrained load by a builder: what, from where, how many tensors went into the network."""

    model: str  # the architecture, e.g. "r2plus1d_18"
    weights: str  # e.g. "KINETICS400_V1", or the file / hub id it came from
    source: str  # the file or folder read
    used: int  # tensors of the checkpoint in the network (its classifier left out)
    total: int  # tensors in the checkpoint
    head_classes: int | None = None  # outputs of the checkpoint's classifier, which avkit does not use
    # Hugging Face loads only, from transformers' loading info (it renames some keys while loading):
    missing: list[str] = field(default_factory=list)  # model keys left at their initial values
    unexpected: list[str] = field(default_factory=list)  # checkpoint keys not used
    mismatched: list[tuple[str, list[int], list[int]]] = field(default_factory=list)  # (key, file shape, model shape)

    def describe(self, num_classes: int | None = None) -> str:
        """``loaded r2plus1d_18 KINETICS400_V1 from PATH: 102/104 tensors, head replaced (400 -> 5 classes)``."""
        what = self.model if self.weights == self.source else f"{self.model} {self.weights}"
        text = f"loaded {what} from {self.source}: {self.used}/{self.total} tensors"
        if self.head_classes and num_classes:
            text += f", head replaced ({self.head_classes} -> {num_classes} classes)"
        elif self.head_classes:
            text += f", its head ({self.head_classes} classes) not used"
        elif num_classes:
            text += f", new head ({num_classes} classes)"
        return text


_loads: ContextVar[list[LoadedWeights] | None] = ContextVar("avkit_weight_loads", default=None)


@contextlib.contextmanager
def collect_loads() -> Iterator[list[LoadedWeights]]:
    """Gather the :class:`LoadedWeights` of the builders run inside the block (instead of logging them)."""
    loads: list[LoadedWeights] = []
    token = _loads.set(loads)
    try:
        yield loads
    finally:
        _loads.reset(token)


def report_load(loaded: LoadedWeights) -> None:
    """Hand a load to the active :func:`collect_loads`, else log it on ``avkit.models``."""
    loads = _loads.get()
    if loads is None:
        log.info(loaded.describe())
    else:
        loads.append(loaded)


def classifier_keys(model: nn.Module) -> tuple[list[str], int | None]:
    """The state_dict keys of a torchvision model's classifier and its number of outputs.

    The classifier is the top-level child holding the last Linear/Conv, from its first Linear/Conv on
    (``fc``; ``classifier`` of MobileNet/EfficientNet/ConvNeXt/S3D; ``head`` of MViT/Swin): what avkit
    replaces with its own head.
    """
    layers = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
    last = None
    for name, child in model.named_children():
        if isinstance(child, layers) or any(isinstance(m, layers) for m in child.modules()):
            last = name, child
    if last is None:
        return [], None
    name, child = last
    parts = [(name, child)] if isinstance(child, layers) else [
        (f"{name}.{n}", m) for n, m in child.named_children()]
    first = next(i for i, (_, m) in enumerate(parts) if isinstance(m, layers) or any(
        isinstance(s, layers) for s in m.modules()))
    keys = [f"{prefix}.{k}" for prefix, m in parts[first:] for k in m.state_dict()]
    outputs = [m for _, p in parts[first:] for m in p.modules() if isinstance(m, layers)]
    out = outputs[-1]
    classes = out.out_features if isinstance(out, nn.Linear) else out.out_channels
    return keys, int(classes)


def torchvision_load(name: str, weights: str, source: Path, model: nn.Module) -> LoadedWeights:
    """The :class:`LoadedWeights` of a torchvision model just loaded strictly from ``source``."""
    total = len(model.state_dict())
    head, classes = classifier_keys(model)
    return LoadedWeights(name, weights, str(source), total - len(head), total, classes)


def load_hf_pretrained(model_cls: Any, name: str, pretrained: str | Path, **kwargs: Any) -> tuple[Any, Path]:
    """``model_cls.from_pretrained`` of the folder :func:`resolve_pretrained` finds (local files only, no
    remote code), reported in one line; returns the model and the folder (for its preprocessor config)."""
    folder = resolve_pretrained(pretrained)
    try:
        model, info = model_cls.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False,
                                                output_loading_info=True, **kwargs)
    except (RuntimeError, ValueError, OSError, KeyError) as err:  # wrong architecture, shapes, broken files
        first = (str(err).strip().splitlines() or [""])[0]
        raise AvkitError(f"{folder}: does not load as {name} ({type(err).__name__}: {first})") from None
    expected = len(model.state_dict())
    not_loaded = set(info.get("missing_keys", ())) | {k[0] for k in info.get("mismatched_keys", ())}
    unexpected = list(info.get("unexpected_keys", ()))
    used = expected - len(not_loaded)
    head = None  # a classification checkpoint: its classifier is not part of the bare model avkit wraps
    if any(k.split(".")[0] in ("classifier", "fc_norm") for k in unexpected):
        head = len(getattr(model.config, "id2label", None) or {}) or None
    source = str(weights_file) if (weights_file := hf_weights_file(folder)) else str(folder)
    weights = str(pretrained) if str(pretrained) != str(folder) else source
    mismatched = [(str(k[0]), list(k[1]), list(k[2])) for k in info.get("mismatched_keys", ()) if len(k) == 3]
    report_load(LoadedWeights(name, weights, source, used, used + len(unexpected), head,
                              sorted(info.get("missing_keys", ())), sorted(unexpected), mismatched))
    return model, folder


# ---------------------------------------------------------------------------------------------
# the catalog behind `avkit weights list`


def backbone_models() -> list[str]:
    """Registered models that take ``backbone=`` and ``weights=`` (2D ImageNet backbones)."""
    from avkit.models.registry import list_models, model_entry

    return [n for n in list_models() if {"backbone", "weights"} <= set(inspect.signature(model_entry(n).builder).parameters)]


def catalog() -> list[dict[str, Any]]:
    """Every pretrained checkpoint avkit's builders can use, where it must be, and whether it is there.

    Rows: ``family``, ``models`` (avkit model names), ``option`` (what to pass), ``weights``, ``source``
    (``torchvision`` or ``huggingface``), ``path`` (file or cache folder), ``present``, ``url``
    (``None`` for Hugging Face), ``files`` (what the file or folder holds).
    """
    import torchvision

    rows: list[dict[str, Any]] = []

    def torchvision_rows(family: str, arch: str, models: list[str], option: str) -> None:
        enum = torchvision.models.get_model_weights(arch)
        for w in enum:
            file = hub_file(w)
            tag = " (DEFAULT)" if w == enum.DEFAULT else ""
            rows.append({"family": family, "models": models, "option": option.format(arch=arch, name=w.name),
                         "weights": f"{type(w).__name__}.{w.name}{tag}", "source": "torchvision",
                         "path": str(file), "present": file.is_file(), "url": w.url, "files": file.name})

    for arch in TORCHVISION_VIDEO:
        torchvision_rows("torchvision_video", arch, [arch], "weights={name}")
    users = backbone_models()
    for arch in IMAGE_BACKBONES:
        torchvision_rows("image_backbone", arch, users, "backbone={arch}, weights={name}")
    for model, ids in HF_CHECKPOINTS.items():
        for repo_id in ids:
            org, name = repo_id.split("/")
            folder = hf_cached_folder(repo_id)
            rows.append({"family": "ast" if model == "ast" else "hf_video", "models": [model],
                         "option": f"pretrained={repo_id}", "weights": repo_id, "source": "huggingface",
                         "path": str(folder or hf_cache_dir() / f"models--{org}--{name}"), "present": folder is not None,
                         "url": None, "files": HF_FOLDER})
    return rows
