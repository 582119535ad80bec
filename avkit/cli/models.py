"""``avkit models``: every registered model with its parameters and, with --flops, GFLOPs per clip.

Without ``--flops`` the table comes from ``avkit/cli/model_listing.py``, a listing generated from
the registry (``write_listing()``; ``tests/test_cli_light.py`` checks that it matches), so the
command starts without torch: building ~30 models to count their parameters takes seconds and
most of a gigabyte. ``--flops`` builds the models and needs torch and torchvision.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from avkit.errors import AvkitError

if TYPE_CHECKING:  # the CLI imports torch only when a command runs, so --help stays fast
    from avkit.models.flops import ModelCost

REQUIRES = ()  # the listing needs no package; --flops loads torch and torchvision in run()
FLOPS_REQUIRES = ("torch", "torchvision")
LISTING = Path(__file__).with_name("model_listing.py")

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
    if args.input is not None:
        parse_shape(args.input)  # reject a bad shape before building any model
    if args.flops:
        rows, descriptions = _live_rows(args)
    else:
        rows, descriptions = _listed_rows(args)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        _print_table(rows, descriptions, args)
    return 0


def _clip_shape(args: argparse.Namespace, tiny_input: Any) -> tuple[int, ...]:
    if args.input:
        return parse_shape(args.input)
    if args.tiny and tiny_input:
        return tuple(tiny_input)
    return (3, 8, 32, 32) if args.tiny else (3, 16, 112, 112)


def _no_family(args: argparse.Namespace, families: set[str]) -> AvkitError:
    return AvkitError(f"no models in family {args.family!r} (families: {', '.join(sorted(families))})")


def _listed_rows(args: argparse.Namespace) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Rows from the generated listing: what the live path gives without --flops, no torch."""
    from avkit.cli.model_listing import MODELS

    chosen = [m for m in MODELS if args.family is None or m["family"] == args.family]
    if not chosen:
        raise _no_family(args, {m["family"] for m in MODELS})
    key = "tiny" if args.tiny else "full"
    rows = [{"name": m["name"], "family": m["family"], "modality": m["modality"],
             "params": m[key]["params"], "gflops": None, "input": list(_clip_shape(args, m["tiny_input"])),
             "note": m[key]["note"]} for m in chosen]
    return rows, {m["name"]: m["description"] for m in chosen}


def _live_rows(args: argparse.Namespace) -> tuple[list[dict[str, Any]], dict[str, str]]:
    from avkit.environment import require

    require(*FLOPS_REQUIRES)
    from avkit.models import list_models, model_entry

    names = list_models(family=args.family)
    if not names:
        raise _no_family(args, {model_entry(n).family for n in list_models()})
    rows = [json.loads(json.dumps(r.to_dict())) for r in _costs(names, args)]  # tuples -> lists, as printed
    return rows, {n: model_entry(n).description for n in names}


def listing() -> list[dict[str, Any]]:
    """What ``model_listing.py`` holds, computed from the registry (builds every model: needs torch)."""
    from avkit.models import list_models, model_entry
    from avkit.models.flops import model_cost

    out = []
    for name in list_models():
        entry = model_entry(name)
        tiny_input = list(entry.tiny_input) if entry.tiny_input else None
        full = model_cost(name, (3, 16, 112, 112), False)
        tiny = model_cost(name, tuple(tiny_input or (3, 8, 32, 32)), False, **entry.tiny)
        out.append({"name": name, "family": entry.family, "modality": entry.modality,
                    "description": entry.description, "tiny_input": tiny_input,
                    "full": {"params": full.params, "note": full.note},
                    "tiny": {"params": tiny.params, "note": tiny.note}})
    return out


def write_listing(path: Path = LISTING) -> Path:
    """Regenerate ``avkit/cli/model_listing.py`` from the registry (run after adding a model):
    ``python -c "from avkit.cli.models import write_listing; write_listing()"``."""
    text = ('"""Every registered model with its parameter counts, for ``avkit models`` without torch.\n\n'
            "Generated by ``avkit.cli.models.write_listing()`` from the registry; do not edit by hand.\n"
            '``tests/test_cli_light.py`` fails when it no longer matches the registry."""\n'
            "from typing import Any\n\n"
            f"MODELS: list[dict[str, Any]] = {json.dumps(listing(), indent=4)}\n")
    text = text.replace(": null", ": None").replace(": true", ": True").replace(": false", ": False")
    path.write_text(text)
    return path


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
        rows.append(model_cost(name, _clip_shape(args, entry.tiny_input), args.flops, **options))
    return rows


def _print_table(rows: list[dict[str, Any]], descriptions: dict[str, str], args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table

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
        params = "-" if r["params"] is None else f"{r['params'] / 1e6:.2f}M"
        note = r["note"] or descriptions[r["name"]]
        cells = [r["name"], r["family"], params]
        if args.flops:
            cells.append("-" if r["gflops"] is None else f"{r['gflops']:.2f}")
            if r["gflops"] is None:
                note = f"[yellow]{r['note']}[/yellow]" if r["note"] else note
        table.add_row(*cells, note)
    console = Console()
    if not console.is_terminal:  # piped: rich would assume 80 columns and fold every description
        console = Console(width=160)
    console.print(table)
