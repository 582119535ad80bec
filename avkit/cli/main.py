"""Entry point of the ``avkit`` command.

Each command lives in its own module ``avkit/cli/<command>.py`` exposing
``register(subparsers) -> argparse.ArgumentParser``; the parser it returns must set
``func=run`` with ``run(args) -> int``. Commands only parse arguments and call the Python API.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from avkit import __version__
from avkit.errors import AvkitError

# Order is the order shown by ``avkit --help``.
COMMANDS = ["quickstart", "info", "generate", "models", "train", "eval", "classify"]

EPILOG = """examples:
  avkit quickstart                         generate data, read it back, print a summary
  avkit info clip.mp4 --json               streams, durations, rotation as JSON
  avkit generate motion data/motion --num 64 --seed 0
  avkit models --flops --input 3x16x112x112

Run 'avkit COMMAND --help' for the options and examples of each command.
"""


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keep example layouts and show defaults."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="avkit",
        description="avkit: audio-visual video understanding toolkit.",
        epilog=EPILOG,
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"avkit {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"avkit.cli.{name}")
        p = module.register(sub)
        p.formatter_class = _Formatter
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show full tracebacks on errors")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code (0 ok, 1 failure, 2 bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    debug = getattr(args, "debug", False)
    try:
        return int(args.func(args) or 0)
    except AvkitError as err:
        if debug:
            raise
        print(f"avkit {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"avkit {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
