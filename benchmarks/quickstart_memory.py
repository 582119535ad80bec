"""Peak memory and run time of ``avkit quickstart``, each command run in its own subprocess.

Peak memory is the largest resident set size (max RSS) of any process the command started, as
``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`` reports it in a fresh wrapper process (with
``--workers 0``, the quickstart's default, it is the one training process). The baseline measured
the same way in the same run is a Python process that only imports the stack (torch,
torchvision, torchaudio, PyAV, avkit): what any avkit command costs before it does anything.
Also printed: the quickstart's own time (``results.json`` "seconds"), the wall clock of the whole
subprocess, and its results table.

    python benchmarks/quickstart_memory.py                # the full quickstart (~8 min on 2 cores)
    python benchmarks/quickstart_memory.py --epochs 2     # same data and models, fewer epochs
    python benchmarks/quickstart_memory.py --no-train     # data generation and read-back only
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Runs argv[2:] with its output to the file argv[1], then prints [exit code, max RSS in KiB].
WRAPPER = ("import json, resource, subprocess, sys\n"
           "with open(sys.argv[1], 'w') as log:\n"
           "    rc = subprocess.call(sys.argv[2:], stdout=log, stderr=subprocess.STDOUT)\n"
           "print(json.dumps([rc, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss]))\n")
IMPORTS = "import torch, torchvision, torchaudio, av, avkit, avkit.quickstart"


def measure(cmd: list[str], log: Path) -> tuple[int, float, float]:
    """(exit code, wall seconds, peak RSS in MiB) of ``cmd``, run in a fresh wrapper process."""
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", WRAPPER, str(log), *cmd], check=True,
                         capture_output=True, text=True).stdout
    rc, kib = json.loads(out.strip().splitlines()[-1])
    return rc, time.perf_counter() - t0, kib / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=None, help="passed to avkit quickstart (default: its own, 30)")
    ap.add_argument("--no-train", action="store_true", help="passed to avkit quickstart")
    ap.add_argument("--keep", type=Path, default=None, help="write the quickstart run here instead of a temp folder")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        out = args.keep or Path(tmp) / "quickstart"
        qs = [sys.executable, "-m", "avkit", "quickstart", "--out", str(out), "--overwrite", "--json"]
        options = (["--epochs", str(args.epochs)] if args.epochs else []) + (["--no-train"] if args.no_train else [])
        rows = []
        for name, cmd in (("baseline: python -c 'import torch, ..., avkit'", [sys.executable, "-c", IMPORTS]),
                          (" ".join(["avkit quickstart", *options]), qs + options)):
            log = Path(tmp) / f"log{len(rows)}.txt"
            rc, wall, mib = measure(cmd, log)
            if rc != 0:
                sys.exit(f"{name} failed with exit code {rc}:\n{log.read_text()[-3000:]}")
            rows.append((name, wall, mib))
        summary = json.loads((out / "results.json").read_text())
        results_md = (out / "results.md").read_text() if (out / "results.md").is_file() else ""

    print("| command | wall s | peak RSS MiB | peak RSS GB | vs baseline |")
    print("|---|---:|---:|---:|---:|")
    for name, wall, mib in rows:
        print(f"| {name} | {wall:.0f} | {mib:.0f} | {mib * 1024 ** 2 / 1e9:.2f} | {mib / rows[0][2]:.1f}x |")
    print(f"\nquickstart's own time (results.json 'seconds'): {summary['seconds']:.0f} s; "
          f"device {summary['device']}")
    if results_md:
        print("\n" + results_md.split("\n\n![")[0])


if __name__ == "__main__":
    main()
