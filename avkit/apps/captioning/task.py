"""``task: captioning``: train the avkit captioner (:mod:`avkit.apps.captioning.model`) with ``avkit train``.

Stages (``task_options.stage``), as in LLaVA, each its own run that starts from the one before:

- ``lm``: the language model alone, on the training captions (text only, no video decoded). With
  no pretrained language model offline, this gives stage 1 a model that already writes the
  captions' sentences; ``RUN/language_model/`` is then a Hugging Face folder (config, weights,
  word-level tokenizer).
- ``1``: **projector only** on the language model: the LM is frozen, the projectors learn, and
  the encoders learn too unless ``train_video_encoder`` / ``train_audio_encoder`` are false (with
  no pretrained weights here a frozen random encoder knows nothing; ``video_init`` starts the video
  encoder from a classification run).
- ``2``: projectors **and the language model** (all of it, or ``lora: R`` rank-R adapters on its
  attention projections), starting from a stage-1 run (``model.init``).

Recipe keys: ``model.video`` / ``video_options`` and ``model.audio`` / ``audio_options`` name the
encoders (any avkit video encoder; any avkit audio encoder, fed the log-mel spectrogram of the
clip's window; ``model.audio: ""`` = no audio tokens); ``model.init`` = a previous captioning run
whose weights are loaded (all of them must fit). ``data.*`` = frames, fps, size, crops, cache,
sample rate, batch size. ``task_options``:

- ``stage`` (``lm`` | 1 | 2), ``sources`` (generator dataset folders; default ``[data.source]``),
  ``val_sources`` (default: ``sources``; both filtered by ``data.train_split`` / ``val_split``);
- ``language_model``: ``""`` = a new ``lm`` (``{kind: llama|gpt2, hidden_size, num_layers,
  num_heads, intermediate_size}``) with a word-level tokenizer built from the training captions
  and the prompt; a local Hugging Face folder (``AutoModelForCausalLM`` / ``AutoTokenizer``,
  ``local_files_only``, no remote code); or a captioning run directory (its
  ``language_model/`` folder and its best weights). With ``model.init`` and no ``language_model``,
  the init run's own language model and tokenizer are used;
- ``prompt`` ("Describe the clip."), ``video_init`` (a classification run or weights file for the
  video encoder), ``train_video_encoder`` / ``train_audio_encoder`` (true), ``lora`` (0 = train
  the whole LM in stage 2), ``lora_alpha`` (16), ``lora_targets`` (q_proj, v_proj, c_attn);
- ``audio_features``: options of avkit's ``LogMel`` for the CNN audio encoders (e.g. ``{n_mels: 32,
  hop_length: 320}``; default: the engine's 64 bins every 10 ms; AST uses its own fbank);
- validation: ``val_generate`` (true: greedy captions of the validation clips every epoch,
  scored with BLEU-4, CIDEr-D and attribute accuracy), ``max_new_tokens`` (40), ``num_beams`` (1).

``best.safetensors`` is picked by ``val_cider`` (``val_loss`` in the ``lm`` stage). The run
directory also holds ``language_model/`` (what ``avkit caption`` rebuilds the model from: LM
config and tokenizer, plus at the end the best LM weights, LoRA merged) and ``val_captions.jsonl``
(the best epoch's generated captions).
"""
from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
import torch.nn as nn

from avkit.engine.config import Config, load_config
from avkit.engine.task import Task
from avkit.errors import AvkitError, MediaError

DEFAULTS: dict[str, Any] = {
    "stage": 1, "sources": [], "val_sources": [], "language_model": "", "lm": {}, "prompt": "Describe the clip.",
    "video_init": "", "train_video_encoder": True, "train_audio_encoder": True, "lora": 0, "lora_alpha": 16.0,
    "lora_targets": ["q_proj", "v_proj", "c_attn"], "audio_features": {}, "val_generate": True, "max_new_tokens": 40, "num_beams": 1,
}
LM_DEFAULTS = {"kind": "llama", "hidden_size": 128, "num_layers": 2, "num_heads": 4, "intermediate_size": 256}
LM_FOLDER = "language_model"
STAGES = ("lm", "1", "2")


def _stage(value: Any) -> str:
    stage = str(value).strip().lower()
    if stage not in STAGES:
        raise AvkitError(f"task_options.stage must be lm, 1 or 2, got {value!r}")
    return stage


def _is_caption_run(path: Path) -> bool:
    return path.is_dir() and (path / "config.yaml").is_file() and (path / LM_FOLDER).is_dir()


def _run_weights(run: Path) -> Path:
    for name in ("best.safetensors", "last.safetensors"):
        if (run / name).is_file():
            return run / name
    raise AvkitError(f"{run}: captioning run without best.safetensors or last.safetensors (has it finished an epoch?)")


def _check_folder(folder: Path) -> None:
    if not (folder / "config.json").is_file():
        raise AvkitError(f"{folder}: not a Hugging Face model folder (no config.json)")


def _load_tokenizer(folder: Path) -> Any:
    """The tokenizer of a local Hugging Face folder (never the hub, never remote code)."""
    import transformers

    from avkit.apps.video_llm.model import _load

    _check_folder(folder)
    return _load("tokenizer", transformers.AutoTokenizer.from_pretrained, str(folder), is_local=True, offline=True,
                 trust_remote_code=False)


def _load_lm(folder: Path, *, weights: bool) -> nn.Module:
    """The causal LM of a local Hugging Face folder: with its weights, or only its architecture
    (random weights, to be replaced by a checkpoint). Never remote code, never the hub."""
    import transformers

    from avkit.apps.video_llm.model import _load

    _check_folder(folder)
    common = {"is_local": True, "offline": True, "trust_remote_code": False}
    if weights:
        return _load("language model", transformers.AutoModelForCausalLM.from_pretrained, str(folder), **common)
    config = _load("config", transformers.AutoConfig.from_pretrained, str(folder), **common)
    try:
        return transformers.AutoModelForCausalLM.from_config(config, trust_remote_code=False)
    except ValueError as err:
        raise AvkitError(f"{folder}: not a causal language model ({str(err).splitlines()[0]})") from None


def _special_ids(tokenizer: Any) -> tuple[int, int, int]:
    """``(bos, eos, pad)`` ids: a missing bos or pad falls back to eos (GPT-2 style tokenizers)."""
    eos = tokenizer.eos_token_id
    if eos is None:
        raise AvkitError(f"{type(tokenizer).__name__} has no end-of-sequence token: the captioner needs one")
    bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else eos
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    return int(bos), int(eos), int(pad)


def save_folder(folder: Path, lm: nn.Module | None, config: Any, tokenizer: Any) -> None:
    """Write a Hugging Face folder (config, tokenizer, weights when ``lm``) in one rename."""
    from transformers.utils import logging as hf_logging

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # no "Writing model shards" bar in the training log
    try:
        if lm is not None:
            lm.save_pretrained(str(tmp))
        else:
            config.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        old = folder.with_name(f".{folder.name}.old")
        if old.exists():
            shutil.rmtree(old)
        if folder.exists():
            folder.rename(old)
        tmp.rename(folder)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        if bars:
            hf_logging.enable_progress_bar()
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


class _Captions:
    """Token ids of captions: ``caption_ids [B, L]`` (caption then ``<eos>``, right-padded) and the mask."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.bos, self.eos, self.pad = _special_ids(tokenizer)

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


class CaptioningTask(Task):
    """Video (+ audio) captioning in three stages (module docstring)."""

    name = "captioning"
    train_columns = ("loss", "token_acc")
    val_columns = ("loss", "token_acc", "bleu4", "cider", "object", "colour", "motion", "sound")
    best_key = "val_cider"
    higher_is_better = True

    def __init__(self, cfg: Config) -> None:
        super().__init__(cfg)
        opts = dict(cfg.task_options)
        unknown = sorted(set(opts) - set(DEFAULTS))
        if unknown:
            raise AvkitError(f"unknown task_options {unknown} for task captioning (valid: {sorted(DEFAULTS)})")
        self.opts = {**DEFAULTS, **opts}
        self.stage = _stage(self.opts["stage"])
        lm_opts = dict(self.opts["lm"] or {})
        bad = sorted(set(lm_opts) - set(LM_DEFAULTS))
        if bad:
            raise AvkitError(f"unknown task_options.lm keys {bad} (valid: {sorted(LM_DEFAULTS)})")
        self.lm_opts = {**LM_DEFAULTS, **lm_opts}
        if self.stage == "lm":
            self.best_key, self.higher_is_better = "val_loss", False
        if cfg.model.linear_probe or cfg.model.freeze_backbone:
            raise AvkitError("model.linear_probe / freeze_backbone are for classifiers; the captioner freezes "
                             "with task_options.stage and train_video_encoder / train_audio_encoder")
        if self.stage != "lm" and not (cfg.model.video or cfg.model.audio):
            raise AvkitError("the captioner needs model.video (and optionally model.audio) in stages 1 and 2")
        if self.stage == "2" and not cfg.model.init:
            raise AvkitError("stage 2 starts from a stage-1 run: set model.init to its run directory")
        self.use_audio = bool(cfg.model.audio) and self.stage != "lm"
        self.tokenizer: Any = None
        self.captions: _Captions | None = None
        self.lm: nn.Module | None = None  # made by build_model (after the trainer seeds torch)
        self.make_lm: Callable[[], nn.Module] | None = None
        self.lm_weights: Path | None = None  # a run whose best "lm." weights go into the LM
        self.train_set: Any = None
        self.val_set: Any = None
        self.lora_names: list[str] = []

    # -- data ------------------------------------------------------------------------------------
    def _sources(self, key: str) -> list[str]:
        value = self.opts[key]
        if isinstance(value, str):
            value = [value] if value else []
        return [str(v) for v in value]

    def datasets(self) -> tuple[Any, Any]:
        from avkit.apps.captioning.data import CaptionDataset, read_sources

        data = self.cfg.data
        sources = self._sources("sources") or ([data.source] if data.source else [])
        if not sources:
            raise AvkitError("no captioned data: set task_options.sources (generator dataset folders) or data.source")
        val_sources = self._sources("val_sources") or ([data.val_source] if data.val_source else sources)
        media = self.stage != "lm"
        train_records = read_sources(sources, data.train_split or None)
        train = CaptionDataset(train_records, data, train=True, audio=self.use_audio, media=media,
                               seed=self.cfg.train.seed)
        val = None
        if data.val_split or data.val_source or self._sources("val_sources"):
            val_records = read_sources(val_sources, data.val_split or None, allow_empty=True)
            if val_records:
                val = CaptionDataset(val_records, data, train=False, audio=self.use_audio, media=media,
                                     seed=self.cfg.train.seed)
        self.train_set, self.val_set = train, val
        return train, val

    def setup(self, train_set: Any) -> None:
        """Load or build the language model and its tokenizer (the captions need the tokenizer)."""
        self.train_set = train_set
        self.make_lm, self.tokenizer, self.lm_weights = self.language_model(getattr(train_set, "captions", []))
        self.captions = _Captions(self.tokenizer)

    def language_model(self, captions: Sequence[str]) -> tuple[Callable[[], nn.Module], Any, Path | None]:
        """``(LM builder, tokenizer, run whose LM weights to load)`` as the options say (module
        docstring). The LM itself is made in :meth:`build_model`, after the trainer seeds torch,
        so a new LM's random weights depend on ``train.seed`` only."""
        from avkit.apps.captioning.data import build_tokenizer
        from avkit.apps.captioning.model import small_lm

        source = str(self.opts["language_model"] or "")
        if not source and self.cfg.model.init and _is_caption_run(Path(self.cfg.model.init)):
            folder = Path(self.cfg.model.init) / LM_FOLDER
            return (lambda: _load_lm(folder, weights=False)), _load_tokenizer(folder), None  # init replaces the weights
        if not source:
            if not captions:
                raise AvkitError("no training captions to build the tokenizer from")
            tok = build_tokenizer(list(captions) + [str(self.opts["prompt"])])
            o = self.lm_opts
            bos, eos, pad = _special_ids(tok)

            def new() -> nn.Module:
                return small_lm(len(tok), kind=o["kind"], hidden_size=int(o["hidden_size"]),
                                num_layers=int(o["num_layers"]), num_heads=int(o["num_heads"]),
                                intermediate_size=int(o["intermediate_size"]), bos_token_id=bos, eos_token_id=eos,
                                pad_token_id=pad)

            return new, tok, None
        path = Path(source).expanduser()
        if _is_caption_run(path):
            folder = path / LM_FOLDER
            return (lambda: _load_lm(folder, weights=False)), _load_tokenizer(folder), _run_weights(path)
        if not path.is_dir():
            raise AvkitError(f"{source}: task_options.language_model is not a folder (a Hugging Face model "
                             "folder or a captioning run directory)")
        return (lambda: _load_lm(path, weights=True)), _load_tokenizer(path), None

    def collate(self, items: Sequence[dict[str, Any]]) -> dict[str, Any]:
        from avkit.data.dataset import collate

        batch = collate(items)
        assert self.captions is not None, "setup() builds the tokenizer before batches are made"
        batch["caption_ids"], batch["caption_mask"] = self.captions(batch["caption"])
        return batch

    def val_collate(self, items: Sequence[dict[str, Any]]) -> dict[str, Any]:
        batch = self.collate(items)
        batch["kept"] = torch.ones(len(items), dtype=torch.bool)
        return batch

    # -- model -----------------------------------------------------------------------------------
    def build_model(self, log: Callable[[str], None] | None = None, *, pretrained: bool = True) -> nn.Module:
        """The captioner of the recipe. ``pretrained=False`` skips every starting weight
        (``video_init``, the language model's run weights, ``model.init``): for rebuilding a
        trained run, whose checkpoint replaces them."""
        from avkit.apps.captioning.model import Captioner, add_lora
        from avkit.engine.checkpoint import load_into, load_weights
        from avkit.models import create_model, model_entry
        from avkit.models.audiovisual import default_audio_features

        if self.make_lm is None or self.tokenizer is None:
            raise AvkitError("setup() must find the language model before build_model()")
        self.lm = self.make_lm()
        say = log or (lambda msg: None)
        m = self.cfg.model
        video = audio = features = None
        prefer_wave = False
        if self.stage != "lm":
            if m.video:
                if model_entry(m.video).modality != "video":
                    raise AvkitError(f"model.video {m.video!r} is not a video encoder")
                video = create_model(m.video, **{k: v for k, v in m.video_options.items() if k != "num_classes"})
                if self.opts["video_init"] and pretrained:
                    r = load_into(video, load_weights(self.opts["video_init"]), what=str(self.opts["video_init"]))
                    say(f"video encoder from {self.opts['video_init']}: {r['loaded']} tensors loaded, "
                        f"{len(r['skipped'])} skipped, {len(r['missing'])} left at initial values")
            if m.audio:
                if model_entry(m.audio).modality != "audio":
                    raise AvkitError(f"model.audio {m.audio!r} is not an audio encoder")
                audio = create_model(m.audio, **{k: v for k, v in m.audio_options.items() if k != "num_classes"})
                prefer_wave = hasattr(audio, "feature_extractor")
                if prefer_wave:  # AST: its own Kaldi fbank front end
                    features = default_audio_features(audio)
                else:
                    from avkit.data.audio_features import LogMel

                    options = {"sample_rate": int(self.cfg.data.sample_rate), **dict(self.opts["audio_features"] or {})}
                    try:
                        features = LogMel(**options)
                    except TypeError as err:
                        raise AvkitError(f"task_options.audio_features: {err}") from None
        bos, eos, pad = _special_ids(self.tokenizer)
        prompt_ids = self.tokenizer(str(self.opts["prompt"]), add_special_tokens=False)["input_ids"]
        model = Captioner(self.lm, prompt_ids=prompt_ids, bos_id=bos, eos_id=eos, pad_id=pad, video_encoder=video,
                          audio_encoder=audio, audio_features=features, prefer_waveform=prefer_wave)
        if pretrained and self.lm_weights is not None:
            state = {k[3:]: v for k, v in load_weights(self.lm_weights).items() if k.startswith("lm.")}
            missing, unexpected = model.lm.load_state_dict(state, strict=False)
            missing = [k for k in missing if k not in _tied(model.lm)]
            if missing or unexpected or not state:
                raise AvkitError(f"{self.lm_weights}: its language model does not fit ({len(missing)} missing, "
                                 f"{len(unexpected)} unexpected tensors)")
            say(f"language model from {self.lm_weights} ({len(state)} tensors)")
        if pretrained and m.init:
            r = load_into(model, load_weights(m.init), what=m.init)
            missing = [k for k in r["missing"] if k not in {f"lm.{t}" for t in _tied(model.lm)}]
            if missing and _is_caption_run(Path(m.init)):
                raise AvkitError(f"{m.init}: a captioning run with another architecture ({len(missing)} tensors of "
                                 f"this model missing, e.g. {missing[0]}); use the same encoders and language model")
            say(f"init from {m.init}: {r['loaded']} tensors loaded, {len(r['skipped'])} skipped, "
                f"{len(missing)} left at initial values")
        lm_mode: bool | str = True
        if self.stage == "1":
            lm_mode = False
        elif self.stage == "2" and int(self.opts["lora"]) > 0:
            self.lora_names = add_lora(model.lm, int(self.opts["lora"]), float(self.opts["lora_alpha"]),
                                       tuple(self.opts["lora_targets"]))
            lm_mode = "lora"
            say(f"LoRA rank {int(self.opts['lora'])} on {len(self.lora_names)} layers")
        model.set_trainable(lm=lm_mode, projectors=True, video_encoder=bool(self.opts["train_video_encoder"]),
                            audio_encoder=bool(self.opts["train_audio_encoder"]))
        return model

    # -- steps -----------------------------------------------------------------------------------
    def train_step(self, model: nn.Module, batch: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, float], int]:
        out = model(batch)
        n = int(out["tokens"].shape[0])
        acc = (out["correct"].float() / out["tokens"].clamp(min=1).float()).sum()
        return out["loss"], {"loss": float(out["loss"].detach()) * n, "token_acc": float(acc)}, n

    def val_outputs(self, model: nn.Module, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        from avkit.engine.checkpoint import unwrap

        out = model(batch)
        result = {"loss_sum": out["loss_sum"].float(), "tokens": out["tokens"], "correct": out["correct"],
                  "index": batch["index"]}
        if self.stage != "lm" and self.opts["val_generate"]:
            limit = int(self.opts["max_new_tokens"])
            ids = unwrap(model).generate(batch, max_new_tokens=limit, num_beams=int(self.opts["num_beams"]))
            gen = torch.full((len(ids), limit), -1, dtype=torch.long)
            for i, x in enumerate(ids):
                gen[i, :len(x)] = torch.tensor(x, dtype=torch.long)
            result["generated"] = gen
        return result

    def decode(self, ids: torch.Tensor | Sequence[int]) -> str:
        assert self.captions is not None
        values = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        return self.captions.decode([i for i in values if i >= 0])

    def val_metrics(self, outputs: dict[str, torch.Tensor]) -> tuple[dict[str, Any], dict[str, Any]]:
        from avkit.apps.captioning.metrics import caption_scores

        tokens = outputs["tokens"].sum().clamp(min=1).float()
        metrics: dict[str, Any] = {"val_loss": float(outputs["loss_sum"].sum() / tokens),
                                   "val_token_acc": float(outputs["correct"].sum().float() / tokens)}
        extras: dict[str, Any] = {}
        if "generated" in outputs:
            records = [self.val_set.records[int(i)] for i in outputs["index"]]
            texts = [self.decode(g) for g in outputs["generated"]]
            scores = caption_scores(texts, [r.caption for r in records], [r.attributes for r in records])
            metrics["val_bleu4"], metrics["val_cider"] = scores["bleu4"], scores["cider"]
            for attr, a in scores["attributes"].items():
                metrics[f"val_{attr}"] = a["accuracy"] if a["count"] else None
            extras["captions"] = [{"index": int(i), "caption": t, "reference": r.caption}
                                  for i, t, r in zip(outputs["index"].tolist(), texts, records)]
        return metrics, extras

    # -- run directory ---------------------------------------------------------------------------
    def meta(self) -> dict[str, Any]:
        return {"stage": self.stage, "prompt": str(self.opts["prompt"]), "modalities":
                [m for m, on in (("video", bool(self.cfg.model.video)), ("audio", self.use_audio)) if on]
                if self.stage != "lm" else [], "vocab_size": len(self.tokenizer) if self.tokenizer is not None else 0}

    def write_files(self, run_dir: Path) -> None:
        """``RUN/language_model/``: the LM's config and the tokenizer (weights are added at the end).
        On ``--resume`` the saved tokenizer must be the one this run would build."""
        folder = Path(run_dir) / LM_FOLDER
        saved = folder / "tokenizer.json"
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        if saved.is_file():
            if backend is not None and json.loads(saved.read_text()).get("model", {}).get("vocab") != json.loads(
                    backend.to_str()).get("model", {}).get("vocab"):
                raise AvkitError(f"{folder}: this run's tokenizer differs from the saved one (did the training "
                                 "captions change?); start a new run")
            return
        save_folder(folder, None, self.lm.config, self.tokenizer)

    def report(self, run_dir: Path, history: Sequence[dict[str, Any]], best_epoch: int,
               best_extras: dict[str, Any] | None) -> None:
        from avkit.apps.captioning.model import merge_lora
        from avkit.engine.checkpoint import load_weights
        from avkit.engine.report import write_report
        from avkit.utils import atomic_write_text

        run_dir = Path(run_dir)
        curves = ("loss", "token_acc") if self.stage == "lm" else ("loss", "token_acc", "cider")
        write_report(run_dir, history, columns=self.csv_columns(), best_key=self.best_key, best_epoch=best_epoch,
                     curves=curves)
        captions = (best_extras or {}).get("captions")
        if captions:
            atomic_write_text(run_dir / "val_captions.jsonl", "".join(json.dumps(c) + "\n" for c in captions))
        weights = run_dir / "best.safetensors"
        if weights.is_file() and self.lm is not None:  # the best LM as a plain Hugging Face folder
            state = {k[3:]: v for k, v in load_weights(weights).items() if k.startswith("lm.")}
            self.lm.load_state_dict(state, strict=False)
            save_folder(run_dir / LM_FOLDER, merge_lora(self.lm), None, self.tokenizer)

    def describe(self, row: Mapping[str, Any]) -> str:
        parts = [f"train loss {row['train_loss']:.4f}"]
        for key, fmt in (("val_loss", ".4f"), ("val_token_acc", ".3f"), ("val_bleu4", ".3f"), ("val_cider", ".3f"),
                         ("val_object", ".2f"), ("val_colour", ".2f"), ("val_motion", ".2f"), ("val_sound", ".2f")):
            if row.get(key) is not None:
                parts.append(f"{key.replace('_', ' ', 1)} {row[key]:{fmt}}")
        return ", ".join(parts)


def _tied(lm: nn.Module) -> set[str]:
    """State-dict keys that are tied to another (a tied output head), so never missing for real."""
    keys = getattr(lm, "_tied_weights_keys", None) or []
    if isinstance(keys, dict):
        keys = list(keys)
    return set(keys) | ({"lm_head.weight"} if getattr(lm.config, "tie_word_embeddings", False) else set())


# ---------------------------------------------------------------------------------------------
# a trained run, for `avkit caption` and the benchmark


@dataclass
class CaptionerRun:
    """A trained captioner loaded from its run directory (eval mode)."""

    model: Any
    task: CaptioningTask
    cfg: Config
    run_dir: Path
    device: torch.device

    @property
    def uses_audio(self) -> bool:
        return self.model.audio_encoder is not None

    def clip_batch(self, video: str | Path, start: float | None = None) -> tuple[dict[str, torch.Tensor], list[float]]:
        """The batch of one window of ``video`` (the run's frames, fps, size and audio); the window
        starts at ``start`` or is the centre of the video; also returns the frame times."""
        from avkit.apps.captioning.data import CaptionRecord, clip_window, read_window_audio
        from avkit.engine.build import clip_transform, short_side_of
        from avkit.io import VideoReader

        path = Path(video)
        if not path.exists():
            raise MediaError(path, "no such file")
        if not path.is_file():
            raise MediaError(path, "not a file")
        data = self.cfg.data
        rec = CaptionRecord(path=str(path), caption="", start=float(start or 0.0),
                            anchor="start" if start is not None else "random")
        with VideoReader(path) as reader:
            duration = reader.duration
            if duration is None or not duration > 0:
                raise MediaError(path, "unknown or zero video duration")
            if start is not None and not 0 <= start < duration:
                raise AvkitError(f"--start {start:g} s is outside the video (0-{duration:.3g} s)")
            w = clip_window(rec, float(duration), data.num_frames, data.fps)
            frames, _ = reader.frames_at(w.times, size=short_side_of(data, 1))
            batch: dict[str, torch.Tensor] = {"video": clip_transform(data, train=False)(frames).unsqueeze(0)}
            if self.uses_audio:
                batch["audio"] = read_window_audio(reader, w.start, data.num_frames / data.fps,
                                                   data.sample_rate).unsqueeze(0)
        return {k: v.to(self.device) for k, v in batch.items()}, [float(t) for t in w.times]

    @torch.no_grad()
    def caption_batch(self, batch: Mapping[str, torch.Tensor], *, num_beams: int = 1,
                      max_new_tokens: int = 40) -> list[str]:
        ids = self.model.generate(batch, max_new_tokens=max_new_tokens, num_beams=num_beams)
        return [self.task.decode(x) for x in ids]

    def caption(self, video: str | Path, *, start: float | None = None, num_beams: int = 1,
                max_new_tokens: int = 40) -> dict[str, Any]:
        """``{"video", "caption", "frame_times", "modalities", ...}`` for one video file."""
        batch, times = self.clip_batch(video, start)
        text = self.caption_batch(batch, num_beams=num_beams, max_new_tokens=max_new_tokens)[0]
        return {"video": str(video), "run": str(self.run_dir), "caption": text, "frame_times": times,
                "modalities": self.model.modalities, "num_beams": int(num_beams)}


def load_captioner(run_dir: str | Path, checkpoint: str = "best", device: str | None = "auto") -> CaptionerRun:
    """Rebuild the captioner of ``run_dir`` from ``config.yaml`` and ``language_model/`` and load
    its weights strictly (no starting weights are read: the checkpoint holds them all)."""
    from avkit.engine.device import resolve_device
    from avkit.engine.checkpoint import load_strict, read_meta, run_checkpoint

    run = Path(run_dir)
    weights = run_checkpoint(run, checkpoint, task="captioning", hint="train one with recipes/caption_*.yaml")
    cfg = load_config(run)
    if not (run / LM_FOLDER).is_dir():
        raise AvkitError(f"{run}: no {LM_FOLDER}/ folder (the language model's config and tokenizer)")
    task = CaptioningTask(cfg)
    if task.stage == "lm":
        raise AvkitError(f"{run}: a language-model-only run (stage lm) has no video input; caption with a stage 1 or 2 run")
    read_meta(weights)
    folder = run / LM_FOLDER
    task.tokenizer = _load_tokenizer(folder)
    task.make_lm = lambda: _load_lm(folder, weights=False)
    task.captions = _Captions(task.tokenizer)
    model = task.build_model(pretrained=False)
    load_strict(model, weights, "the captioner of config.yaml")
    dev = resolve_device(device)
    return CaptionerRun(model.to(dev).eval(), task, cfg, run, dev)
