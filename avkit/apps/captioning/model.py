"""The avkit captioner: encoder tokens -> two-layer MLP projector -> a causal language model.

``Captioner(lm, video_encoder=..., audio_encoder=...)`` takes a batch dict (``video [B,3,T,H,W]``,
optionally ``audio [B,S]`` or ``spectrogram [B,1,F,T]``, ``caption_ids [B,L]``) and feeds the
language model ``inputs_embeds``:

```
[<bos>, prompt words...] [video tokens...] [audio tokens...] [caption words..., <eos>] [<pad>...]
 label -100              -100              -100              caption ids             -100
```

- **Visual tokens**: ``video_encoder.forward_tokens(video)`` ``[B, N, D]`` of any avkit video
  encoder (one pooled token, ``forward_features``, for a family without tokens);
  **audio tokens** likewise from an avkit audio encoder on the log-mel spectrogram (computed from
  the waveform by ``audio_features``, the encoder's own front end for AST).
- Each modality has its own **projector**: ``Linear(D, H) -> GELU -> Linear(H, H)`` into the
  language model's embedding width ``H`` (LLaVA-1.5).
- **Loss** (:func:`caption_loss`): next-token cross-entropy on the caption tokens and ``<eos>``
  only: logits at position ``t`` predict the label at ``t + 1``; prompt, encoder tokens and
  padding are ``-100``. The mean is over caption tokens in the batch.
- **Decoding** (:meth:`Captioner.generate`): ``lm.generate(inputs_embeds=prefix)`` greedy or
  beam search with the KV cache; the prefix is the same length for every clip, so batches need
  no left padding.

The language model is any Hugging Face causal LM (``AutoModelForCausalLM``): built from a config
for training here (:func:`small_lm`), or loaded from a local folder. **LoRA** (:func:`add_lora`):
low-rank adapters ``W x + (alpha / r) B A x`` on the attention projections, with ``B = 0`` at
the start so the adapted model equals the base one; :func:`merge_lora` folds them back into plain
``nn.Linear`` weights (for ``save_pretrained``).

Freezing: :meth:`Captioner.set_trainable` says which parts learn; frozen encoders stay in eval
mode (BatchNorm statistics fixed) whatever ``train()`` is called with.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from avkit.errors import AvkitError

IGNORE = -100
LORA_TARGETS = ("q_proj", "v_proj", "c_attn")  # Llama / Mistral / Qwen names and GPT-2's fused projection


class Projector(nn.Sequential):
    """Two-layer MLP from encoder width ``in_dim`` to the language model's width ``out_dim``."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__(nn.Linear(in_dim, out_dim), nn.GELU(), nn.Linear(out_dim, out_dim))


# ---------------------------------------------------------------------------------------------
# LoRA


class LoRALinear(nn.Module):
    """``base(x) + scale * (x A^T) B^T`` with the base layer frozen; ``B`` starts at zero."""

    base: Any  # nn.Linear or GPT-2's Conv1D: both have .weight

    def __init__(self, base: Any, rank: int, alpha: float) -> None:
        super().__init__()
        weight = base.weight
        # GPT-2's Conv1D stores weight as [in, out]; nn.Linear as [out, in].
        self.transposed = not isinstance(base, nn.Linear)
        out_f, in_f = (weight.shape[1], weight.shape[0]) if self.transposed else weight.shape
        self.base = base
        for p in self.base.parameters():
            p.requires_grad_(False)
        self.rank = int(rank)
        self.scale = float(alpha) / self.rank
        self.lora_a = nn.Parameter(torch.empty(self.rank, in_f, dtype=weight.dtype))
        self.lora_b = nn.Parameter(torch.zeros(out_f, self.rank, dtype=weight.dtype))
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (x @ self.lora_a.t() @ self.lora_b.t()) * self.scale

    def merged(self) -> nn.Module:
        """The base layer with the adapter folded into its weight (a copy)."""
        import copy

        layer: Any = copy.deepcopy(self.base)
        delta = (self.lora_b @ self.lora_a) * self.scale  # [out, in]
        with torch.no_grad():
            layer.weight.add_(delta.t() if self.transposed else delta)
        for p in layer.parameters():
            p.requires_grad_(True)
        return layer


def add_lora(lm: nn.Module, rank: int = 8, alpha: float = 16.0, targets: Sequence[str] = LORA_TARGETS) -> list[str]:
    """Wrap every linear layer of ``lm`` whose name ends in one of ``targets`` with :class:`LoRALinear`;
    returns the wrapped names (AvkitError when none matches)."""
    if rank < 1:
        raise AvkitError(f"LoRA rank must be >= 1, got {rank}")
    names = []
    for name, module in list(lm.named_modules()):
        leaf = name.rsplit(".", 1)[-1]
        if leaf in targets and hasattr(module, "weight") and module.weight.ndim == 2:
            parent = lm.get_submodule(name.rsplit(".", 1)[0]) if "." in name else lm
            setattr(parent, leaf, LoRALinear(module, rank, alpha))
            names.append(name)
    if not names:
        raise AvkitError(f"no layer named {', '.join(targets)} in {type(lm).__name__} for LoRA adapters "
                         "(set task_options.lora_targets)")
    return names


def merge_lora(lm: nn.Module) -> nn.Module:
    """A copy of ``lm`` with every :class:`LoRALinear` replaced by its merged base layer."""
    import copy

    lm = copy.deepcopy(lm)
    for name, module in list(lm.named_modules()):
        if isinstance(module, LoRALinear):
            parent_name, _, leaf = name.rpartition(".")
            parent = lm.get_submodule(parent_name) if parent_name else lm
            setattr(parent, leaf, module.merged())
    return lm


# ---------------------------------------------------------------------------------------------
# language models


def small_lm(vocab_size: int, *, kind: str = "llama", hidden_size: int = 128, num_layers: int = 2,
             num_heads: int = 4, intermediate_size: int | None = None, max_positions: int = 256,
             bos_token_id: int = 1, eos_token_id: int = 2, pad_token_id: int = 0) -> nn.Module:
    """A small randomly initialised Hugging Face causal LM (``llama`` or ``gpt2``) from a config."""
    import transformers

    inter = intermediate_size or 2 * hidden_size
    ids: dict[str, Any] = {"bos_token_id": bos_token_id, "eos_token_id": eos_token_id, "pad_token_id": pad_token_id}
    config: Any
    if kind == "llama":
        config = transformers.LlamaConfig(vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=inter,
                                          num_hidden_layers=num_layers, num_attention_heads=num_heads,
                                          num_key_value_heads=num_heads, max_position_embeddings=max_positions,
                                          tie_word_embeddings=True, **ids)
    elif kind == "gpt2":
        config = transformers.GPT2Config(vocab_size=vocab_size, n_embd=hidden_size, n_layer=num_layers,
                                         n_head=num_heads, n_inner=inter, n_positions=max_positions,
                                         resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, **ids)
    else:
        raise AvkitError(f"task_options.lm.kind must be llama or gpt2, got {kind!r}")
    return transformers.AutoModelForCausalLM.from_config(config)


def caption_loss(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean next-token cross-entropy over the positions whose label is not ``-100``.

    Returns ``(mean loss, per-sequence loss sums [B], per-sequence token counts [B])``. Logits at
    position ``t`` are scored against ``labels[t + 1]``; nothing else is.
    """
    pred = logits[:, :-1].float()
    target = labels[:, 1:]
    per_token = F.cross_entropy(pred.reshape(-1, pred.shape[-1]), target.reshape(-1), ignore_index=IGNORE,
                                reduction="none").view(target.shape)
    mask = target != IGNORE
    sums = (per_token * mask).sum(dim=1)
    counts = mask.sum(dim=1)
    return sums.sum() / counts.sum().clamp(min=1), sums, counts


# ---------------------------------------------------------------------------------------------
# the model


class Captioner(nn.Module):
    """Encoders + projectors + causal LM (module docstring). ``forward(batch)`` -> dict with
    ``loss`` (mean over caption tokens), ``loss_sum`` / ``tokens`` / ``correct`` per clip, ``logits``
    and ``labels``."""

    takes_batch = True
    lm: Any  # a transformers causal LM (get_input_embeddings, generate)
    video_encoder: Any  # avkit encoders: out_dim, forward_tokens / forward_features
    audio_encoder: Any
    video_projector: Any
    audio_projector: Any

    def __init__(self, lm: Any, *, prompt_ids: Sequence[int], bos_id: int, eos_id: int, pad_id: int,
                 video_encoder: Any = None, audio_encoder: Any = None,
                 audio_features: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 prefer_waveform: bool = False) -> None:
        super().__init__()
        self.lm = lm
        hidden = int(lm.get_input_embeddings().embedding_dim)
        self.hidden_size = hidden
        self.video_encoder = video_encoder
        self.audio_encoder = audio_encoder
        self.video_projector = Projector(int(video_encoder.out_dim), hidden) if video_encoder is not None else None
        self.audio_projector = Projector(int(audio_encoder.out_dim), hidden) if audio_encoder is not None else None
        self.audio_features = audio_features
        self.prefer_waveform = prefer_waveform
        self.register_buffer("prompt_ids", torch.tensor([bos_id, *prompt_ids], dtype=torch.long), persistent=False)
        self.bos_id, self.eos_id, self.pad_id = int(bos_id), int(eos_id), int(pad_id)
        self._frozen: list[nn.Module] = []

    # -- what learns -----------------------------------------------------------------------------
    def set_trainable(self, *, lm: bool | str, projectors: bool = True, video_encoder: bool = True,
                      audio_encoder: bool = True) -> None:
        """Freeze or unfreeze the parts; ``lm="lora"`` trains only the LoRA adapters of the LM."""
        parts = {"video_encoder": video_encoder, "audio_encoder": audio_encoder,
                 "video_projector": projectors, "audio_projector": projectors}
        self._frozen = []
        for name, on in parts.items():
            module = getattr(self, name)
            if module is None:
                continue
            for p in module.parameters():
                p.requires_grad_(bool(on))
            if not on and name.endswith("encoder"):
                self._frozen.append(module)
        for name, p in self.lm.named_parameters():
            p.requires_grad_(("lora_" in name) if lm == "lora" else bool(lm))
        if lm is False:
            self._frozen.append(self.lm)
        self.train(self.training)

    def train(self, mode: bool = True) -> Captioner:
        super().train(mode)
        for m in self._frozen:
            m.eval()
        return self

    @property
    def modalities(self) -> list[str]:
        return [m for m, e in (("video", self.video_encoder), ("audio", self.audio_encoder)) if e is not None]

    # -- inputs ----------------------------------------------------------------------------------
    def spectrogram(self, batch: Mapping[str, Any]) -> torch.Tensor:
        use_wave = self.prefer_waveform and batch.get("audio") is not None
        if batch.get("spectrogram") is not None and not use_wave:
            return batch["spectrogram"]
        if batch.get("audio") is None:
            raise AvkitError("the audio encoder needs batch['audio'] [B,S] or batch['spectrogram'] [B,1,F,T]")
        if self.audio_features is None:
            raise AvkitError("the captioner has no audio_features to turn the waveform into a spectrogram")
        wave = batch["audio"]
        with torch.autocast(wave.device.type, enabled=False):
            spec = self.audio_features(wave.float())
        return spec

    @staticmethod
    def _tokens(encoder: Any, x: torch.Tensor) -> torch.Tensor:
        try:
            tokens = encoder.forward_tokens(x)
        except (NotImplementedError, AttributeError):
            tokens = encoder.forward_features(x).unsqueeze(1)  # a family without tokens: one pooled token
        if tokens.ndim != 3:
            raise AvkitError(f"{type(encoder).__name__} tokens must be [B, N, D], got {tuple(tokens.shape)}")
        return tokens

    def prefix(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """``[B, P, H]`` embeddings: ``<bos>`` + prompt, projected video tokens, projected audio tokens."""
        parts = []
        batch_size = None
        if self.video_encoder is not None:
            if batch.get("video") is None:
                raise AvkitError("the captioner's video encoder needs batch['video'] [B,3,T,H,W]")
            parts.append(self.video_projector(self._tokens(self.video_encoder, batch["video"])))
            batch_size = parts[-1].shape[0]
        if self.audio_encoder is not None:
            parts.append(self.audio_projector(self._tokens(self.audio_encoder, self.spectrogram(batch))))
            batch_size = parts[-1].shape[0]
        if batch_size is None:  # text only (language-model pre-training)
            batch_size = int(batch["caption_ids"].shape[0]) if batch.get("caption_ids") is not None else 1
        embed = self.lm.get_input_embeddings()
        prompt = embed(self.prompt_ids.to(embed.weight.device)).unsqueeze(0).expand(batch_size, -1, -1)
        return torch.cat([prompt] + [p.to(prompt.dtype) for p in parts], dim=1)

    def inputs(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(inputs_embeds [B, P+L, H], attention_mask [B, P+L], labels [B, P+L])`` for training.

        ``batch["caption_ids"]`` ``[B, L]`` holds each caption's ids then ``<eos>``, right-padded
        with ``<pad>``; ``batch["caption_mask"]`` marks the real ones.
        """
        ids = batch["caption_ids"]
        mask = batch.get("caption_mask")
        if mask is None:
            mask = ids != self.pad_id
        prefix = self.prefix(batch)
        b, p = prefix.shape[:2]
        caption = self.lm.get_input_embeddings()(ids)
        embeds = torch.cat([prefix, caption.to(prefix.dtype)], dim=1)
        attention = torch.cat([torch.ones(b, p, dtype=torch.long, device=ids.device), mask.long()], dim=1)
        labels = torch.cat([torch.full((b, p), IGNORE, dtype=torch.long, device=ids.device),
                            ids.masked_fill(~mask.bool(), IGNORE)], dim=1)
        return embeds, attention, labels

    def forward(self, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        embeds, attention, labels = self.inputs(batch)
        logits = self.lm(inputs_embeds=embeds, attention_mask=attention).logits
        loss, sums, counts = caption_loss(logits, labels)
        with torch.no_grad():
            hit = (logits[:, :-1].argmax(-1) == labels[:, 1:]) & (labels[:, 1:] != IGNORE)
        return {"loss": loss, "loss_sum": sums.detach(), "tokens": counts, "correct": hit.sum(dim=1),
                "logits": logits, "labels": labels}

    # -- decoding --------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, batch: Mapping[str, Any], *, max_new_tokens: int = 40, num_beams: int = 1) -> list[list[int]]:
        """Token ids of each clip's caption (without ``<eos>``): greedy (``num_beams=1``) or beam search."""
        from transformers import GenerationConfig

        if max_new_tokens < 1 or num_beams < 1:
            raise AvkitError(f"max_new_tokens and num_beams must be >= 1, got {max_new_tokens}, {num_beams}")
        prefix = self.prefix(batch)
        attention = torch.ones(prefix.shape[:2], dtype=torch.long, device=prefix.device)
        config = GenerationConfig(max_new_tokens=int(max_new_tokens), do_sample=False, num_beams=int(num_beams),
                                  eos_token_id=self.eos_id, pad_token_id=self.pad_id, bos_token_id=self.bos_id,
                                  temperature=None, top_p=None, top_k=None)
        out = self.lm.generate(inputs_embeds=prefix, attention_mask=attention, generation_config=config)
        result = []
        for row in out.tolist():
            ids = []
            for t in row:
                if t == self.eos_id:
                    break
                if t != self.pad_id:
                    ids.append(int(t))
            result.append(ids)
        return result
