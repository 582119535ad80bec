"""Render speed of ``gm_instruments`` (sampled notes + moving pictures) against the synthetic
``instruments`` kind, measured in the same run: CPU ms per clip (process time, so another job on the
machine does not count) and x real time, split into audio (the notes) and the whole clip.

    python benchmarks/gm_render.py                 # 40 clips of 3 s, 16 kHz, 64 px, 8 fps
    python benchmarks/gm_render.py --num 80 --size 32
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from avkit.data.synthetic import GENERATORS, clip_label, make_config
from avkit.data.synthetic.gm_instruments import _parts, play
from avkit.data.synthetic.music import BY_NAME, compose_part, compose_song, register


def cpu_ms(fn, num: int) -> float:
    t0 = time.process_time()
    for i in range(num):
        fn(i)
    return (time.process_time() - t0) / num * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--num", type=int, default=40)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--duration", type=float, default=3.0)
    args = ap.parse_args()
    rows = []
    for kind, extra in (("instruments", {}), ("gm_instruments", {}), ("gm_instruments", {"same_duets": 0.5})):
        gen = GENERATORS[kind]
        cfg = make_config(kind, size=args.size, duration=args.duration, **extra)
        names = [c.name for c in gen.classes(cfg)]
        gen.render(cfg, names[0], np.random.default_rng(0))  # warm-up: the bank is read once per process
        ms = cpu_ms(lambda i, gen=gen, cfg=cfg, names=names: gen.render(
            cfg, clip_label(names, 0, i), np.random.default_rng([0, i])), args.num)
        rows.append((kind + (" (half same-instrument duets)" if extra else ""), ms))
    cfg = make_config("gm_instruments", duration=args.duration)
    names = [c.name for c in GENERATORS["gm_instruments"].classes(cfg)]

    def audio_only(i: int) -> None:
        rng = np.random.default_rng([1, i])
        inst = BY_NAME[names[i % len(names)]]
        song = compose_song(rng)
        role, where = _parts([inst], rng)[0]
        play(inst, compose_part(song, inst, role, register(inst, rng, where), args.duration, rng), args.duration,
             cfg.sample_rate)

    audio = cpu_ms(audio_only, args.num)
    print(f"{args.num} clips of {args.duration:g} s at 16 kHz, {args.size} px, 8 fps; CPU ms per clip (process time)")
    print(f"{'what':<48} {'ms/clip':>8} {'x real time':>12}")
    print(f"{'gm_instruments audio only (one solo part)':<48} {audio:8.1f} {args.duration * 1000 / audio:12.0f}")
    for name, ms in rows:
        print(f"{name:<48} {ms:8.1f} {args.duration * 1000 / ms:12.0f}")


if __name__ == "__main__":
    main()
