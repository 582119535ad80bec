"""Ask a video-capable vision-language model about a video: ``VideoLLM.from_pretrained(...).ask(...)``.

Any model that ``AutoModelForImageTextToText`` loads and whose ``AutoProcessor`` has a video
processor works the same way (LLaVA-NeXT-Video, Video-LLaVA, LLaVA-OneVision, Qwen2/2.5/3-VL,
SmolVLM2, InternVL), from a hub id or a local folder:

1. avkit samples the frames with its own reader (``avkit.io.read_clip(times=...)``): ``num_frames``
   spread uniformly over the video (the centre of each of ``num_frames`` equal segments) or
   ``fps`` frames per second, each with its timestamp;
2. a visual-token budget (:mod:`avkit.apps.video_llm.token_budget`) lowers the frame count, then the
   resolution, when the frames would cost more than ``max_visual_tokens``;
3. the prompt goes through the processor's chat template as
   ``{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": prompt}]}`` and the
   frames as ``videos=[frames]`` with ``VideoMetadata`` (fps, duration, frame indices), so families
   that put frame times into the prompt or into their position ids (Qwen2.5-VL, Qwen3-VL, SmolVLM2)
   get the real times; the processor never re-samples (``do_sample_frames=False``);
4. ``generate`` runs in a thread and a ``TextIteratorStreamer`` hands the text to ``stream`` as
   it comes, timing the first token.

Family-specific code is one line: frame counts are rounded to a multiple of the video
processor's ``temporal_patch_size`` (2 for Qwen-VL models, which take frames in pairs).

Defaults: on CUDA bfloat16 (float16 where bf16 is unsupported) and ``attn_implementation="sdpa"``;
on CPU float32. Remote code runs only with ``trust_remote_code=True``. A local folder never
touches the network; a hub id is looked up in the local cache first, then downloaded.
"""
from __future__ import annotations

import functools
import math
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from avkit.apps.video_llm.hub import from_pretrained, looks_like_path, one_line
from avkit.apps.video_llm.token_budget import BudgetPlan, plan_budget
from avkit.errors import AvkitError, MediaError

if TYPE_CHECKING:  # torch and transformers load when a model does, so importing this module stays cheap
    import torch

DEFAULT_FRAMES = 8
DEFAULT_MAX_NEW_TOKENS = 256
DEFAULT_MAX_VISUAL_TOKENS = 8192
MIN_FRAMES = 8  # the budget lowers the resolution before it goes below this many frames

DTYPES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
          "float16": "float16", "fp16": "float16", "half": "float16"}

EXAMPLE_MODELS = "LLaVA-NeXT-Video, Video-LLaVA, Qwen2/2.5/3-VL, SmolVLM2, InternVL"


@dataclass
class Timings:
    """Seconds spent per stage of one answer (``tokens_per_second``: decode speed after the first token)."""

    load: float = 0.0  # loading the model and processor (once per VideoLLM)
    read: float = 0.0  # probing the file and decoding the sampled frames
    preprocess: float = 0.0  # budget, chat template, video processor, moving inputs to the device
    time_to_first_token: float = 0.0  # from the start of generate to the first new token
    generate: float = 0.0  # the whole generate call
    tokens_per_second: float = 0.0  # (tokens - 1) / (time of last token - time of first token)
    total: float = 0.0  # read + preprocess + generate


@dataclass
class Answer:
    """One answer, with what went into it (JSON: :meth:`to_dict`)."""

    prompt: str
    video: str
    model: str
    answer: str
    frame_times: list[float]  # seconds from the start of the file, of the frames the model saw
    frame_size: tuple[int, int]  # (H, W) of the frames given to the processor
    tokens: int  # new tokens generated
    prompt_tokens: int  # tokens of the whole input, visual tokens included
    visual_tokens: int
    timings: Timings
    budget: BudgetPlan
    device: str
    dtype: str
    generation: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what avkit adjusted (frame rounding, budget, ...)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["frames"] = {"count": len(self.frame_times), "times": self.frame_times,
                       "size": list(self.frame_size)}
        del d["frame_times"], d["frame_size"]
        d["budget"] = self.budget.to_dict()
        return d


# ---------------------------------------------------------------------------------------------
# loading


def resolve_dtype(dtype: str | None, device: torch.device) -> torch.dtype:
    """``None``/``"auto"``: bfloat16 on CUDA (float16 where bf16 is unsupported), float32 elsewhere."""
    import torch

    if dtype in (None, "", "auto"):
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    name = DTYPES.get(str(dtype).lower().replace("torch.", ""))
    if name is None:
        raise AvkitError(f"unknown dtype {dtype!r} (use auto, float32, bfloat16 or float16)")
    return getattr(torch, name)


def _check_image_text_to_text(config: Any, source: str, trust_remote_code: bool) -> None:
    """Refuse, before any weights load, a config that AutoModelForImageTextToText cannot build."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    model_type = getattr(config, "model_type", None)
    if model_type in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES:
        return
    custom = "AutoModelForImageTextToText" in (getattr(config, "auto_map", None) or {})
    if custom and trust_remote_code:
        return
    if custom:
        raise AvkitError(f"{source}: model type {model_type!r} needs code from the model repository; "
                         f"pass --trust-remote-code (trust_remote_code=True) if you trust it")
    raise AvkitError(f"{source}: model type {model_type!r} is not an image-text-to-text model "
                     f"(AutoModelForImageTextToText cannot load it); avkit ask needs a video-capable "
                     f"vision-language model such as {EXAMPLE_MODELS}")


class VideoLLM:
    """A loaded video-LLM (model + processor) that answers prompts about video files."""

    def __init__(self, model: Any, processor: Any, *, name: str, load_seconds: float = 0.0) -> None:
        self.model = model
        self.processor = processor
        self.name = name
        self.load_seconds = load_seconds
        self.device = next(model.parameters()).device
        self.dtype = next(model.parameters()).dtype
        self.video_processor = processor.video_processor
        # Qwen-VL models take frames in pairs; everything else one by one.
        self.frame_step = int(getattr(self.video_processor, "temporal_patch_size", 1) or 1)
        self._token_cache: dict[tuple[int, int], float] = {}

    # -- loading -------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, model: str | Path, *, device: str | None = None, dtype: str | None = None,
                        attn_implementation: str | None = None, trust_remote_code: bool = False,
                        local_files_only: bool | None = None) -> VideoLLM:
        """Load a video-capable model and its processor from a local folder or a hub id.

        ``local_files_only``: None = only for local folders (hub ids: cache first, then the hub);
        True never contacts the hub. ``attn_implementation``: None = ``"sdpa"`` on CUDA, the
        model's default elsewhere.
        """
        from avkit.environment import import_module

        import_module("torch")
        transformers = import_module("transformers")
        from avkit.engine.device import resolve_device

        t0 = time.perf_counter()
        dev = resolve_device(device)  # bad options fail before anything loads
        torch_dtype = resolve_dtype(dtype, dev)
        source = str(model)
        is_local = looks_like_path(source)
        if is_local:
            folder = Path(source).expanduser()
            if not folder.is_dir():
                raise AvkitError(f"{source}: no such model folder")
            if not (folder / "config.json").is_file():
                raise AvkitError(f"{source}: not a model folder (no config.json)")
            source = str(folder)
        offline = bool(local_files_only) or is_local
        common = {"is_local": is_local, "offline": offline, "trust_remote_code": trust_remote_code}

        config = from_pretrained("config", transformers.AutoConfig.from_pretrained, source, **common)
        _check_image_text_to_text(config, source, trust_remote_code)
        processor = from_pretrained("processor", transformers.AutoProcessor.from_pretrained, source, **common)
        if getattr(processor, "video_processor", None) is None:
            raise AvkitError(f"{source}: {type(processor).__name__} has no video processor: model type "
                             f"{config.model_type!r} takes images, not videos; use a video-capable model "
                             f"such as {EXAMPLE_MODELS}")
        if not getattr(processor, "chat_template", None):
            raise AvkitError(f"{source}: the processor has no chat template (chat_template.jinja), so "
                             f"avkit cannot format the prompt")

        kwargs: dict[str, Any] = {"config": config, "dtype": torch_dtype}
        attn = attn_implementation or ("sdpa" if dev.type == "cuda" else None)
        if attn:
            kwargs["attn_implementation"] = attn
        if dev.type != "cpu" and _has_accelerate():
            kwargs["device_map"] = str(dev)  # load straight onto the GPU
        loader = transformers.AutoModelForImageTextToText.from_pretrained
        try:
            net = from_pretrained("model", loader, source, **common, **kwargs)
        except AvkitError as err:
            text = str(err).lower()
            no_sdpa = "sdpa" in text or "scaled_dot_product" in text or "attention" in text
            if attn_implementation is not None or "attn_implementation" not in kwargs or not no_sdpa:
                raise
            del kwargs["attn_implementation"]  # this architecture has no SDPA path: use its default
            net = from_pretrained("model", loader, source, **common, **kwargs)
        net = net.to(dev).eval()
        return cls(net, processor, name=str(model), load_seconds=time.perf_counter() - t0)

    # -- frames ----------------------------------------------------------------------------------
    def sample_times(self, duration: float, *, num_frames: int | None = None, fps: float | None = None,
                     start: float | None = None, end: float | None = None, frame_count: int | None = None,
                     video_fps: float | None = None) -> tuple[list[float], list[str]]:
        """Times (s) to sample in ``[start, end)`` of a video of ``duration`` s, and notes on rounding.

        ``num_frames``: the centres of ``num_frames`` equal segments. ``fps``: ``start + k / fps``.
        Never more frames than the range holds (``frame_count`` for the whole video, else the
        range times ``video_fps``), so no frame is shown twice; a multiple of the model's frame step.
        """
        if num_frames is not None and fps is not None:
            raise AvkitError("give either the number of frames or fps, not both")
        t0 = 0.0 if start is None else float(start)
        t1 = float(duration) if end is None else min(float(end), float(duration))
        if not (t0 >= 0 and t1 > t0):
            raise AvkitError(f"empty time range: start {t0:g} s, end {t1:g} s (the video lasts {duration:.3g} s)")
        notes: list[str] = []
        if fps is not None:
            if not (fps > 0 and math.isfinite(fps)):
                raise AvkitError(f"fps must be positive, got {fps}")
            n = max(1, int(math.ceil((t1 - t0) * fps - 1e-9)))
        else:
            n = DEFAULT_FRAMES if num_frames is None else int(num_frames)
            if n < 1:
                raise AvkitError(f"the number of frames must be positive, got {num_frames}")
        whole = (t1 - t0) >= duration - 1e-9
        available = frame_count if frame_count and whole else (
            max(1, int(round((t1 - t0) * video_fps))) if video_fps else None)
        if available and n > available:
            where = "the video has" if whole else f"{t0:g}-{t1:g} s holds"
            notes.append(f"{n} frames asked, {where} {available}: using {available}")
            n = available
        step = self.frame_step
        if n % step:
            rounded = max(step, n // step * step)
            notes.append(f"{n} -> {rounded} frames ({type(self.model).__name__} takes frames in groups of {step})")
            n = rounded
        if fps is not None and n == int(math.ceil((t1 - t0) * fps - 1e-9)):
            times = [t0 + k / fps for k in range(n)]
        else:  # uniform, or fps frames that had to be rounded or capped: spread them evenly
            times = [t0 + (i + 0.5) * (t1 - t0) / n for i in range(n)]
        return times, notes

    # -- processor -------------------------------------------------------------------------------
    def _video_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"do_sample_frames": False}  # avkit sampled already
        valid = getattr(getattr(self.video_processor, "valid_kwargs", None), "__annotations__", {})
        if "cap_pixels_per_frame" in valid:  # Qwen2-VL family: the reference per-frame pixel cap
            kwargs["cap_pixels_per_frame"] = True
        return kwargs

    def chat_text(self, prompt: str) -> str:
        """The prompt formatted by the model's chat template, with one video entry."""
        messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": prompt}]}]
        return self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def processor_inputs(self, text: str, frames: Any, metadata: Any) -> Any:
        """Token ids and pixel tensors (CPU) for ``text`` and one video (uint8 [T, H, W, 3])."""
        try:
            return self.processor(text=[text], videos=[frames], video_metadata=[metadata],
                                  return_tensors="pt", **self._video_kwargs())
        except (ValueError, TypeError, RuntimeError) as err:
            raise AvkitError(f"{self.name}: the processor rejected {len(frames)} frames of "
                             f"{frames.shape[2]}x{frames.shape[1]} ({one_line(err)})") from None

    def tokens_per_frame(self, size: tuple[int, int], text: str = "") -> float:
        """Visual tokens one frame of ``size`` (H, W) costs, measured with the processor on blank frames.

        Tokens for ``2 s`` frames minus tokens for ``s`` frames, over ``s`` (``s`` = frame step), so
        per-frame text (timestamps) counts and fixed text does not. (Qwen2-VL's processor also
        shrinks frames when a video has hundreds of them; the estimate from a few frames is then
        on the safe side.)
        """
        import torch

        key = (int(size[0]), int(size[1]))
        if key not in self._token_cache:
            text = text or self.chat_text("")
            s = self.frame_step
            counts = []
            for n in (s, 2 * s):
                blank = torch.zeros((n, key[0], key[1], 3), dtype=torch.uint8)
                meta = video_metadata([i / 1.0 for i in range(n)], 1.0, n, float(n), key)
                counts.append(int(self.processor_inputs(text, blank, meta)["input_ids"].shape[1]))
            self._token_cache[key] = max(0.0, (counts[1] - counts[0]) / s)
        return self._token_cache[key]

    def _visual_token_count(self, input_ids: Any) -> int:
        ids = {getattr(self.processor, "video_token_id", None), getattr(self.processor, "image_token_id", None)}
        ids.discard(None)
        return int(sum(int((input_ids == i).sum()) for i in ids))

    # -- asking ----------------------------------------------------------------------------------
    def ask(self, video: str | Path, prompt: str, *, num_frames: int | None = None, fps: float | None = None,
            start: float | None = None, end: float | None = None,
            max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, temperature: float = 0.0, top_p: float | None = None,
            seed: int = 0, max_visual_tokens: int | None = DEFAULT_MAX_VISUAL_TOKENS,
            stream: Callable[[str], None] | None = None,
            on_note: Callable[[str], None] | None = None) -> Answer:
        """Answer ``prompt`` about ``video``; ``stream(text)`` gets the answer piece by piece.

        ``num_frames`` (default 8) or ``fps`` choose the frames; ``start``/``end`` (s) restrict them
        to a part of the video. ``temperature`` 0 is greedy (deterministic); above 0 samples with
        ``seed``. ``max_visual_tokens`` (None or 0: unlimited) caps what the frames may cost.
        ``on_note(line)`` hears what avkit changed (frame rounding, the budget) before generating;
        the same lines are in ``Answer.notes``.
        """
        from avkit.io import probe, read_clip

        if not prompt or not prompt.strip():
            raise AvkitError("the prompt is empty")
        if max_new_tokens < 1:
            raise AvkitError(f"max new tokens must be positive, got {max_new_tokens}")
        if temperature < 0:
            raise AvkitError(f"temperature must be 0 (greedy) or positive, got {temperature}")
        t_start = time.perf_counter()
        info = probe(video)
        stream_info = info.video
        if stream_info is None:
            raise MediaError(video, "no video stream (avkit ask needs a video with pictures)")
        duration = stream_info.duration or info.duration
        if not duration or duration <= 0:
            raise MediaError(video, "unknown or zero duration")
        if not stream_info.height or not stream_info.width:
            raise MediaError(video, "the video stream states no frame size")
        native = stream_info.display_size or (stream_info.height, stream_info.width)
        video_fps = stream_info.fps or (stream_info.frame_count / duration if stream_info.frame_count else 25.0)
        times, notes = self.sample_times(duration, num_frames=num_frames, fps=fps, start=start, end=end,
                                         frame_count=stream_info.frame_count, video_fps=video_fps)
        t_probe = time.perf_counter() - t_start

        t1 = time.perf_counter()
        text = self.chat_text(prompt)
        plan = plan_budget(len(times), native, lambda s: self.tokens_per_frame(s, text), max_visual_tokens,
                           step=self.frame_step, min_frames=MIN_FRAMES)
        if plan.frames != len(times):
            times, _ = self.sample_times(duration, num_frames=plan.frames, start=start, end=end,
                                         frame_count=stream_info.frame_count, video_fps=video_fps)
        budget_note = plan.describe()
        if budget_note:
            notes.append(budget_note)
        t_plan = time.perf_counter() - t1

        t2 = time.perf_counter()
        size = None if tuple(plan.size) == tuple(native) else (int(plan.size[0]), int(plan.size[1]))
        clip = read_clip(video, times=times, size=size, audio=False)
        frame_times = [float(t) for t in clip.timestamps.tolist()]
        t_read = time.perf_counter() - t2

        t3 = time.perf_counter()
        frame_size = (int(clip.frames.shape[1]), int(clip.frames.shape[2]))
        meta = video_metadata(frame_times, video_fps, stream_info.frame_count, duration, frame_size)
        inputs = self.processor_inputs(text, clip.frames, meta)
        prompt_tokens = int(inputs["input_ids"].shape[1])
        visual_tokens = self._visual_token_count(inputs["input_ids"])
        inputs = inputs_to_device(inputs, self.device, self.dtype)
        t_prep = time.perf_counter() - t3 + t_plan
        if on_note is not None:
            for note in notes:
                on_note(note)

        generation = {"max_new_tokens": int(max_new_tokens), "temperature": float(temperature),
                      "top_p": top_p, "seed": int(seed), "do_sample": temperature > 0}
        answer, tokens, t_first, t_gen, tps = self._generate(inputs, prompt_tokens, generation, stream)
        timings = Timings(load=self.load_seconds, read=t_probe + t_read, preprocess=t_prep,
                          time_to_first_token=t_first, generate=t_gen, tokens_per_second=tps,
                          total=time.perf_counter() - t_start)
        return Answer(prompt=prompt, video=str(video), model=self.name, answer=answer, frame_times=frame_times,
                      frame_size=frame_size, tokens=tokens, prompt_tokens=prompt_tokens,
                      visual_tokens=visual_tokens, timings=timings, budget=plan, device=str(self.device),
                      dtype=str(self.dtype).replace("torch.", ""), generation=generation, notes=notes)

    def generation_config(self, generation: dict[str, Any]) -> Any:
        """The model's generation config with avkit's decoding settings (greedy unless temperature > 0)."""
        import copy

        gc = copy.deepcopy(self.model.generation_config)
        gc.max_new_tokens = generation["max_new_tokens"]
        gc.do_sample = generation["do_sample"]
        if gc.do_sample:
            gc.temperature = generation["temperature"]
            if generation["top_p"] is not None:
                gc.top_p = generation["top_p"]
        else:  # unset sampling knobs so greedy decoding does not warn about them
            gc.temperature, gc.top_p, gc.top_k = None, None, None
        if gc.pad_token_id is None:
            tok = self.processor.tokenizer
            gc.pad_token_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        return gc

    def _generate(self, inputs: Any, prompt_tokens: int, generation: dict[str, Any],
                  stream: Callable[[str], None] | None) -> tuple[str, int, float, float, float]:
        """Run ``generate`` in a thread, streaming text; (answer, tokens, ttft, seconds, decode tokens/s)."""
        import torch

        tokenizer = self.processor.tokenizer
        streamer = _timed_streamer_class()(tokenizer, skip_prompt=True, skip_special_tokens=True)
        result: dict[str, Any] = {}
        config = self.generation_config(generation)
        if generation["do_sample"]:
            torch.manual_seed(generation["seed"])

        def work() -> None:
            try:
                with torch.inference_mode():
                    result["ids"] = self.model.generate(**inputs, generation_config=config, streamer=streamer)
            except BaseException as err:  # re-raised in the caller's thread
                result["error"] = err
                streamer.end()

        t0 = time.perf_counter()
        thread = threading.Thread(target=work, name="avkit-generate", daemon=True)
        thread.start()
        for piece in streamer:
            if piece and stream is not None:
                stream(piece)
        thread.join()
        elapsed = time.perf_counter() - t0
        if "error" in result:
            raise result["error"]
        new = result["ids"][0, prompt_tokens:]
        answer = tokenizer.decode(new, skip_special_tokens=True)
        tokens = int(new.numel())
        ttft = (streamer.first - t0) if streamer.first is not None else elapsed
        span = (streamer.last - streamer.first) if streamer.first is not None else 0.0
        tps = (streamer.count - 1) / span if streamer.count > 1 and span > 0 else (tokens / elapsed if elapsed else 0.0)
        return answer, tokens, ttft, elapsed, tps


def video_metadata(times: list[float], fps: float, frame_count: int | None, duration: float,
              size: tuple[int, int]) -> Any:
    """Hugging Face ``VideoMetadata`` for frames at ``times`` of a video at ``fps``."""
    from transformers.video_utils import VideoMetadata

    total = int(frame_count) if frame_count else max(len(times), int(round(duration * fps)))
    indices = [min(total - 1, max(0, int(round(t * fps)))) for t in times]
    return VideoMetadata(total_num_frames=total, fps=float(fps), width=int(size[1]), height=int(size[0]),
                         duration=float(duration), video_backend="avkit", frames_indices=indices)


def inputs_to_device(inputs: Any, device: Any, dtype: Any) -> dict[str, Any]:
    """Tensors to ``device``; pixel tensors to the model's ``dtype`` (other floats, such as
    Qwen2.5-VL's seconds per frame group, keep their precision)."""
    import torch

    out = {}
    for k, v in inputs.items():
        if isinstance(v, torch.Tensor):
            pixels = k.startswith("pixel_values") and v.is_floating_point()
            v = v.to(device=device, dtype=dtype) if pixels else v.to(device)
        out[k] = v
    return out


def _has_accelerate() -> bool:
    import importlib.util

    return importlib.util.find_spec("accelerate") is not None


@functools.lru_cache(maxsize=1)
def _timed_streamer_class() -> type:
    """``TextIteratorStreamer`` that records when the first and last new tokens arrived (built on
    first use, so importing this module does not import transformers)."""
    from transformers import TextIteratorStreamer

    class TimedStreamer(TextIteratorStreamer):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.first: float | None = None
            self.last: float | None = None
            self.count = 0

        def put(self, value: Any) -> None:
            if not (self.skip_prompt and self.next_tokens_are_prompt):
                now = time.perf_counter()
                if self.first is None:
                    self.first = now
                self.last = now
                self.count += int(value.numel())
            super().put(value)

    return TimedStreamer
