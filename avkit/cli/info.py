"""``avkit info``: what is inside a media file (container, streams, rotation, default streams),
after checking that its data reaches the end its header states (``--verify``: decodes it all).

Needs PyAV only: no torch, so it starts in a fraction of a second."""
from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the CLI imports PyAV only when a command runs, so --help stays fast
    from avkit.io.probe import MediaInfo, StreamInfo

REQUIRES = ("av",)  # loaded (or reported in one line) before the command runs; no torch

EPILOG = """examples:
  avkit info clip.mp4                 a table of the container and every stream
  avkit info clip.mp4 --json          the same as JSON (avkit.io.probe(path).to_dict())
  avkit info clip.mp4 --verify        also decode every audio and video packet (slower)

What is checked (a failed check prints one line and exits with code 2):
  (default)    the header can be read and the default video stream decodes its first frame; for
               every audio and video stream the packets at its end are read (demuxing, no
               decoding) and must reach the end the header states, to within 0.5 s or two
               frames; FFmpeg must report no error while reading them. Catches files cut off
               after their header or index (e.g. a truncated mp4 whose index comes first).
               Does not look inside the packets: damage in the middle of the data passes. A
               length FFmpeg only estimated from the bit rate (shown as '~') is not compared.
  --verify     decodes every packet of every audio and video stream from the start: any
               decoder or demuxer error (including damage a decoder conceals and only logs)
               fails with the time where it happened. Takes as long as decoding the whole file.
  --no-check   only the header and the first frame (e.g. to see the streams of a damaged file).

The '*' marks the streams avkit reads by default (ffmpeg's choice: the video stream with the most
pixels, the audio stream with the most channels, ties to the lowest index).
"""


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("info", help="show the container and streams of a media file",
                              description="Show the container, duration and every stream of a media "
                                          "file: codec, resolution, fps, frame count, rotation, pixel "
                                          "aspect, sample rate, channels.",
                              epilog=EPILOG)
    p.add_argument("path", help="video or audio file")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    check = p.add_mutually_exclusive_group()
    check.add_argument("--verify", action="store_true",
                       help="decode every audio and video packet and fail on any error (slow)")
    check.add_argument("--no-check", action="store_true",
                       help="skip the check that the data reaches the end the header states")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from avkit.io.probe import probe
    from avkit.io.verify import check_data, verify_decode

    info = probe(args.path)
    if args.verify:
        verify_decode(args.path)
    elif not args.no_check:
        check_data(args.path)
    if args.json:
        print(json.dumps(info.to_dict(), indent=2))
        return 0
    _print_table(info)
    return 0


def _fmt(x: float | None, unit: str = "", digits: int = 3) -> str:
    if x is None:
        return "-"
    return f"{x:.{digits}f}".rstrip("0").rstrip(".") + unit


def _details(s: StreamInfo) -> str:
    if s.type == "video":
        parts = [f"{s.width}x{s.height}", f"{_fmt(s.fps, ' fps', 2)}"]
        if s.frame_count:
            parts.append(f"{s.frame_count} frames")
        if s.rotation:
            parts.append(f"rotation {s.rotation}")
        if s.sample_aspect_ratio and abs(s.sample_aspect_ratio - 1.0) > 1e-3:
            parts.append(f"SAR {s.sample_aspect_ratio:.4g}")
        if s.display_size and s.display_size != (s.height, s.width):
            parts.append(f"shown {s.display_size[1]}x{s.display_size[0]}")
        return ", ".join(parts)
    if s.type == "audio":
        return f"{s.sample_rate} Hz, {s.channels} ch"
    return s.language or ""


def _print_table(info: MediaInfo) -> None:
    from rich.console import Console
    from rich.table import Table

    size = f"{info.size_bytes / 1e6:.2f} MB" if info.size_bytes >= 1e5 else f"{info.size_bytes} B"
    rate = f", {info.bit_rate // 1000} kb/s" if info.bit_rate else ""
    duration = _fmt(info.duration, " s")
    if info.duration_estimated:
        duration = f"~{duration} (estimated from the bit rate: the header gives no length)"
    title = f"{info.path}\n{info.container}, {duration}, {size}{rate}"
    table = Table(title=title, title_justify="left")
    for col in ("#", "type", "codec", "details", "duration"):
        table.add_column(col)
    default = {info.video_index, info.audio_index}
    for s in info.streams:
        mark = "*" if s.index in default else ""
        table.add_row(f"{s.index}{mark}", s.type, s.codec or "-", _details(s), _fmt(s.duration, " s"))
    Console().print(table)
