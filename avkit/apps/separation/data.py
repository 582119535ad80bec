"""Mix-and-separate data: mixtures of N solo clips, each with its own frames and its clean audio.

:class:`SoloLibrary` loads solo clips once and keeps them in memory (audio at the model's sample
rate, frames at ``image_size`` and ``fps``):

- from a synthetic ``instruments`` dataset (a manifest, or its folder): solo rows only (duets
  are left out and counted), the clean lossless WAV stem as the audio (never the AAC of the mp4),
  the instrument as the label;
- from any folder of solo videos: class-per-folder (``ROOT/<label>/*.mp4``, the folder is the label)
  or flat (``ROOT/*.mp4``, no labels); the audio is the video's own track.

:class:`MixDataset` draws mixtures from a library. Item ``i`` of epoch ``e`` depends only on
``(seed, e, i)`` in training (random crops, random partners) and on ``(seed, i)`` for evaluation
(whole clips, fixed partners), so runs are reproducible and ``--resume`` replays the same data.
The mixture is the **sum of the solo stems** (like the papers mix solo clips). Partners have
different labels when labels are known (``distinct``), since two clips of the same instrument look
alike; ``same_label`` and ``unison`` (clips of one gm_instruments unison melody, cropped in step) make
a share of the training mixtures the hard cases on purpose. Items hold ``audio [N_max, S]`` (the sources; padded with zeros), ``frames [N_max, T, 3, H, W]``
(uint8), ``num_sources`` and ``valid [N_max]``.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from avkit.data.jsonl import read_jsonl
from avkit.errors import AvkitError, MediaError

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v")


@dataclass
class Solo:
    """One solo clip in memory."""

    audio: torch.Tensor  # float32 [S] at the library's sample rate
    frames: torch.Tensor  # uint8 [T, H, W, 3] at the library's fps
    label: str | None
    path: str
    part: int | None = None  # a gm_instruments unison melody (``meta.unison_part``): clips sharing it play the same notes


class SoloLibrary:
    """Solo clips of a source (see the module docstring), decoded once."""

    def __init__(self, source: str | Path, *, split: str = "", sample_rate: int = 11025, image_size: int = 32,
                 fps: float = 8.0, limit: int = 0, progress: Callable[[int, int], None] | None = None) -> None:
        self.source = Path(source)
        self.sample_rate, self.image_size, self.fps = sample_rate, image_size, fps
        self.skipped: dict[str, str] = {}  # path -> why it was left out (duets, unreadable)
        entries = self._entries(split)
        if limit:
            entries = entries[:limit]
        self.clips: list[Solo] = []
        for k, (video, audio_path, label, part) in enumerate(entries):
            try:
                self.clips.append(self._load(video, audio_path, label, part))
            except MediaError as err:
                self.skipped[str(video)] = err.reason
            if progress is not None:
                progress(k + 1, len(entries))
        if not self.clips:
            raise AvkitError(f"{self.source}: no readable solo clips"
                             + (f" ({len(self.skipped)} left out, e.g. {next(iter(self.skipped.values()))})"
                                if self.skipped else ""))
        self.labels = [c.label for c in self.clips]

    @classmethod
    def from_options(cls, source: str | Path, split: str, opts: Any) -> SoloLibrary:
        """The solo clips of ``source`` decoded as a run's :class:`~avkit.apps.separation.options.SeparationOptions`
        say (the front end's sample rate, ``image_size``, ``fps``, ``limit``)."""
        return cls(source, split=split, sample_rate=opts.stft.sample_rate, image_size=opts.image_size, fps=opts.fps,
                   limit=opts.limit)

    def __len__(self) -> int:
        return len(self.clips)

    @property
    def labelled(self) -> bool:
        return all(label is not None for label in self.labels)

    def _entries(self, split: str) -> list[tuple[Path, Path | None, str | None, int | None]]:
        src = self.source
        manifest = src / "manifest.jsonl" if src.is_dir() else src
        if manifest.is_file() and manifest.suffix == ".jsonl":
            root = manifest.parent
            out = []
            for _, row in read_jsonl(manifest):
                if split and row.get("split") != split:
                    continue
                sources = (row.get("meta") or {}).get("sources") or []
                if len(sources) > 1:
                    self.skipped[str(root / row["path"])] = "not a solo (a duet)"
                    continue
                stem = sources[0].get("stem") if sources else None
                part = (row.get("meta") or {}).get("unison_part")
                out.append((root / row["path"], root / stem if stem else None, row.get("label"), part))
            if not out:
                raise AvkitError(f"{manifest}: no solo rows" + (f" in split {split!r}" if split else ""))
            return out
        if not src.is_dir():
            raise AvkitError(f"{src}: not a manifest (.jsonl) or a folder of videos")
        flat = sorted(p for p in src.iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file())
        if flat:
            return [(p, None, None, None) for p in flat]
        out = [(p, None, d.name, None) for d in sorted(src.iterdir()) if d.is_dir()
               for p in sorted(d.iterdir()) if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file()]
        if not out:
            raise AvkitError(f"{src}: no videos found (expected ROOT/*.mp4 or ROOT/<label>/*.mp4, or a manifest)")
        return out

    def _load(self, video: Path, audio_path: Path | None, label: str | None, part: int | None = None) -> Solo:
        from avkit.io import VideoReader, read_audio

        with VideoReader(video) as reader:
            if reader.video is None:
                raise MediaError(video, "no video stream")
            duration = reader.duration or 0.0
            n = max(1, int(np.ceil(duration * self.fps - 1e-9)))
            frames, _ = reader.frames_at(np.arange(n) / self.fps, size=self.image_size)
            if audio_path is None:
                if reader.audio is None:
                    raise MediaError(video, "no audio stream")
                audio = reader.read_audio(sample_rate=self.sample_rate)
                audio = audio[0] if isinstance(audio, tuple) else audio
        if audio_path is not None:
            audio, _ = read_audio(audio_path, sample_rate=self.sample_rate)
        audio = torch.as_tensor(audio, dtype=torch.float32).reshape(-1)
        return Solo(audio, frames, label, str(video), part)


def frame_indices(start_s: float, length_s: float, fps: float, available: int, count: int,
                  rng: np.random.Generator | None = None) -> np.ndarray:
    """``count`` frame indices spread over ``[start_s, start_s + length_s)`` (jittered by ``rng``)."""
    if rng is None:
        pos = (np.arange(count) + 0.5) / count
    else:
        pos = (np.arange(count) + rng.uniform(0, 1, count)) / count
    return np.clip(np.floor((start_s + pos * length_s) * fps).astype(int), 0, available - 1)


class MixDataset(Dataset):
    """Mixtures of ``num_mix`` solo clips of a :class:`SoloLibrary` (see the module docstring).

    ``train=True``: ``length`` items per epoch (default: one per clip, clip ``i % len`` is source 0),
    random ``segment`` samples of each clip, frames jittered. ``train=False``: fixed mixtures of whole
    clips (cut to the shortest clip), the number of sources cycling through ``num_mix``.
    """

    def __init__(self, library: SoloLibrary, *, num_mix: Sequence[int] = (2, 3), segment: int = 0,
                 num_frames: int = 3, train: bool = True, seed: int = 0, length: int = 0, distinct: bool = True,
                 gain: Sequence[float] = (1.0, 1.0), zoom: Sequence[float] = (1.0, 1.0), all_frames: bool = False,
                 same_label: float = 0.0, unison: float = 0.0, eq_db: float = 0.0) -> None:
        self.library = library
        self.num_mix = [int(n) for n in num_mix]
        if not self.num_mix or min(self.num_mix) < 1:
            raise AvkitError(f"num_mix must list numbers of sources >= 1, got {list(num_mix)}")
        self.max_sources = max(self.num_mix)
        self.distinct = distinct and library.labelled
        # distinct implies every clip is labelled; the filter only tells mypy the labels are str
        labels = sorted({lab for lab in library.labels if lab is not None}) if self.distinct else []
        if self.distinct and len(labels) < self.max_sources:
            raise AvkitError(f"{library.source}: {len(labels)} label(s) cannot make mixtures of "
                             f"{self.max_sources} different sources (set distinct: false)")
        if not self.distinct and len(library) < self.max_sources:
            raise AvkitError(f"{library.source}: {len(library)} clip(s) cannot make mixtures of {self.max_sources}")
        self.by_label: dict[str | None, list[int]] = {}
        for i, label in enumerate(library.labels):
            self.by_label.setdefault(label, []).append(i)
        shortest = min(len(c.audio) for c in library.clips)
        self.segment = min(int(segment), shortest) if segment and train else shortest
        self.num_frames = num_frames
        self.train, self.seed, self.distinct_labels = train, seed, labels
        self.length = int(length) or len(library)
        self.gain = (float(gain[0]), float(gain[1]))
        self.zoom = (float(zoom[0]), float(zoom[1]))
        if not 0 < self.zoom[0] <= self.zoom[1] <= 1:
            raise AvkitError(f"zoom must be a range within (0, 1], got {list(zoom)}")
        # all_frames (visual: motion): every frame of the crop, the crop starting on a frame, so that frame j
        # of an item is at j / fps s of its audio; same_label: a training partner of the clip's own label
        self.all_frames, self.same_label = all_frames, float(same_label)
        # unison: a training partner playing the same melody (another instrument), cropped at the same time
        self.unison = float(unison)
        self.eq_db = float(eq_db)  # a random equaliser curve per training source, up to +-eq_db dB
        self.by_part: dict[int, list[int]] = {}
        for i, clip in enumerate(library.clips):
            if clip.part is not None:
                self.by_part.setdefault(clip.part, []).append(i)
        self.frame_step = library.sample_rate / library.fps  # samples per video frame
        if all_frames:
            self.num_frames = max(1, int(np.ceil(self.segment / self.frame_step - 1e-9)))
            shortest_frames = min(len(c.frames) for c in library.clips)
            if shortest_frames < self.num_frames:
                raise AvkitError(f"{library.source}: a clip has {shortest_frames} frames, a crop needs {self.num_frames}")
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def _unison_partners(self, first: int) -> list[int]:
        """Clips playing ``first``'s unison melody on another instrument."""
        clip = self.library.clips[first]
        if clip.part is None:
            return []
        return [i for i in self.by_part[clip.part] if self.library.labels[i] != clip.label]

    def _partners(self, first: int, n: int, rng: np.random.Generator) -> list[int]:
        chosen = [first]
        own = [i for i in self.by_label.get(self.library.labels[first], []) if i != first]
        if self.train and self.same_label > 0 and own and n == 2 and rng.uniform() < self.same_label:
            return [first, own[int(rng.integers(len(own)))]]  # two parts of one instrument
        unison = self._unison_partners(first) if self.train and self.unison > 0 and n == 2 else []
        if unison and rng.uniform() < self.unison:
            return [first, unison[int(rng.integers(len(unison)))]]  # one melody, two instruments
        if self.distinct:
            used = {self.library.labels[first]}
            for _ in range(n - 1):
                options = [lab for lab in self.distinct_labels if lab not in used]
                label = options[int(rng.integers(len(options)))]
                used.add(label)
                pool = self.by_label[label]
                chosen.append(pool[int(rng.integers(len(pool)))])
        else:
            others = [i for i in range(len(self.library)) if i != first]
            chosen += [others[int(k)] for k in rng.choice(len(others), n - 1, replace=False)]
        return chosen

    def mixture_plan(self, index: int) -> dict[str, Any]:
        """Which clips, crops and frames item ``index`` uses (deterministic; see the class docstring)."""
        if self.train:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            n = self.num_mix[int(rng.integers(len(self.num_mix)))]
            first = index % len(self.library)
        else:
            rng = np.random.default_rng([self.seed, 7919, index])
            n = self.num_mix[index % len(self.num_mix)]
            first = int(rng.integers(len(self.library)))
        clips = self._partners(first, n, rng)
        # a unison pair is cropped at the same time, so that the two play the same notes
        aligned = self.unison > 0 and len(clips) == 2 and clips[1] in self._unison_partners(clips[0])
        plan: list[dict[str, Any]] = []
        for c in clips:
            solo = self.library.clips[c]
            room = len(solo.audio) - self.segment
            sr, fps = self.library.sample_rate, self.library.fps
            if self.all_frames:
                first_frame = 0
                if self.train and room > 0:
                    first_frame = int(rng.integers(min(int(room // self.frame_step), len(solo.frames) - self.num_frames)
                                                   + 1))
                start = int(round(first_frame * self.frame_step))
                idx = np.arange(first_frame, first_frame + self.num_frames)
            else:
                start = int(rng.integers(room + 1)) if self.train and room > 0 else 0
            gain = float(rng.uniform(*self.gain)) if self.train else 1.0
            if not self.all_frames:
                idx = frame_indices(start / sr, self.segment / sr, fps, len(solo.frames), self.num_frames,
                                    rng if self.train else None)
            entry = {"clip": c, "start": start, "gain": gain, "frames": idx.tolist()}
            if aligned and plan:
                entry.update(start=plan[0]["start"], frames=plan[0]["frames"])
            if self.train and self.zoom[0] < 1 and rng.uniform() < 0.5:
                z = float(rng.uniform(*self.zoom))
                entry["zoom"] = [z, float(rng.uniform()), float(rng.uniform())]  # scale, where in the frame
            if self.train and self.eq_db > 0:
                entry["eq_db"] = rng.uniform(-self.eq_db, self.eq_db, len(EQ_HZ)).round(2).tolist()
            plan.append(entry)
        return {"num_sources": n, "sources": plan}

    def __getitem__(self, index: int) -> dict[str, Any]:
        plan = self.mixture_plan(index)
        lib = self.library
        h, w = lib.clips[0].frames.shape[1:3]
        audio = torch.zeros(self.max_sources, self.segment)
        frames = torch.zeros(self.max_sources, self.num_frames, 3, h, w, dtype=torch.uint8)
        valid = torch.zeros(self.max_sources, dtype=torch.bool)
        for k, src in enumerate(plan["sources"]):
            solo = lib.clips[src["clip"]]
            piece = solo.audio[src["start"]:src["start"] + self.segment]
            if "eq_db" in src:
                piece = equalise(piece, lib.sample_rate, src["eq_db"])
            audio[k, :len(piece)] = piece * src["gain"]
            f = solo.frames[src["frames"]]
            if f.shape[1:3] != (h, w):
                f = torch.nn.functional.interpolate(f.permute(0, 3, 1, 2).float(), size=(h, w), mode="bilinear",
                                                    align_corners=False).round().clamp(0, 255).byte().permute(0, 2, 3, 1)
            f = f.permute(0, 3, 1, 2)
            if "zoom" in src:
                f = zoom_out(f, *src["zoom"])
            frames[k] = f
            valid[k] = True
        return {"audio": audio, "frames": frames, "valid": valid, "num_sources": plan["num_sources"],
                "index": index}


EQ_HZ = (100.0, 250.0, 600.0, 1500.0, 3500.0, 8000.0)  # where the random equaliser curves are set


def equalise(wave: torch.Tensor, sample_rate: int, gains_db: Sequence[float]) -> torch.Tensor:
    """``wave [S]`` through a smooth equaliser: ``gains_db`` at ``EQ_HZ``, joined linearly in dB over
    log-frequency (flat beyond the ends). A training source's colour then varies as it does between
    sample banks, rooms and microphones, so a model cannot lean on one bank's exact spectra."""
    spectrum = torch.fft.rfft(wave.double())
    freqs = np.fft.rfftfreq(len(wave), 1.0 / sample_rate)
    db = np.interp(np.log(np.maximum(freqs, 1.0)), np.log(EQ_HZ), np.asarray(gains_db, dtype=np.float64))
    return torch.fft.irfft(spectrum * torch.from_numpy(10.0 ** (db / 20.0)), n=len(wave)).float()


def zoom_out(frames: torch.Tensor, scale: float, fx: float, fy: float) -> torch.Tensor:
    """``frames`` uint8 ``[T, 3, H, W]`` shrunk by ``scale`` and placed at ``(fx, fy)`` (fractions of the
    free room) in a frame of the same size, the rest filled by repeating the edge (the backgrounds are
    smooth): the sources look smaller, as in a duet or a wide shot."""
    t, _, h, w = frames.shape
    sh, sw = max(1, round(h * scale)), max(1, round(w * scale))
    small = torch.nn.functional.interpolate(frames.float(), size=(sh, sw), mode="bilinear", antialias=True,
                                            align_corners=False)
    top, left = round((h - sh) * fy), round((w - sw) * fx)
    out = torch.nn.functional.pad(small, (left, w - sw - left, top, h - sh - top), mode="replicate")
    return out.round().clamp(0, 255).to(torch.uint8)


def collate(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack mix items; ``kept`` (all True) for the engine's validation loop."""
    return {"audio": torch.stack([it["audio"] for it in items]),
            "frames": torch.stack([it["frames"] for it in items]),
            "valid": torch.stack([it["valid"] for it in items]),
            "num_sources": torch.tensor([it["num_sources"] for it in items]),
            "index": torch.tensor([it["index"] for it in items]),
            "kept": torch.ones(len(items), dtype=torch.bool)}
