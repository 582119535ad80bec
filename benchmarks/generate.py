"""Generation speed of the synthetic kinds: clips/s, split into rendering (numpy) and encoding (H.264+AAC).

The baseline measured in the same run is encoding alone (``write_video`` of already rendered
clips, plus the WAV stems of kinds that have them), so the table shows how much of the cost the
procedural rendering adds on top of the unavoidable mp4 writing.

    python benchmarks/generate.py                  # defaults: 32 px, 8 fps, kind default durations
    python benchmarks/generate.py --num 32 --size 48 --kinds motion instruments
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from avkit.data.synthetic import GENERATORS, clip_label, generate, make_config
from avkit.data.synthetic.common import write_wav
from avkit.io.write import write_video


def bench(kind: str, num: int, size: int, seed: int = 0) -> dict[str, float]:
    gen = GENERATORS[kind]
    cfg = make_config(kind, size=size)
    names = [c.name for c in gen.classes(cfg)]
    t0 = time.perf_counter()
    clips = [gen.render(cfg, clip_label(names, seed, i), np.random.default_rng([seed, i])) for i in range(num)]
    render = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        for i, clip in enumerate(clips):
            write_video(Path(tmp) / f"{i}.mp4", clip.frames, cfg.fps, clip.audio, cfg.sample_rate)
            for k, stem in enumerate(clip.stems):  # instruments: the lossless WAV stems
                write_wav(Path(tmp) / f"{i}.s{k}.wav", stem, cfg.sample_rate)
        encode = time.perf_counter() - t0
        t0 = time.perf_counter()
        result = generate(kind, Path(tmp) / "full", num, seed)
        total = time.perf_counter() - t0
    return {"render_ms": 1000 * render / num, "encode_ms": 1000 * encode / num,
            "clips_per_s": num / total, "encode_only_clips_per_s": num / encode,
            "video_s_per_s": num * cfg.duration / total, "duration": cfg.duration, "num": result.num}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kinds", nargs="+", default=list(GENERATORS), choices=list(GENERATORS))
    ap.add_argument("--num", type=int, default=16, help="clips per kind (longvideo uses num // 4)")
    ap.add_argument("--size", type=int, default=32)
    args = ap.parse_args()

    print("| kind | clip | clips | render ms/clip | encode ms/clip | encode-only clips/s (baseline) "
          "| generate clips/s | video s per s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for kind in args.kinds:
        num = max(2, args.num // 4) if kind == "longvideo" else args.num
        r = bench(kind, num, args.size)
        print(f"| {kind} | {r['duration']:g} s, {args.size}x{args.size} | {num} | {r['render_ms']:.1f} "
              f"| {r['encode_ms']:.1f} | {r['encode_only_clips_per_s']:.1f} | {r['clips_per_s']:.1f} "
              f"| {r['video_s_per_s']:.0f} |")


if __name__ == "__main__":
    main()
