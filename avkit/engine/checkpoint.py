"""Checkpoints in safetensors: never a pickle, always written atomically.

Two kinds of file, both one ``.safetensors`` file so a crash can never leave half a checkpoint:

- **weights** (``best.safetensors``): the model's ``state_dict`` with its plain key names, so
  ``model.load_state_dict(safetensors.torch.load_file(path))`` works anywhere.
- **training state** (``last.safetensors``): everything ``--resume`` needs. Tensors are stored
  under prefixes (``model.``, ``optimizer.``, ``rng.``); scalars (step, epoch, optimizer
  hyper-parameters, scheduler state, Python RNG state, metric history) go in the file's
  metadata as JSON.

Starting weights for fine-tuning can also come from a torchvision ``.pth`` file (read with
``torch.load(weights_only=True)``, which refuses arbitrary objects) or a Hugging Face folder
(``model.safetensors`` or ``pytorch_model.bin``).
"""
from __future__ import annotations

import json
import os
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
import torch.nn as nn
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from avkit.errors import AvkitError
from avkit.utils import atomic_path

WEIGHTS_FORMAT = "avkit-weights"
STATE_FORMAT = "avkit-train-state"


def _tensors_for_saving(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CPU, contiguous, and no two entries sharing memory (safetensors refuses shared storage)."""
    out: dict[str, torch.Tensor] = {}
    seen: set[tuple[int, int]] = set()
    for key, t in tensors.items():
        t = t.detach().to("cpu").contiguous()
        ident = (t.untyped_storage().data_ptr(), int(t.storage_offset()))
        if t.numel() and ident in seen:
            t = t.clone()
        seen.add(ident)
        out[key] = t
    return out


def _os_error(err: Exception) -> OSError | None:
    """The ``OSError`` inside a safetensors error (``"I/O error: No space left on device (os error
    28)"``), so ``atomic_path`` reports it as a failed write of its file; None for other errors."""
    found = re.search(r"os error (\d+)", str(err))
    if found is None:
        return None
    code = int(found.group(1))
    return OSError(code, os.strerror(code))


def _write(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any], fmt: str) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        try:
            save_file(_tensors_for_saving(tensors), str(tmp), metadata={"format": fmt, "avkit": json.dumps(meta)})
        except SafetensorError as err:
            cause = _os_error(err)
            if cause is None:
                raise
            raise cause from err
    return path


def _read(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as err:  # safetensors raises its own error types for bad headers
        raise AvkitError(f"{path}: not a readable safetensors file ({err})") from None
    return tensors, meta


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside DistributedDataParallel / DataParallel wrappers."""
    wrappers = (nn.parallel.DistributedDataParallel, nn.DataParallel)
    return model.module if isinstance(model, wrappers) else model


# ---------------------------------------------------------------------------------------------
# weights


def save_weights(path: str | Path, model: nn.Module, meta: dict[str, Any] | None = None) -> Path:
    """Write the model's weights (plain ``state_dict`` keys) and a JSON ``meta`` dict."""
    return _write(Path(path), dict(unwrap(model).state_dict()), meta or {}, WEIGHTS_FORMAT)


def read_meta(path: str | Path) -> dict[str, Any]:
    """The JSON metadata of an avkit safetensors file (``{}`` when absent)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as err:
        raise AvkitError(f"{path}: not a readable safetensors file ({err})") from None
    return json.loads(meta.get("avkit", "{}"))


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """A model ``state_dict`` from any supported source.

    ``path`` may be an avkit run directory (its ``best.safetensors``, else ``last.safetensors``),
    a weights or training-state ``.safetensors`` file, a torchvision ``.pth``/``.pt`` file, or a
    Hugging Face model folder.
    """
    path = Path(path)
    if path.is_dir():
        for name in ("best.safetensors", "last.safetensors", "model.safetensors", "pytorch_model.bin"):
            if (path / name).is_file():
                return load_weights(path / name)
        raise AvkitError(f"{path}: folder has no best.safetensors, last.safetensors, model.safetensors "
                         "or pytorch_model.bin")
    if not path.is_file():
        raise AvkitError(f"{path}: weights file not found")
    if path.suffix == ".safetensors":
        tensors, meta = _read(path)
        if meta.get("format") == STATE_FORMAT:
            return {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
        return tensors
    from avkit.models.weights import read_state_dict

    return dict(read_state_dict(path))  # weights_only: a pickle that needs code is refused


def run_checkpoint(run_dir: str | Path, checkpoint: str = "best", task: str | None = None, hint: str = "") -> Path:
    """The ``best`` or ``last`` weights file of a run directory, with one-line errors for a
    missing folder, a folder that is not a run, a run of another ``task`` (``hint`` says how to
    train the right one), an unknown checkpoint name or a missing file."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise AvkitError(f"{run_dir}: run directory not found")
    if not (run_dir / "config.yaml").is_file():
        raise AvkitError(f"{run_dir}: not an avkit run directory (no config.yaml)")
    if task is not None:
        from avkit.engine.config import load_config

        found = load_config(run_dir).task
        if found != task:
            raise AvkitError(f"{run_dir}: not a {task} run (task: {found})" + (f"; {hint}" if hint else ""))
    if checkpoint not in ("best", "last"):
        raise AvkitError(f"checkpoint must be 'best' or 'last', got {checkpoint!r}")
    path = run_dir / f"{checkpoint}.safetensors"
    if not path.is_file():
        if checkpoint == "best" and (run_dir / "last.safetensors").is_file():
            raise AvkitError(f"{run_dir}: no best.safetensors (no epoch finished, e.g. stopped by train.max_steps); "
                             "pass --checkpoint last to use the last weights")
        raise AvkitError(f"{run_dir}: no {path.name} (has the run finished an epoch?)")
    return path


M = TypeVar("M", bound=nn.Module)


@dataclass
class RunFiles:
    """What :func:`open_run` found in a run directory: its recipe, the chosen weights file and their metadata."""

    run_dir: Path
    config: Any  # avkit.engine.config.Config
    weights: Path
    meta: dict[str, Any]


def open_run(run_dir: str | Path, checkpoint: str = "best", task: str | None = None, hint: str = "") -> RunFiles:
    """The recipe, weights file and metadata of a trained run, checked (see :func:`run_checkpoint`).

    Every ``load(run_dir, ...)`` of the applications starts here, then builds its model from
    ``config`` and finishes with :func:`load_trained`.
    """
    from avkit.engine.config import load_config

    run_dir = Path(run_dir)
    weights = run_checkpoint(run_dir, checkpoint, task=task, hint=hint)
    meta = read_meta(weights)
    return RunFiles(run_dir, load_config(run_dir), weights, meta.get("state", meta) if "state" in meta else meta)


def load_trained(model: M, run: RunFiles, device: str | torch.device | None = "auto",
                 what: str = "the model of config.yaml") -> M:
    """Load ``run``'s weights into ``model`` strictly and return it on ``device`` in eval mode."""
    from avkit.engine.device import resolve_device

    dev = resolve_device(device)  # a bad device fails before the weights are read
    return load_strict(model, run.weights, what).to(dev).eval()


def load_strict(model: M, path: str | Path, what: str = "the model of config.yaml") -> M:
    """Load the weights at ``path`` into ``model`` strictly; a mismatch is a one-line error."""
    try:
        model.load_state_dict(load_weights(path), strict=True)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise AvkitError(f"{path}: does not fit {what} ({first})") from None
    return model


def _prefixes(keys: Any, depth: int = 3) -> set[str]:
    out = {""}
    for k in keys:
        parts = k.split(".")
        for i in range(1, min(len(parts), depth + 1)):
            out.add(".".join(parts[:i]) + ".")
    return out


def _best_mapping(target: dict[str, torch.Tensor], source: dict[str, torch.Tensor]) -> dict[str, str]:
    """``{source key: model key}`` under the (stripped, added) prefix pair matching the most same-shaped tensors."""
    best: dict[str, str] = {}
    best_score = 0
    for strip in sorted(_prefixes(source)):
        stripped = {k[len(strip):]: k for k in source if k.startswith(strip)}
        for add in sorted(_prefixes(target)):
            m = {s: add + rest for rest, s in stripped.items() if add + rest in target}
            score = sum(1 for s, t in m.items() if source[s].shape == target[t].shape)
            if score > best_score:
                best, best_score = m, score
    return best


def match_state_dict(model: nn.Module, source: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Map ``source`` keys onto ``model``'s keys, allowing a stripped and an added key prefix.

    Checkpoints often differ only by wrapper prefixes (``module.``, ``backbone.``, ``videomae.``),
    so the (strip, add) pair that matches the most same-shaped tensors wins. Tensors whose shape
    differs (a classifier head for another number of classes) are left out and reported.
    Returns ``(matched state_dict in model keys, skipped source keys)``.
    """
    target = unwrap(model).state_dict()
    best = _best_mapping(target, source)
    matched = {t: source[s] for s, t in best.items() if source[s].shape == target[t].shape}
    skipped = [s for s in source if s not in best or source[s].shape != target[best[s]].shape]
    return matched, skipped


@dataclass
class WeightsFit:
    """How a state_dict fits a model (:func:`compare_state_dict`); ``fits`` when every model tensor gets a value."""

    matched: int  # tensors copied as they are
    total: int  # tensors in the file
    model_total: int  # tensors of the model
    missing: list[str]  # model keys the file has no tensor for
    unexpected: list[str]  # file keys with no model key
    mismatched: list[tuple[str, list[int], list[int]]]  # (file key, its shape, the model's shape)

    @property
    def fits(self) -> bool:
        return not self.missing and not self.mismatched

    def summary(self) -> str:
        return (f"{self.matched}/{self.model_total} model tensors matched, {len(self.missing)} missing, "
                f"{len(self.unexpected)} unexpected, {len(self.mismatched)} of another shape")


def compare_state_dict(model: nn.Module, source: dict[str, torch.Tensor]) -> WeightsFit:
    """Missing, unexpected and wrongly shaped tensors of ``source`` for ``model``, keys matched as
    :func:`match_state_dict` does (wrapper prefixes allowed)."""
    target = unwrap(model).state_dict()
    best = _best_mapping(target, source)
    mismatched = [(s, list(source[s].shape), list(target[t].shape)) for s, t in best.items()
                  if source[s].shape != target[t].shape]
    used = set(best.values())
    return WeightsFit(len(best) - len(mismatched), len(source), len(target), [k for k in target if k not in used],
                      [s for s in source if s not in best], mismatched)


def load_into(model: nn.Module, source: dict[str, torch.Tensor], what: str = "weights") -> dict[str, Any]:
    """Copy matching tensors of ``source`` into ``model``; AvkitError when nothing matches.

    Returns ``{"loaded": n, "total": tensors in source, "skipped": [...], "missing": [...]}``
    (``skipped``: source keys not used; ``missing``: model keys left at their initial values, e.g.
    a new classifier head); :func:`describe_load` says it in one line.
    """
    matched, skipped = match_state_dict(model, source)
    if not matched:
        fit = compare_state_dict(model, source)
        raise AvkitError(f"{what}: no tensor matches the model (wrong architecture?): {fit.summary()}")
    module = unwrap(model)
    result = module.load_state_dict(matched, strict=False)
    return {"loaded": len(matched), "total": len(source), "skipped": skipped, "missing": list(result.missing_keys)}


def describe_load(what: str, result: dict[str, Any]) -> str:
    """One line for a :func:`load_into` result: ``loaded WHAT: 120/122 tensors, 2 skipped (fc.weight, fc.bias),
    2 model tensors new (head.weight, head.bias)``."""
    def some(keys: list[str]) -> str:
        return ", ".join(keys[:3]) + (", ..." if len(keys) > 3 else "")

    text = f"loaded {what}: {result['loaded']}/{result['total']} tensors"
    if result["skipped"]:
        text += f", {len(result['skipped'])} skipped ({some(result['skipped'])})"
    if result["missing"]:
        text += f", {len(result['missing'])} model tensors new ({some(result['missing'])})"
    return text


# ---------------------------------------------------------------------------------------------
# training state


def _rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    tensors["rng.numpy"] = torch.from_numpy(np.asarray(keys, dtype=np.int64))
    py_version, py_state, py_gauss = random.getstate()
    scalars = {"numpy": [kind, int(pos), int(has_gauss), float(gauss)],
               "python": [py_version, list(py_state), py_gauss]}
    return tensors, scalars


def _set_rng_state(tensors: dict[str, torch.Tensor], scalars: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    cuda = sorted((k for k in tensors if k.startswith("rng.cuda.")), key=lambda k: int(k.rsplit(".", 1)[1]))
    if cuda and torch.cuda.is_available():
        states = [tensors[k] for k in cuda][: torch.cuda.device_count()]
        torch.cuda.set_rng_state_all(states)
    kind, pos, has_gauss, gauss = scalars["numpy"]
    np.random.set_state((kind, tensors["rng.numpy"].numpy().astype(np.uint32), pos, has_gauss, gauss))
    py_version, py_state, py_gauss = scalars["python"]
    random.setstate((py_version, tuple(py_state), py_gauss))


def save_train_state(path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                     scheduler: Any, state: dict[str, Any]) -> Path:
    """Write model, optimiser, scheduler, RNG and the JSON-able ``state`` (step, epoch, ...)."""
    tensors = {f"model.{k}": v for k, v in unwrap(model).state_dict().items()}
    opt = optimizer.state_dict()
    opt_scalars: dict[str, dict[str, Any]] = {}
    for pid, pstate in opt["state"].items():
        for key, value in pstate.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer.{pid}.{key}"] = value
            else:
                opt_scalars.setdefault(str(pid), {})[key] = value
    rng_tensors, rng_scalars = _rng_state()
    tensors.update(rng_tensors)
    meta = {
        "state": state,
        "optimizer": {"param_groups": opt["param_groups"], "scalars": opt_scalars,
                      "num_params": len(opt["state"])},
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "rng": rng_scalars,
    }
    try:
        json.dumps(meta)
    except TypeError as err:
        raise TypeError(f"training state is not JSON-serialisable: {err}") from None
    return _write(Path(path), tensors, meta, STATE_FORMAT)


def load_train_state(path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer | None = None,
                     scheduler: Any = None, restore_rng: bool = True) -> dict[str, Any]:
    """Restore what :func:`save_train_state` wrote; returns its ``state`` dict."""
    path = Path(path)
    tensors, raw = _read(path)
    if raw.get("format") != STATE_FORMAT:
        raise AvkitError(f"{path}: not an avkit training-state checkpoint")
    meta = json.loads(raw["avkit"])
    weights = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    unwrap(model).load_state_dict(weights, strict=True)
    if optimizer is not None:
        saved = meta["optimizer"]
        state: dict[int, dict[str, Any]] = {}
        for key, value in tensors.items():
            if key.startswith("optimizer."):
                _, pid, name = key.split(".", 2)
                state.setdefault(int(pid), {})[name] = value
        for pid, scalars in saved["scalars"].items():
            state.setdefault(int(pid), {}).update(scalars)
        groups = saved["param_groups"]
        for group, current in zip(groups, optimizer.param_groups):
            for k, v in current.items():  # JSON turned tuples (AdamW betas) into lists
                if isinstance(v, tuple) and isinstance(group.get(k), list):
                    group[k] = tuple(group[k])
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    if scheduler is not None and meta.get("scheduler") is not None:
        scheduler.load_state_dict(meta["scheduler"])
    if restore_rng:
        _set_rng_state(tensors, meta["rng"])
    return meta["state"]
