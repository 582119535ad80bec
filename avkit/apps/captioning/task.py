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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from avkit.apps.captioning.language_model import (
    LM_FOLDER,
    CaptionTokens,
    is_caption_run,
    load_lm,
    load_tokenizer,
    run_weights,
    save_folder,
    special_ids,
    tied_keys,
)
from avkit.engine.config import Config, parse_options
from avkit.engine.task import Task
from avkit.errors import AvkitError

STAGES = ("lm", "1", "2")


@dataclass
class LMOptions:
    """``task_options.lm``: the new language model of the ``lm`` stage (:func:`~avkit.apps.captioning.model.small_lm`)."""

    kind: str = "llama"  # llama | gpt2
    hidden_size: int = 128
    num_layers: int = 2
    num_heads: int = 4
    intermediate_size: int = 256


@dataclass
class CaptioningOptions:
    """``task_options`` of ``task: captioning`` (module docstring), parsed by :func:`~avkit.engine.config.parse_options`."""

    stage: str = "1"  # lm | 1 | 2
    sources: list[str] = field(default_factory=list)
    val_sources: list[str] = field(default_factory=list)
    # Leave out of training and validation every clip whose (object, colour, motion) is one of about
    # 1 in N combinations (data.held_out), so test clips of those ask for unseen captions; 0: none.
    hold_out: int = 0
    language_model: str = ""
    lm: LMOptions = field(default_factory=LMOptions)
    prompt: str = "Describe the clip."
    video_init: str = ""
    train_video_encoder: bool = True
    train_audio_encoder: bool = True
    lora: int = 0
    lora_alpha: float = 16.0
    lora_targets: list[str] = field(default_factory=lambda: ["q_proj", "v_proj", "c_attn"])
    audio_features: dict[str, Any] = field(default_factory=dict)
    val_generate: bool = True
    max_new_tokens: int = 40
    num_beams: int = 1

    def __post_init__(self) -> None:
        stage = self.stage.strip().lower()
        if stage not in STAGES:
            raise AvkitError(f"task_options.stage must be lm, 1 or 2, got {self.stage!r}")
        if self.hold_out < 0:
            raise AvkitError(f"task_options.hold_out must be >= 0 (0 = hold nothing out), got {self.hold_out}")
        self.stage = stage


class CaptioningTask(Task):
    """Video (+ audio) captioning in three stages (module docstring)."""

    name = "captioning"
    train_columns = ("loss", "token_acc")
    val_columns = ("loss", "token_acc", "bleu4", "cider", "object", "colour", "motion", "sound")
    best_key = "val_cider"
    higher_is_better = True

    def __init__(self, cfg: Config) -> None:
        super().__init__(cfg)
        self.opts = parse_options(CaptioningOptions, cfg.task_options)
        self.stage = self.opts.stage
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
        self.captions: CaptionTokens | None = None
        self.lm: Any = None  # a transformers causal LM, made by build_model (after the trainer seeds torch)
        self.make_lm: Callable[[], nn.Module] | None = None
        self.lm_weights: Path | None = None  # a run whose best "lm." weights go into the LM
        self.train_set: Any = None
        self.val_set: Any = None
        self.lora_names: list[str] = []

    # -- data ------------------------------------------------------------------------------------
    def datasets(self) -> tuple[Any, Any]:
        from avkit.apps.captioning.data import CaptionDataset, read_sources

        data = self.cfg.data
        sources = self.opts.sources or ([data.source] if data.source else [])
        if not sources:
            raise AvkitError("no captioned data: set task_options.sources (generator dataset folders) or data.source")
        val_sources = self.opts.val_sources or ([data.val_source] if data.val_source else sources)
        media = self.stage != "lm"
        train_records = self._kept(read_sources(sources, data.train_split or None), sources)
        train = CaptionDataset(train_records, data, train=True, audio=self.use_audio, media=media,
                               seed=self.cfg.train.seed)
        val = None
        if data.val_split or data.val_source or self.opts.val_sources:
            val_records = self._kept(read_sources(val_sources, data.val_split or None, allow_empty=True), val_sources)
            if val_records:
                val = CaptionDataset(val_records, data, train=False, audio=self.use_audio, media=media,
                                     seed=self.cfg.train.seed)
        self.train_set, self.val_set = train, val
        return train, val

    def _kept(self, records: list[Any], sources: list[str]) -> list[Any]:
        """``records`` without the held-out combinations (``task_options.hold_out``)."""
        from avkit.apps.captioning.data import held_out

        kept = [r for r in records if not held_out(r, self.opts.hold_out)]
        if records and not kept:
            raise AvkitError(f"task_options.hold_out {self.opts.hold_out} leaves no clip of {', '.join(sources)}")
        return kept

    def setup(self, train_set: Any) -> None:
        """Load or build the language model and its tokenizer (the captions need the tokenizer)."""
        self.train_set = train_set
        self._use_language_model(*self.language_model(getattr(train_set, "captions", [])))

    @classmethod
    def for_trained_run(cls, cfg: Config, folder: Path) -> CaptioningTask:
        """The task of a trained run, with the tokenizer and LM architecture of its ``folder``
        (``RUN/language_model/``) and no starting weights: the run's checkpoint holds them all."""
        task = cls(cfg)
        task._use_language_model(lambda: load_lm(folder, weights=False), load_tokenizer(folder), None)
        return task

    def _use_language_model(self, make_lm: Callable[[], nn.Module], tokenizer: Any, lm_weights: Path | None) -> None:
        self.make_lm, self.tokenizer, self.lm_weights = make_lm, tokenizer, lm_weights
        self.captions = CaptionTokens(tokenizer)

    def language_model(self, captions: Sequence[str]) -> tuple[Callable[[], nn.Module], Any, Path | None]:
        """``(LM builder, tokenizer, run whose LM weights to load)`` as the options say (module
        docstring). The LM itself is made in :meth:`build_model`, after the trainer seeds torch,
        so a new LM's random weights depend on ``train.seed`` only."""
        from avkit.apps.captioning.data import build_tokenizer
        from avkit.apps.captioning.model import small_lm

        source = self.opts.language_model
        if not source and self.cfg.model.init and is_caption_run(Path(self.cfg.model.init)):
            folder = Path(self.cfg.model.init) / LM_FOLDER
            return (lambda: load_lm(folder, weights=False)), load_tokenizer(folder), None  # init replaces the weights
        if not source:
            if not captions:
                raise AvkitError("no training captions to build the tokenizer from")
            tok = build_tokenizer(list(captions) + [self.opts.prompt])
            o = self.opts.lm
            bos, eos, pad = special_ids(tok)

            def new() -> nn.Module:
                return small_lm(len(tok), kind=o.kind, hidden_size=o.hidden_size, num_layers=o.num_layers,
                                num_heads=o.num_heads, intermediate_size=o.intermediate_size, bos_token_id=bos,
                                eos_token_id=eos, pad_token_id=pad)

            return new, tok, None
        path = Path(source).expanduser()
        if is_caption_run(path):
            folder = path / LM_FOLDER
            return (lambda: load_lm(folder, weights=False)), load_tokenizer(folder), run_weights(path)
        if not path.is_dir():
            raise AvkitError(f"{source}: task_options.language_model is not a folder (a Hugging Face model "
                             "folder or a captioning run directory)")
        return (lambda: load_lm(path, weights=True)), load_tokenizer(path), None

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
                if self.opts.video_init and pretrained:
                    r = load_into(video, load_weights(self.opts.video_init), what=self.opts.video_init)
                    say(f"video encoder from {self.opts.video_init}: {r['loaded']} tensors loaded, "
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

                    options = {"sample_rate": int(self.cfg.data.sample_rate), **self.opts.audio_features}
                    try:
                        features = LogMel(**options)
                    except TypeError as err:
                        raise AvkitError(f"task_options.audio_features: {err}") from None
        bos, eos, pad = special_ids(self.tokenizer)
        prompt_ids = self.tokenizer(self.opts.prompt, add_special_tokens=False)["input_ids"]
        model = Captioner(self.lm, prompt_ids=prompt_ids, bos_id=bos, eos_id=eos, pad_id=pad, video_encoder=video,
                          audio_encoder=audio, audio_features=features, prefer_waveform=prefer_wave)
        if pretrained and self.lm_weights is not None:
            state = {k[3:]: v for k, v in load_weights(self.lm_weights).items() if k.startswith("lm.")}
            missing, unexpected = model.lm.load_state_dict(state, strict=False)
            missing = [k for k in missing if k not in tied_keys(model.lm)]
            if missing or unexpected or not state:
                raise AvkitError(f"{self.lm_weights}: its language model does not fit ({len(missing)} missing, "
                                 f"{len(unexpected)} unexpected tensors)")
            say(f"language model from {self.lm_weights} ({len(state)} tensors)")
        if pretrained and m.init:
            r = load_into(model, load_weights(m.init), what=m.init)
            missing = [k for k in r["missing"] if k not in {f"lm.{t}" for t in tied_keys(model.lm)}]
            if missing and is_caption_run(Path(m.init)):
                raise AvkitError(f"{m.init}: a captioning run with another architecture ({len(missing)} tensors of "
                                 f"this model missing, e.g. {missing[0]}); use the same encoders and language model")
            say(f"init from {m.init}: {r['loaded']} tensors loaded, {len(r['skipped'])} skipped, "
                f"{len(missing)} left at initial values")
        lm_mode: bool | str = True
        if self.stage == "1":
            lm_mode = False
        elif self.stage == "2" and self.opts.lora > 0:
            self.lora_names = add_lora(model.lm, self.opts.lora, self.opts.lora_alpha, tuple(self.opts.lora_targets))
            lm_mode = "lora"
            say(f"LoRA rank {self.opts.lora} on {len(self.lora_names)} layers")
        model.set_trainable(lm=lm_mode, projectors=True, video_encoder=self.opts.train_video_encoder,
                            audio_encoder=self.opts.train_audio_encoder)
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
        if self.stage != "lm" and self.opts.val_generate:
            limit = self.opts.max_new_tokens
            captioner: Any = unwrap(model)
            ids = captioner.generate(batch, max_new_tokens=limit, num_beams=self.opts.num_beams)
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
        return {"stage": self.stage, "prompt": self.opts.prompt, "modalities":
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
