"""How much of the sound the timbre path gives each source the namer named, on validation data: where the
threshold ``inference.UNHEARD_SHARE`` (a name the sound does not bear out goes to the networks) comes from.

Two sets, neither the benchmark's test set (``runs/gm/gm_test``, seed 3):

1. Duets of a fresh generator seed (12, ``subset="val"``: 60% one instrument's two players, 40% two
   instruments), ``--regions 2x1``, the shipped separator's namer on each half; for every duet it sends to the
   timbre path, the smallest share of the mixture's energy a source gets, and the SDRi by timbre and by the
   networks (the same separator without its namer).
2. Mixtures of 2 and 3 solos of ``runs/gm/gm_val`` (seed 2, the validation clips), as the benchmark builds its
   held-out mixtures: the same figures for every mixture the namer sends to the timbre path.

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


def _sdri(refs: np.ndarray, est: np.ndarray) -> float:
    from avkit.apps.separation.metrics import bss_eval

    mixture = bss_eval(refs, np.stack([refs.sum(0)] * len(refs)))["sdr"]
    return float((bss_eval(refs, est)["sdr"] - mixture).mean())


def _share(est: np.ndarray, mixture: np.ndarray) -> float:
    energy = float((mixture.astype(np.float64) ** 2).sum()) or 1.0
    return min(float((e.astype(np.float64) ** 2).sum()) / energy for e in est)


def duets(sep: Any, networks: Any, folder: Path) -> list[dict[str, Any]]:
    """Part 1: every duet of ``folder`` the namer sends to the timbre path."""
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
        names, named = sep.plan_timbre(namer_pictures(clip.net_frames, boxes, clip.frame_size))
        if names is None:
            continue
        by_timbre = sep.separate_regions(rec, masks, timbre=names)[:, :n]
        nets = networks.separate_regions(rec, masks)[:, :n]
        rows.append({"same_instrument": bool(row["meta"]["same_instrument"]), "players": [p["label"] for p in players],
                     "named": named, "min_share": _share(by_timbre, clip.audio[:n]),
                     "timbre": _sdri(refs[:, :n], by_timbre), "networks": _sdri(refs[:, :n], nets)})
    return rows


def mixtures(sep: Any, folder: Path, count: int) -> list[dict[str, Any]]:
    """Part 2: every mixture of ``folder``'s solos the namer sends to the timbre path."""
    import torch

    from avkit.apps.separation.evaluate import best_order, mixtures_of

    items = mixtures_of(folder, sep.opts, num_mix=[2, 3], length=count, seed=1)
    rows = []
    for i in range(len(items)):
        item = items[i]
        k = int(item["valid"].sum())
        refs = item["audio"][:k].float()
        mix = refs.sum(0, keepdim=True)
        names, named = sep.plan_timbre(list(item["frames"][:k].permute(0, 1, 3, 4, 2).numpy()))
        if names is None:
            continue
        by_timbre = sep.separate_by_timbre(sep.spectral.stft(mix[0]), names, mix.shape[-1])
        frames = item["frames"][:k].unsqueeze(0)
        with torch.no_grad():
            nets = sep.net.separate(mix, frames, sep.opts.mask_threshold)[0].cpu().numpy()
            if k == 2 and sep.stems is not None:  # as the separator gives two sources: its stems in that order
                nets = best_order(nets.astype(np.float64), sep.stems.separate(mix, frames)[0].cpu().numpy())
        rows.append({"sources": k, "named": named, "min_share": _share(by_timbre, mix[0].numpy()),
                     "timbre": _sdri(refs.numpy(), by_timbre), "networks": _sdri(refs.numpy(), nets.astype(np.float32))})
    return rows


def report(title: str, rows: list[dict[str, Any]], kinds: list[tuple[str, Any]]) -> None:
    print(f"\n{title}: {len(rows)} sent to the timbre path")
    print(f"{'':<28} {'n':>4} {'timbre SDRi':>11} {'networks':>9}   smallest shares")
    for label, keep in kinds:
        sub = [r for r in rows if keep(r)]
        if not sub:
            continue
        shares = ", ".join(f"{r['min_share']:.4f}" for r in sorted(sub, key=lambda r: r["min_share"])[:6])
        print(f"{label:<28} {len(sub):>4} {np.mean([r['timbre'] for r in sub]):>+11.2f} "
              f"{np.mean([r['networks'] for r in sub]):>+9.2f}   {shares}")
    print("each item with a source below 1% of the energy:")
    for r in sorted(rows, key=lambda r: r["min_share"]):
        if r["min_share"] >= 0.01:
            break
        what = ("one instrument " if r.get("same_instrument") else "two instruments ") if "players" in r else \
            f"{r['sources']} sources "
        print(f"  {what:<16} smallest share {r['min_share']:.4f}  timbre {r['timbre']:+.2f}  networks "
              f"{r['networks']:+.2f}  named {[n for n, _ in r['named']]}" +
              (f"  playing {r['players']}" if "players" in r else ""))


def main(argv: list[str] | None = None) -> int:
    from avkit.apps.separation import load

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duets", default="", help="a generated folder of duets (part 1)")
    p.add_argument("--mixtures", default=str(ROOT / "runs" / "gm" / "gm_val"), help="solos to mix (part 2)")
    p.add_argument("--count", type=int, default=200, help="mixtures in part 2")
    args = p.parse_args(argv)
    sep = load(None, device="cpu")
    networks = load(None, device="cpu")
    networks.detach_namer()
    if args.duets:
        rows = duets(sep, networks, Path(args.duets))
        report(f"duets of {args.duets}, --regions 2x1", rows,
               [("one instrument's players", lambda r: r["same_instrument"]),
                ("two instruments", lambda r: not r["same_instrument"])])
    if args.mixtures and Path(args.mixtures).is_dir():
        rows = mixtures(sep, Path(args.mixtures), args.count)
        report(f"mixtures of the solos of {args.mixtures}", rows,
               [("2 sources", lambda r: r["sources"] == 2), ("3 sources", lambda r: r["sources"] == 3)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
