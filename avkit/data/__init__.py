"""From files to training clips: samplers, clip transforms, audio features and ``VideoDataset``.

- :mod:`avkit.data.sampling`: which timestamps make a clip (random, uniform, sliding, multi-view).
- :mod:`avkit.data.transforms`: the same crop/flip/resize on every frame; train/eval presets.
- :mod:`avkit.data.audio_features`: ``LogMel`` spectrograms (librosa-exact), gain, time shift.
- :mod:`avkit.data.dataset`: ``VideoDataset`` over a manifest or class folders, and ``collate``.
- :mod:`avkit.data.synthetic`: procedural audio-visual datasets written as real mp4 files.
"""
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

__all__ = [
    "CenterCrop", "ClipWindow", "Compose", "HorizontalFlip", "LogMel", "Normalize", "RandomCrop", "RandomGain",
    "RandomHorizontalFlip", "RandomTimeShift", "ResizeShortSide", "ThreeCrop", "ToFloat", "VideoDataset",
    "VideoRecord", "View", "clip_at", "collate", "eval_transform", "gain", "load_records", "multi_view",
    "random_clip", "sliding_windows", "time_shift", "train_transform", "uniform_clips",
]
