"""Visual backbone benchmark: forward and training throughput (clips/s) with GFLOPs, in one table.

For every video model, two configurations: ``tiny`` (the registry's tiny preset on 3x8x32x32 clips,
what tests and CPU experiments use) and ``standard`` (default full-size options on 3x16x112x112).
The single-frame 2D baseline measured in the same run is the reference column ("vs 2D").
On CUDA each model is also run with bf16 autocast, and bf16 + channels-last-3d memory format.

    python benchmarks/backbones.py --quick                 # tiny configs only, a few iterations
    python benchmarks/backbones.py                         # tiny + standard on CPU
    python benchmarks/backbones.py --device cuda           # + bf16 autocast and channels_last_3d
    python benchmarks/backbones.py --models c3d r3d_18 --configs standard --json out.json
    python benchmarks/backbones.py --device cpu --markdown            # also the docs/models.md tables
    python benchmarks/backbones.py --from-log docs/benchmarks/backbones_h100.txt --configs standard --markdown

``--from-log FILE`` measures nothing: it reads the table of a saved run's output and reprints it
(``--markdown``: as the Markdown tables of docs/models.md), so a doc table can be rebuilt from its log.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from avkit.models import create_model, list_models, model_entry
from avkit.models.flops import ModelCost, model_cost

# Full-size options that make fixed-size models take the standard 16x112x112 clip.
STANDARD_OPTIONS = {"mvit_v2_s": {"size": 112}, "video_transformer": {"image_size": 112},
                    "hf_videomae": {"image_size": 112}, "hf_timesformer": {"image_size": 112, "num_frames": 16},
                    "hf_vivit": {"image_size": 112, "num_frames": 16}}
CONFIGS = {"tiny": (3, 8, 32, 32), "standard": (3, 16, 112, 112)}


@dataclass
class Row:
    model: str
    config: str
    mode: str
    batch: int
    params_m: float
    gflops: float | None
    forward_clips_s: float | None
    train_clips_s: float | None
    note: str = ""


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _throughput(step, batch: int, device: torch.device, warmup: int, iters: int, min_time: float) -> float:
    for _ in range(warmup):
        step()
    _sync(device)
    start, n = time.perf_counter(), 0
    while n < iters or time.perf_counter() - start < min_time:
        step()
        n += 1
        if n >= 10 * iters:
            break
    _sync(device)
    return batch * n / (time.perf_counter() - start)


def _options(name: str, config: str) -> dict:
    return dict(model_entry(name).tiny) if config == "tiny" else dict(STANDARD_OPTIONS.get(name, {}))


def bench_one(name: str, config: str, mode: str, batch: int, device: torch.device, warmup: int, iters: int,
              min_time: float, cost: ModelCost) -> Row:
    options = _options(name, config)
    shape = CONFIGS[config]
    row = Row(name, config, mode, batch, round((cost.params or 0) / 1e6, 3),
              None if cost.gflops is None else round(cost.gflops, 3), None, None, cost.note)
    if cost.gflops is None:
        return row
    torch.manual_seed(0)
    try:
        model = create_model(name, **options, num_classes=10).to(device)
        x = torch.randn(batch, *shape, device=device)
        y = torch.randint(0, 10, (batch,), device=device)
        if mode.endswith("channels_last"):  # 3D kernels channels-last-3d, 2D (per-frame) kernels channels-last
            for p in model.parameters():
                if p.dim() in (4, 5):
                    fmt = torch.channels_last_3d if p.dim() == 5 else torch.channels_last
                    p.data = p.data.contiguous(memory_format=fmt)
            x = x.contiguous(memory_format=torch.channels_last_3d)
        autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if mode.startswith("bf16")
                    else contextlib.nullcontext())
        opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

        def forward() -> None:
            with torch.inference_mode(), autocast:
                model(x)

        def train() -> None:
            with autocast:
                loss = F.cross_entropy(model(x).float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        model.eval()
        row.forward_clips_s = round(_throughput(forward, batch, device, warmup, iters, min_time), 2)
        model.train()
        row.train_clips_s = round(_throughput(train, batch, device, warmup, iters, min_time), 2)
    except Exception as err:  # noqa: BLE001 - one failing model must not stop the table
        row.note = f"{type(err).__name__}: {str(err).splitlines()[0][:100] if str(err) else ''}"
    finally:
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return row


def print_table(rows: list[Row], device: torch.device) -> None:
    from rich.console import Console
    from rich.table import Table

    ref = {(r.config, r.mode): r.forward_clips_s for r in rows if r.model == "single_frame"}
    title = (f"visual backbones on {device_name(device)}, torch {torch.__version__}: clips/s (higher is better), "
             f"GFLOPs per clip")
    table = Table(title=title, title_justify="left")
    for col in ("model", "config", "mode", "batch", "params", "GFLOPs", "fwd clips/s", "train clips/s",
                "fwd vs 2D", "note"):
        table.add_column(col, justify="left" if col in ("model", "config", "mode", "note") else "right")
    for r in rows:
        base = ref.get((r.config, r.mode))
        rel = f"{r.forward_clips_s / base:.2f}x" if base and r.forward_clips_s else "-"
        table.add_row(r.model, r.config, r.mode, str(r.batch), f"{r.params_m:.2f}M",
                      "-" if r.gflops is None else f"{r.gflops:.2f}",
                      "-" if r.forward_clips_s is None else f"{r.forward_clips_s:.1f}",
                      "-" if r.train_clips_s is None else f"{r.train_clips_s:.1f}", rel, r.note)
    Console(width=200).print(table)


def _num(x: float | None) -> str:
    """clips/s as in the docs: integers from 100, one decimal from 1, else two."""
    if x is None:
        return "-"
    return f"{x:.0f}" if x >= 100 else f"{x:.1f}" if x >= 1 else f"{x:.2f}"


MODE_LABELS = {"fp32": "fp32", "bf16": "bf16", "bf16+channels_last": "bf16+CL"}


def print_markdown(rows: list[Row]) -> None:
    """The Markdown tables of docs/models.md: one row per model and config, one column pair per mode."""
    modes = list(dict.fromkeys(r.mode for r in rows))
    by_key = {(r.model, r.config, r.mode): r for r in rows}
    ref = {(r.config, r.mode): r.forward_clips_s for r in rows if r.model == "single_frame"}
    for config in dict.fromkeys(r.config for r in rows):
        names = list(dict.fromkeys(r.model for r in rows if r.config == config))
        batch = next(r.batch for r in rows if r.config == config)
        print(f"\n{config} config ({'x'.join(map(str, CONFIGS[config]))}, batch {batch}), clips/s; "
              f"fwd vs 2D = forward clips/s / single_frame's in the same mode")
        head = ["model", "GFLOPs", "params"]
        for mode in modes:
            head += [f"{MODE_LABELS.get(mode, mode)} fwd", f"{MODE_LABELS.get(mode, mode)} train"]
        head += [f"{MODE_LABELS.get(m, m)} fwd vs 2D" for m in modes]
        print("| " + " | ".join(head) + " |")
        print("|---|" + "--:|" * (len(head) - 1))
        for name in names:
            first = by_key[(name, config, modes[0])]
            g = first.gflops
            cells = [name, "-" if g is None else f"{g:.3f}" if config == "tiny" else f"{g:.2f}", f"{first.params_m:.2f}M"]
            for mode in modes:
                r = by_key.get((name, config, mode))
                cells += [_num(r.forward_clips_s if r else None), _num(r.train_clips_s if r else None)]
            for mode in modes:
                r, base = by_key.get((name, config, mode)), ref.get((config, mode))
                cells.append(f"{r.forward_clips_s / base:.2f}x" if r and base and r.forward_clips_s else "-")
            print("| " + " | ".join(cells) + " |")


def rows_from_log(path: str) -> tuple[str, list[Row]]:
    """(device title, rows) from a saved run's output: params and GFLOPs from its table (rows start
    with a box bar), clips/s from its progress lines ("name config mode fwd X train Y", 2 decimals)."""
    title, rows, progress = "", [], {}
    for line in open(path, encoding="utf-8"):
        if line.startswith("visual backbones on "):
            title = line.split(": clips/s")[0].removeprefix("visual backbones on ").strip()
        words = line.split()
        if len(words) >= 7 and words[3] == "fwd" and words[5] == "train":
            progress[tuple(words[:3])] = [None if w == "None" else float(w) for w in (words[4], words[6])]
        if not line.startswith("\u2502"):
            continue
        cells = [c.strip() for c in line.strip().strip("\u2502").split("\u2502")]
        model, config, mode, batch, params, gflops, fwd, train, _rel, note = cells
        fwd_s, train_s = progress.get((model, config, mode), [None if fwd == "-" else float(fwd),
                                                              None if train == "-" else float(train)])
        rows.append(Row(model, config, mode, int(batch), float(params.rstrip("M")),
                        None if gflops == "-" else float(gflops), fwd_s, train_s, note))
    return title, rows


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({torch.get_num_threads()} threads)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--models", nargs="*", default=None, help="default: every video model")
    parser.add_argument("--configs", nargs="*", default=None, choices=list(CONFIGS))
    parser.add_argument("--batch", type=int, default=None, help="default: tiny 16; standard 2 (CPU) / 16 (GPU)")
    parser.add_argument("--quick", action="store_true", help="tiny config only, few iterations")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    parser.add_argument("--markdown", action="store_true", help="also print the docs/models.md Markdown tables")
    parser.add_argument("--from-log", default=None, metavar="FILE",
                        help="measure nothing: reprint the table of a saved run's output (with --configs, --models)")
    args = parser.parse_args(argv)

    if args.from_log:
        title, rows = rows_from_log(args.from_log)
        rows = [r for r in rows if (not args.configs or r.config in args.configs)
                and (not args.models or r.model in args.models)]
        print(f"from {args.from_log} ({title}): {len(rows)} rows")
        print_markdown(rows)
        return 0

    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    models = args.models or list_models(modality="video")
    configs = args.configs or (["tiny"] if args.quick else list(CONFIGS))
    modes = ["fp32"] + (["bf16", "bf16+channels_last"] if device.type == "cuda" else [])
    warmup, iters, min_time = (1, 2, 0.0) if args.quick else (2, 3, 0.5) if device.type == "cpu" else (3, 5, 0.3)

    rows = []
    for config in configs:
        batch = args.batch or (16 if config == "tiny" or device.type == "cuda" else 2)
        for name in models:
            cost = model_cost(name, CONFIGS[config], True, **_options(name, config))
            for mode in modes:
                rows.append(bench_one(name, config, mode, batch, device, warmup, iters, min_time, cost))
                r = rows[-1]
                print(f"{name:20s} {config:8s} {mode:20s} fwd {r.forward_clips_s} train {r.train_clips_s} "
                      f"{r.note}", flush=True)
    print_table(rows, device)
    if args.markdown:
        print(f"\n{device_name(device)}, torch {torch.__version__}")
        print_markdown(rows)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": device_name(device), "torch": torch.__version__,
                       "rows": [asdict(r) for r in rows]}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
