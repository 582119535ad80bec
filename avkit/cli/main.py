"""Entry point of the ``avkit`` command.

Each command lives in its own module ``avkit/cli/<command>.py`` exposing
``register(subparsers) -> argparse.ArgumentParser``; the parser it returns must set
``func=run`` with ``run(args) -> int``. Commands only parse arguments and call the Python API.
A module may set ``REQUIRES``: the packages its command imports; they are loaded (and a broken one
reported in one line) before the command runs, so a broken torchaudio stops ``avkit train`` with
the fix to run but leaves ``avkit --help``, ``avkit info`` and ``avkit doctor`` working.

Errors: bad input (:class:`~avkit.errors.AvkitError`, OS errors such as a missing file or a
read-only folder, a package that fails to load) prints ``avkit COMMAND: error: ...`` on one line
and exits with code 2; ``--debug`` shows the traceback instead. Anything else is a bug in avkit and
keeps its traceback.
"""
from __future__ import annotations

import argparse
import gc
import importlib
import sys
from collections.abc import Sequence

from avkit import __version__
from avkit.errors import AvkitError

# Order is the order shown by ``avkit --help``.
COMMANDS = ["quickstart", "info", "generate", "models", "weights", "train", "eval", "classify", "select", "localize", "separate", "ask",
            "caption", "batch", "prepare", "demo", "doctor"]

EPILOG = """examples:
  avkit quickstart                         generate data, read it back, print a summary
  avkit info clip.mp4 --json               streams, durations, rotation as JSON
  avkit generate motion data/motion --num 64 --seed 0
  avkit models --flops --input 3x16x112x112
  avkit doctor --json                      versions of torch, PyAV/FFmpeg, ... for a bug report

Run 'avkit COMMAND --help' for the options and examples of each command.
"""


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keep example layouts and show defaults, except where the help already says its default or there is
    none worth showing (None, a flag's False): "(default: ...) (default: None)" read as noise."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.default is None or action.default is False or "default" in text:
            return text
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (with where to look), exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The ``avkit`` parser; ``only`` registers just that command (a run needs no other module)."""
    parser = _Parser(
        prog="avkit",
        description="avkit: audio-visual video understanding toolkit.",
        epilog=EPILOG,
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"avkit {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        if only is not None and name != only:
            continue
        try:
            module = importlib.import_module(f"avkit.cli.{name}")
        except Exception as err:  # a dependency that fails to load must not take down every command
            p = _unavailable(sub, name, err)
        else:
            p = module.register(sub)
            p.set_defaults(requires=tuple(getattr(module, "REQUIRES", ())))
        p.formatter_class = _Formatter
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show full tracebacks on errors")
    return parser


def _unavailable(sub: argparse._SubParsersAction, name: str, err: Exception) -> argparse.ArgumentParser:
    """A stand-in for a command whose module failed to import: it reports why when run."""
    from avkit.environment import failed_dependency

    reason = failed_dependency(err) or err
    p = sub.add_parser(name, help=f"(unavailable: run 'avkit {name}' for the reason)", add_help=False,
                       description=str(reason))
    p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    p.add_argument("-h", "--help", action="store_true", help=argparse.SUPPRESS)

    def run(args: argparse.Namespace) -> int:
        raise reason

    p.set_defaults(func=run, requires=())
    return p


def error_line(err: BaseException) -> str | None:
    """The one-line message for an error that is the user's to fix, or None for a bug in avkit."""
    from avkit.environment import failed_dependency

    if isinstance(err, AvkitError):
        return str(err)
    if isinstance(err, (ImportError, OSError)):
        dependency = failed_dependency(err)
        if dependency is not None:
            return str(dependency)
    if isinstance(err, OSError):
        where = err.filename if err.filename is not None else ""
        if err.filename2 is not None:
            where = f"{where} -> {err.filename2}"
        what = err.strerror or str(err)
        return f"{where}: {what}" if where else what
    return None


def main(argv: Sequence[str] | None = None, *, own_process: bool = False) -> int:
    """Run the CLI; returns the process exit code (0 ok, 1 failure, 2 bad input).

    ``own_process``: this process runs one command and exits (the ``avkit`` program, :func:`cli`). Then the
    garbage collector is off while the command's packages import and the objects they made (about a million
    for torch) are frozen, never walked: not during the imports, not by a later collection, not at exit.
    That is 0.3-0.4 s of every command's start and end on 2 cores (a fresh ``python -c "import torch"``
    1.33-1.40 s, 1.06-1.07 s so: docs/benchmarks/separation_gm_speed_2026-12-07_ninth.log). Not for a
    caller's process: frozen objects are never freed."""
    if own_process:
        gc.disable()
    argv = list(sys.argv[1:] if argv is None else argv)
    # Import only the command that runs (the first word that is not an option; the top-level
    # options take no values), so e.g. `avkit info` loads none of the other commands' modules.
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(only=command if command in COMMANDS else None)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    debug = getattr(args, "debug", False)
    try:
        from avkit.environment import require

        require(*getattr(args, "requires", ()))
        if own_process:
            gc.freeze()
            gc.enable()
        code = int(args.func(args) or 0)
        if own_process:
            gc.freeze()  # the process ends: nothing for the collector to walk at exit
        return code
    except KeyboardInterrupt:
        print(f"avkit {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        line = error_line(err)
        if debug or line is None:
            raise
        print(f"avkit {args.command}: error: {line}", file=sys.stderr)
        return 2


def cli() -> int:
    """The ``avkit`` program (its console script and ``python -m avkit``): :func:`main` in a process of its own."""
    return main(own_process=True)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(cli())
