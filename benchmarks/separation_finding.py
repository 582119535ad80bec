"""How well ``avkit separate``'s ``--regions auto`` finds the players of a video, and what a user hears.

Every clip of a held-out gm_instruments set (``runs/gm/gm_test`` by default: solos, duets of two
instruments and duets of one instrument, 3 s each, seeds training never drew) goes through what
``separate_video`` does with ``--regions auto``: read, analyse, ``Separator.find_sources``, the namer's
plan, separate. Each found region is given to the player whose box its box overlaps most (none: a stray region). Per kind of clip:

  found         mean number of sources found
  exact         share of clips with one source per player and no stray one
  split         share of players found as more than one source
  missed        share of players no source lands on
  named right   share of exact duets of two instruments whose sources were both named, and right
  SDRi          per player, the sum of the sources that land on it against the player's own stem, minus
                the mixture against that stem (a missed player scores the silence it gets: its SDR is that of
                an empty estimate, so a floor of -30 dB is used), mean over players (duets only)

With ``--tune``, the settings of ``find_sources`` (``active``, ``similarity``, ``saddle``) over a grid, the
counts only (no separation), to choose them on a validation set (``runs/gm/gm_val``), never on the test set.

    python benchmarks/separation_finding.py [--data runs/gm/gm_test] [--limit N]
    python benchmarks/separation_finding.py --data runs/gm/gm_val --tune
"""
from __future__ import annotations

import argparse
import collections
import itertools
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

FLOOR_DB = -30.0


def _sdr(ref: np.ndarray, est: np.ndarray) -> float:
    err = ((ref - est) ** 2).sum()
    return float(max(FLOOR_DB, 10 * np.log10((ref ** 2).sum() / max(err, 1e-12))))


def _overlap(box: list[float], region: list[float]) -> float:
    """Area of the intersection of two ``[x0, y0, x1, y1]`` boxes."""
    return max(0.0, min(box[2], region[2]) - max(box[0], region[0])) * max(0.0, min(box[3], region[3]) - max(box[1], region[1]))


def landing(boxes: list, players: list[dict]) -> tuple[list[list[int]], int]:
    """The found boxes that land on each player (the player whose box a found box overlaps most), and how
    many overlap none (the sound map is coarse: a found box may reach past its player's box)."""
    landed: list[list[int]] = [[] for _ in players]
    stray = 0
    for k, box in enumerate(boxes):
        areas = [_overlap(box, p["region"]) for p in players]
        if max(areas) > 0:
            landed[int(np.argmax(areas))].append(k)
        else:
            stray += 1
    return landed, stray


def analysed(sep: Any, root: Path, row: dict) -> tuple[Any, Any, list[dict]]:
    """The clip as ``separate_video`` reads it, its analysis, and its players (a solo: the whole frame)."""
    from avkit.apps.separation.video import read_input

    clip = read_input(root / row["path"], sep, output_frames=False)
    a = sep.analyse(clip.audio, clip.net_frames)
    height, width = clip.frame_size
    players = row["meta"].get("sources") or [{"label": row["label"], "region": [0, 0, width, height], "stem": None}]
    return clip, a, players


def score_clip(sep: Any, root: Path, row: dict) -> dict:
    """Find the sources of one clip as ``--regions auto`` does; what landed on which player."""
    from avkit.apps.separation.regions import parse_regions
    from avkit.apps.separation.video import separate_sources
    from avkit.io import read_audio

    clip, a, players = analysed(sep, root, row)
    found = separate_sources(sep, clip, a, parse_regions("auto"))  # what separate_video does
    masks, boxes, named, estimates = found.masks, found.boxes, found.named, found.estimates
    landed, stray = landing(boxes, players)
    out: dict[str, Any] = {"found": len(masks), "stray": stray, "landed": [len(x) for x in landed]}
    out["exact"] = stray == 0 and all(len(x) == 1 for x in landed)
    if named is not None and out["exact"] and len(players) == 2 and players[0]["label"] != players[1]["label"]:
        out["named_right"] = all(named[x[0]][0] == p["label"] and named[x[0]][1] > 0 for x, p in zip(landed, players))
    if len(players) == 2:
        n = len(clip.audio)
        gains = []
        for p, ks in zip(players, landed):
            ref, _ = read_audio(root / p["stem"], sample_rate=sep.sample_rate)
            ref = ref.numpy()[:n]
            ref = np.pad(ref, (0, n - len(ref))).astype(np.float64)
            est = estimates[ks].sum(0).astype(np.float64) if ks else np.zeros(n)
            gains.append(_sdr(ref, est) - _sdr(ref, clip.audio.astype(np.float64)))
        out["sdri"] = float(np.mean(gains))
    return out


def tune(sep: Any, root: Path, by_kind: dict[str, list[dict]]) -> None:
    """Exact / split / missed per kind of clip for each setting of the grid (the counts only)."""
    from avkit.apps.separation.regions import group_positions, region_box

    maps = {name: [] for name in by_kind}
    for name, rows in by_kind.items():
        for row in rows:
            clip, a, players = analysed(sep, root, row)
            share, _, corr = sep._positions(a)
            maps[name].append((share, corr, players, clip.frame_size))
    print("| active | similarity | saddle | " + " | ".join(f"{name}: exact (split, missed)" for name in maps)
          + " | mean exact |")
    print("|--:|--:|--:|" + "--:|" * len(maps) + "--:|")
    for active, similarity, saddle in itertools.product((0.1, 0.15, 0.2, 0.25), (0.3, 0.4, 0.5, 0.6), (0.2, 0.35, 0.5)):
        cells, exact = [], []
        for clips in maps.values():
            rows = []
            for share, corr, players, frame_size in clips:
                found = group_positions(share, corr, active=active, similarity=similarity, saddle=saddle)
                landed, stray = landing([region_box(m, frame_size) for m in found], players)
                rows.append((stray == 0 and all(len(x) == 1 for x in landed), [len(x) for x in landed]))
            n = [k for _, ks in rows for k in ks]
            exact.append(np.mean([r[0] for r in rows]))
            cells.append(f"{exact[-1]:.2f} ({np.mean([k > 1 for k in n]):.2f}, {np.mean([k == 0 for k in n]):.2f})")
        print(f"| {active} | {similarity} | {saddle} | " + " | ".join(cells) + f" | {np.mean(exact):.3f} |", flush=True)


def kind(row: dict) -> str:
    meta = row["meta"]
    if not meta.get("duet"):
        return "solo"
    return "duet, one instrument" if meta.get("same_instrument") else "duet, two instruments"


def main(argv: list[str] | None = None) -> int:
    from avkit.apps.separation import load

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="runs/gm/gm_test")
    p.add_argument("--limit", type=int, default=0, help="at most this many clips of each kind (0: all)")
    p.add_argument("--tune", action="store_true", help="the grid of find_sources settings (counts only)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    root = Path(args.data)
    rows = [json.loads(line) for line in (root / "manifest.jsonl").read_text().splitlines() if line.strip()]
    by_kind: dict[str, list[dict]] = collections.defaultdict(list)
    for row in rows:
        if not args.limit or len(by_kind[kind(row)]) < args.limit:
            by_kind[kind(row)].append(row)
    sep = load()
    print(f"# python benchmarks/separation_finding.py --data {args.data}"
          + (f" --limit {args.limit}" if args.limit else "")
          + (" --tune" if args.tune else "")
          + f"; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; the shipped separator, --regions auto")
    if args.tune:
        tune(sep, root, by_kind)
        return 0
    print("| clips | n | found | exact | split | missed | named right | SDRi (dB) |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|")
    for name in ("solo", "duet, two instruments", "duet, one instrument"):
        results = [score_clip(sep, root, row) for row in by_kind.get(name, [])]
        if not results:
            continue
        landed = [n for r in results for n in r["landed"]]
        named = [r["named_right"] for r in results if "named_right" in r]
        sdri = [r["sdri"] for r in results if "sdri" in r]
        print(f"| {name} | {len(results)} | {np.mean([r['found'] for r in results]):.2f} "
              f"| {np.mean([r['exact'] for r in results]):.2f} | {np.mean([n > 1 for n in landed]):.2f} "
              f"| {np.mean([n == 0 for n in landed]):.2f} | "
              + (f"{np.mean(named):.2f} ({len(named)})" if named else "-") + " | "
              + (f"{np.mean(sdri):+.2f}" if sdri else "-") + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
