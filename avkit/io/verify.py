"""Does a media file hold what its header says? The checks behind ``avkit info`` and ``--verify``.

``probe`` reads the header and decodes one frame, so a file cut off after its index (an mp4 whose
``moov`` comes first) or damaged inside its data still probes fine. Two checks, both PyAV only:

- ``check_data(path)`` (cheap, what ``avkit info`` always runs): for every audio and video stream,
  read the packets at the end of the stream (demuxing only, no decoding; starting 1 s before the
  stated end and going further back only when nothing is there) and compare where the last one
  ends with the end the header states. Data that stops more than 0.5 s (or two frames) early, a
  demuxer error, or a demuxer complaint such as "partial file" is an error. It does not look at
  the middle of the file or inside the packets: a bit flip in the picture data passes.
- ``verify_decode(path)`` (``avkit info --verify``): demux and decode every packet of every audio
  and video stream from the start; any decoder or demuxer error (FFmpeg's error-level messages
  included, which a concealing decoder only logs) is reported with the time it happened, and the
  end of the data is compared with the header as above. Costs a full decode of the file.

Both raise ``MediaError(path, reason)``.
"""
from __future__ import annotations

import math
from pathlib import Path

import av
import av.logging

from avkit.errors import MediaError
from avkit.io.probe import container_duration, container_start, open_media, open_media_estimate, stream_length

# Data may end this much before the stated end (s); video also two frames (as the reader's check).
_TOLERANCE = 0.5


def _media_streams(container) -> list:
    return [s for s in container.streams if s.type in ("audio", "video")
            and not s.disposition & av.stream.Disposition.attached_pic]


def _seconds(ts, time_base) -> float:
    return float(ts * time_base)


def _packet_end(packet) -> float | None:
    """Absolute seconds at which ``packet`` ends (its start where the duration is unknown)."""
    ts = packet.pts if packet.pts is not None else packet.dts
    if ts is None or packet.time_base is None:
        return None
    return _seconds(ts + (packet.duration or 0), packet.time_base)


class _Log:
    """Collect FFmpeg's error-level messages while the block runs (decoders that conceal damage
    only log it). Captures every thread's messages: frame-threaded decoders log from workers."""

    def __enter__(self) -> _Log:
        self._level, self._skip = av.logging.get_level(), av.logging.get_skip_repeated()
        av.logging.set_level(av.logging.ERROR)
        av.logging.set_skip_repeated(False)
        self._capture = av.logging.Capture(local=False)
        self.messages = self._capture.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._capture.__exit__(*exc)
        av.logging.set_level(self._level)
        av.logging.set_skip_repeated(self._skip)

    def first_error(self) -> str | None:
        for level, _, message in self.messages:
            if level <= av.logging.ERROR:
                return message.strip()
        return None


def _stated_ends(container) -> tuple[dict[int, float], float | None]:
    """Stated end (absolute s) of each stream whose header gives its own length, and the
    container's stated end (for the streams whose length only the container gives)."""
    own = {}
    for s in _media_streams(container):
        length = stream_length(s, container)
        if length is not None:
            start = _seconds(s.start_time, s.time_base) if s.start_time is not None else container_start(container)
            own[s.index] = start + length
    total = container_duration(container)
    return own, None if total is None else container_start(container) + total


def _tolerance(stream) -> float:
    rate = (stream.average_rate or stream.guessed_rate) if stream.type == "video" else None
    return max(_TOLERANCE, 2.0 / float(rate)) if rate else _TOLERANCE


def _compare(path: Path, container, ends: dict[int, float | None]) -> None:
    """Raise if the data of a stream (or of all streams, against the container) ends early."""
    origin = container_start(container)
    own, total = _stated_ends(container)
    streams = {s.index: s for s in _media_streams(container)}
    for index, stated in own.items():
        got = ends.get(index)
        if got is None or stated - got > _tolerance(streams[index]):
            _truncated(path, streams[index].type, got, stated, origin)
    rest = [i for i in streams if i not in own]
    if rest and total is not None:
        got = max((end for end in (ends.get(i) for i in rest) if end is not None), default=None)
        if got is None or total - got > max(_tolerance(streams[i]) for i in rest):
            _truncated(path, "media", got, total, origin)


def _truncated(path: Path, kind: str, got: float | None, stated: float, origin: float) -> None:
    where = "there is none" if got is None else f"it ends at {got - origin:.2f} s"
    raise MediaError(path, f"truncated or corrupt: the header says the {kind} data lasts until "
                           f"{stated - origin:.2f} s but {where}")


def _tail_end(path: Path, stream_index: int, stated: float | None) -> tuple[float | None, str | None]:
    """Where the last packet of the stream ends (absolute s), reading only the end of the file,
    and the first error FFmpeg logged meanwhile (None if none).

    Seeks to 1 s before ``stated`` (4x further back each time nothing is found, from the start at
    last); an error raised while demuxing is raised as MediaError.
    """
    back = 1.0
    while True:
        with open_media(path) as container, _Log() as log:
            stream = container.streams[stream_index]
            start = _seconds(stream.start_time, stream.time_base) if stream.start_time is not None else None
            from_start = stated is None or start is None or stated - back <= start
            if not from_start:  # a fresh container is at the start already
                assert stated is not None and stream.time_base is not None  # from_start otherwise
                try:
                    container.seek(int((stated - back) / stream.time_base), stream=stream, backward=True)
                except av.FFmpegError:  # unseekable: read it all from the start
                    back = math.inf
                    continue
            end = None
            try:
                for packet in container.demux(stream):
                    if packet.size:
                        t = _packet_end(packet)
                        end = t if end is None or (t is not None and t > end) else end
            except av.FFmpegError as err:
                raise MediaError(path, f"corrupt or truncated {stream.type} data near the end "
                                       f"({getattr(err, 'strerror', None) or err})") from None
            problem = log.first_error()
        if end is not None or from_start:
            return end, problem
        back *= 4


def check_data(path: str | Path) -> None:
    """Cheap check that each audio and video stream's data reaches the end its header states
    (demuxes the last packets only). Raises ``MediaError`` for data that stops early."""
    path = Path(path)
    container, estimated = open_media_estimate(path)
    with container:
        own, total = _stated_ends(container)
        indices = [s.index for s in _media_streams(container)]
    # A stream with no stated end has nothing to compare with (and reading it would take a demux
    # of the whole file): it is skipped.
    tails = {i: _tail_end(path, i, own.get(i, total)) for i in indices if own.get(i, total) is not None}
    with open_media(path) as container:
        if not estimated:  # a length guessed from the bit rate states nothing
            _compare(path, container, {i: end for i, (end, _) in tails.items()})
        for i, (_, problem) in tails.items():
            if problem:
                raise MediaError(path, f"corrupt or truncated {container.streams[i].type} data near "
                                       f"the end (FFmpeg: {problem})")


def verify_decode(path: str | Path) -> None:
    """Decode every packet of every audio and video stream; raise ``MediaError`` at the first
    error FFmpeg reports (with its time) or when the data ends before the header says."""
    path = Path(path)
    container, estimated = open_media_estimate(path)
    with container, _Log() as log:
        streams = _media_streams(container)
        origin = container_start(container)
        for s in streams:
            # Decode on this thread only: with the log captured, FFmpeg's frame/slice threads log
            # through PyAV's callback, which needs the GIL, while this thread holds it waiting for
            # them (closing the decoder, say): a deadlock (PyAV issue 751; it hung CI).
            s.codec_context.thread_count = 1
        ends: dict[int, float | None] = {}
        seen = 0
        packet = None
        try:
            for packet in container.demux(*streams):
                t = _packet_end(packet)
                if packet.size and t is not None:
                    ends[packet.stream.index] = max(t, ends.get(packet.stream.index) or t)
                packet.decode()
                if len(log.messages) > seen:
                    seen = len(log.messages)
                    problem = log.first_error()
                    if problem:
                        raise MediaError(path, f"corrupt {packet.stream.type} data near "
                                               f"{_near(packet, origin)} (FFmpeg: {problem})")
        except av.FFmpegError as err:
            kind = packet.stream.type if packet is not None else "media"
            raise MediaError(path, f"corrupt {kind} data near {_near(packet, origin)} "
                                   f"({getattr(err, 'strerror', None) or err})") from None
        problem = log.first_error()  # logged while the decoders drained at the end
        if problem:
            raise MediaError(path, f"corrupt data near the end (FFmpeg: {problem})")
        if not estimated:
            _compare(path, container, ends)


def _near(packet, origin: float) -> str:
    t = None if packet is None else _packet_end(packet)
    return "an unknown time" if t is None else f"{t - origin:.2f} s"


__all__ = ["check_data", "verify_decode"]
