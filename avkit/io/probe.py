"""What is inside a media file: container, duration, streams, rotation, pixel aspect.

``probe(path)`` reads the container header and decodes one frame of each video stream (the
display rotation and the decoder's sample aspect ratio are only known after a decode). It also
holds the helpers the reader shares: opening a file with clear errors and choosing the default
streams.

Default stream rule (what ffmpeg does for ``ffmpeg -i in out``, minus its output-format details):
video = the stream with the most pixels (width x height), ties to the lowest index, cover-art
streams (attached pictures) skipped; audio = the stream with the most channels, ties to the
lowest index.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.logging

from avkit.errors import MediaError

# Formats FFmpeg can "decode" that are not audio-visual recordings.
_NOT_MEDIA_FORMATS = {"tty"}


@dataclass
class StreamInfo:
    """One stream of a container. Video fields are None for audio streams and vice versa."""

    index: int
    type: str  # 'video' | 'audio' | 'subtitle' | 'data' | ...
    codec: str | None
    duration: float | None  # seconds
    start_time: float | None = None  # seconds, in the stream's own clock
    bit_rate: int | None = None
    language: str | None = None
    # video
    width: int | None = None
    height: int | None = None
    fps: float | None = None  # average frame rate
    frame_count: int | None = None  # from the container header; None when it does not say
    rotation: int | None = None  # degrees counterclockwise to rotate the frame for display
    sample_aspect_ratio: float | None = None  # pixel width / pixel height (1.0 = square pixels)
    pix_fmt: str | None = None
    # audio
    sample_rate: int | None = None
    channels: int | None = None

    @property
    def display_size(self) -> tuple[int, int] | None:
        """(height, width) as shown: sample aspect ratio and rotation applied."""
        if self.width is None or self.height is None:
            return None
        return display_size(self.height, self.width, self.sample_aspect_ratio or 1.0, self.rotation or 0)


@dataclass
class MediaInfo:
    """A probed file. ``video_index`` / ``audio_index`` are the default streams (None if absent)."""

    path: str
    container: str
    duration: float | None  # seconds
    size_bytes: int
    bit_rate: int | None
    streams: list[StreamInfo] = field(default_factory=list)
    video_index: int | None = None
    audio_index: int | None = None
    # The header gives no length: FFmpeg estimated the durations from the bit rate (can be far off).
    duration_estimated: bool = False

    @property
    def video(self) -> StreamInfo | None:
        """The default video stream."""
        return None if self.video_index is None else self.streams[self.video_index]

    @property
    def audio(self) -> StreamInfo | None:
        """The default audio stream."""
        return None if self.audio_index is None else self.streams[self.audio_index]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# Pixels within 1% of square are shown as stored: encoders write aspects such as 399:400 for
# square-pixel sources, and stretching 800 px to 798 costs a resampling pass for no visible change.
SQUARE_PIXELS_WITHIN = 0.01


def display_size(height: int, width: int, sar: float, rotation: int) -> tuple[int, int]:
    """(height, width) after stretching non-square pixels horizontally (beyond 1% from square) and rotating."""
    if sar and abs(sar - 1.0) > SQUARE_PIXELS_WITHIN:
        width = max(2, int(round(width * sar / 2)) * 2)
    if rotation % 180:
        height, width = width, height
    return height, width


def open_media(path: str | Path) -> av.container.InputContainer:
    """``av.open`` with one clear ``MediaError`` for every way a file can be unreadable."""
    return open_media_estimate(path)[0]


def open_media_estimate(path: str | Path) -> tuple[av.container.InputContainer, bool]:
    """``open_media``, and whether FFmpeg guessed the durations from the bit rate.

    A file whose header gives no length (an mp3 without a Xing header, raw AAC or H.264) gets
    durations estimated from its bit rate, which for variable bit rates can be far off (a 20 s
    VBR mp3 "lasts" 33 s). FFmpeg says so only in a log warning, which is captured here.
    """
    path = Path(path)
    if not path.exists():
        raise MediaError(path, "no such file")
    if path.is_dir():
        raise MediaError(path, "is a directory, not a media file")
    if path.stat().st_size == 0:
        raise MediaError(path, "empty file (0 bytes)")
    level, skip = av.logging.get_level(), av.logging.get_skip_repeated()
    try:
        av.logging.set_level(av.logging.WARNING)
        av.logging.set_skip_repeated(False)  # else the warning is dropped from the second open on
        with av.logging.Capture(local=True) as logs:
            container = av.open(str(path), metadata_errors="ignore")
    except av.error.InvalidDataError:
        raise MediaError(path, "not a media file, or corrupt/truncated (FFmpeg found no valid "
                               "container data)") from None
    except (av.FFmpegError, OSError) as err:
        raise MediaError(path, f"cannot open: {_ffmpeg_message(err)}") from None
    finally:
        av.logging.set_level(level)
        av.logging.set_skip_repeated(skip)
    estimated = any("duration from bitrate" in message for _, _, message in logs)
    if container.format.name in _NOT_MEDIA_FORMATS or not any(
            s.type in ("video", "audio") for s in container.streams):
        container.close()
        raise MediaError(path, "not a media file (no audio or video streams)")
    return container, estimated


def _ffmpeg_message(err: BaseException) -> str:
    return getattr(err, "strerror", None) or str(err)


def best_video_index(container) -> int | None:
    """Index of the video stream ffmpeg would pick: most pixels, then lowest index."""
    best, best_score = None, -1
    for s in container.streams.video:
        if s.disposition & av.stream.Disposition.attached_pic:
            continue
        score = (s.codec_context.width or 0) * (s.codec_context.height or 0)
        if score > best_score:
            best, best_score = s.index, score
    return best


def best_audio_index(container) -> int | None:
    """Index of the audio stream ffmpeg would pick: most channels, then lowest index."""
    best, best_score = None, -1
    for s in container.streams.audio:
        score = s.codec_context.channels or 0
        if score > best_score:
            best, best_score = s.index, score
    return best


def pick_stream(container, path: str | Path, kind: str, index: int | None):
    """The stream of ``kind`` at container ``index``, or the default one when ``index`` is None.

    Returns None when the file has no stream of that kind and no index was asked for.
    """
    if index is None:
        index = best_video_index(container) if kind == "video" else best_audio_index(container)
        return None if index is None else container.streams[index]
    if not 0 <= index < len(container.streams):
        raise MediaError(path, f"no stream {index} (the file has {len(container.streams)} streams)")
    stream = container.streams[index]
    if stream.type != kind:
        raise MediaError(path, f"stream {index} is {stream.type}, not {kind}")
    return stream


def stream_duration(stream, container) -> float | None:
    """Seconds: the stream's own duration, else a Matroska DURATION tag, else the container's."""
    length = stream_length(stream, container)
    return container_duration(container) if length is None else length


def stream_length(stream, container) -> float | None:
    """Seconds the header gives for this stream itself (its duration, else a Matroska DURATION
    tag); None where only the container's duration is known."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    tag = stream.metadata.get("DURATION") or stream.metadata.get("duration")
    if tag:
        try:
            h, m, s = tag.split(":")
            return _matroska_length(int(h) * 3600 + int(m) * 60 + float(s),
                                    _seconds(stream.start_time, stream.time_base), container)
        except ValueError:
            pass
    return None


def container_duration(container) -> float | None:
    """Seconds from the earliest stream start to the end of the file, as the header states."""
    if container.duration is None:
        return None
    return _matroska_length(container.duration / av.time_base, _seconds(container.start_time, 1 / av.time_base),
                            container)


def _matroska_length(value: float, start: float | None, container) -> float:
    """A Matroska duration as a length. FFmpeg's muxer writes the segment duration and the
    DURATION tags as the end time (the largest pts + duration), not as the length, so for a
    stream that does not start at 0 (a cut that keeps its timestamps, e.g. video from 1000 s, or
    a WebM from -0.5 s) the value is the start plus the length. A value below the start can only
    be a length."""
    if "matroska" in container.format.name and start and start < value:
        return value - start
    return value


def _seconds(ts: int | None, time_base) -> float | None:
    return None if ts is None or time_base is None else float(ts * time_base)


def container_start(container) -> float:
    """Start of the file in seconds (the earliest stream start): the origin of avkit's timestamps."""
    if container.start_time is not None:
        return container.start_time / av.time_base
    starts = [float(s.start_time * s.time_base) for s in container.streams
              if s.start_time is not None and s.time_base is not None]
    return min(starts) if starts else 0.0


def _as_float(x: Fraction | int | float | None) -> float | None:
    return None if x is None else float(x)


def _first_frames(container, streams: list) -> dict[int, Any]:
    """The first decoded frame of each stream, by stream index (missing: none could be decoded).

    Reads from where ``av.open`` left the file, its start. No seek: a seek to 0 lands after the
    first keyframe in an MPEG-TS that starts below zero or whose decode times run ahead of its
    presentation times, and a TS shorter than one keyframe interval then decodes nothing.
    """
    found: dict[int, Any] = {}
    if not streams:
        return found
    try:
        for packet in container.demux(*streams):
            if packet.stream.index in found:
                continue
            for frame in packet.decode():
                found[packet.stream.index] = frame
                break
            if len(found) == len(streams):
                break
    except av.FFmpegError:
        pass
    return found


def probe(path: str | Path) -> MediaInfo:
    """Describe a media file: container, duration, streams, default stream choice.

    Raises ``MediaError`` for missing, empty, corrupt and non-media files, and for a file whose
    default video stream cannot decode a single frame.
    """
    path = Path(path)
    container, estimated = open_media_estimate(path)
    try:
        streams: list[StreamInfo] = []
        video_index = best_video_index(container)
        first = _first_frames(container, list(container.streams.video))
        for s in container.streams:
            cc = s.codec_context
            info = StreamInfo(
                index=s.index,
                type=s.type,
                codec=cc.codec.canonical_name if cc is not None else None,
                duration=stream_duration(s, container),
                start_time=(float(s.start_time * s.time_base)
                            if s.start_time is not None and s.time_base is not None else None),
                bit_rate=(cc.bit_rate or None) if cc is not None else None,
                language=s.language,
            )
            if isinstance(s, av.VideoStream):  # s.type == "video"; narrows codec_context to the video one
                cc = s.codec_context
                info.width, info.height = cc.width, cc.height
                rate = s.average_rate or s.guessed_rate or s.base_rate
                info.fps = _as_float(rate)
                info.frame_count = s.frames or None
                info.pix_fmt = cc.pix_fmt
                frame = first.get(s.index)
                if frame is None and s.index == video_index:
                    raise MediaError(path, f"truncated or corrupt: video stream {s.index} ({cc.name}) "
                                           "has no decodable frame")
                info.rotation = int(frame.rotation) if frame is not None else 0
                sar = cc.sample_aspect_ratio or s.sample_aspect_ratio
                info.sample_aspect_ratio = float(sar) if sar else 1.0
                if frame is not None:
                    info.width, info.height = frame.width, frame.height
            elif isinstance(s, av.AudioStream):  # s.type == "audio"
                cc = s.codec_context
                info.sample_rate = cc.sample_rate
                info.channels = cc.channels
            streams.append(info)
        duration = container_duration(container)
        if duration is None:
            duration = max((st.duration or 0.0 for st in streams), default=None)
        return MediaInfo(
            path=str(path),
            container=container.format.name,
            duration=duration,
            size_bytes=path.stat().st_size,
            bit_rate=container.bit_rate or None,
            streams=streams,
            video_index=video_index,
            audio_index=best_audio_index(container),
            duration_estimated=estimated,
        )
    finally:
        container.close()


__all__ = ["MediaInfo", "StreamInfo", "probe", "open_media", "pick_stream", "display_size"]
