"""``task: separation``: mix-and-separate training of :class:`~avkit.apps.separation.model.SeparationNet`.

A recipe names the data in ``data`` (``source`` / ``val_source`` / ``train_split`` / ``val_split``,
``batch_size``, ``num_workers``), the network in ``model`` (``audio: unet`` with ``audio_options``
``unet_width`` / ``unet_depth`` / ``unet_blocks``; ``video: cnn`` with ``video_options``
``visual_width``) and everything else in ``task_options``
(:class:`~avkit.apps.separation.options.SeparationOptions`): the STFT, the mask kind and its loss, how
many sources are mixed, crop length, frames per source, image size. All of it is read once, by
:class:`~avkit.apps.separation.options.SeparationSpec`, which also builds the network.

Training: the mixture of N solo stems goes through the STFT; the network sees ``log|X|`` on the
warped grid and each source's frames, and predicts one mask per source. Targets are computed on the
warped grid from the sources' magnitudes: the ideal ratio mask ``|S_i| / sum_j |S_j|`` (``mask: ratio``,
L1 loss) or the ideal binary mask (``mask: binary``, binary cross-entropy), each weighted per cell
(``weight: log1p`` = ``log(1 + |X|)`` clamped to [1e-3, 10] as in Sound of Pixels, ``magnitude`` = ``|X|``,
or ``none``). Validation separates whole held-out mixtures through the same inverse path as
inference and reports SI-SDR and (``val_bss``) BSS-eval SDR / SIR / SAR, and the improvements over
the unprocessed mixture; ``best.safetensors`` is the epoch with the best ``val_sdr`` (``val_si_sdr``
without BSS-eval).
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from avkit.apps.separation.model import SeparationNet
from avkit.apps.separation.options import SeparationSpec
from avkit.engine.config import Config
from avkit.engine.task import Task
from avkit.errors import AvkitError


def _no_autocast(device: torch.device) -> contextlib.AbstractContextManager:
    return torch.autocast(device.type, enabled=False) if device.type in ("cuda", "cpu") else contextlib.nullcontext()


def _separation_net(model: nn.Module) -> SeparationNet:
    """The :class:`SeparationNet` inside ``model`` (without DistributedDataParallel / DataParallel wrappers)."""
    from avkit.engine.checkpoint import unwrap

    net = unwrap(model)
    if not isinstance(net, SeparationNet):
        raise AvkitError(f"the separation task runs a SeparationNet, got a {type(net).__name__}")
    return net


class SeparationTask(Task):
    """Visually guided source separation (mix-and-separate); see the module docstring."""

    name = "separation"
    train_columns = ("loss",)
    val_columns = ("loss", "sdr", "sir", "sar", "sdri", "si_sdr", "si_sdri")
    best_key = "val_sdr"
    higher_is_better = True

    def __init__(self, cfg: Config) -> None:
        super().__init__(cfg)
        self.spec = SeparationSpec.from_config(cfg)
        self.opts, self.stft, self.net = self.spec.options, self.spec.stft, self.spec.net
        if not self.opts.val_bss:
            self.best_key = "val_si_sdr"

    # -- data and model --------------------------------------------------------------------------

    def datasets(self) -> tuple[Any, Any]:
        from avkit.apps.separation.data import MixDataset, SoloLibrary

        d, o = self.cfg.data, self.opts
        if not d.source:
            raise AvkitError("separation: data.source is empty (a synthetic instruments dataset or a folder of "
                             "solo videos)")
        segment = self._spectral_samples(o.segment_frames)
        train_lib = SoloLibrary.from_options(d.source, d.train_split, o)
        train = MixDataset(train_lib, num_mix=o.num_mix, segment=segment, num_frames=o.num_frames, train=True,
                           seed=self.cfg.train.seed, length=o.train_length, distinct=o.distinct, gain=o.gain,
                           zoom=o.zoom, all_frames=o.visual == "motion", same_label=o.same_label,
                           unison=o.unison, eq_db=o.eq_db)
        val = None
        if d.val_source or d.val_split:
            val_lib = SoloLibrary.from_options(d.val_source or d.source, d.val_split, o)
            val = MixDataset(val_lib, num_mix=o.val_num_mix, num_frames=o.num_frames, train=False,
                             seed=self.cfg.train.seed, length=o.val_length, distinct=o.distinct,
                             all_frames=o.visual == "motion")
        return train, val

    def _spectral_samples(self, frames: int) -> int:
        return frames * self.stft.hop - 1

    def build_model(self, log: Callable[[str], None] | None = None) -> nn.Module:
        """The network of the recipe; ``model.init`` (a run directory or weights file) gives the starting
        weights of every tensor that matches, e.g. the audio U-Net of an audio-only run (``visual: none``)
        under a network with pictures, whose visual pathway then starts from scratch."""
        net = self.spec.build_net()
        if self.cfg.model.init:
            from avkit.engine.checkpoint import describe_load, load_into, load_weights

            result = load_into(net, load_weights(self.cfg.model.init), what=self.cfg.model.init)
            (log or print)(describe_load(self.cfg.model.init, result))
        return net

    def collate(self, items: Sequence[dict[str, Any]]) -> dict[str, Any]:
        from avkit.apps.separation.data import collate

        return collate(items)

    def val_collate(self, items: Sequence[dict[str, Any]]) -> dict[str, Any]:
        return self.collate(items)

    # -- steps -----------------------------------------------------------------------------------

    def _losses(self, model: nn.Module, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """Per-item losses ``[B]``, the mask logits and the spectra of a batch."""
        spectral = _separation_net(model).spectral
        audio, valid = batch["audio"].float(), batch["valid"]
        with _no_autocast(audio.device):
            mix = audio.sum(1)
            mix_spec, mix_mag = spectral.features(mix)  # [B, F, T], [B, Fw, T]
            src_mag = spectral.warp(spectral.stft(audio).abs())  # [B, N, Fw, T]
            v = valid[:, :, None, None].float()
            src_mag = src_mag * v
            if self.opts.weight == "log1p":
                weight = torch.log1p(mix_mag).clamp(1e-3, 10.0)
            elif self.opts.weight == "magnitude":
                weight = mix_mag
            else:
                weight = torch.ones_like(mix_mag)
            weight = weight.unsqueeze(1) * v  # [B, N, Fw, T]
            if self.net.mask == "ratio":
                target = src_mag / (src_mag.sum(1, keepdim=True) + 1e-8)
            else:
                target = (src_mag >= src_mag.max(1, keepdim=True).values).float() * (src_mag > 0).float()
            log_mag = spectral.log_magnitude(mix_mag).unsqueeze(1)
        logits = model(log_mag, batch["frames"], valid).float()
        if self.opts.visual == "none":  # audio only: the slots are matched to the sources (permutation invariant)
            logits = self._best_permutation(logits, target, weight)
        per_item = self._per_item(logits, target, weight)
        return per_item, logits, {"mix_spec": mix_spec, "length": audio.shape[-1]}

    def _per_item(self, logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """The weighted mask loss of each item ``[B]`` (logits, targets and weights ``[B, N, Fw, T]``)."""
        if self.net.mask == "ratio":
            err = (torch.sigmoid(logits) - target).abs()
        else:
            err = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        return (err * weight).flatten(1).sum(1) / weight.flatten(1).sum(1).clamp_min(1e-8)

    def _best_permutation(self, logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """``logits [B, N, Fw, T]`` with each item's slots reordered to the permutation of least loss."""
        import itertools

        perms = [list(p) for p in itertools.permutations(range(logits.shape[1]))]
        with torch.no_grad():
            losses = torch.stack([self._per_item(logits[:, p], target, weight) for p in perms], dim=1)  # [B, P]
        order = torch.tensor(perms, device=logits.device)[losses.argmin(1)]  # [B, N]
        return torch.gather(logits, 1, order[:, :, None, None].expand_as(logits))

    def train_step(self, model: nn.Module, batch: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, float], int]:
        per_item, _, _ = self._losses(model, batch)
        loss = per_item.mean()
        n = int(per_item.shape[0])
        return loss, {"loss": float(loss.detach()) * n}, n

    def val_outputs(self, model: nn.Module, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        from avkit.apps.separation.metrics import bss_eval_sets, si_sdr

        inner = _separation_net(model)
        per_item, logits, extra = self._losses(model, batch)
        with _no_autocast(logits.device):
            est = inner.spectral.apply_warped_mask(extra["mix_spec"], inner.masks(logits, self.opts.mask_threshold),
                                                   extra["length"])
        audio, valid = batch["audio"].float().cpu(), batch["valid"].cpu()
        est = est.float().cpu()
        b, n = valid.shape
        out = {k: torch.full((b, n), float("nan")) for k in ("si_sdr", "mix_si_sdr", "sdr", "sir", "sar", "mix_sdr")}
        for i in range(b):
            k = int(valid[i].sum())
            refs = audio[i, :k].double().numpy()
            mix = np.repeat(refs.sum(0, keepdims=True), k, axis=0)
            out["si_sdr"][i, :k] = torch.from_numpy(si_sdr(refs, est[i, :k].double().numpy()))
            out["mix_si_sdr"][i, :k] = torch.from_numpy(si_sdr(refs, mix))
            if self.opts.val_bss:
                model_scores, mix_scores = bss_eval_sets(refs, [est[i, :k].double().numpy(), mix])
                for key in ("sdr", "sir", "sar"):
                    out[key][i, :k] = torch.from_numpy(model_scores[key])
                out["mix_sdr"][i, :k] = torch.from_numpy(mix_scores["sdr"])
        out["loss"] = per_item.detach().float().cpu()
        out["num_sources"] = batch["num_sources"].cpu()
        return out

    def val_metrics(self, outputs: dict[str, torch.Tensor]) -> tuple[dict[str, Any], dict[str, Any]]:
        def mean(x: torch.Tensor) -> float | None:
            x = x[torch.isfinite(x)]
            return float(x.mean()) if x.numel() else None

        def scores(rows: torch.Tensor) -> dict[str, float | None]:
            o = {k: v[rows] for k, v in outputs.items()}
            s = {"sdr": mean(o["sdr"]), "sir": mean(o["sir"]), "sar": mean(o["sar"]),
                 "sdri": mean(o["sdr"] - o["mix_sdr"]), "si_sdr": mean(o["si_sdr"]),
                 "si_sdri": mean(o["si_sdr"] - o["mix_si_sdr"]), "mixture_sdr": mean(o["mix_sdr"]),
                 "mixture_si_sdr": mean(o["mix_si_sdr"])}
            return s

        everything = torch.ones(len(outputs["loss"]), dtype=torch.bool)
        metrics: dict[str, Any] = {"val_loss": float(outputs["loss"].mean())}
        metrics.update({f"val_{k}": v for k, v in scores(everything).items()})
        per_n: dict[str, Any] = {}
        for n in sorted(set(outputs["num_sources"].tolist())):
            rows = outputs["num_sources"] == n
            per_n[str(n)] = {**scores(rows), "mixtures": int(rows.sum())}
            metrics[f"val_sdr_{n}"] = per_n[str(n)]["sdr"]
            metrics[f"val_sdri_{n}"] = per_n[str(n)]["sdri"]
            metrics[f"val_si_sdri_{n}"] = per_n[str(n)]["si_sdri"]
        if not self.opts.val_bss:
            for key in ("val_sdr", "val_sir", "val_sar", "val_sdri", "val_mixture_sdr"):
                metrics[key] = None
        return metrics, {"per_num_sources": per_n}

    # -- evaluation of a trained run (``avkit eval``) -------------------------------------------------

    def evaluate(self, run_dir: Path, *, checkpoint: str = "best", split: str | None = None, device: str = "auto",
                 progress: bool = False, log: Callable[[str], None] | None = None,
                 **options: Any) -> dict[str, Any]:
        """SDR / SIR / SAR and SI-SDR per number of sources of the run's validation mixtures, beside the
        unprocessed mixture and the ideal-mask oracles (:func:`~avkit.apps.separation.evaluate.evaluate_separation`;
        writes ``RUN/eval.json`` and ``RUN/eval.md``). Classification's view settings do not apply."""
        from avkit.apps.separation.evaluate import evaluate_separation

        given = sorted(k for k, v in options.items() if v is not None)
        if given:
            raise AvkitError(f"{run_dir}: {', '.join('--' + k.replace('_', '-') for k in given)}: only for classification "
                             "runs (a separation run is scored on its whole validation mixtures)")
        return evaluate_separation(run_dir, split=split, checkpoint=checkpoint, device=device, progress=progress)

    def format_evaluation(self, result: Mapping[str, Any]) -> str:
        from avkit.apps.separation.evaluate import format_result

        return format_result(dict(result))

    # -- run directory ---------------------------------------------------------------------------

    def meta(self) -> dict[str, Any]:
        return {"separation": {"net": self.net.to_dict(), "stft": self.stft.to_dict(),
                               "options": self.opts.to_dict()}}

    def report(self, run_dir: Path, history: Sequence[dict[str, Any]], best_epoch: int,
               best_extras: dict[str, Any] | None) -> None:
        from avkit.engine.report import write_report
        from avkit.utils import atomic_write_text

        curves = ("loss", "sdr") if self.opts.val_bss else ("loss", "si_sdr")
        path = write_report(run_dir, history, columns=self.csv_columns(), best_key=self.best_key,
                            best_epoch=best_epoch, curves=curves)
        per_n = (best_extras or {}).get("per_num_sources")
        if not per_n:
            return
        lines = [path.read_text().rstrip(), "", f"## Validation at the best epoch ({best_epoch}), per number of sources",
                 "", "| sources | mixtures | SDR | SIR | SAR | SDRi | SI-SDR | SI-SDRi | mixture SDR |",
                 "|---|---|---|---|---|---|---|---|---|"]

        def f(v: Any) -> str:
            return "-" if v is None else f"{v:.2f}"

        for n, s in per_n.items():
            lines.append(f"| {n} | {s['mixtures']} | {f(s['sdr'])} | {f(s['sir'])} | {f(s['sar'])} | {f(s['sdri'])} | "
                         f"{f(s['si_sdr'])} | {f(s['si_sdri'])} | {f(s['mixture_sdr'])} |")
        atomic_write_text(path, "\n".join(lines) + "\n")

    def describe(self, row: Mapping[str, Any]) -> str:
        text = f"train loss {row['train_loss']:.4f}"
        if row.get("val_loss") is not None:
            text += f", val loss {row['val_loss']:.4f}"
            for key, name in (("val_sdr", "SDR"), ("val_sdri", "SDRi"), ("val_si_sdri", "SI-SDRi")):
                if row.get(key) is not None:
                    text += f" {name} {row[key]:.2f}"
            for n in (2, 3):
                if row.get(f"val_sdr_{n}") is not None:
                    text += f" SDR{n} {row[f'val_sdr_{n}']:.2f}"
        return text
