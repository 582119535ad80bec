"""When the shipped separator trusts its instrument namer, on validation data: where ``inference.UNHEARD_SHARE`` (a
name the sound does not bear out goes to the networks) and ``naming.CONFIDENT`` (the namer's probability a name
needs) come from.

Two sets, neither the benchmark's test set (``runs/gm/gm_test``, seed 3):

1. Duets of a fresh generator seed (12, ``subset="val"``: 60% one instrument's two players, 40% two
   instruments), ``--regions 2x1``, the namer on each half.
2. Mixtures of 2 and 3 solos of ``runs/gm/gm_val`` (seed 2, the validation clips), as the benchmark builds its
   held-out mixtures, the namer on each source's pictures.

Every item whose sources the namer names as different instruments (at any probability) is separated both ways,
by timbre and by the networks (the same separator without its namer), and scored (SDRi against the stems).
Printed: for the items the namer sends to the timbre path at the shipped ``CONFIDENT``, the smallest share of the
mixture's energy the timbre path gives a source (the unheard rule's evidence); then, for a range of thresholds,
the mean SDRi per kind of item of the separator that takes the timbre path when every name is at least that sure
and no source is unheard (the networks otherwise).

    python -c 'from avkit.data.synthetic import generate; generate("gm_instruments", "/tmp/val12", 400, seed=12, \\
        subset="val", duets=0.4, same_duets=0.6, jobs=2)'
    python benchmarks/separation_unheard.py --duets /tmp/val12 --mixtures runs/gm/gm_val
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95)


def _sdri(refs: np.ndarray, est: np.ndarray) -> float:
    from avkit.apps.separation.metrics import bss_eval

    mixture = bss_eval(refs, np.stack([refs.sum(0)] * len(refs)))["sdr"]
    return float((bss_eval(refs, est)["sdr"] - mixture).mean())


def _row(kind: str, named: list[tuple[str, float]], refs: np.ndarray, mixture: np.ndarray, networks: np.ndarray,
         by_timbre: Any) -> dict[str, Any]:
    """One item: what the namer said, and SDRi by the networks and (``by_timbre()``, names all different) by timbre."""
    row: dict[str, Any] = {"kind": kind, "named": named, "networks": _sdri(refs, networks), "timbre": None}
    if len({name for name, _ in named}) == len(named):
        est = by_timbre([name for name, _ in named])
        energy = float((mixture.astype(np.float64) ** 2).sum()) or 1.0
        row["min_share"] = min(float((e.astype(np.float64) ** 2).sum()) / energy for e in est)
        row["timbre"] = _sdri(refs, est)
    return row


def duets(sep: Any, networks: Any, folder: Path) -> list[dict[str, Any]]:
    """Part 1: every duet of ``folder``, ``--regions 2x1``."""
    from avkit.apps.separation.inference import Recording
    from avkit.apps.separation.regions import parse_regions, region_masks
    from avkit.apps.separation.video import namer_pictures, read_input
    from avkit.data.synthetic import read_manifest
    from avkit.io import read_audio

    rows = []
    for row in (r for r in read_manifest(folder) if (r.get("meta") or {}).get("duet")):
        players = sorted(row["meta"]["sources"], key=lambda p: p["side"] != "left")
        clip = read_input(folder / row["path"], sep, output_frames=False)
        refs = np.stack([read_audio(folder / p["stem"], sample_rate=sep.sample_rate)[0].numpy() for p in players])
        n = min(refs.shape[1], len(clip.audio))
        rec = Recording(sep, clip.audio, clip.net_frames)
        masks, boxes = region_masks(parse_regions("2x1"), rec.grid, clip.frame_size)
        named = sep.namer.name(namer_pictures(clip.net_frames, boxes, clip.frame_size))
        kind = "one instrument's two players" if row["meta"]["same_instrument"] else "two instruments"
        rows.append(_row(kind, named, refs[:, :n], clip.audio[:n], networks.separate_regions(rec, masks)[:, :n],
                         lambda names, rec=rec, masks=masks, n=n: sep.separate_regions(rec, masks, timbre=names)[:, :n]))
        rows[-1]["players"] = [p["label"] for p in players]
    return rows


def mixtures(sep: Any, folder: Path, count: int) -> list[dict[str, Any]]:
    """Part 2: ``count`` mixtures of 2 and 3 of ``folder``'s solos."""
    import torch

    from avkit.apps.separation.evaluate import best_order, mixtures_of

    items = mixtures_of(folder, sep.opts, num_mix=[2, 3], length=count, seed=1)
    rows = []
    for i in range(len(items)):
        item = items[i]
        k = int(item["valid"].sum())
        refs = item["audio"][:k].float()
        mix = refs.sum(0, keepdim=True)
        named = sep.namer.name(list(item["frames"][:k].permute(0, 1, 3, 4, 2).numpy()))
        frames = item["frames"][:k].unsqueeze(0)
        with torch.no_grad():
            nets = sep.net.separate(mix, frames, sep.opts.mask_threshold)[0].cpu().numpy()
            if k == 2 and sep.stems is not None:  # as the separator gives two sources: its stems in that order
                nets = best_order(nets.astype(np.float64), sep.stems.separate(mix, frames)[0].cpu().numpy())
        rows.append(_row(f"mixtures of {k}", named, refs.numpy(), mix[0].numpy(), nets.astype(np.float32),
                         lambda names, mix=mix: sep.separate_by_timbre(sep.spectral.stft(mix[0]), names, mix.shape[-1])))
    return rows


def shares(rows: list[dict[str, Any]], confident: float) -> None:
    """The smallest shares of the items sent to the timbre path at ``confident``, and every one below 1%."""
    sent = [r for r in rows if r["timbre"] is not None and min(p for _, p in r["named"]) >= confident]
    print(f"\nsent to the timbre path at p >= {confident}: {len(sent)} of {len(rows)}")
    print(f"{'':<30} {'n':>4} {'timbre SDRi':>11} {'networks':>9}   smallest shares")
    for kind in sorted({r["kind"] for r in sent}):
        sub = sorted((r for r in sent if r["kind"] == kind), key=lambda r: r["min_share"])
        print(f"{kind:<30} {len(sub):>4} {np.mean([r['timbre'] for r in sub]):>+11.2f} "
              f"{np.mean([r['networks'] for r in sub]):>+9.2f}   " + ", ".join(f"{r['min_share']:.4f}" for r in sub[:6]))
    print("each with a source below 1% of the energy:")
    for r in sorted(sent, key=lambda r: r["min_share"]):
        if r["min_share"] >= 0.01:
            break
        print(f"  {r['kind']:<30} smallest share {r['min_share']:.4f}  timbre {r['timbre']:+.2f}  networks "
              f"{r['networks']:+.2f}  named {[n for n, _ in r['named']]}" +
              (f"  playing {r['players']}" if "players" in r else ""))


def thresholds(rows: list[dict[str, Any]], unheard_share: float) -> None:
    """Mean SDRi per kind of item of the separator at each namer threshold, with the unheard rule."""
    kinds = sorted({r["kind"] for r in rows})
    print(f"\nmean SDRi (dB) by the namer's threshold, a source under {unheard_share:.1%} of the energy sending the "
          "item to the networks:")
    print(f"{'threshold':>9}  " + "  ".join(f"{k} (n={sum(r['kind'] == k for r in rows)})" for k in kinds))
    for threshold in THRESHOLDS:
        means = []
        for kind in kinds:
            values = [r["timbre"] if (r["timbre"] is not None and min(p for _, p in r["named"]) >= threshold
                                      and r["min_share"] >= unheard_share) else r["networks"]
                      for r in rows if r["kind"] == kind]
            means.append(f"{np.mean(values):+.2f}".rjust(len(f"{kind} (n={len(values)})")))
        print(f"{threshold:>9}  " + "  ".join(means))


def main(argv: list[str] | None = None) -> int:
    from avkit.apps.separation import load
    from avkit.apps.separation.inference import UNHEARD_SHARE
    from avkit.apps.separation.naming import CONFIDENT

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duets", default="", help="a generated folder of duets (part 1)")
    p.add_argument("--mixtures", default=str(ROOT / "runs" / "gm" / "gm_val"), help="solos to mix (part 2)")
    p.add_argument("--count", type=int, default=200, help="mixtures in part 2")
    args = p.parse_args(argv)
    sep = load(None, device="cpu")
    networks = load(None, device="cpu")
    networks.detach_namer()
    rows = duets(sep, networks, Path(args.duets)) if args.duets else []
    if args.mixtures and Path(args.mixtures).is_dir():
        rows += mixtures(sep, Path(args.mixtures), args.count)
    shares(rows, CONFIDENT)
    thresholds(rows, UNHEARD_SHARE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
