"""``task: av_mae``: self-supervised audio-visual pretraining with ``avkit train`` (docs/pretraining.md).

The model is :class:`avkit.models.av_mae.AVMAE`: ``model.video: av_mae`` and ``model.video_options``
describe the encoder (the same options build the ``av_mae`` classifier that ``model.init`` later
fills with it). ``task_options`` (:class:`AVMAEOptions`) hold the masking ratio per modality, the
decoder's size and the weights of the loss terms:

    loss = video_weight * MSE(hidden tubes) + audio_weight * MSE(hidden spectrogram patches)
           + contrastive_weight * InfoNCE(audio, video) + arrow_weight * InfoNCE(clip, shifted clip | clip backwards)

A ratio of 1.0 leaves that modality out (video-only or audio-only pretraining from the same code;
the contrastive term needs both). Labels are never read: the dataset's ``label`` is in the batch
(the manifest has one) but nothing here looks at it (tested).

Validation, each epoch: the reconstruction error of each modality under fixed masks, InfoNCE of
the whole validation set's unmasked embeddings, audio->video and video->audio recall@1/5 among the
validation clips (``val_a2v_r5`` ...), and ``RUN/reconstruction/epoch_NNN.png`` (masked input,
reconstruction and original of ``figure_clips`` clips). ``best.safetensors`` has the lowest
``val_loss``; its metadata names the ``encoder.`` tensors that ``model.init`` loads.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from avkit.engine.config import parse_options
from avkit.engine.task import Task
from avkit.errors import AvkitError

TERMS = ("recon_video", "recon_audio", "contrastive", "arrow")


@dataclass
class AVMAEOptions:
    """``task_options`` of an ``av_mae`` run (module docstring)."""

    video_mask: float = 0.9  # share of video tubes hidden (VideoMAE: 0.9); 1.0 = no video
    audio_mask: float = 0.75  # share of spectrogram patches hidden; 1.0 = no audio
    video_weight: float = 1.0  # weight of the video reconstruction loss
    audio_weight: float = 1.0  # weight of the spectrogram reconstruction loss
    contrastive_weight: float = 1.0  # weight of the audio-visual InfoNCE term (0 = off)
    arrow_weight: float = 0.0  # weight of the arrow-of-time term (a clip against itself played backwards; 0 = off)
    temperature: float = 0.07  # InfoNCE temperature
    decoder_dim: int = 32
    decoder_depth: int = 1
    decoder_heads: int = 2
    proj_dim: int = 32  # width of the contrastive embeddings
    figure_clips: int = 4  # validation clips drawn in the reconstruction figure each epoch (0 = none)


def encoder_options(cfg: Any, ratios: Mapping[str, float]) -> dict[str, Any]:
    """The encoder's options: ``model.video_options`` less the modalities whose ratio is 1.0."""
    from avkit.models.av_mae import MODALITIES

    if cfg.model.video not in ("", "av_mae") or cfg.model.audio or cfg.model.fusion:
        raise AvkitError("task: av_mae builds its own model: set model.video: av_mae (options in "
                         "model.video_options) and leave model.audio / model.fusion empty")
    options = dict(cfg.model.video_options)
    wanted = list(options.get("modalities", MODALITIES))
    options["modalities"] = [m for m in wanted if ratios.get(m, 0.0) < 1.0]
    if not options["modalities"]:
        raise AvkitError("task_options.video_mask and audio_mask are both 1.0: nothing is left to encode")
    return options


class AVMAETask(Task):
    """Masked audio-visual autoencoding plus audio-visual contrast (module docstring)."""

    cpu_threads = 1  # tiny networks (Task.cpu_threads)

    name = "av_mae"
    train_columns = ("loss",) + TERMS
    val_columns = ("loss",) + TERMS + ("a2v_r1", "a2v_r5", "v2a_r1", "v2a_r5")
    best_key = "val_loss"
    higher_is_better = False

    def __init__(self, cfg: Any) -> None:
        super().__init__(cfg)
        self.opts = parse_options(AVMAEOptions, dict(cfg.task_options))
        o = self.opts
        for key in ("video_mask", "audio_mask"):
            if not 0.0 <= getattr(o, key) <= 1.0:
                raise AvkitError(f"task_options.{key} must be in [0, 1], got {getattr(o, key)}")
        self.ratios = {"video": o.video_mask, "audio": o.audio_mask}
        self.encoder_options = encoder_options(cfg, self.ratios)
        self.modalities: list[str] = self.encoder_options["modalities"]
        if "audio" in self.modalities and not cfg.data.audio:
            raise AvkitError("av_mae with sound needs data.audio: true (or task_options.audio_mask: 1.0 for video only)")
        self.run_dir: Path | None = None
        self._figure: list[dict[str, np.ndarray]] = []

    # -- data and model ----------------------------------------------------------------------------

    def datasets(self) -> tuple[Any, Any]:
        from avkit.engine.build import build_datasets

        return build_datasets(self.cfg.data, seed=self.cfg.train.seed)

    def build_model(self, log: Callable[[str], None] | None = None) -> nn.Module:
        from avkit.models.av_mae import AVMAE, AVMAEEncoder

        o = self.opts
        try:
            encoder = AVMAEEncoder(**self.encoder_options)
        except TypeError as err:
            raise AvkitError(f"model.video_options: {err}") from None
        return AVMAE(encoder, o.decoder_dim, o.decoder_depth, o.decoder_heads, o.proj_dim, arrow=o.arrow_weight > 0)

    # -- steps -------------------------------------------------------------------------------------

    def losses(self, model: nn.Module, batch: Mapping[str, Any],
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor], Any]:
        """``(loss, per-clip terms [B], outputs)`` of one batch: only ``video`` and ``audio`` are read."""
        from avkit.models.av_mae import info_nce

        o = self.opts
        outputs, emb, extra = model({m: batch[m] for m in self.modalities if m in batch}, self.ratios, generator)
        terms = {f"recon_{m}": out.loss() for m, out in outputs.items()}
        terms.update(extra)
        weights = {"recon_video": o.video_weight, "recon_audio": o.audio_weight, "contrastive": o.contrastive_weight,
                   "arrow": o.arrow_weight}
        if len(emb) == 2:  # computed at weight 0 too: logged, and every parameter stays in the graph (DDP)
            terms["contrastive"] = info_nce(emb["audio"], emb["video"], o.temperature)
        loss = torch.stack([weights[k] * v.mean() for k, v in terms.items()]).sum()
        return loss, terms, outputs

    def train_step(self, model: nn.Module, batch: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, float], int]:
        loss, terms, _ = self.losses(model, batch)
        n = int(next(iter(terms.values())).shape[0])
        stats = {"loss": float(loss.detach()) * n, **{k: float(v.detach().sum()) for k, v in terms.items()}}
        return loss, stats, n

    @staticmethod
    def _single_view(batch: Mapping[str, Any]) -> dict[str, Any]:
        """Validation items hold ``K`` views (``[B, K, ...]``); pretraining validates on the first."""
        out = dict(batch)
        if isinstance(out.get("video"), torch.Tensor) and out["video"].dim() == 6:
            out["video"] = out["video"][:, 0]
        if isinstance(out.get("audio"), torch.Tensor) and out["audio"].dim() == 3:
            out["audio"] = out["audio"][:, 0]
        return out

    def val_outputs(self, model: nn.Module, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        net: Any = getattr(model, "module", model)
        batch = self._single_view(batch)
        gen = torch.Generator().manual_seed(int(batch["index"][0]) + 1)  # the same masks every epoch
        _, terms, outputs = self.losses(net, batch, gen)
        out = {k: v.float() for k, v in terms.items() if k != "contrastive"}
        for m, e in net.embed_unmasked(batch).items():
            out[f"emb_{m}"] = e
        if self.run_dir is not None and len(self._figure) < self.opts.figure_clips:
            self._figure += self.figure_items(outputs, self.opts.figure_clips - len(self._figure))
        return out

    def val_metrics(self, outputs: dict[str, torch.Tensor]) -> tuple[dict[str, Any], dict[str, Any]]:
        from avkit.apps.pretraining.metrics import retrieval_metrics
        from avkit.models.av_mae import info_nce

        o = self.opts
        metrics: dict[str, Any] = {f"val_{k}": float(outputs[k].mean()) for k in TERMS if k in outputs}
        loss = o.video_weight * metrics.get("val_recon_video", 0.0) + o.audio_weight * metrics.get("val_recon_audio", 0.0)
        extras: dict[str, Any] = {}
        if "emb_audio" in outputs and "emb_video" in outputs:
            a, v = outputs["emb_audio"], outputs["emb_video"]
            metrics["val_contrastive"] = float(info_nce(a, v, o.temperature).mean())
            if o.contrastive_weight > 0:
                loss += o.contrastive_weight * metrics["val_contrastive"]
            retrieval = retrieval_metrics(a, v)
            metrics.update({f"val_{k}": v for k, v in retrieval.items() if not k.startswith("chance")})
            extras["retrieval"] = retrieval
        if "val_arrow" in metrics:
            loss += o.arrow_weight * metrics["val_arrow"]
        metrics["val_loss"] = loss
        self.write_figure()
        return metrics, extras

    # -- the reconstruction figure -----------------------------------------------------------------

    def figure_items(self, outputs: Mapping[str, Any], count: int) -> list[dict[str, np.ndarray]]:
        """Masked input, reconstruction and original of the first ``count`` clips, ready to draw."""
        from avkit.models.av_mae import unpatchify_spectrogram, unpatchify_video

        enc = self.encoder_options
        tubelet, patch, audio_patch = enc.get("tubelet_size", 2), enc.get("patch_size", 8), enc.get("audio_patch", 8)
        mean = torch.tensor(self.cfg.data.mean).view(1, 3, 1, 1, 1)
        std = torch.tensor(self.cfg.data.std).view(1, 3, 1, 1, 1)
        items: list[dict[str, np.ndarray]] = [{} for _ in range(min(count, next(iter(outputs.values())).pred.shape[0]))]
        for m, out in outputs.items():
            k = len(items)
            x = out.input[:k].detach().float().cpu()
            recon = out.reconstruction()[:k].detach().float().cpu()
            patches = (out.target.float() * out.std + out.mean)[:k].detach().cpu()
            masked = torch.where(out.hidden[:k, :, None].cpu(), torch.nan, patches)
            if m == "video":
                def image(p: torch.Tensor, shape: torch.Size = x.shape) -> np.ndarray:
                    clip = unpatchify_video(p, shape, tubelet, patch) * std + mean
                    return clip.permute(0, 2, 3, 4, 1).numpy()  # [k, T, H, W, 3]
                shown = {"video_masked": np.nan_to_num(image(masked), nan=0.5), "video_recon": image(recon),
                         "video": image(patches)}
            else:
                def spec(p: torch.Tensor, shape: torch.Size = x.shape) -> np.ndarray:
                    return unpatchify_spectrogram(p, shape, audio_patch)[:, 0].numpy()  # [k, F, T]
                shown = {"audio_masked": spec(masked), "audio_recon": spec(recon), "audio": spec(patches)}
            for i, item in enumerate(items):
                item.update({key: value[i] for key, value in shown.items()})
        return items

    def write_figure(self) -> None:
        """``RUN/reconstruction/epoch_NNN.png``: NNN counts the figures already there (one per validated epoch)."""
        if self.run_dir is None or not self._figure:
            return
        from avkit.apps.pretraining.plots import plot_reconstructions

        folder = self.run_dir / "reconstruction"
        epoch = 1 + len(list(folder.glob("epoch_*.png"))) if folder.is_dir() else 1
        ratios = ", ".join(f"{m} {self.ratios[m]:.0%} hidden" for m in self.modalities)
        plot_reconstructions(self._figure, folder / f"epoch_{epoch:03d}.png", f"epoch {epoch}: {ratios}")
        self._figure = []

    # -- run directory -----------------------------------------------------------------------------

    def write_files(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)  # called on the main process only: the figure is drawn there

    def meta(self) -> dict[str, Any]:
        # ``encoder_prefix`` tells model.init (avkit.engine.build) which tensors are the pretrained encoder.
        return {"encoder_prefix": "encoder.", "encoder_options": self.encoder_options, "ratios": self.ratios}

    def describe(self, row: Mapping[str, Any]) -> str:
        text = f"train loss {row['train_loss']:.4f}"
        if row.get("val_loss") is not None:
            text += f", val loss {row['val_loss']:.4f}"
            parts = [f"{k} {row[f'val_{k}']:.3f}" for k in TERMS if row.get(f"val_{k}") is not None]
            text += " (" + ", ".join(parts) + ")"
            if row.get("val_a2v_r5") is not None:
                text += f", A->V R@5 {row['val_a2v_r5']:.1%}, V->A R@5 {row['val_v2a_r5']:.1%}"
        return text
