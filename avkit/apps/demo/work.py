"""What each tab of ``avkit demo`` computes, without Gradio: uploads checked, runs found, and one function per
tab that takes a video path and returns plain values (text, paths of images and sounds) for the page."""
from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from avkit.errors import AvkitError, MediaError

Progress = Callable[[float, str], None]  # (fraction done, what is happening)
QUICKSTART_OUT = Path("avkit_runs/quickstart")  # avkit quickstart's default output (its runs in runs/)


def one_line(err: BaseException) -> str:
    """The first line of an error's message: what the page shows (never a traceback)."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def check_upload(path: str | Path | None, max_mb: float) -> Path:
    """``path`` if it is a readable video of at most ``max_mb`` MB, else a one-line :class:`MediaError`."""
    from avkit.io import probe

    if path is None or str(path) == "":
        raise AvkitError("no video: upload one or pick an example")
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise MediaError(path.name, "the file is empty")
    if size > max_mb * 1e6:
        raise MediaError(path.name, f"{size / 1e6:.1f} MB is over the upload limit of {max_mb:g} MB (--max-upload-mb)")
    try:
        info = probe(path)
    except MediaError as err:
        raise MediaError(path.name, f"not a video avkit can read ({err.reason})") from None
    if info.video_index is None:
        raise MediaError(path.name, "no video stream")
    return path


# ---------------------------------------------------------------------------------------------
# runs


@dataclass
class Runs:
    """The trained runs the demo can use, by task (``classification``, ``separation``, ``captioning``,
    ``localization``)."""

    by_task: dict[str, list[Path]] = field(default_factory=dict)

    def of(self, task: str) -> list[Path]:
        return self.by_task.get(task, [])


def find_runs(given: Sequence[str | Path], quickstart: Path = QUICKSTART_OUT) -> Runs:
    """The runs named by ``--run`` (each a run directory, or a folder of runs such as a quickstart output) plus
    the quickstart's runs when its output folder is there; a ``--run`` that is no run is a one-line error."""
    from avkit.engine.config import load_config

    runs = Runs()
    places = [Path(p) for p in given]
    if (quickstart / "runs").is_dir():
        places.append(quickstart / "runs")
    for place in places:
        if (place / "runs").is_dir() and not (place / "config.yaml").is_file():
            place = place / "runs"  # a quickstart output folder
        candidates = [place] if (place / "config.yaml").is_file() else sorted(
            p for p in place.iterdir() if (p / "config.yaml").is_file()) if place.is_dir() else []
        if not candidates and place in [Path(p) for p in given]:
            raise AvkitError(f"{place}: not a run directory (no config.yaml) nor a folder of runs")
        for run in candidates:
            if any((run / f"{name}.safetensors").is_file() for name in ("best", "last")):
                runs.by_task.setdefault(load_config(run).task, []).append(run)
    return runs


# ---------------------------------------------------------------------------------------------
# Classify


def classify(video: Path, run: Path, out: Path, *, top: int = 5, clips: int = 8, cam_clip: int = 0,
             progress: Progress | None = None) -> dict[str, Any]:
    """Top-``top`` labels averaged over ``clips`` clips, a timeline of each clip's scores of those labels
    (``timeline.png``) and the Grad-CAM of clip ``cam_clip`` for the top label (``gradcam.png``), in ``out``."""
    import matplotlib
    import numpy as np
    import torch

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from avkit.data.sampling import uniform_clips
    from avkit.engine.classify import read_views
    from avkit.engine.evaluate import load_run
    from avkit.engine.step import forward_batch
    from avkit.io import probe
    from avkit.viz.gradcam import grad_cam, overlay_cam

    say = progress or (lambda f, msg: None)
    say(0.1, "loading the run")
    net, cfg, names = load_run(run, device="cpu")
    if clips < 1 or top < 1 or not 0 <= cam_clip < clips:
        raise AvkitError(f"clips and top must be >= 1 and the Grad-CAM clip in 0..{clips - 1}")
    say(0.3, "reading the clips")
    views = read_views(video, cfg, clips)
    times = [float(w.times.mean()) for w in uniform_clips(probe(video).duration or 0.0, cfg.data.num_frames,
                                                          cfg.data.fps, clips)]
    say(0.5, "classifying")
    with torch.no_grad():
        probs = forward_batch(net, views).float().softmax(dim=-1)  # [clips, C]
    mean = probs.mean(dim=0)
    scores, idx = mean.topk(min(top, mean.numel()))
    labels = {names[i]: float(s) for s, i in zip(scores.tolist(), idx.tolist())}
    out.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 2.6), dpi=80)
    for i in idx.tolist()[:5]:
        ax.plot(times, probs[:, i].numpy(), marker="o", label=names[i])
    ax.set(xlabel="clip centre (s)", ylabel="score", ylim=(0, 1), title="score of each clip")
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(out / "timeline.png")
    plt.close(fig)
    say(0.7, "Grad-CAM")
    one = {k: v[cam_clip:cam_clip + 1] for k, v in views.items() if isinstance(v, torch.Tensor)}
    cam = grad_cam(net, one["video"][0], class_idx=int(idx[0]),
                   forward=lambda x: forward_batch(net, {**one, "video": x}))
    frames = overlay_cam(one["video"][0], cam)  # [T, H, W, 3]
    picks = np.linspace(0, len(frames) - 1, min(4, len(frames))).round().astype(int)
    strip = np.concatenate([frames[i] for i in picks], axis=1)
    _save_image(strip, out / "gradcam.png")
    say(1.0, "done")
    return {"labels": labels, "timeline": str(out / "timeline.png"), "gradcam": str(out / "gradcam.png"),
            "clip_times": times}


def _save_image(rgb: Any, path: Path) -> None:
    import matplotlib.image

    matplotlib.image.imsave(path, rgb)


# ---------------------------------------------------------------------------------------------
# Select


def select(video: Path, run: Path, out: Path, *, budget: int = 3, policy: str = "audio",
           progress: Progress | None = None) -> dict[str, Any]:
    """Clip selection at ``budget`` clips in front of the classifier ``run``, and the dense answer for comparison:
    the saliency timeline (``timeline.png``), the chosen clips, GFLOPs against dense, both answers."""
    from avkit.apps import clip_selection
    from avkit.apps.clip_selection.plots import plot_timeline

    say = progress or (lambda f, msg: None)
    say(0.1, "loading the classifier")
    selector = clip_selection.load(run, device="cpu")
    say(0.3, f"selecting {budget} clip(s) ({policy})")
    chosen = selector.select(video, budget=budget, policy=policy)
    say(0.6, "dense: every clip")
    dense = selector.select(video, budget=budget, policy="dense")
    out.mkdir(parents=True, exist_ok=True)
    plot_timeline(chosen, out / "timeline.png")
    g = chosen.gflops
    saved = 1 - g["total"] / g["dense"] if g.get("dense") else 0.0
    say(1.0, "done")
    return {"timeline": str(out / "timeline.png"),
            "clips": [[round(c["start"], 2), round(c["end"], 2), None if c["score"] is None else round(c["score"], 3),
                       c.get("label", "")] for c in chosen.clips],
            "gflops": {"selected": round(g["total"], 3), "dense": round(g["dense"], 3), "saved": round(saved, 3)},
            "answer": chosen.top_label, "dense_answer": dense.top_label, "policy_used": chosen.used,
            "notes": list(chosen.notes)}


# ---------------------------------------------------------------------------------------------
# Localize


def localize(video: Path, run: Path, out: Path, *, min_score: float = 0.1,
             progress: Progress | None = None) -> dict[str, Any]:
    """Where each action starts and ends in ``video``, by the localiser ``run`` (as ``avkit localize``): the
    segments scoring at least ``min_score`` (by start time) and their timeline (``timeline.png``) in ``out``."""
    from avkit.apps import localization
    from avkit.apps.localization.inference import plot_timeline, truth_of

    if not 0 <= min_score <= 1:
        raise AvkitError(f"the minimum score must be in [0, 1], got {min_score}")
    say = progress or (lambda f, msg: None)
    say(0.1, "loading the run")
    loc = localization.load(run, device="cpu")
    say(0.3, "extracting window features")
    feat = loc.extractor(video)
    say(0.7, "localising")
    segments = sorted((s for s in loc.detect_features(feat) if s["score"] >= min_score), key=lambda s: s["start"])
    out.mkdir(parents=True, exist_ok=True)
    plot_timeline(segments, feat.duration, out / "timeline.png", loc.class_names, truth_of(video), min_score)
    say(1.0, "done")
    return {"timeline": str(out / "timeline.png"), "segments": segments, "duration": float(feat.duration),
            "method": loc.method}


LOCALIZE_HINT = ("Generate its data with the command at the top of recipes/localize_onestage.yaml, train it with "
                 "`avkit train recipes/localize_onestage.yaml` (docs/localization.md) and start "
                 "`avkit demo --run runs/localize_onestage`.")


# ---------------------------------------------------------------------------------------------
# Separate


def separate(video: Path, run: Path | None, out: Path, *, regions: str = "auto", max_sources: int = 4,
             instruments: str = "", progress: Progress | None = None) -> dict[str, Any]:
    """Separate ``video``'s sounds with ``run`` (None: the model shipped with avkit) into ``out``: the mixture,
    one WAV per source with its label, energy share and the instrument it was separated as (by timbre), and the
    sound map over the frame. ``instruments``: one name per source, comma-separated ("" lets the model decide)."""
    from avkit.apps.separation import separate_video
    from avkit.apps.separation.timbre import check_instruments

    given = check_instruments([n.strip() for n in instruments.split(",")]) if instruments.strip() else None

    say = progress or (lambda f, msg: None)
    say(0.1, "loading the model")
    steps = {"reading the video": 0.3, "separating": 0.5}
    result = separate_video(video, run, out, regions=regions, max_sources=max_sources, videos=False, device="cpu",
                            overwrite=True, instruments=given, progress=lambda msg: say(steps.get(msg, 0.8), msg))
    say(1.0, "done")
    return {"mixture": str(out / "mixture.wav"), "soundmap": str(out / "soundmap.png"),
            "stems": [{"label": s.get("label", f"source {k}"), "energy": float(s["energy"]), "wav": str(out / s["wav"]),
                       **({"box": s["box"]} if "box" in s else {}),
                       **({"instrument": s["instrument"]} if "instrument" in s else {})}
                      for k, s in enumerate(result.sources)],
            "seconds": round(result.seconds.get("total", 0.0), 2)}


def separation_missing(run: Path | None) -> str | None:
    """Why the Separate tab cannot run (None when it can): no ``--run`` and no shipped model file."""
    from avkit.apps.separation import SHIPPED_MODEL, SHIPPED_NAMER, SHIPPED_STEMS, SHIPPED_WEIGHTS, TRAIN_HINT

    if run is not None:
        return None
    missing = [folder / n for folder in (SHIPPED_MODEL, SHIPPED_MODEL / SHIPPED_STEMS, SHIPPED_MODEL / SHIPPED_NAMER)
               for n in ("config.yaml", SHIPPED_WEIGHTS) if not (folder / n).is_file()]
    if not missing:
        return None
    return (f"The separation model shipped with avkit is not installed ({missing[0]} is missing). "
            f"Reinstall avkit to get it, or {TRAIN_HINT} and start `avkit demo --run RUN`.")


# ---------------------------------------------------------------------------------------------
# Caption and Ask


def caption(video: Path, run: Path, *, progress: Progress | None = None) -> str:
    """The caption the captioning ``run`` writes for ``video``."""
    from avkit.apps import captioning

    say = progress or (lambda f, msg: None)
    say(0.2, "loading the captioner")
    text = captioning.load(run, device="cpu").caption(video)["caption"]
    say(1.0, "done")
    return str(text)


def ask(video: Path, model: str, prompt: str, *, progress: Progress | None = None) -> str:
    """The answer of the video LLM ``model`` (a local folder, or a hub id already in the cache) to ``prompt``."""
    from avkit.apps import video_llm

    if not prompt.strip():
        raise AvkitError("ask a question about the video")
    say = progress or (lambda f, msg: None)
    say(0.2, "loading the model")
    llm = video_llm.load(model, local_files_only=True)  # no network from the page
    say(0.5, "answering")
    return str(llm.ask(video, prompt).answer)


def describe(result: dict[str, Any]) -> str:
    """A result as indented JSON (the page's details box)."""
    return json.dumps(result, indent=2)
