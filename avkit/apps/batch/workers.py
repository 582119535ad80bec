"""The stages of the ``avkit batch`` pipeline, run by Ray on any node.

Every stage passes rows of one shape, so an error row flows through like any other:
``key, path, size, mtime_ns`` (the video), ``chunk`` / ``chunks`` (a long video is cut into chunks of
at most :data:`WINDOWS_PER_CHUNK` clips, so memory stays bounded whatever its length), ``error``
("" when fine) and ``payload`` (pickled NumPy data of the stage).

- :func:`plan` (CPU task, ``flat_map``): video -> one row per chunk of clip windows (``classify``,
  ``embed``), or one row per video for the applications, which read their own input.
- :func:`decode` (CPU task, ``map``): a chunk's windows -> the model batch
  (:func:`avkit.data.batch.clip_batch`, the way the run was validated: centre crop, sound centred).
- :class:`ModelWorker` (actor pool, ``map_batches``): loads the run once per actor; per batch, the
  class probabilities or features of every clip (``classify``, ``embed``), or the application's
  result for each video (``caption``, ``select``, ``separate``).

Anything that stops one video becomes its ``error``; nothing here raises for a bad file.
"""
from __future__ import annotations

import json
import pickle
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from avkit.errors import AvkitError

TASKS = ("classify", "embed", "caption", "select", "separate")
TENSOR_TASKS = ("classify", "embed")  # decoded by avkit in CPU tasks; the others read their own input
WINDOWS_PER_CHUNK = 32  # clips decoded together (one chunk row), and the most one forward pass takes
RUN_TASK = {"classify": "classification", "embed": "classification", "select": "classification",
            "caption": "captioning", "separate": "separation"}  # the recipe task a run must have


@dataclass(frozen=True)
class BatchSpec:
    """What every stage needs to know (pickled to the workers)."""

    task: str
    run: str  # absolute run directory ("": separate with the shipped model)
    checkpoint: str = "best"
    device: str = "auto"
    options: dict[str, Any] = field(default_factory=dict)  # the task's options (see avkit.cli.batch)
    data: Any = None  # the run's DataConfig (tensor tasks)
    precision: str = "auto"  # the run's train.precision: bf16 autocast on GPU
    out: str = ""  # the output folder (separate writes its stems there)
    threads: int = 1  # torch threads of a model worker
    class_names: tuple[str, ...] = ()  # of the run (classify)


def _row(video: dict[str, Any], chunk: int = 0, chunks: int = 1, error: str = "", payload: bytes = b"") -> dict:
    return {"key": video["key"], "path": video["path"], "size": int(video["size"]),
            "mtime_ns": int(video["mtime_ns"]), "chunk": chunk, "chunks": chunks, "error": error, "payload": payload}


def describe(err: BaseException) -> str:
    """One line for the error table: avkit's own message, else the exception type and message."""
    if isinstance(err, AvkitError):
        return str(err)
    last = traceback.format_exception_only(type(err), err)[-1].strip()
    return last.splitlines()[0] if last else type(err).__name__


def windows_of(duration: float, spec: BatchSpec) -> list[Any]:
    """The clip windows of a video: ``--stride`` sliding windows (``embed``), else ``--clips`` uniform clips."""
    from avkit.data.sampling import sliding_windows, uniform_clips

    data = spec.data
    stride = spec.options.get("stride")
    if stride:
        return sliding_windows(duration, data.num_frames, data.fps, stride)
    return uniform_clips(duration, data.num_frames, data.fps, int(spec.options.get("clips") or data.test_clips))


def plan(video: dict[str, Any], spec: BatchSpec) -> list[dict[str, Any]]:
    """``flat_map`` stage: the chunks of clip windows of one video (one row per video for the applications)."""
    if spec.task not in TENSOR_TASKS:
        return [_row(video)]
    try:
        from avkit.io import VideoReader

        if int(video["size"]) < 0:
            raise AvkitError(f"{video['path']}: no such file")
        with VideoReader(video["path"]) as reader:
            duration = reader.duration
        if duration is None or not duration > 0:
            raise AvkitError(f"{video['path']}: unknown or zero video duration")
        windows = windows_of(float(duration), spec)
    except Exception as err:  # one bad video is an error row, never the end of the run
        return [_row(video, error=describe(err))]
    chunks = [windows[i:i + WINDOWS_PER_CHUNK] for i in range(0, len(windows), WINDOWS_PER_CHUNK)]
    return [_row(video, i, len(chunks), payload=pickle.dumps(c)) for i, c in enumerate(chunks)]


def read_windows(path: str, windows: list[Any], data: Any, threads: int = 0) -> dict[str, Any]:
    """The model batch of ``windows`` of ``path`` as the run's validation reads them (torch tensors);
    ``threads``: the decoder's (0: FFmpeg picks)."""
    from avkit.engine.classify import window_batch
    from avkit.io import VideoReader

    with VideoReader(path, threads=threads) as reader:
        return window_batch(reader, windows, data)


def decode(row: dict[str, Any], spec: BatchSpec) -> dict[str, Any]:
    """``map`` stage: a chunk's windows -> its model batch (NumPy) with the windows' start and end times."""
    if row["error"] or spec.task not in TENSOR_TASKS:
        return row
    import torch

    torch.set_num_threads(1)  # one decode task per CPU slot
    try:
        windows = pickle.loads(row["payload"])
        batch = read_windows(row["path"], windows, spec.data, threads=1)  # the tasks share out the cores
        payload = {"inputs": {k: v.numpy() for k, v in batch.items()},
                   "starts": np.array([w.start for w in windows]), "ends": np.array([w.end for w in windows])}
        return {**row, "payload": pickle.dumps(payload, protocol=5)}
    except Exception as err:
        return {**row, "error": describe(err), "payload": b""}


class ModelWorker:
    """``map_batches`` callable class: the run's model, loaded once per actor, applied to batches of rows."""

    def __init__(self, spec: BatchSpec) -> None:
        import torch

        from avkit.engine.device import resolve_device

        torch.set_num_threads(max(1, spec.threads))
        self.spec = spec
        self.device = resolve_device(spec.device)
        self.model: Any  # the classifier (nn.Module), or the application's loaded object
        if spec.task in TENSOR_TASKS:
            from avkit.engine.evaluate import load_run

            self.model = load_run(spec.run, spec.checkpoint, str(self.device))[0]
        elif spec.task == "caption":
            from avkit.apps import captioning
            from avkit.apps.video_llm.hub import quiet_transformers

            quiet_transformers()
            self.model = captioning.load(spec.run, spec.checkpoint, self.device)
        elif spec.task == "select":
            from avkit.apps import clip_selection

            opts = spec.options
            self.model = clip_selection.load(spec.run, preview=opts.get("preview"), checkpoint=spec.checkpoint,
                                             device=self.device)
        else:
            from avkit.apps import separation

            self.model = separation.load(spec.run or None, spec.checkpoint, self.device)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = [{k: batch[k][i] for k in batch} for i in range(len(batch["key"]))]
        if self.spec.task in TENSOR_TASKS:
            self._forward([r for r in rows if not r["error"]])
        else:
            for r in rows:
                self._apply(r)
        return {k: np.array([r[k] for r in rows], dtype=object if k in ("payload",) else None) for k in batch}

    def _forward(self, rows: list[dict[str, Any]]) -> None:
        """Every clip of ``rows`` through the model, at most :data:`WINDOWS_PER_CHUNK` clips per pass."""
        import torch

        from avkit.engine.step import autocast_context, forward_batch, pooled_features, to_device

        if not rows:
            return
        payloads = [pickle.loads(r["payload"]) for r in rows]
        counts = [len(p["starts"]) for p in payloads]
        inputs = {k: np.concatenate([p["inputs"][k] for p in payloads]) for k in payloads[0]["inputs"]}
        outs = []
        total = sum(counts)
        with torch.inference_mode():
            for i in range(0, total, WINDOWS_PER_CHUNK):
                part = to_device({k: torch.from_numpy(v[i:i + WINDOWS_PER_CHUNK]) for k, v in inputs.items()},
                                 self.device)
                with autocast_context(self.device, self.spec.precision):
                    if self.spec.task == "classify":
                        out = forward_batch(self.model, part).float().softmax(dim=-1)
                    else:
                        out = pooled_features(self.model, part).float()  # as the localiser's
                outs.append(out.cpu().numpy())
        values = np.concatenate(outs).astype(np.float32)
        for r, p, chunk in zip(rows, payloads, np.split(values, np.cumsum(counts)[:-1])):
            r["payload"] = pickle.dumps({"out": chunk, "starts": p["starts"], "ends": p["ends"]}, protocol=5)

    def _apply(self, row: dict[str, Any]) -> None:
        """One video through an application; its result (JSON) becomes the payload."""
        if row["error"]:
            return
        opts = self.spec.options
        try:
            if self.spec.task == "caption":
                result = self.model.caption(row["path"], num_beams=int(opts.get("beams") or 1))
                out = {"caption": result["caption"], "start": result["frame_times"][0],
                       "end": result["frame_times"][-1]}
            elif self.spec.task == "select":
                sel = self.model.select(row["path"], budget=int(opts.get("budget") or 3),
                                        policy=opts.get("policy") or "audio")
                out = {"label": sel.top_label, "score": float(sel.prediction[0]["score"]), "policy": sel.used,
                       "clip_starts": [float(c["start"]) for c in sel.clips], "gflops": float(sel.gflops["total"])}
            else:
                from avkit.apps.separation import separate_video

                folder = stem_folder(row["path"], row["key"])
                # The folder belongs to this key, which no commit lists yet: a leftover of a killed run is replaced.
                res = separate_video(row["path"], self.model, Path(self.spec.out) / folder, overwrite=True,
                                     videos=bool(opts.get("videos")), regions=opts.get("regions") or "auto")
                out = {"folder": folder, "sources": len(res.sources),
                       "stems": [f"{folder}/{s['wav']}" for s in res.sources], "json": f"{folder}/separation.json"}
            row["payload"] = json.dumps(out).encode()
        except Exception as err:
            row["error"] = describe(err)


def stem_folder(path: str, key: str) -> str:
    """``stems/NAME-KEY8``: where ``separate`` writes one video's stems, relative to OUT."""
    return f"stems/{Path(path).stem}-{key[:8]}"


def with_data(spec: BatchSpec, data: Any, precision: str) -> BatchSpec:
    """``spec`` with the run's data config and precision (filled in by the driver from the run's recipe)."""
    return replace(spec, data=data, precision=precision)
