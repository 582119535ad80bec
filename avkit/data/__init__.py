"""From files to training clips: samplers, clip transforms, audio features and ``VideoDataset``.

- :mod:`avkit.data.sampling`: which timestamps make a clip (random, uniform, sliding, multi-view).
- :mod:`avkit.data.transforms`: the same crop/flip/resize on every frame; train/eval presets.
- :mod:`avkit.data.audio_features`: ``LogMel`` spectrograms (librosa-exact), gain, time shift.
- :mod:`avkit.data.dataset`: ``VideoDataset`` over a manifest or class folders, and ``collate``.
- :mod:`avkit.data.synthetic`: procedural audio-visual datasets written as real mp4 files.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from avkit.data.audio_features import LogMel, RandomGain, RandomTimeShift, gain, time_shift
    from avkit.data.dataset import VideoDataset, VideoRecord, collate, load_records
    from avkit.data.sampling import ClipWindow, View, clip_at, multi_view, random_clip, sliding_windows, uniform_clips
    from avkit.data.transforms import (
        CenterCrop,
        Compose,
        HorizontalFlip,
        Normalize,
        RandomCrop,
        RandomHorizontalFlip,
        ResizeShortSide,
        ThreeCrop,
        ToFloat,
        eval_transform,
        train_transform,
    )

# Imported on first use, so that a light submodule (avkit.data.jsonl, .sampling) does not load
# torchvision and the dataset with it (the `avkit separate` command starts 2 s sooner).
_EXPORTS = {
    **dict.fromkeys(["LogMel", "RandomGain", "RandomTimeShift", "gain", "time_shift"], "audio_features"),
    **dict.fromkeys(["VideoDataset", "VideoRecord", "collate", "load_records"], "dataset"),
    **dict.fromkeys(["ClipWindow", "View", "clip_at", "multi_view", "random_clip", "sliding_windows",
                     "uniform_clips"], "sampling"),
    **dict.fromkeys(["CenterCrop", "Compose", "HorizontalFlip", "Normalize", "RandomCrop", "RandomHorizontalFlip",
                     "ResizeShortSide", "ThreeCrop", "ToFloat", "eval_transform", "train_transform"], "transforms"),
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CenterCrop", "ClipWindow", "Compose", "HorizontalFlip", "LogMel", "Normalize", "RandomCrop", "RandomGain",
    "RandomHorizontalFlip", "RandomTimeShift", "ResizeShortSide", "ThreeCrop", "ToFloat", "VideoDataset",
    "VideoRecord", "View", "clip_at", "collate", "eval_transform", "gain", "load_records", "multi_view",
    "random_clip", "sliding_windows", "time_shift", "train_transform", "uniform_clips",
]
