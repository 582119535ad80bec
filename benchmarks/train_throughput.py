"""Training throughput of the quickstart models with the real data pipeline, against the loader alone.

One run measures, on the quickstart's motion data and recipe (8 frames of 32x32, batch 16):

1. the loader's own clips/s: a full pass of the training DataLoader with nothing else running,
   for the ways a user can feed it (decode every item with 0 or 1 worker processes, or the
   in-memory cache the quickstart uses, ``data.cache: true``), video only and video + log-mel;
2. each quickstart model's training clips/s over one epoch fed by that same cached loader
   (forward, backward, optimizer step, and the time spent waiting for batches);
3. the ratio loader clips/s / training clips/s, which must be above 1 (the loader is not the
   bottleneck), and the share of each training epoch spent waiting for data.

    python benchmarks/train_throughput.py                  # generate 320 clips, all models
    python benchmarks/train_throughput.py --data DIR       # an existing `avkit generate motion` folder
    python benchmarks/train_throughput.py --models c3d two_stream --json out.json
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table
from torch.utils.data import DataLoader

from avkit.data import collate
from avkit.data.synthetic import generate
from avkit.engine.build import build_dataset, build_model
from avkit.engine.config import Config, as_config
from avkit.engine.trainer import forward_batch, loss_fn
from avkit.quickstart import QuickModel, QuickstartConfig, default_models, recipe


@dataclass
class LoaderRow:
    loader: str
    audio: bool
    clips_s: float


@dataclass
class TrainRow:
    model: str
    audio: bool
    train_clips_s: float  # whole epoch: data + step
    step_clips_s: float  # forward + backward + optimizer step only
    loader_clips_s: float  # the same cached loader alone (from the loader table)
    ratio: float  # loader_clips_s / train_clips_s: > 1 means the loader keeps up
    data_wait: float  # share of the epoch spent waiting for batches


def _config(data: Path, model: dict, qs: QuickstartConfig) -> Config:
    return as_config(recipe(qs, data, Path(tempfile.gettempdir()) / "unused", QuickModel("bench", "", model)))


def _loader(cfg: Config, cache: bool, workers: int, seed: int = 0):
    dataset = build_dataset(cfg.data, cfg.data.train_split, train=True, seed=seed, cache=cache)
    loader = DataLoader(dataset, batch_size=cfg.data.batch_size, shuffle=True, num_workers=workers,
                        collate_fn=collate, persistent_workers=False)
    return dataset, loader


def time_loader(cfg: Config, cache: bool, workers: int) -> float:
    """Clips/s of one full pass (after a warm-up pass that fills the cache, when cached)."""
    dataset, loader = _loader(cfg, cache, workers)
    if cache:
        for _ in loader:
            pass
    dataset.set_epoch(1)
    start, n = time.perf_counter(), 0
    for batch in loader:
        n += len(batch["label"])
    return n / (time.perf_counter() - start)


def time_training(cfg: Config, num_classes: int) -> tuple[float, float, float]:
    """(epoch clips/s, step-only clips/s, share of time waiting for data) over one cached epoch."""
    dataset, loader = _loader(cfg, cache=True, workers=cfg.data.num_workers)
    for _ in loader:  # fill the cache, as the quickstart's first epoch does
        pass
    dataset.set_epoch(1)
    torch.manual_seed(0)
    model = build_model(cfg.model, num_classes)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr)
    n, step_time = 0, 0.0
    start = time.perf_counter()
    for batch in loader:
        t0 = time.perf_counter()
        loss = loss_fn(forward_batch(model, batch), batch["label"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step_time += time.perf_counter() - t0
        n += len(batch["label"])
    total = time.perf_counter() - start
    return n / total, n / step_time, 1.0 - step_time / total


def print_tables(loaders: list[LoaderRow], rows: list[TrainRow], header: str) -> None:
    console = Console(width=160)
    table = Table(title=f"loader alone ({header})")
    for col in ("loader", "audio", "clips/s"):
        table.add_column(col, justify="left" if col == "loader" else "right")
    for r in loaders:
        table.add_row(r.loader, "log-mel" if r.audio else "-", f"{r.clips_s:.0f}")
    console.print(table)
    table = Table(title="training with the cached loader (the quickstart pipeline)")
    for col in ("model", "train clips/s", "step-only clips/s", "loader clips/s", "loader / train", "waiting for data"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for r in rows:
        table.add_row(r.model, f"{r.train_clips_s:.0f}", f"{r.step_clips_s:.0f}", f"{r.loader_clips_s:.0f}",
                      f"{r.ratio:.1f}x", f"{r.data_wait:.0%}")
    console.print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="existing motion data folder (default: generate --num clips)")
    parser.add_argument("--num", type=int, default=320, help="clips to generate when --data is not given")
    parser.add_argument("--models", nargs="+", help="quickstart model names (default: all)")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = parser.parse_args(argv)

    qs = QuickstartConfig()
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if data is None:
            data = Path(tmp) / "motion"
            generate("motion", data, num=args.num, seed=0, size=qs.size, fps=qs.fps)
        models = [m for m in default_models() if not args.models or m.name in args.models]
        video_cfg = _config(data, {"video": "c3d"}, qs)
        audio_cfg = _config(data, {"video": "c3d", "audio": "audio_cnn", "fusion": "concat"}, qs)
        loaders: list[LoaderRow] = []
        for audio, cfg in ((False, video_cfg), (True, audio_cfg)):
            for name, cache, workers in (("decode, 0 workers", False, 0), ("decode, 1 worker", False, 1),
                                         ("cache (quickstart)", True, 0)):
                loaders.append(LoaderRow(name, audio, time_loader(cfg, cache, workers)))
                print(f"loader {name:20s} audio={audio!s:5s} {loaders[-1].clips_s:8.0f} clips/s", flush=True)
        cached = {r.audio: r.clips_s for r in loaders if r.loader.startswith("cache")}
        num_classes = len(json.loads((data / "classes.json").read_text()))
        rows: list[TrainRow] = []
        for qm in models:
            audio = bool(qm.model.get("audio"))
            train_s, step_s, wait = time_training(_config(data, qm.model, qs), num_classes)
            rows.append(TrainRow(qm.name, audio, train_s, step_s, cached[audio], cached[audio] / train_s, wait))
            print(f"train  {qm.name:20s} {train_s:8.0f} clips/s (step only {step_s:.0f}), waiting {wait:.0%}",
                  flush=True)
    header = f"{torch.get_num_threads()} torch threads, batch {qs.batch_size}, {qs.num_frames}x{qs.size}x{qs.size}"
    print_tables(loaders, rows, header)
    if args.json:
        args.json.write_text(json.dumps({"loaders": [asdict(r) for r in loaders], "train": [asdict(r) for r in rows]},
                                        indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
