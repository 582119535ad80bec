"""Reading and writing video and audio (PyAV / FFmpeg underneath).

``probe`` describes a file, ``check_data`` / ``verify_decode`` check that its data holds what
the header says, ``read_clip`` / ``read_audio`` decode only the span asked for, ``read_clips`` many
clips of one file in one pass, ``VideoReader``
keeps one file open for many clips, ``write_video`` writes H.264/AAC mp4.

Only ``probe`` and the checks are imported up front: the readers return torch tensors, and
importing torch takes seconds, which ``avkit info`` does not need. The rest loads on first use.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from avkit.io.probe import MediaInfo, StreamInfo, probe
from avkit.io.verify import check_data, verify_decode

if TYPE_CHECKING:
    from avkit.io.read import Clip, VideoReader, read_audio, read_clip, read_clips
    from avkit.io.write import write_video

_LAZY = {"Clip": "avkit.io.read", "VideoReader": "avkit.io.read", "read_audio": "avkit.io.read",
         "read_clip": "avkit.io.read", "read_clips": "avkit.io.read", "write_video": "avkit.io.write"}

__all__ = ["Clip", "MediaInfo", "StreamInfo", "VideoReader", "check_data", "probe", "read_audio",
           "read_clip", "read_clips", "verify_decode", "write_video"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
