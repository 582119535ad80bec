"""Running ``avkit ARGV`` in the test's own process (shared by the tests that call the CLI that way)."""
from __future__ import annotations

import avkit.cli.main as cli


def run_cli(capsys, *argv: object) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``avkit ARGV``; ``capsys`` is pytest's fixture."""
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err
