"""Audio decoding: avkit's ``read_audio`` against TorchCodec's ``AudioDecoder`` and a bare PyAV decode loop.

Each method reads the whole sound track of a file as 16 kHz mono float32 (the rate avkit's models use),
the file opened for each read (its opening is timed), one thread, in one process, alternating methods so
that load on this shared machine falls on all of them alike. The table shows the median milliseconds
of wall time and of this process's CPU time (``time.process_time``: what the read itself costs, less
disturbed by other jobs on a busy machine), and the ratios to TorchCodec (> 1: avkit faster).

  avkit          ``avkit.io.read_audio(path, sample_rate=16000)``: decode, average the channels, resample
                 (avkit's rules: gaps filled, overlaps dropped, exact length)
  torchcodec     ``AudioDecoder(path, sample_rate=16000, num_channels=1).get_all_samples()``, if it imports
  pyav decode    ``for frame in container.decode(audio): frame.to_ndarray()`` at the file's own rate and
                 channels: no resampling, no downmix
  pyav floor     the least a PyAV-based reader of 16 kHz mono does: decode, each frame's planes as views
                 added into one buffer, one soxr resampling; no timestamps, no checks (avkit's rules cost
                 what avkit takes beyond this)

Files: a generated 10 s stereo 44.1 kHz AAC track under a small H.264 video, and the shared real clips
(../shared/media/video: AAC, Opus, Vorbis, MP3) when present. The samples are compared too: avkit and
TorchCodec are compared (the last column): lengths, the lag that aligns them (avkit places the first
sample by the stream's timestamps, trimming codec delay such as Opus's pre-skip), and the largest
difference after aligning and matching levels (FFmpeg's downmix of stereo to mono weights each channel
0.707, avkit averages them).

    PYTHONPATH=/tmp/tc python benchmarks/decode_audio.py    # with a torchcodec installed outside the venv
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np

from avkit.io import read_audio

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "media" / "video"
RATE = 16000


def make_track(path: Path, seconds: float = 10.0) -> Path:
    """A 10 s H.264 video with a stereo 44.1 kHz AAC track of two tones and some noise."""
    sr = 44100
    t = np.arange(int(sr * seconds)) / sr
    rng = np.random.default_rng(0)
    wave = np.stack([0.3 * np.sin(2 * np.pi * 440 * t), 0.3 * np.sin(2 * np.pi * 660 * t)])
    wave = (wave + 0.02 * rng.standard_normal(wave.shape)).astype(np.float32)
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=10)
        video.width, video.height, video.pix_fmt = 64, 64, "yuv420p"
        audio = out.add_stream("aac", rate=sr)
        audio.layout = "stereo"
        for i in range(int(10 * seconds)):
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), i % 255, np.uint8), format="rgb24")
            out.mux(video.encode(frame))
        for i in range(0, wave.shape[1], 1024):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(wave[:, i:i + 1024]), format="fltp", layout="stereo")
            frame.sample_rate, frame.pts = sr, i
            out.mux(audio.encode(frame))
        out.mux(video.encode(None))
        out.mux(audio.encode(None))
    return path


def avkit_read(path: Path) -> np.ndarray:
    return read_audio(path, sample_rate=RATE)[0].numpy()


def pyav_decode(path: Path) -> None:
    with av.open(str(path)) as container:
        for frame in container.decode(container.streams.audio[0]):
            frame.to_ndarray()


def pyav_floor(path: Path) -> np.ndarray:
    """What any PyAV-based reader of 16 kHz mono must do at least: decode, take each frame's planes as views,
    add the channels into one buffer, resample once with soxr; no timestamps, no checks (planar float only)."""
    import soxr

    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        buf, size, rate, channels = np.empty(1 << 16, np.float32), 0, 0, 1
        for frame in container.decode(stream):
            n, rate = frame.samples, frame.sample_rate
            if size + n > len(buf):
                buf = np.concatenate([buf, np.empty(len(buf), np.float32)])
            planes = [np.frombuffer(plane, np.float32, n) for plane in frame.planes]
            channels = len(planes)
            out = buf[size:size + n]
            if channels == 2:
                np.add(planes[0], planes[1], out=out)
            else:
                out[:] = planes[0]
                for plane in planes[1:]:
                    out += plane
            size += n
    wave = buf[:size] * np.float32(1.0 / channels)
    return soxr.resample(wave, rate, RATE, quality="HQ").astype(np.float32, copy=False)


def torchcodec_read() -> tuple[Callable[[Path], np.ndarray] | None, str]:
    try:
        import torchcodec
        from torchcodec.decoders import AudioDecoder
    except Exception as err:  # noqa: BLE001 - any import failure means: no torchcodec column
        return None, f"torchcodec unusable: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"

    def read(path: Path) -> np.ndarray:
        return AudioDecoder(str(path), sample_rate=RATE, num_channels=1).get_all_samples().data[0].numpy()
    return read, f"torchcodec {torchcodec.__version__}"


def agreement(ours: np.ndarray, theirs: np.ndarray, max_lag: int = 800) -> str:
    """Length difference, the lag (samples) that best aligns the two, and the largest sample difference
    after aligning and matching levels (relative to the peak), over the middle of the track."""
    n = min(len(ours), len(theirs))
    mid = slice(max_lag, n - max_lag)
    ref = theirs[mid]
    lags = range(-max_lag, max_lag + 1)
    scores = [float(np.dot(ours[mid.start + k:mid.stop + k], ref)) for k in lags]
    lag = lags[int(np.argmax(scores))]
    a = ours[mid.start + lag:mid.stop + lag]
    scale = float(np.dot(a, ref) / max(float(np.dot(a, a)), 1e-12))
    err = float(np.abs(a * scale - ref).max() / max(float(np.abs(ref).max()), 1e-12))
    return f"{len(ours) - len(theirs):+d} samples, lag {lag:+d}, level x{scale:.3f}, max diff {err:.1e} of peak"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=15)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix="avkit_decode_audio_"))
    files = [("generated: AAC stereo 44.1 kHz, 10 s", make_track(tmp / "tones.mp4"))]
    for name in ("friday_h264_aac.mp4", "pancake_h264_opus.mkv", "tears_of_steel_vp8_vorbis.webm", "test_mpeg4_mp3.avi"):
        if (SHARED / name).is_file():
            files.append((f"real: {name}", SHARED / name))
    tc, tc_note = torchcodec_read()
    print(f"# python benchmarks/decode_audio.py; {tc_note}; av {av.__version__}; 1 thread; median of {args.repeat} reads, "
          f"methods alternating; load average at start {os.getloadavg()[0]:.1f}")
    print("| file | seconds of sound | avkit ms (CPU ms) | torchcodec ms (CPU ms) | pyav decode ms (CPU ms) | "
          "pyav floor ms (CPU ms) | avkit vs torchcodec, wall (CPU) | pyav floor vs torchcodec, wall (CPU) | "
          "avkit vs pyav decode, wall (CPU) | samples vs torchcodec |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|---|")
    for label, path in files:
        methods: dict[str, Callable[[Path], object]] = {"avkit": avkit_read, "pyav": pyav_decode,
                                                         "floor": pyav_floor}
        if tc is not None:
            methods["torchcodec"] = tc
        wall: dict[str, list[float]] = {name: [] for name in methods}
        cpu: dict[str, list[float]] = {name: [] for name in methods}
        for _ in range(args.repeat):
            for name, fn in methods.items():
                start, start_cpu = time.perf_counter(), time.process_time()
                fn(path)
                wall[name].append(time.perf_counter() - start)
                cpu[name].append(time.process_time() - start_cpu)
        ms = {name: 1000 * statistics.median(v) for name, v in wall.items()}
        cms = {name: 1000 * statistics.median(v) for name, v in cpu.items()}
        cell = {n: f"{ms[n]:.1f} ({cms[n]:.1f})" for n in ms}
        ratio = {n: f"{ms[n] / ms['avkit']:.2f}x ({cms[n] / cms['avkit']:.2f}x)" for n in ms}
        floor = (f"{ms['torchcodec'] / ms['floor']:.2f}x ({cms['torchcodec'] / cms['floor']:.2f}x)"
                 if "torchcodec" in ms else "-")
        ours = avkit_read(path)
        note = agreement(ours, tc(path)) if tc is not None else "-"
        print(f"| {label} | {len(ours) / RATE:.1f} | {cell['avkit']} | {cell.get('torchcodec', '-')} | {cell['pyav']} | "
              f"{cell['floor']} | {ratio.get('torchcodec', '-')} | {floor} | {ratio['pyav']} | {note} |", flush=True)
    print(f"load average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
