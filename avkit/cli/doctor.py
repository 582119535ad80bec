"""``avkit doctor``: the installed stack (torch trio, PyAV/FFmpeg, CUDA, extras), for a bug report."""
from __future__ import annotations

import argparse
import json

from avkit.environment import fix_command, report

REQUIRES = ()  # doctor must run when everything else is broken

EPILOG = """examples:
  avkit doctor               a table: versions, whether each package loads, CUDA, optional extras
  avkit doctor --json        the same as JSON: paste it into a bug report

Exit code 0 when every required package loads at a version avkit supports, 1 otherwise (the table
says which one and the command that fixes it).
"""


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("doctor", help="check the installed packages (torch, torchaudio, PyAV, CUDA, ...)",
                              description="Report the versions of Python, torch (and its CUDA build), "
                                          "torchvision, torchaudio, PyAV and its FFmpeg, transformers and "
                                          "OpenCV; whether each loads and is in the range avkit supports; "
                                          "whether CUDA is usable; which optional packages are present.",
                              epilog=EPILOG)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    info = report()
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        _print(info)
    return 0 if info["ok"] else 1


def _print(info: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"avkit {info['avkit']}, Python {info['python']} ({info['executable']})\n{info['platform']}")
    table = Table(title="packages", title_justify="left")
    for col in ("package", "version", "avkit needs", "status"):
        table.add_column(col)
    problems = []
    for name, row in info["packages"].items():
        if not row["loads"]:
            status = f"[red]fails to load[/red]: {row.get('error', '')}"
            problems.append(name)
        elif row.get("in_range") is False:
            status = "[yellow]loads, outside the supported range[/yellow]"
            problems.append(name)
        else:
            status = "[green]ok[/green]"
        table.add_row(row["distribution"], row["version"] or "-", row.get("required", ""), status)
    console.print(table)

    torch = info["torch"]
    if "error" not in torch:
        line = f"torch CUDA build: {torch['cuda_build'] or 'none (CPU build)'}; CUDA usable: {torch['cuda_available']}"
        if torch.get("devices"):
            line += f" ({', '.join(torch['devices'])}; bf16: {torch['bf16_supported']})"
        console.print(line + f"; CPU threads: {torch['threads']}")
    ffmpeg = info["ffmpeg"]
    if "error" not in ffmpeg:
        libs = ", ".join(f"{k} {v}" for k, v in ffmpeg["libraries"].items())
        console.print(f"FFmpeg (inside PyAV) {ffmpeg.get('ffmpeg', '')}: {libs}; "
                      f"H.264 encoder: {ffmpeg.get('h264_encoder')}, AAC encoder: {ffmpeg.get('aac_encoder')}")
    cv = info["opencv"]
    if "error" not in cv:
        console.print(f"OpenCV optical flow: DIS {cv['dis_flow']}, Farneback {cv['farneback_flow']}, "
                      f"TV-L1 {cv['tvl1_flow']} (TV-L1 needs opencv-contrib-python-headless)")
    extras = ", ".join(f"{n} {o['version']}" if o["installed"] else f"{n} -" for n, o in info["optional"].items())
    console.print(f"optional: {extras}")
    for name in problems:
        console.print(f"[bold]fix {name}:[/bold] {fix_command(name)}")
