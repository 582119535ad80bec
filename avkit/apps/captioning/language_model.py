"""The captioner's language model as a Hugging Face folder, and the token ids of captions.

A captioning run keeps ``RUN/language_model/``: the LM's config and the word-level tokenizer from
the start of training, plus, at the end, the best LM weights (LoRA merged). Training
(:mod:`avkit.apps.captioning.task`) writes and reads it; :func:`avkit.apps.captioning.load`
rebuilds the captioner's architecture from it. Folders are read locally only (never the hub,
never remote code) through :func:`avkit.apps.video_llm.hub.from_pretrained`, which turns the
loaders' errors into one line.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from avkit.errors import AvkitError

LM_FOLDER = "language_model"


def is_caption_run(path: Path) -> bool:
    """Whether ``path`` is a captioning run directory (a recipe and a language-model folder)."""
    return path.is_dir() and (path / "config.yaml").is_file() and (path / LM_FOLDER).is_dir()


def run_weights(run: Path) -> Path:
    """The weights of a captioning run whose language model another run starts from: best, else last."""
    for name in ("best.safetensors", "last.safetensors"):
        if (run / name).is_file():
            return run / name
    raise AvkitError(f"{run}: captioning run without best.safetensors or last.safetensors (has it finished an epoch?)")


def _check_folder(folder: Path) -> None:
    if not (folder / "config.json").is_file():
        raise AvkitError(f"{folder}: not a Hugging Face model folder (no config.json)")


def load_tokenizer(folder: Path) -> Any:
    """The tokenizer of a local Hugging Face folder."""
    import transformers

    from avkit.apps.video_llm.hub import from_pretrained

    _check_folder(folder)
    return from_pretrained("tokenizer", transformers.AutoTokenizer.from_pretrained, str(folder), is_local=True,
                           offline=True, trust_remote_code=False)


def load_lm(folder: Path, *, weights: bool) -> nn.Module:
    """The causal LM of a local Hugging Face folder: with its weights, or only its architecture
    (random weights, to be replaced by a checkpoint)."""
    import transformers

    from avkit.apps.video_llm.hub import from_pretrained

    _check_folder(folder)
    common = {"is_local": True, "offline": True, "trust_remote_code": False}
    if weights:
        return from_pretrained("language model", transformers.AutoModelForCausalLM.from_pretrained, str(folder),
                               **common)
    config = from_pretrained("config", transformers.AutoConfig.from_pretrained, str(folder), **common)
    try:
        return transformers.AutoModelForCausalLM.from_config(config, trust_remote_code=False)
    except ValueError as err:
        raise AvkitError(f"{folder}: not a causal language model ({str(err).splitlines()[0]})") from None


def special_ids(tokenizer: Any) -> tuple[int, int, int]:
    """``(bos, eos, pad)`` ids: a missing bos or pad falls back to eos (GPT-2 style tokenizers)."""
    eos = tokenizer.eos_token_id
    if eos is None:
        raise AvkitError(f"{type(tokenizer).__name__} has no end-of-sequence token: the captioner needs one")
    bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else eos
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    return int(bos), int(eos), int(pad)


def tied_keys(lm: nn.Module) -> set[str]:
    """State-dict keys that are tied to another (a tied output head), so never missing for real."""
    keys = getattr(lm, "_tied_weights_keys", None) or []
    if isinstance(keys, dict):
        keys = list(keys)
    return set(keys) | ({"lm_head.weight"} if getattr(lm.config, "tie_word_embeddings", False) else set())


def save_folder(folder: Path, lm: Any, config: Any, tokenizer: Any) -> None:
    """Write a Hugging Face folder (config, tokenizer, weights when ``lm``), swapped in whole
    (:class:`~avkit.staging.StagedOutput`): a reader never sees half a folder."""
    from transformers.utils import logging as hf_logging

    from avkit.staging import StagedOutput

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # no "Writing model shards" bar in the training log
    try:
        with StagedOutput(folder) as staged:
            if lm is not None:
                lm.save_pretrained(str(staged.path))
            else:
                config.save_pretrained(str(staged.path))
            tokenizer.save_pretrained(str(staged.path))
    finally:
        if bars:
            hf_logging.enable_progress_bar()


class CaptionTokens:
    """Token ids of captions: ``caption_ids [B, L]`` (caption then ``<eos>``, right-padded) and the
    mask; :meth:`decode` turns generated ids back into a sentence."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.bos, self.eos, self.pad = special_ids(tokenizer)

    def __call__(self, captions: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        ids = [self.tokenizer(c, add_special_tokens=False)["input_ids"] + [self.eos] for c in captions]
        length = max(len(x) for x in ids)
        out = torch.full((len(ids), length), self.pad, dtype=torch.long)
        mask = torch.zeros((len(ids), length), dtype=torch.bool)
        for i, x in enumerate(ids):
            out[i, :len(x)] = torch.tensor(x)
            mask[i, :len(x)] = True
        return out, mask

    def decode(self, ids: Sequence[int]) -> str:
        from avkit.apps.captioning.data import detokenize

        return detokenize(self.tokenizer.decode([int(i) for i in ids], skip_special_tokens=True))
