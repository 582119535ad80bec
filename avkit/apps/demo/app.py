"""The Gradio page of ``avkit demo``: one tab per application over :mod:`avkit.apps.demo.work`.

Every handler turns an error into one line in the tab's status box (the traceback goes to the server's
console only for a bug), so a bad upload never shows a stack trace and the server keeps serving.
"""
from __future__ import annotations

import logging
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr

from avkit.apps.demo import work
from avkit.apps.demo.examples import EXAMPLES, example_path
from avkit.errors import AvkitError

log = logging.getLogger("avkit.demo")


@dataclass
class DemoOptions:
    """What ``avkit demo`` was started with."""

    runs: list[str] = field(default_factory=list)
    llm: str | None = None
    max_upload_mb: float = 50.0
    workdir: Path = field(default_factory=lambda: Path(tempfile.gettempdir()))


def _status(ok: bool, text: str) -> str:
    return text if ok else f"**Error:** {text}"


def _guard(fn: Callable[..., tuple], n_out: int) -> Callable[..., tuple]:
    """``fn`` whose errors become ``("**Error:** one line", None, ...)``: the status box first, empty outputs."""
    def wrapped(*args: Any, **kwargs: Any) -> tuple:
        try:
            return fn(*args, **kwargs)
        except (AvkitError, OSError) as err:
            return (_status(False, work.one_line(err)), *([None] * n_out))
        except Exception as err:  # a bug: one line in the page, the traceback on the server's console
            log.exception("avkit demo: %s failed", getattr(fn, "__name__", "a tab"))
            return (_status(False, f"{type(err).__name__}: {work.one_line(err)} (details on the server's console)"),
                    *([None] * n_out))
    wrapped.__name__ = getattr(fn, "__name__", "wrapped")
    return wrapped


def _video_input(tab: str, default: str) -> tuple[gr.File, gr.Dropdown]:
    """An upload box and a choice of the shipped examples (the upload wins when given)."""
    names = [ex.name for ex in EXAMPLES if example_path(ex.name).is_file()]
    with gr.Row():
        upload = gr.File(label="upload a video", file_count="single", type="filepath", elem_id=f"{tab}-upload")
        example = gr.Dropdown(choices=["", *names], value=default if default in names else "",
                              label="or a bundled example", elem_id=f"{tab}-example")
    return upload, example


def build(options: DemoOptions) -> gr.Blocks:
    """The page: tabs Classify, Select, Separate, Localize, Caption, Ask."""
    runs = work.find_runs(options.runs)
    classifiers = [str(p) for p in runs.of("classification")]
    separators = [str(p) for p in runs.of("separation")]
    captioners = [str(p) for p in runs.of("captioning")]
    localizers = [str(p) for p in runs.of("localization")]

    def pick(upload: str | None, example: str | None) -> Path:
        if upload:
            return work.check_upload(upload, options.max_upload_mb)
        if example:
            return work.check_upload(example_path(example), options.max_upload_mb)
        raise AvkitError("no video: upload one or pick an example")

    def scratch(tab: str) -> Path:
        return options.workdir / "results" / f"{tab}-{uuid.uuid4().hex[:8]}"

    def reporter(progress: gr.Progress) -> work.Progress:
        return lambda fraction, msg: progress(fraction, desc=msg)

    def do_classify(upload, example, run, top, clips, cam_clip, progress=gr.Progress()):  # noqa: B008 (Gradio's API)
        res = work.classify(pick(upload, example), Path(run or ""), scratch("classify"), top=int(top),
                            clips=int(clips), cam_clip=int(cam_clip), progress=reporter(progress))
        return _status(True, f"top label: **{next(iter(res['labels']))}**"), res["labels"], res["timeline"], \
            res["gradcam"]

    def do_select(upload, example, run, budget, policy, progress=gr.Progress()):  # noqa: B008
        res = work.select(pick(upload, example), Path(run or ""), scratch("select"), budget=int(budget),
                          policy=policy, progress=reporter(progress))
        g = res["gflops"]
        text = (f"answer: **{res['answer']}** (dense: {res['dense_answer']}); {g['selected']} GFLOPs against "
                f"{g['dense']} dense: **{100 * g['saved']:.0f}% saved**" + "".join(f"; {n}" for n in res["notes"]))
        return _status(True, text), res["timeline"], res["clips"]

    def do_separate(upload, example, regions, max_sources, instruments, progress=gr.Progress()):  # noqa: B008
        run = Path(separators[0]) if separators else None
        missing = work.separation_missing(run)
        if missing:
            raise AvkitError(missing)
        res = work.separate(pick(upload, example), run, scratch("separate"), regions=regions or "auto",
                            max_sources=int(max_sources), instruments=instruments or "", progress=reporter(progress))
        stems = res["stems"]
        slots = [gr.update(value=s["wav"], label=f"{s['label']}" + (f", {s['instrument']}" if "instrument" in s else "")
                           + f" ({100 * s['energy']:.0f}% of the energy)", visible=True) for s in stems[:MAX_STEMS]]
        slots += [gr.update(value=None, visible=False)] * (MAX_STEMS - len(slots))
        text = f"{len(stems)} source(s) in {res['seconds']} s" + (
            f" (showing {MAX_STEMS})" if len(stems) > MAX_STEMS else "") + (
            ", separated by timbre" if any("instrument" in s for s in stems) else "")
        return (_status(True, text), res["mixture"], res["soundmap"], *slots)

    def do_localize(upload, example, run, min_score, progress=gr.Progress()):  # noqa: B008
        if not run:
            raise AvkitError(f"no localization run. {work.LOCALIZE_HINT}")
        res = work.localize(pick(upload, example), Path(run), scratch("localize"), min_score=float(min_score),
                            progress=reporter(progress))
        rows = [[s["start"], s["end"], s["label"], round(s["score"], 3)] for s in res["segments"]]
        text = (f"**{len(rows)} segment(s)** in {res['duration']:.1f} s ({res['method']}, score >= "
                f"{float(min_score):g})")
        return _status(True, text), res["timeline"], rows

    def do_caption(upload, example, run, progress=gr.Progress()):  # noqa: B008
        text = work.caption(pick(upload, example), Path(run or ""), progress=reporter(progress))
        return _status(True, "done"), text

    def do_ask(upload, example, prompt, progress=gr.Progress()):  # noqa: B008
        text = work.ask(pick(upload, example), str(options.llm), prompt, progress=reporter(progress))
        return _status(True, "done"), text

    with gr.Blocks(title="avkit demo", analytics_enabled=False, delete_cache=(3600, 3600)) as page:
        gr.Markdown("# avkit demo\nLook at and listen to what avkit's applications do with a video: upload one "
                    "(the server keeps it in a temporary folder) or use a bundled example.")
        with gr.Tab("Separate", id="separate"):
            missing = work.separation_missing(Path(separators[0]) if separators else None)
            if missing:
                gr.Markdown(f"**Not available:** {missing}", elem_id="separate-missing")
            upload, example = _video_input("separate", "duet.mp4")
            with gr.Row():
                regions = gr.Textbox(value="auto", label="regions: auto (avkit finds the sources), whole, 2x1, "
                                                         "or boxes x0,y0,x1,y1;...", elem_id="separate-regions")
                max_sources = gr.Slider(1, MAX_STEMS, value=3, step=1, label="at most this many sources (auto)")
                instruments = gr.Textbox(value="", label="instruments (optional): one per source, e.g. violin,flute; "
                                                         "separates them by timbre", elem_id="separate-instruments")
            button = gr.Button("Separate", variant="primary", elem_id="separate-run")
            status = gr.Markdown(elem_id="separate-status")
            with gr.Row():
                mixture = gr.Audio(label="mixture", type="filepath", interactive=False, buttons=["download"],
                                   elem_id="separate-mixture")
                soundmap = gr.Image(label="sound map over the frame", type="filepath", interactive=False,
                                    buttons=["download"], elem_id="separate-soundmap")
            stems = [gr.Audio(label=f"source {k}", type="filepath", interactive=False, visible=False,
                              buttons=["download"], elem_id=f"separate-stem-{k}") for k in range(MAX_STEMS)]
            button.click(_guard(do_separate, 2 + MAX_STEMS), [upload, example, regions, max_sources, instruments],
                         [status, mixture, soundmap, *stems])

        with gr.Tab("Classify", id="classify"):
            if not classifiers:
                gr.Markdown(f"**Not available:** no classification run. {HOW_TO_CLASSIFY}", elem_id="classify-missing")
            upload, example = _video_input("classify", "motion.mp4")
            with gr.Row():
                run = gr.Dropdown(choices=classifiers, value=classifiers[0] if classifiers else None, label="run")
                top = gr.Slider(1, 10, value=5, step=1, label="top-k")
                clips = gr.Slider(1, 16, value=8, step=1, label="clips")
                cam_clip = gr.Slider(0, 15, value=0, step=1, label="Grad-CAM of clip")
            button = gr.Button("Classify", variant="primary", elem_id="classify-run")
            status = gr.Markdown(elem_id="classify-status")
            with gr.Row():
                labels = gr.Label(label="top labels (mean over the clips)", elem_id="classify-labels")
                timeline = gr.Image(label="per-clip scores", type="filepath", interactive=False,
                                    elem_id="classify-timeline")
            cam = gr.Image(label="Grad-CAM of the top label (4 frames of the chosen clip)", type="filepath",
                           interactive=False, elem_id="classify-gradcam")
            button.click(_guard(do_classify, 3), [upload, example, run, top, clips, cam_clip],
                         [status, labels, timeline, cam])

        with gr.Tab("Select", id="select"):
            if not classifiers:
                gr.Markdown(f"**Not available:** clip selection runs in front of a classifier. {HOW_TO_CLASSIFY}",
                            elem_id="select-missing")
            upload, example = _video_input("select", "long.mp4")
            with gr.Row():
                run = gr.Dropdown(choices=classifiers, value=classifiers[0] if classifiers else None,
                                  label="classifier run")
                budget = gr.Slider(1, 8, value=2, step=1, label="budget (clips)")
                policy = gr.Dropdown(choices=["audio", "uniform", "random"], value="audio", label="policy")
            button = gr.Button("Select", variant="primary", elem_id="select-run")
            status = gr.Markdown(elem_id="select-status")
            sel_plot = gr.Image(label="audio saliency over time and the chosen clips", type="filepath",
                                interactive=False)
            table = gr.Dataframe(headers=["start (s)", "end (s)", "saliency", "label"], label="chosen clips")
            button.click(_guard(do_select, 2), [upload, example, run, budget, policy], [status, sel_plot, table])

        with gr.Tab("Localize", id="localize"):
            gr.Markdown("Where each action starts and ends in a long video (temporal action localisation).")
            if not localizers:
                gr.Markdown(f"**Not available:** no localization run. {work.LOCALIZE_HINT}",
                            elem_id="localize-missing")
            upload, example = _video_input("localize", "long.mp4")
            with gr.Row():
                run = gr.Dropdown(choices=localizers, value=localizers[0] if localizers else None, label="run")
                min_score = gr.Slider(0, 1, value=0.1, step=0.05, label="minimum score")
            button = gr.Button("Localize", variant="primary", elem_id="localize-run")
            status = gr.Markdown(elem_id="localize-status")
            loc_plot = gr.Image(label="segments over time (ground truth too when a manifest beside the video "
                                      "lists it)", type="filepath", interactive=False, elem_id="localize-timeline")
            segments = gr.Dataframe(headers=["start (s)", "end (s)", "label", "score"], label="segments",
                                    elem_id="localize-segments")
            button.click(_guard(do_localize, 2), [upload, example, run, min_score], [status, loc_plot, segments])

        with gr.Tab("Caption", id="caption"):
            if not captioners:
                gr.Markdown("**Not available:** no captioning run. Train one (`avkit train recipes/caption_av_stage1"
                            ".yaml`, then stage 2; docs/captioning.md) and start `avkit demo --run RUN`.",
                            elem_id="caption-missing")
            upload, example = _video_input("caption", "motion.mp4")
            run = gr.Dropdown(choices=captioners, value=captioners[0] if captioners else None, label="run")
            button = gr.Button("Caption", variant="primary", elem_id="caption-run")
            status = gr.Markdown(elem_id="caption-status")
            text = gr.Textbox(label="caption", interactive=False)
            button.click(_guard(do_caption, 1), [upload, example, run], [status, text])

        with gr.Tab("Ask", id="ask"):
            if not options.llm:
                gr.Markdown("**Not available:** no video LLM. Start `avkit demo --llm MODEL` with a local model "
                            "folder or a hub id already downloaded (`avkit ask --help`; the page never downloads).",
                            elem_id="ask-missing")
            upload, example = _video_input("ask", "long.mp4")
            prompt = gr.Textbox(label="question", value="What happens in this video?")
            button = gr.Button("Ask", variant="primary", elem_id="ask-run")
            status = gr.Markdown(elem_id="ask-status")
            answer = gr.Textbox(label="answer", interactive=False)
            button.click(_guard(do_ask, 1), [upload, example, prompt], [status, answer])
    return page


def theme() -> Any:
    """Gradio's default look with system fonts, so the page fetches nothing from the network (no web fonts)."""
    return gr.themes.Default(font=["ui-sans-serif", "sans-serif"], font_mono=["ui-monospace", "monospace"])


MAX_STEMS = 4
HOW_TO_CLASSIFY = ("Run `avkit quickstart` (its runs are found in avkit_runs/quickstart) or train one with "
                   "`avkit train RECIPE`, then start `avkit demo --run RUN`.")
