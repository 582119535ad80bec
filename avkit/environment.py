"""What avkit runs on: load its dependencies with a one-line diagnosis, and report the stack.

Two jobs, both about the installed packages rather than about video:

- :func:`require` imports packages a command or function needs. A package that is missing or that
  fails to load (torchaudio built for a newer torch, PyAV without its FFmpeg libraries, torchvision
  beside a torch it was not built for) raises :class:`~avkit.errors.DependencyError` with one line:
  the package, the versions found, the cause, and the ``pip install`` command that fixes it.
- :func:`report` collects what ``avkit doctor`` prints: Python, the torch trio and their CUDA
  builds, PyAV and its FFmpeg, transformers, OpenCV, whether CUDA is usable and which optional
  packages are present.

The bounds in the fix commands are read from avkit's own installed metadata (``pyproject.toml``),
so there is one place that says which versions belong together.
"""
from __future__ import annotations

import importlib
import platform
import re
import sys
from typing import Any

from avkit.errors import DependencyError

# import name -> distribution name on PyPI (where they differ the fix must name the distribution)
DISTRIBUTIONS = {
    "torch": "torch",
    "torchvision": "torchvision",
    "torchaudio": "torchaudio",
    "av": "av",
    "cv2": "opencv-python-headless",
    "transformers": "transformers",
    "librosa": "librosa",
    "numpy": "numpy",
    "safetensors": "safetensors",
    "yaml": "pyyaml",
    "matplotlib": "matplotlib",
    "ray": "ray",
    "pyarrow": "pyarrow",
}
TORCH_TRIO = ("torch", "torchvision", "torchaudio")

# Packages avkit uses when they are there; doctor reports whether each is.
OPTIONAL = {
    "torchcodec": "decode benchmark comparison (benchmarks/decode.py)",
    "mir_eval": "BSS-eval reference for separation metrics",
    "fast_bss_eval": "fast BSS-eval separation metrics",
    "peft": "LoRA adapters for the captioner's language model",
    "accelerate": "device_map loading of large Hugging Face models",
    "tensorboard": "TensorBoard logging during training",
    "pytest": "running the test suite (the dev extra)",
}

# Used only when avkit's own metadata cannot be read (running from a source tree without install).
_FALLBACK_BOUNDS = {
    "torch": ">=2.14.1,<2.15",
    "torchvision": ">=0.29.1,<0.30",
    "torchaudio": ">=2.11.1,<2.12",
    "av": ">=12",
}


def _metadata():
    """``importlib.metadata``, imported when first needed (it costs ~60 ms, which a light command
    such as ``avkit info`` that never fails to load a package should not pay)."""
    import importlib.metadata

    return importlib.metadata


def installed_version(dist: str) -> str | None:
    """The installed version of distribution ``dist`` (without importing it), or None."""
    metadata = _metadata()
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def avkit_bounds() -> dict[str, str]:
    """Version bounds avkit declares for its dependencies, e.g. ``{"torch": ">=2.14.1,<2.15"}``."""
    metadata = _metadata()
    try:
        requires = metadata.requires("avkit") or []
    except metadata.PackageNotFoundError:
        return dict(_FALLBACK_BOUNDS)
    bounds: dict[str, str] = {}
    for req in requires:
        if "extra ==" in req:
            continue
        m = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(?:\[[^\]]*\])?\s*\(?([^;)]*)\)?", req)
        if m:
            parts = sorted(m.group(2).replace(" ", "").split(","), key=lambda p: not p.startswith(">"))
            bounds[m.group(1).lower()] = ",".join(p for p in parts if p)
    return bounds or dict(_FALLBACK_BOUNDS)


def fix_command(name: str) -> str:
    """The pip command that reinstalls ``name`` (an import name) at versions avkit was tested with."""
    bounds = avkit_bounds()
    names = TORCH_TRIO if name in TORCH_TRIO else (name,)
    specs = []
    for n in names:
        dist = DISTRIBUTIONS.get(n, n)
        specs.append(f"'{dist}{bounds.get(dist, '')}'" if bounds.get(dist) else dist)
    return "pip install --force-reinstall " + " ".join(specs)


def _found(name: str) -> str:
    """``"torchaudio 2.11.1 with torch 2.11.0"``: the versions involved in a failed import."""
    dist = DISTRIBUTIONS.get(name, name)
    text = f"{dist} {installed_version(dist) or '(not installed)'}"
    if name in ("torchvision", "torchaudio"):
        text += f" with torch {installed_version('torch') or '(not installed)'}"
    return text


def _cause(err: BaseException) -> str:
    """The error as one short line: file paths cut to their base name."""
    line = (str(err).strip().splitlines() or [type(err).__name__])[0]
    line = re.sub(r"(?:/[^/\s:]+)+/([^/\s:]+)", r"\1", line)
    return line if len(line) <= 160 else line[:157] + "..."


def dependency_error(name: str, err: BaseException) -> DependencyError:
    """The one-line error for a failed ``import name``."""
    if isinstance(err, ModuleNotFoundError) and installed_version(DISTRIBUTIONS.get(name, name)) is None:
        problem = f"{DISTRIBUTIONS.get(name, name)} is not installed"
    else:
        problem = f"{_found(name)} fails to load ({_cause(err)})"
    return DependencyError(name, f"{problem}; fix: {fix_command(name)}")


def require(*names: str) -> None:
    """Import each package in ``names``; raise :class:`DependencyError` for the first that fails.

    torch is tried before torchvision and torchaudio, so a broken torch is named as such rather
    than as a failure of the packages built on it.
    """
    order = sorted(names, key=lambda n: (n != "torch", names.index(n)))
    for name in order:
        try:
            importlib.import_module(name)
        except Exception as err:  # ImportError, OSError (undefined symbol), RuntimeError (missing ops)
            raise dependency_error(name, err) from err


def import_module(name: str) -> Any:
    """``importlib.import_module(name)`` that raises :class:`DependencyError` on failure.

    ``name`` may be a submodule (``"torchaudio.transforms"``); the fix names its top package.
    """
    try:
        return importlib.import_module(name)
    except Exception as err:
        raise dependency_error(name.split(".")[0], err) from err


def failed_dependency(err: BaseException) -> DependencyError | None:
    """If ``err`` is a failed import of a known dependency, its one-line error; else None.

    Recognised: an ImportError naming the package, and a shared library that fails to load
    (``OSError`` without a file name, e.g. ``libtorchaudio.so: undefined symbol``).
    """
    name = getattr(err, "name", None)
    if isinstance(err, ImportError) and name and name.split(".")[0] in DISTRIBUTIONS:
        return dependency_error(name.split(".")[0], err)
    is_loader_error = isinstance(err, ImportError) or (isinstance(err, OSError) and err.filename is None)
    text = str(err)
    if is_loader_error and re.search(r"\.so\b|undefined symbol|shared object|DLL load|dylib", text):
        for top in ("torchaudio", "torchvision", "torch", "av", "cv2"):
            if re.search(rf"[/\\]{top}[/\\]|\blib{top}\b|\b{top}\.", text):
                return dependency_error(top, err)
        if re.search(r"\blib(avformat|avcodec|avutil|avfilter|avdevice|swscale|swresample)\b", text):
            return dependency_error("av", err)  # FFmpeg's libraries, which PyAV loads
    return None


# ---------------------------------------------------------------------------------------------
# avkit doctor


def _probe(name: str) -> tuple[Any, str | None]:
    """(module or None, one-line error or None)."""
    try:
        return importlib.import_module(name), None
    except Exception as err:
        return None, _cause(err)


def _package_row(name: str) -> dict[str, Any]:
    dist = DISTRIBUTIONS.get(name, name)
    module, error = _probe(name)
    row: dict[str, Any] = {"distribution": dist, "version": installed_version(dist), "loads": error is None}
    if error:
        row["error"] = error
    bound = avkit_bounds().get(dist)
    if bound:
        row["required"] = bound
        row["in_range"] = _in_range(row["version"], bound)
    if module is not None and name in TORCH_TRIO:
        row["build"] = getattr(module, "__version__", None)
    return row


def _in_range(version: str | None, spec: str) -> bool | None:
    if version is None:
        return False
    try:
        from packaging.specifiers import SpecifierSet
        from packaging.version import Version
    except ImportError:  # pragma: no cover - packaging ships with pip's environments
        return None
    return Version(version) in SpecifierSet(spec, prereleases=True)


def _torch_details() -> dict[str, Any]:
    module, error = _probe("torch")
    if module is None:
        return {"error": error}
    torch = module
    info: dict[str, Any] = {
        "cuda_build": torch.version.cuda,
        "cuda_available": bool(torch.cuda.is_available()),
        "threads": torch.get_num_threads(),
    }
    if info["cuda_available"]:
        info["devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        info["bf16_supported"] = bool(torch.cuda.is_bf16_supported())
        info["cudnn"] = torch.backends.cudnn.version()
    mps = getattr(torch.backends, "mps", None)
    info["mps_available"] = bool(mps and mps.is_available())
    return info


def _ffmpeg_details() -> dict[str, Any]:
    module, error = _probe("av")
    if module is None:
        return {"error": error}
    versions = {lib: ".".join(str(v) for v in ver) for lib, ver in getattr(module, "library_versions", {}).items()}
    info: dict[str, Any] = {"libraries": versions}
    ffmpeg = getattr(module, "ffmpeg_version_info", None)
    if ffmpeg:
        info["ffmpeg"] = str(ffmpeg)
    try:
        import av.codec

        info["h264_encoder"] = any(n in av.codec.codecs_available for n in ("libx264", "libopenh264", "h264"))
        info["aac_encoder"] = "aac" in av.codec.codecs_available
    except Exception as err:  # pragma: no cover
        info["codecs_error"] = _cause(err)
    return info


def _opencv_details() -> dict[str, Any]:
    module, error = _probe("cv2")
    if module is None:
        return {"error": error}
    return {
        "dis_flow": hasattr(module, "DISOpticalFlow_create"),
        "farneback_flow": hasattr(module, "calcOpticalFlowFarneback"),
        "tvl1_flow": hasattr(getattr(module, "optflow", None), "DualTVL1OpticalFlow_create"),
    }


def report() -> dict[str, Any]:
    """Everything ``avkit doctor`` shows, as plain JSON-able data."""
    from avkit import __version__

    packages = {name: _package_row(name) for name in DISTRIBUTIONS}
    optional = {}
    for name, why in OPTIONAL.items():
        version = installed_version(name.replace("_", "-")) or installed_version(name)
        optional[name] = {"installed": version is not None, "version": version, "for": why}
    trio_ok = all(packages[n]["loads"] and packages[n].get("in_range", True) for n in TORCH_TRIO)
    return {
        "avkit": __version__,
        "python": platform.python_version(),
        "executable": sys.executable,
        "platform": platform.platform(),
        "packages": packages,
        "torch": _torch_details(),
        "ffmpeg": _ffmpeg_details(),
        "opencv": _opencv_details(),
        "optional": optional,
        "torch_trio_ok": trio_ok,
        "ok": trio_ok and all(p["loads"] for p in packages.values()),
    }
