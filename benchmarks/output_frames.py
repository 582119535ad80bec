"""Decoding the frames of ``avkit separate``'s output videos: one pass (``VideoReader.frames_in_chunks``) against
a ``frames_at`` call per chunk of 32 frames (what the writer did before, seeking again for every chunk).

For each video (default: the recorded videos of ../shared/media/video), the frames the output videos show (at the
video's rate, at most 30 fps, short side at most 360 px, as ``avkit separate`` decodes them), read both ways in
turns; this process's CPU time, median of ``--repeat`` reads; the frames are checked equal.

    python benchmarks/output_frames.py --repeat 5
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from avkit.apps.separation.video import MAX_OUTPUT_SIDE, OUTPUT_CHUNK  # noqa: E402
from avkit.io import VideoReader  # noqa: E402


def output_times(path: Path) -> tuple[np.ndarray, int | None]:
    """The output videos' frame times and short side for ``path`` (as ``separation.video.read_input``)."""
    with VideoReader(path) as reader:
        duration = float(reader.duration or 0.0)
        fps = min(float(reader.fps or 8.0), 30.0)
        first, _ = reader.frames_at([0.0])
    side = None if min(first.shape[1:3]) <= MAX_OUTPUT_SIDE else MAX_OUTPUT_SIDE
    return np.arange(max(1, int(np.ceil(duration * fps - 1e-9)))) / fps, side


def per_chunk(path: Path, times: np.ndarray, side: int | None) -> list[np.ndarray]:
    with VideoReader(path) as reader:
        return [reader.frames_at(times[s:s + OUTPUT_CHUNK], size=side)[0].numpy()
                for s in range(0, len(times), OUTPUT_CHUNK)]


def one_pass(path: Path, times: np.ndarray, side: int | None) -> list[np.ndarray]:
    with VideoReader(path) as reader:
        return [f.numpy() for f, _ in reader.frames_in_chunks(times, size=side, chunk=OUTPUT_CHUNK)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("videos", nargs="*", help="default: ../shared/media/video/*")
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args(argv)
    folder = ROOT.parent / "shared" / "media" / "video"
    videos = [Path(v) for v in args.videos] or sorted(folder.glob("*.*"))
    if not videos:
        print(f"no videos given and none in {folder}")
        return 0
    print(f"{'video':<34} {'frames':>6} {'per chunk s':>11} {'one pass s':>10} {'faster':>7}   (CPU, median of {args.repeat})")
    for path in videos:
        times, side = output_times(path)
        spent: dict[str, list[float]] = {"per_chunk": [], "one_pass": []}
        for _ in range(args.repeat):
            got = {}
            for name, read in (("per_chunk", per_chunk), ("one_pass", one_pass)):
                start = time.process_time()
                got[name] = read(path, times, side)
                spent[name].append(time.process_time() - start)
            assert np.array_equal(np.concatenate(got["per_chunk"]), np.concatenate(got["one_pass"])), path
        old, new = np.median(spent["per_chunk"]), np.median(spent["one_pass"])
        print(f"{path.name:<34} {len(times):>6} {old:>11.3f} {new:>10.3f} {old / new:>6.2f}x", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
