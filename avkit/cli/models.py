"""``avkit models``: every registered model with its parameters and, with --flops, GFLOPs per clip."""
from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from avkit.errors import AvkitError

if TYPE_CHECKING:  # the CLI imports torch only when a command runs, so --help stays fast
    from avkit.models.flops import ModelCost

REQUIRES = ("torch", "torchvision")  # loaded (or reported in one line) before the command runs

EPILOG = """examples:
  avkit models                                    names, families, parameters, descriptions
  avkit models --flops                            + GFLOPs per 3x16x112x112 clip (full-size configs)
  avkit models --flops --input 3x8x224x224        another clip size (CxTxHxW)
  avkit models --flops --family torchvision_video --json
  avkit models --tiny --flops                     the tiny CPU presets on their 3x8x32x32 clips

GFLOPs count one multiply-add as one FLOP (the lecture's and torchvision's convention: C3D ~39,
r3d_18 ~41 at 3x16x112x112). Models that cannot take the input (fixed-size transformers, audio
models) show the reason instead. Nothing is computed for real: models run on the meta device.
"""


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("models", help="list models with parameters and GFLOPs per clip",
                              description="List every registered model (video and audio) with its family, "
                                          "parameter count and, with --flops, the GFLOPs of one clip: the "
                                          "lecture's cost comparison of 2D-per-frame, C3D, (2+1)D and "
                                          "transformer models.",
                              epilog=EPILOG)
    p.add_argument("--flops", action="store_true", help="also count GFLOPs per clip")
    p.add_argument("--input", default=None, metavar="CxTxHxW",
                   help="one clip's shape for --flops (default 3x16x112x112, or 3x8x32x32 with --tiny)")
    p.add_argument("--family", default=None, help="only this family (e.g. c3d, torchvision_video)")
    p.add_argument("--tiny", action="store_true", help="build the registry's tiny CPU presets instead")
    p.add_argument("--json", action="store_true", help="print JSON rows instead of a table")
    p.set_defaults(func=run)
    return p


def parse_shape(text: str) -> tuple[int, ...]:
    """``"3x16x112x112"`` -> ``(3, 16, 112, 112)``: one clip, channels x frames x height x width."""
    try:
        shape = tuple(int(v) for v in text.lower().split("x"))
    except ValueError:
        shape = ()
    if len(shape) != 4 or any(v <= 0 for v in shape):
        raise AvkitError(f"--input must be one clip's CxTxHxW, four positive integers joined by 'x' "
                         f"(e.g. 3x16x112x112), got {text!r}")
    return shape


def run(args: argparse.Namespace) -> int:
    from avkit.models import list_models, model_entry

    if args.input is not None:
        parse_shape(args.input)  # reject a bad shape before building any model
    names = list_models(family=args.family)
    if not names:
        families = sorted({model_entry(n).family for n in list_models()})
        raise AvkitError(f"no models in family {args.family!r} (families: {', '.join(families)})")
    rows = _costs(names, args)
    if args.json:
        print(json.dumps([r.to_dict() for r in rows], indent=2))
    else:
        _print_table(rows, args)
    return 0


def _costs(names: list[str], args: argparse.Namespace) -> list[ModelCost]:
    from rich.console import Console
    from rich.progress import track

    from avkit.models import model_entry
    from avkit.models.flops import model_cost

    rows = []
    console = Console(stderr=True)
    for name in track(names, description="building models", console=console, transient=True,
                      disable=args.json or not console.is_terminal):
        entry = model_entry(name)
        options = entry.tiny if args.tiny else {}
        if args.input:
            shape = parse_shape(args.input)
        elif args.tiny and entry.tiny_input:
            shape = entry.tiny_input
        else:
            shape = (3, 8, 32, 32) if args.tiny else (3, 16, 112, 112)
        rows.append(model_cost(name, shape, args.flops, **options))
    return rows


def _print_table(rows: list[ModelCost], args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table

    from avkit.models import model_entry

    what = "tiny presets" if args.tiny else "default (full-size) configs"
    shape = args.input or ("3x8x32x32" if args.tiny else "3x16x112x112")
    title = f"avkit models: {what}" + (f", GFLOPs per {shape} clip (1 multiply-add = 1 FLOP)" if args.flops else "")
    table = Table(title=title, title_justify="left")
    table.add_column("model")
    table.add_column("family")
    table.add_column("params", justify="right")
    if args.flops:
        table.add_column("GFLOPs", justify="right")
    table.add_column("description / note", overflow="fold")
    for r in rows:
        params = "-" if r.params is None else f"{r.params / 1e6:.2f}M"
        note = r.note or model_entry(r.name).description
        cells = [r.name, r.family, params]
        if args.flops:
            cells.append("-" if r.gflops is None else f"{r.gflops:.2f}")
            if r.gflops is None:
                note = f"[yellow]{r.note}[/yellow]" if r.note else note
        table.add_row(*cells, note)
    console = Console()
    if not console.is_terminal:  # piped: rich would assume 80 columns and fold every description
        console = Console(width=160)
    console.print(table)
