"""How fast does ``avkit info FILE`` start and answer, next to ``ffprobe`` on the same file?

Each command runs as a fresh process, ``--runs`` times, alternating between the commands so a
change in the machine's load hits all of them alike; the table gives the median wall time and the
median peak memory (max RSS of that process, from ``os.wait4``), with the range in brackets.

Commands:
  avkit info FILE             header, first frame, and the tail packets checked against the header
  avkit info --no-check FILE  header and first frame only
  avkit info --verify FILE    decodes every audio and video packet
  ffprobe                     ``ffprobe -v error -show_format -show_streams FILE`` (header only)
  python -c 'import torch'    what ``avkit info`` loaded before it stopped needing torch

    python benchmarks/info.py                      # ../shared/media/video/friday_h264_aac.mp4, else a generated file
    python benchmarks/info.py --file clip.mkv --runs 21
    git archive bcc52bc avkit | tar -x -C /tmp/old     # avkit before issue #20, to compare with:
    python benchmarks/info.py --baseline-src /tmp/old  # + a row for `avkit info FILE` run from that tree
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT.parent / "shared" / "media" / "video" / "friday_h264_aac.mp4"


def run_once(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, int]:
    """(wall seconds, peak RSS in MB, exit code) of one run of ``cmd``."""
    start = time.perf_counter()
    # Run outside the repository: `python -m` puts the working folder first on sys.path, which
    # would shadow --baseline-src.
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            cwd=tempfile.gettempdir())
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_maxrss / 1024, proc.returncode  # ru_maxrss is in KB on Linux


def make_file(folder: Path) -> Path:
    """A 10 s 640x360 H.264 + AAC mp4, when the shared media folder is absent."""
    import numpy as np

    from avkit.io import write_video

    t = np.arange(300)[:, None, None, None]
    frames = np.broadcast_to(((t * 4) % 256).astype(np.uint8), (300, 360, 640, 3))
    wave = (0.3 * np.sin(np.arange(160000) / 16000 * 2 * np.pi * 440)).astype(np.float32)
    return write_video(folder / "clip.mp4", frames, fps=30, audio=wave, sample_rate=16000)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--file", type=Path, default=None, help="media file (default: see above)")
    ap.add_argument("--runs", type=int, default=11, help="runs of each command (median reported)")
    ap.add_argument("--baseline-src", type=Path, default=None,
                    help="a folder holding another avkit package: also time `avkit info FILE` from it")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = (args.file or (DEFAULT if DEFAULT.is_file() else make_file(Path(tmp)))).resolve()
        avkit = [sys.executable, "-m", "avkit"]
        commands: dict[str, list[str]] = {}
        envs: dict[str, dict[str, str]] = {}
        if args.baseline_src:
            name = f"avkit info FILE (avkit from {args.baseline_src})"
            commands[name] = [*avkit, "info", str(path)]
            envs[name] = {**os.environ, "PYTHONPATH": str(args.baseline_src.resolve())}
        commands.update({
            "avkit info FILE": [*avkit, "info", str(path)],
            "avkit info --no-check FILE": [*avkit, "info", "--no-check", str(path)],
            "avkit info --verify FILE": [*avkit, "info", "--verify", str(path)],
            "python -c 'import torch'": [sys.executable, "-c", "import torch"],
        })
        ffprobe = shutil.which("ffprobe")
        if ffprobe:
            commands["ffprobe -show_format -show_streams"] = [
                ffprobe, "-v", "error", "-show_format", "-show_streams", str(path)]
        results: dict[str, list[tuple[float, float, int]]] = {name: [] for name in commands}
        for name, cmd in commands.items():  # one untimed run each: files and libraries in the page cache
            run_once(cmd, envs.get(name))
        for _ in range(args.runs):
            for name, cmd in commands.items():
                results[name].append(run_once(cmd, envs.get(name)))

        size = path.stat().st_size / 1e6
        print(f"file: {path.name} ({size:.2f} MB); {args.runs} runs of each command, interleaved; "
              f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end")
        print("\n| command | wall s, median (range) | peak RSS MB, median (range) | exit code |")
        print("|---|---:|---:|---:|")
        for name, rows in results.items():
            walls, rss, codes = zip(*rows)
            print(f"| {name} | {statistics.median(walls):.3f} ({min(walls):.3f}-{max(walls):.3f}) "
                  f"| {statistics.median(rss):.0f} ({min(rss):.0f}-{max(rss):.0f}) | {max(codes)} |")
        if not ffprobe:
            print("| ffprobe | ffprobe not installed | - | - |")


if __name__ == "__main__":
    main()
