"""Reading and writing video and audio (PyAV / FFmpeg underneath).

``probe`` describes a file, ``read_clip`` / ``read_audio`` decode only the span asked for,
``VideoReader`` keeps one file open for many clips, ``write_video`` writes H.264/AAC mp4.
"""
from avkit.io.probe import MediaInfo, StreamInfo, probe
from avkit.io.read import Clip, VideoReader, read_audio, read_clip
from avkit.io.write import write_video

__all__ = ["Clip", "MediaInfo", "StreamInfo", "VideoReader", "probe", "read_audio", "read_clip",
           "write_video"]
