"""Loading Hugging Face parts (config, processor, tokenizer, model) from a local folder or a hub id.

Shared by ``avkit ask`` (:mod:`avkit.apps.video_llm.model`) and the captioner's language-model
folder (:mod:`avkit.apps.captioning.language_model`): one place decides when the network is
used (never for a local folder; for a hub id, the local cache first) and turns the loaders'
many-line errors into one line.
"""
from __future__ import annotations

import functools
import os
import pickle
from collections.abc import Callable
from typing import Any

from avkit.errors import AvkitError


def looks_like_path(model: str) -> bool:
    """True if ``model`` names a local folder rather than a hub id (``org/name``)."""
    if os.path.exists(model):
        return True
    return (model.startswith((".", "/", "~")) or model.endswith(("/", os.sep)) or model.count("/") > 1
            or (os.sep != "/" and os.sep in model))


def one_line(err: BaseException) -> str:
    """The first non-empty line of an error message (the loaders' messages run to many lines)."""
    lines = [x.strip() for x in str(err).strip().splitlines() if x.strip()]
    return lines[0] if lines else type(err).__name__


def _weights_name(source: str) -> str:
    """The weights file of a local model folder (what a refusal names), else ``source``."""
    from pathlib import Path

    from avkit.models.weights import hf_weights_file

    folder = Path(source)
    found = hf_weights_file(folder) if folder.is_dir() else None
    return str(found or source)


def from_pretrained(what: str, loader: Callable[..., Any], source: str, *, is_local: bool, offline: bool,
                    **kwargs: Any) -> Any:
    """``loader(source, local_files_only=..., **kwargs)`` with errors turned into one line.

    A hub id is tried from the local cache first (no network, no retries), then from the hub
    unless ``offline``.
    """
    try:
        return loader(source, local_files_only=True, **kwargs)
    except pickle.UnpicklingError as err:  # torch.load(weights_only=True) refused a pickle that needs code
        raise AvkitError(f"{_weights_name(source)}: refused: the {what}'s weights are a pickle that holds code, "
                         f"not only tensors ({one_line(err)})") from None
    except OSError as err:
        if is_local:
            raise AvkitError(f"{source}: cannot load the {what} ({one_line(err)})") from None
        if offline:
            raise AvkitError(f"{source}: not in the local Hugging Face cache and offline mode is on; "
                             f"pass a local model folder or allow downloads") from None
    except ValueError as err:
        raise AvkitError(f"{source}: cannot load the {what} ({one_line(err)})") from None
    if not hub_reachable():  # fail now rather than after the hub client's retries (~25 s)
        raise AvkitError(f"{source}: could not reach the Hugging Face hub and the {what} is not in the "
                         f"local cache; pass a local model folder (a save_pretrained or downloaded "
                         f"snapshot directory)")
    try:
        return loader(source, local_files_only=False, **kwargs)
    except pickle.UnpicklingError as err:
        raise AvkitError(f"{source}: refused: the {what}'s weights are a pickle that holds code, not only tensors "
                         f"({one_line(err)})") from None
    except OSError as err:
        text = str(err)
        if "connect" in text or "offline" in text.lower() or "resolve" in text.lower():
            raise AvkitError(f"{source}: could not reach the Hugging Face hub and the {what} is not in "
                             f"the local cache; pass a local model folder (a save_pretrained or "
                             f"downloaded snapshot directory)") from None
        raise AvkitError(f"{source}: cannot load the {what} ({one_line(err)})") from None
    except ValueError as err:
        raise AvkitError(f"{source}: cannot load the {what} ({one_line(err)})") from None


@functools.lru_cache(maxsize=1)
def hub_reachable(timeout: float = 3.0) -> bool:
    """False when the hub's host cannot even be connected to (no network, no DNS); True otherwise.

    Behind a proxy (``HTTPS_PROXY`` / ``ALL_PROXY``) a direct connection says nothing, so the
    answer is True and the hub client decides.
    """
    import socket
    from urllib.parse import urlparse

    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    try:
        from huggingface_hub import constants

        if constants.HF_HUB_OFFLINE:
            return True  # the hub client itself answers at once, with its offline message
        url = urlparse(constants.ENDPOINT)
    except Exception:  # pragma: no cover - huggingface_hub always ships with transformers
        return True
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def quiet_transformers() -> None:
    """Keep transformers' and the hub client's progress bars and advice off the terminal (the CLIs'
    output is the answer or the caption)."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    try:
        from transformers.utils import logging

        logging.set_verbosity_error()
        logging.disable_progress_bar()
        from huggingface_hub.utils import logging as hub_logging

        hub_logging.set_verbosity_error()  # no "Retrying in 1s" lines when the hub is unreachable
    except Exception:  # pragma: no cover - an old transformers without these helpers
        pass
