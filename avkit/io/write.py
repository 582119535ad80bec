"""Write frames (and optionally a waveform) to an H.264 + AAC mp4 with exact timestamps.

Frame ``k`` gets ``pts = k`` in time base ``1/fps``, so a reader finds frame ``k`` at ``k / fps``
seconds. B-frames are off (decode order == display order, no negative dts, no start offset) and
a keyframe comes every second (``gop``), so seeking into short synthetic clips stays cheap.
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from avkit.errors import MediaError
from avkit.utils import atomic_path, check_output

AAC_FRAME = 1024  # samples per AAC frame


def _to_numpy(x: Any) -> np.ndarray:
    """Accept torch tensors or array-likes without importing torch here."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _check_frames(path: Path, frames: Any) -> np.ndarray:
    frames = _to_numpy(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise MediaError(path, f"frames must be uint8 [T, H, W, 3], got shape {tuple(frames.shape)}")
    if frames.dtype != np.uint8:
        raise MediaError(path, f"frames must be uint8 [T, H, W, 3], got dtype {frames.dtype}")
    if frames.shape[0] == 0 or frames.shape[1] == 0 or frames.shape[2] == 0:
        raise MediaError(path, f"no pixels to write (frames shape {tuple(frames.shape)})")
    # H.264 yuv420p needs even dimensions: repeat the last row/column rather than fail.
    pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
    if pad_h or pad_w:
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return np.ascontiguousarray(frames)


def _check_audio(path: Path, audio: Any, sample_rate: int | None) -> np.ndarray:
    audio = _to_numpy(audio).astype(np.float32, copy=False)
    if audio.ndim == 1:
        audio = audio[None]
    if audio.ndim != 2 or audio.shape[0] not in (1, 2):
        raise MediaError(path, f"audio must be float [S] (mono) or [C, S] with C in (1, 2), "
                               f"got shape {tuple(audio.shape)}")
    if sample_rate is None or int(sample_rate) <= 0:
        raise MediaError(path, "sample_rate is required (a positive int) when audio is given")
    if not np.isfinite(audio).all():
        raise MediaError(path, "audio contains NaN or infinite samples")
    return np.ascontiguousarray(np.clip(audio, -1.0, 1.0))


def write_video(
    path: str | Path,
    frames: Any,
    fps: float,
    audio: Any = None,
    sample_rate: int | None = None,
    *,
    overwrite: bool = True,
    crf: int = 18,
    preset: str = "veryfast",
    gop: int | None = None,
) -> Path:
    """Write ``frames`` (uint8 ``[T, H, W, 3]``, torch or numpy) as an H.264 yuv420p mp4.

    ``audio`` (float ``[S]`` mono or ``[C, S]``, in [-1, 1], clipped) is encoded as AAC at
    ``sample_rate``. Odd heights/widths are padded by one edge row/column (yuv420p needs even
    sizes). ``crf``/``preset`` are x264 quality/speed; ``gop`` defaults to one keyframe per
    second. The file appears atomically; ``overwrite=False`` raises ``OutputExistsError`` if
    ``path`` exists. Returns the path written.
    """
    path = check_output(path, overwrite)
    frames = _check_frames(path, frames)
    try:
        rate = Fraction(fps).limit_denominator(1001 * 1000)
    except (TypeError, ValueError) as err:
        raise MediaError(path, f"fps must be a positive number, got {fps!r}") from err
    if rate <= 0:
        raise MediaError(path, f"fps must be a positive number, got {fps!r}")
    wave = None if audio is None else _check_audio(path, audio, sample_rate)
    num, height, width = frames.shape[:3]

    with atomic_path(path) as tmp:
        try:
            with av.open(str(tmp), mode="w", format="mp4",
                         options={"movflags": "+faststart"}) as container:
                video = container.add_stream("libx264", rate=rate)
                video.width, video.height, video.pix_fmt = width, height, "yuv420p"
                video.time_base = 1 / rate
                video.codec_context.time_base = 1 / rate
                video.codec_context.gop_size = gop or max(1, round(float(rate)))
                video.codec_context.max_b_frames = 0
                # Tiny frames encode faster on one thread than with frame-thread latency.
                video.codec_context.options = {"crf": str(crf), "preset": preset,
                                               **({"threads": "1"} if height * width <= 128 * 128 else {})}
                astream = None
                if wave is not None:
                    astream = container.add_stream("aac", rate=int(sample_rate))
                    astream.layout = "mono" if wave.shape[0] == 1 else "stereo"
                    astream.format = "fltp"
                    astream.time_base = Fraction(1, int(sample_rate))
                    # The default "twoloop" coder is ~3x slower; at AAC's default bit rate "fast"
                    # is transparent for these uses (round trip correlation > 0.99).
                    astream.codec_context.options = {"aac_coder": "fast"}

                # Interleave: before each video frame, encode the audio that precedes it.
                next_sample = 0
                total = 0 if wave is None else wave.shape[1]
                for k in range(num):
                    if astream is not None:
                        until = min(total, int(round(k / float(rate) * sample_rate)))
                        next_sample = _encode_audio(container, astream, wave, next_sample, until)
                    frame = av.VideoFrame.from_ndarray(frames[k], format="rgb24")
                    frame.pts = k
                    frame.time_base = video.codec_context.time_base
                    container.mux(video.encode(frame))
                container.mux(video.encode(None))
                if astream is not None:
                    _encode_audio(container, astream, wave, next_sample, total)
                    container.mux(astream.encode(None))
        except av.error.FFmpegError as err:
            raise MediaError(path, f"encoding failed: {err}") from err
    return path


def _encode_audio(container: Any, stream: Any, wave: np.ndarray, start: int, stop: int) -> int:
    """Encode whole AAC frames of ``wave[:, start:stop]`` (plus the tail when stop is the end)."""
    end = wave.shape[1]
    pos = start
    while pos < stop and (stop - pos >= AAC_FRAME or stop == end):
        chunk = wave[:, pos:min(pos + AAC_FRAME, end)]
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="fltp",
                                           layout="mono" if wave.shape[0] == 1 else "stereo")
        frame.sample_rate = stream.codec_context.sample_rate
        frame.pts = pos
        frame.time_base = Fraction(1, frame.sample_rate)
        container.mux(stream.encode(frame))
        pos += chunk.shape[1]
    return pos


__all__ = ["write_video"]
