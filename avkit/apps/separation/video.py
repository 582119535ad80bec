"""Separate video files and write the results (``avkit separate``).

:func:`separate_video` reads one video, separates one source per region (``--regions``, or the
sources the model finds) and writes one WAV and one video per source, the residual (mixture minus
the sources), the mixture, a sound-map image and video, and ``separation.json``.
:func:`separate_pair` is the classic demonstration: mix the sounds of two videos, separate each again
from its own picture, and score the result (BSS-eval and SI-SDR, with the mixture and the ideal-mask
oracles beside it).

Nothing is overwritten without ``overwrite=True``. Then the new files are written in a staging
folder beside ``out`` and swapped in together (:class:`avkit.staging.StagedOutput`); only files an
earlier ``avkit separate`` wrote (listed in its ``separation.json``) are replaced, and those the new
output lacks are removed; anything else in ``out`` stays.
"""
from __future__ import annotations

import contextlib
import errno
import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from avkit.apps.separation.inference import Analysis, Recording, Separator, Source
from avkit.apps.separation.plots import highlight, plot_sound_map, smooth_sound_map, sound_map_frames, upscale
from avkit.apps.separation.regions import RegionSpec, parse_regions, region_box, region_masks
from avkit.errors import AvkitError, MediaError, OutputExistsError
from avkit.staging import StagedOutput
from avkit.utils import atomic_path, atomic_write_json

MAX_OUTPUT_SIDE = 360  # output videos are decoded with at most this short side
OUTPUT_CHUNK = 32  # output frames decoded, drawn and encoded at a time
JSON_NAME = "separation.json"


@dataclass
class SeparationResult:
    """What :func:`separate_video` / :func:`separate_pair` did."""

    out: Path
    sources: list[dict[str, Any]]
    files: list[str]
    seconds: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, Any] | None = None
    duration: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        d = {"out": str(self.out), "duration": round(self.duration, 3), "sources": self.sources,
             "files": self.files, "seconds": {k: round(v, 4) for k, v in self.seconds.items()}}
        if self.duration and self.seconds.get("separate"):
            d["real_time_factor"] = round(self.duration / self.seconds["separate"], 1)
        if self.seconds.get("total"):
            d["real_time_factor_total"] = round(self.duration / self.seconds["total"], 1)
        if self.metrics is not None:
            d["metrics"] = self.metrics
        return d


# ---------------------------------------------------------------------------------------------
# one video


def separate_video(video: str | Path, run_dir: str | Path | Separator | None, out: str | Path, *, regions: str = "auto",
                   overwrite: bool = False, videos: bool = True, max_sources: int = 4, checkpoint: str = "best",
                   device: str = "auto", instruments: Sequence[str] | None = None,
                   progress: Callable[[str], None] | None = None) -> SeparationResult:
    """Separate the sources of ``video`` into ``out`` (see the module docstring); ``regions`` as
    :func:`~avkit.apps.separation.regions.parse_regions`; ``run_dir`` a run directory or a loaded :class:`Separator`;
    ``instruments`` one name per region to separate by timbre (else as :meth:`Separator.plan_timbre` decides)."""
    t0 = time.perf_counter()
    spec = parse_regions(regions)
    previous = earlier_outputs(out, overwrite)  # refuse early, before any work
    sep = _separator(run_dir, checkpoint, device)
    step = progress or (lambda msg: None)
    step("reading the video")
    t_read = time.perf_counter()
    clip = read_input(video, sep, output_frames=videos)
    t_sep = time.perf_counter()
    step("separating")
    a = Recording(sep, clip.audio, clip.net_frames, progress=step)  # a long one: a window at a time
    found = separate_sources(sep, clip, a, spec, max_sources=max_sources, instruments=instruments)
    estimates = found.estimates
    share, frame_share = sep.sound_map(a)
    t_write = time.perf_counter()
    mixture = clip.audio
    energy = float((mixture.astype(np.float64) ** 2).sum()) or 1.0
    sources = [Source(m, b, e, float((e.astype(np.float64) ** 2).sum() / energy), label)
               for m, b, e, label in zip(found.masks, found.boxes, estimates, found.labels)]
    residual = mixture - estimates.sum(0) if len(estimates) else mixture
    step("writing")
    sr = sep.sample_rate
    k_all = range(len(sources))
    files = ["mixture.wav", *(f"source_{k}.wav" for k in k_all), "residual.wav", "soundmap.png"]
    if videos:
        files += [*(f"source_{k}.mp4" for k in k_all), "residual.mp4", "soundmap.mp4"]
    with _staged(out, files, previous) as staged:
        d = staged.path
        _write_wav(d / "mixture.wav", mixture, sr)
        for k, est in enumerate(estimates):  # each source's audio
            _write_wav(d / f"source_{k}.wav", est, sr)
        _write_wav(d / "residual.wav", residual, sr)
        mid = clip.net_frames[len(clip.net_frames) // 2]
        plot_sound_map(d / "soundmap.png", mid, share, sources, clip.frame_size,
                       title=f"{Path(video).name}: {len(sources)} source(s)")
        if videos:
            hop_s = sep.spectral.cfg.hop / sr
            _write_videos(d, clip, sources, residual, smooth_sound_map(frame_share, clip.fps, hop_s), hop_s, sr, step)
        seconds = _timings(t0, t_read, t_sep, t_write)
        entries = [dict(s.to_dict(), wav=f"source_{k}.wav", **({"video": f"source_{k}.mp4"} if videos else {}),
                        **_instrument(k, found.names, found.named, found.unheard))
                   for k, s in enumerate(sources)]
        written = files + [JSON_NAME]
        record = {"video": str(video), "run": str(sep.run_dir), "regions": regions, "sample_rate": sr,
                  "stems": str(sep.stems_dir) if found.names is None and sep.uses_stems(len(sources)) else None,
                  "by_timbre": found.names is not None, "duration": clip.duration, "frame_size": list(clip.frame_size), "sources": entries,
                  "residual_energy": round(float((residual.astype(np.float64) ** 2).sum() / energy), 4),
                  "seconds": {k: round(v, 4) for k, v in seconds.items()}, "files": written}
        atomic_write_json(d / JSON_NAME, record)
    return SeparationResult(Path(out), entries, written, seconds, None, clip.duration)


@dataclass
class FoundSources:
    """What :func:`separate_sources` decided and separated."""

    masks: list[np.ndarray]  # bool [h, w] per source, over the feature map
    boxes: list[tuple[float, float, float, float]]  # pixels of the input picture
    labels: list[str]
    names: list[str] | None  # the instruments separated by timbre (None: the networks)
    named: list[tuple[str, float]] | None  # what the namer said per source (None: not asked)
    estimates: np.ndarray  # float32 [N, S]
    unheard: list[bool] | None = None  # per source: named, but the sound holds almost none of it (Separator.unheard)


def separate_sources(sep: Separator, clip: VideoInput, a: Analysis | Recording, spec: RegionSpec, *, max_sources: int = 4,
                     instruments: Sequence[str] | None = None) -> FoundSources:
    """The sources of ``clip`` (analysed as ``a``) by the parsed ``--regions`` ``spec`` (``auto``: the ones the
    model finds), their instruments planned (:meth:`Separator.plan_timbre` on :func:`namer_pictures`) and
    separated; a bad region or name is one line naming the video."""
    if spec.kind == "auto":
        masks, added_rest = sep.find_sources(a, max_sources=max_sources)
        if not masks:
            masks = [np.ones(a.grid, bool)]
        boxes = [region_box(m, clip.frame_size) for m in masks]
        labels = [f"found {k}" for k in range(len(masks))]
        if len(masks) > 1 and added_rest:
            labels[-1] = "rest of the picture"
    else:
        try:
            masks, boxes = region_masks(spec, a.grid, clip.frame_size)
        except AvkitError as err:
            raise MediaError(clip.path, f"--regions: {err}") from None
        labels = [f"region {k}" for k in range(len(masks))]
    try:
        names, named = sep.plan_timbre(namer_pictures(clip.net_frames, boxes, clip.frame_size), instruments)
    except AvkitError as err:
        raise MediaError(clip.path, str(err)) from None
    names, estimates, unheard = sep.separate_heard(names, named, clip.audio,
                                                   lambda timbre: sep.separate_regions(a, masks, timbre=timbre))
    return FoundSources(masks, boxes, labels, names, named, estimates, unheard)


# ---------------------------------------------------------------------------------------------
# two videos: mix and separate


def separate_pair(video_a: str | Path, video_b: str | Path, run_dir: str | Path | Separator | None, out: str | Path, *,
                  overwrite: bool = False, videos: bool = True, checkpoint: str = "best", device: str = "auto",
                  instruments: Sequence[str] | None = None,
                  progress: Callable[[str], None] | None = None) -> SeparationResult:
    """Mix the sounds of two videos, separate each again from its own picture, and score it; ``instruments``
    as in :func:`separate_video`."""
    from avkit.apps.separation.metrics import evaluate_mixture, summarize
    from avkit.apps.separation.stft import Spectral

    t0 = time.perf_counter()
    previous = earlier_outputs(out, overwrite)  # refuse early, before any work
    sep = _separator(run_dir, checkpoint, device)
    step = progress or (lambda msg: None)
    step("reading the videos")
    t_read = time.perf_counter()
    clips = [read_input(v, sep, output_frames=videos) for v in (video_a, video_b)]
    n = min(len(c.audio) for c in clips)
    refs = np.stack([c.audio[:n] for c in clips])
    mixture = refs.sum(0)
    t_sep = time.perf_counter()
    step("separating")
    names, named = sep.plan_timbre([c.net_frames for c in clips], instruments)
    names, estimates, unheard = sep.separate_heard(names, named, mixture, lambda timbre: sep.separate_clips(
        mixture, [c.net_frames for c in clips], timbre=timbre))
    t_write = time.perf_counter()
    step("scoring")
    # summarize() groups by num_sources; the key is also kept in the written per_source scores
    scores: dict[str, Any] = {**evaluate_mixture(Spectral(sep.spectral.cfg), refs, estimates), "num_sources": 2}
    summary = summarize([scores])["2"]
    sr = sep.sample_rate
    step("writing")
    files = ["mixture.wav"]
    for k in range(len(clips)):
        files += [f"source_{k}.wav", f"source_{k}.mp4"] if videos else [f"source_{k}.wav"]
    files.append("residual.wav")
    with _staged(out, files, previous) as staged:
        d = staged.path
        _write_wav(d / "mixture.wav", mixture, sr)
        energy = float((mixture.astype(np.float64) ** 2).sum()) or 1.0
        sources = []
        for k, (clip, est) in enumerate(zip(clips, estimates)):
            _write_wav(d / f"source_{k}.wav", est, sr)
            entry = {"label": Path(clip.path).name, "video_in": clip.path,
                     "energy": round(float((est.astype(np.float64) ** 2).sum() / energy), 4), "wav": f"source_{k}.wav",
                     **{m: round(scores["model"][m][k], 3) for m in scores["model"]}, **_instrument(k, names, named, unheard)}
            if videos:
                from avkit.io.write import open_video_writer

                count = min(clip.output_frames, max(1, int(np.ceil(n / sr * clip.fps))))
                with open_video_writer(d / f"source_{k}.mp4", clip.fps, est, sr) as writer:
                    for _, frames in output_chunks(clip, count):
                        writer.write(upscale(frames))
                entry["video"] = f"source_{k}.mp4"
            sources.append(entry)
        _write_wav(d / "residual.wav", mixture - estimates.sum(0), sr)
        seconds = _timings(t0, t_read, t_sep, t_write)
        written = files + [JSON_NAME]
        metrics = {"per_source": scores, "mean": summary}
        record = {"videos": [str(video_a), str(video_b)], "run": str(sep.run_dir), "mode": "mix", "sample_rate": sr,
                  "stems": str(sep.stems_dir) if names is None and sep.uses_stems(2) else None,
                  "by_timbre": names is not None,
                  "duration": n / sr, "sources": sources, "metrics": metrics,
                  "seconds": {k: round(v, 4) for k, v in seconds.items()}, "files": written}
        atomic_write_json(d / JSON_NAME, record)
    return SeparationResult(Path(out), sources, written, seconds, metrics, n / sr)


def crop_box(frames: np.ndarray, box: Sequence[float], frame_size: tuple[int, int]) -> np.ndarray:
    """The part of ``frames [T, h, w, 3]`` inside ``box`` (x0, y0, x1, y1 in pixels of ``frame_size`` (H, W))."""
    h, w = frames.shape[1:3]
    sy, sx = h / frame_size[0], w / frame_size[1]
    x0, y0 = int(np.floor(box[0] * sx)), int(np.floor(box[1] * sy))
    x1, y1 = max(x0 + 1, int(np.ceil(box[2] * sx))), max(y0 + 1, int(np.ceil(box[3] * sy)))
    return frames[:, y0:min(y1, h), x0:min(x1, w)]


def namer_pictures(frames: np.ndarray, boxes: Sequence[Sequence[float]], frame_size: tuple[int, int]
                   ) -> list[np.ndarray]:
    """What the instrument namer sees of the sources at ``boxes``: :func:`~avkit.apps.separation.naming.naming_box`
    around each (a found source is its instrument's sounding part; the namer was trained on these cuts)."""
    from avkit.apps.separation.naming import naming_box

    return [crop_box(frames, naming_box(box, frame_size), frame_size) for box in boxes]


def _instrument(k: int, names: Sequence[str] | None, named: Sequence[tuple[str, float]] | None,
                unheard: Sequence[bool] | None = None) -> dict[str, Any]:
    """Source ``k``'s instrument fields in separation.json: what the namer said (and why it was not used, when
    it was not), and the instrument separated by."""
    from avkit.apps.separation.naming import timbre_refusals

    out: dict[str, Any] = {}
    if named is not None:
        out["named"] = {"instrument": named[k][0], "probability": round(named[k][1], 4)}
        if names is None and unheard is not None:
            out["named"]["not_by_timbre"] = ("the sound holds almost none of this instrument: the name is likely "
                                             "wrong, separated by the networks" if unheard[k] else
                                             "another name is not borne out by the sound: separated by the networks")
        elif names is None:
            out["named"]["not_by_timbre"] = timbre_refusals(named)[k]
    if names is not None:
        out["instrument"] = names[k]
    return out


def _timings(t0: float, t_read: float, t_sep: float, t_write: float) -> dict[str, float]:
    """Seconds spent loading the model, reading, separating and writing (until now), and in all."""
    t_end = time.perf_counter()
    return {"load": t_read - t0, "read": t_sep - t_read, "separate": t_write - t_sep, "write": t_end - t_write,
            "total": t_end - t0}


def _separator(run: str | Path | Separator | None, checkpoint: str, device: str) -> Separator:
    from avkit.apps.separation import load

    return run if isinstance(run, Separator) else load(run, checkpoint, device)


# ---------------------------------------------------------------------------------------------
# reading inputs


@dataclass
class VideoInput:
    """A decoded input video: the network's view, and what the output videos need to decode theirs
    (:func:`output_chunks`: a few frames at a time, so memory does not grow with the video's length)."""

    path: str
    audio: np.ndarray  # float32 [S] at the model's rate
    net_frames: np.ndarray  # uint8 [T, h, w, 3] at the run's fps and image size
    fps: float  # of the output videos
    frame_size: tuple[int, int]  # (H, W) of the picture as displayed (rotation and pixel aspect applied)
    duration: float
    output_frames: int = 0  # frames of the output videos (0: none written)
    output_side: int | None = None  # their short side when the picture's is larger (None: as it is)


def read_input(path: str | Path, sep: Separator, *, output_frames: bool = True) -> VideoInput:
    """Decode ``path`` for :func:`separate_video`; one-line errors for what a separation needs."""
    from avkit.io import VideoReader

    path = Path(path)
    if not path.exists():
        raise MediaError(path, "no such file")
    if path.is_dir():
        raise MediaError(path, "is a directory, not a video")
    with VideoReader(path) as reader:
        if reader.video is None:
            raise MediaError(path, "no video stream: avkit separate needs the picture to know which sources "
                                   "to separate")
        if reader.audio is None:
            raise MediaError(path, "no audio stream: there is no sound to separate")
        channels = int(reader.audio.codec_context.channels or 0)
        if channels > 2:
            raise MediaError(path, f"{channels}-channel audio ({'5.1' if channels == 6 else 'surround'}): avkit separate "
                                   "takes mono or stereo sound; downmix it first (ffmpeg -i IN -ac 2 OUT)")
        duration = reader.duration or 0.0
        sound = reader.read_audio(sample_rate=sep.sample_rate)  # the whole audio stream, as long as it is
        if len(sound) < sep.spectral.cfg.n_fft:
            raise MediaError(path, f"audio is too short to separate ({len(sound) / sep.sample_rate:.3f} s; one STFT "
                                   f"frame is {sep.spectral.cfg.n_fft / sep.sample_rate:.3f} s)")
        audio = reader.read_audio(0.0, duration, sample_rate=sep.sample_rate).numpy().astype(np.float32)
        n = max(1, int(np.ceil(duration * sep.opts.fps - 1e-9)))
        net_frames, _ = reader.frames_at(np.arange(n) / sep.opts.fps, size=sep.opts.image_size)
        first, _ = reader.frames_at([0.0])  # the displayed size, which --regions' pixels and the boxes refer to
        height, width = int(first.shape[1]), int(first.shape[2])
        fps = min(float(reader.fps or sep.opts.fps), 30.0)
    count = max(1, int(np.ceil(duration * fps - 1e-9))) if output_frames else 0
    side = None if min(height, width) <= MAX_OUTPUT_SIDE else MAX_OUTPUT_SIDE
    return VideoInput(str(path), audio, net_frames.numpy(), fps, (height, width), duration, count, side)


def output_chunks(clip: VideoInput, count: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The output videos' frames of ``clip`` (the first ``count``, default all), ``OUTPUT_CHUNK`` at a time:
    (times ``[n]`` in s, frames uint8 ``[n, H, W, 3]``), decoded in one pass as they are written."""
    from avkit.io import VideoReader

    times = np.arange(clip.output_frames if count is None else count) / clip.fps
    with VideoReader(clip.path) as reader:
        start = 0
        for frames, _ in reader.frames_in_chunks(times, size=clip.output_side, chunk=OUTPUT_CHUNK):
            yield times[start:start + len(frames)], frames.numpy()
            start += len(frames)


def _write_videos(d: Path, clip: VideoInput, sources: Sequence[Source], residual: np.ndarray, smooth_share: np.ndarray,
                  hop_s: float, sample_rate: int, step: Callable[[str], None]) -> None:
    """``source_K.mp4`` (the other regions dimmed), ``residual.mp4`` and ``soundmap.mp4`` in ``d``, each with its
    sound, written together chunk by chunk (a 70 s 800x332 video took 21 GB when whole arrays were drawn);
    ``step`` hears how many frames are done. Each video draws and encodes its chunk in a thread of its own:
    numpy and the encoders release the GIL, and one after another they kept 1.1 of 2 cores busy."""
    from concurrent.futures import ThreadPoolExecutor

    from avkit.io.write import open_video_writer

    with contextlib.ExitStack() as stack:
        def writer(name: str, audio: np.ndarray | None) -> Any:
            return stack.enter_context(open_video_writer(d / name, clip.fps, audio, sample_rate))

        per_source = [(writer(f"source_{k}.mp4", src.audio), src.box) for k, src in enumerate(sources)]
        rest = writer("residual.mp4", residual)
        sound_map = writer("soundmap.mp4", clip.audio)

        def source_chunk(w: Any, box: tuple[float, float, float, float], frames: np.ndarray) -> None:
            w.write(upscale(highlight(frames, box, clip.frame_size)))

        def sound_map_chunk(big: np.ndarray, times: np.ndarray) -> None:
            sound_map.write(sound_map_frames(big, times, smooth_share, hop_s))

        # one thread per video keeps its chunks in order; the next chunk is decoded while this one is drawn
        lanes = [stack.enter_context(ThreadPoolExecutor(max_workers=1)) for _ in range(len(per_source) + 2)]
        previous: list[Any] = []
        written = pending = 0  # frames of the chunks finished, and of the one in flight
        for times, frames in output_chunks(clip):
            big = upscale(frames)
            jobs = [lane.submit(source_chunk, w, box, frames) for lane, (w, box) in zip(lanes, per_source)]
            jobs += [lanes[-2].submit(rest.write, big), lanes[-1].submit(sound_map_chunk, big, times)]
            for job in previous:  # at most two chunks in flight: memory stays flat
                job.result()
            written += pending
            step(f"writing the videos ({written}/{clip.output_frames} frames)")
            previous, pending = jobs, len(times)
        for job in previous:
            job.result()
        step(f"writing the videos ({clip.output_frames}/{clip.output_frames} frames)")


# ---------------------------------------------------------------------------------------------
# writing outputs


def earlier_outputs(out: str | Path, overwrite: bool) -> list[str]:
    """The files an earlier ``avkit separate`` wrote in ``out`` (from its ``separation.json``), which a
    new one may replace; refuses a non-empty ``out`` without ``overwrite``, and any folder that no
    ``avkit separate`` wrote (no ``separation.json``), whose files are not ours to replace."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise AvkitError(f"{out}: exists and is not a directory")
    if not (out.is_dir() and any(out.iterdir())):
        return []
    if not overwrite:
        raise OutputExistsError(out)
    record = out / JSON_NAME
    if not record.is_file():
        raise AvkitError(f"{out}: not an 'avkit separate' output folder (no {JSON_NAME}); "
                         "refusing to replace its files, choose another --out")
    try:
        files = json.loads(record.read_text()).get("files", [])
    except (json.JSONDecodeError, AttributeError, UnicodeDecodeError):
        raise AvkitError(f"{record}: unreadable; refusing to replace the folder") from None
    if not isinstance(files, list):
        raise AvkitError(f"{record}: 'files' is not a list; refusing to replace the folder")
    # only plain file names inside ``out`` (never a path elsewhere, never a folder someone made there)
    return [name for name in files if isinstance(name, str) and name not in ("", ".", "..")
            and Path(name).name == name and "\\" not in name and not (out / name).is_dir()]


def _staged(out: str | Path, files: Sequence[str], previous: Sequence[str]) -> StagedOutput:
    """The staging of ``files`` + ``separation.json`` for ``out``; the earlier outputs the new ones do not
    replace are listed too, so the swap removes them. ``separation.json`` comes first: the first out, the last in."""
    new = [JSON_NAME, *files]
    return StagedOutput(out, entries=new + [name for name in previous if name not in new])


def _write_wav(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    import soundfile

    with atomic_path(path, suffix=".wav") as tmp:
        try:
            soundfile.write(str(tmp), np.asarray(audio, np.float32), sample_rate, subtype="FLOAT", format="WAV")
        except soundfile.LibsndfileError as err:  # a full disk is libsndfile's "System error." (no errno)
            raise OSError(errno.EIO, f"libsndfile: {err}; is the disk full?") from err
