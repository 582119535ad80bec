"""``avkit ask`` speed: time to first token and tokens per second, per model, in one table.

Every model answers the same prompt about the same video with ``VideoLLM.ask`` (the code
``avkit ask`` runs: avkit's reader, the chat template, the video processor, ``generate`` in a
thread with a streamer), greedy, ``--max-new-tokens`` tokens. Columns:

  load       loading model + processor (once)          read     probing + decoding the frames
  prep       budget + chat template + video processor  ttft     start of generate -> first token
  gen        the whole generate call                   tok/s    decode speed after the first token
  total      read + prep + gen                         ttft %   the share of total spent before the first token
  e2e tok/s  new tokens / gen (prefill included)
  plain tok/s  the baseline measured in the same run: ``model.generate`` on the same inputs with no
               streamer, new tokens / generate time (compare with e2e tok/s). It runs in a worker
               thread as avkit's generate does: on the busy 2-core CPU this was written on, the
               same tiny ``generate`` ran up to 8x slower in the main thread than in a fresh thread
               (with 1 torch thread both were fast), which would compare threads, not the streamer.

By default the two tiny random families of the test suite (``tests/tiny_vlm.py``: LLaVA-NeXT-Video
and Qwen2-VL, built into a temporary folder) run on CPU; ``--model`` takes real model folders or
hub ids instead (repeatable), e.g. on a GPU machine with the weights present locally:

    python benchmarks/ask_speed.py                                   # tiny families, CPU
    python benchmarks/ask_speed.py --repeat 5 --max-new-tokens 128
    python benchmarks/ask_speed.py --model /models/LLaVA-NeXT-Video-7B-hf --device cuda --frames 16
    python benchmarks/ask_speed.py --model /models/Qwen2-VL-2B-Instruct --device cuda --video clip.mp4 --json out.json

The video: ``--video``, else ``../shared/media/video/pancake_h264_opus.mkv`` when present, else a
generated 4 s clip of 64x64 moving noise. Each model answers once untimed (warm-up), then
``--repeat`` times; the table shows medians.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests.tiny_vlm

from avkit.apps.video_llm.model import Answer, VideoLLM, inputs_to_device  # noqa: E402
from avkit.io import write_video  # noqa: E402

PROMPT = "Describe what happens in the video."
SHARED_VIDEO = ROOT.parent / "shared" / "media" / "video" / "pancake_h264_opus.mkv"


@dataclass
class Row:
    model: str
    family: str
    frames: int
    visual_tokens: int
    prompt_tokens: int
    tokens: int
    load_s: float
    read_s: float
    prep_s: float
    ttft_s: float
    gen_s: float
    tok_s: float
    e2e_tok_s: float
    total_s: float
    plain_tok_s: float


def make_video(path: Path, seconds: float = 4.0, fps: int = 8, size: int = 64) -> Path:
    """Moving noise: each frame the previous one shifted by 2 px, so frames differ."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (size, 2 * size, 3), dtype=np.uint8)
    frames = np.stack([np.roll(base, 2 * k, axis=1)[:, :size] for k in range(int(seconds * fps))])
    return write_video(path, frames, fps=fps)


def plain_generate(vlm: VideoLLM, video: Path, answer: Answer, max_new_tokens: int) -> float:
    """Baseline: ``model.generate`` on the inputs ``answer`` had, without a streamer; new tokens / second."""
    from avkit.apps.video_llm.model import video_metadata
    from avkit.io import probe, read_clip

    info = probe(video)
    duration = info.video.duration or info.duration
    clip = read_clip(video, times=answer.frame_times, size=answer.frame_size, audio=False)
    meta = video_metadata(clip.timestamps.tolist(), info.video.fps or 25.0, info.video.frame_count, duration,
                     tuple(clip.frames.shape[1:3]))
    inputs = vlm.processor_inputs(vlm.chat_text(PROMPT), clip.frames, meta)
    n_prompt = inputs["input_ids"].shape[1]
    inputs = inputs_to_device(inputs, vlm.device, vlm.dtype)
    config = vlm.generation_config({"max_new_tokens": max_new_tokens, "do_sample": False,
                                     "temperature": 0.0, "top_p": None})
    result = {}

    def work() -> None:  # in a thread like avkit's, so only the streamer differs (see the docstring)
        _sync(vlm.device)
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = vlm.model.generate(**inputs, generation_config=config)
        _sync(vlm.device)
        result["tok_s"] = (out.shape[1] - n_prompt) / (time.perf_counter() - t0)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    return result["tok_s"]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(model: str, video: Path, args: argparse.Namespace) -> Row:
    vlm = VideoLLM.from_pretrained(model, device=args.device, dtype=args.dtype)
    kwargs = {"num_frames": args.frames, "max_new_tokens": args.max_new_tokens,
              "max_visual_tokens": args.max_visual_tokens}
    vlm.ask(video, PROMPT, **kwargs)  # warm-up
    answers = [vlm.ask(video, PROMPT, **kwargs) for _ in range(args.repeat)]
    plain = [plain_generate(vlm, video, answers[0], args.max_new_tokens) for _ in range(args.repeat)]
    med = statistics.median
    a = answers[0]
    return Row(model=Path(model).name if Path(model).exists() else model, family=type(vlm.model).__name__,
               frames=len(a.frame_times), visual_tokens=a.visual_tokens, prompt_tokens=a.prompt_tokens,
               tokens=a.tokens, load_s=vlm.load_seconds,
               read_s=med(x.timings.read for x in answers), prep_s=med(x.timings.preprocess for x in answers),
               ttft_s=med(x.timings.time_to_first_token for x in answers),
               gen_s=med(x.timings.generate for x in answers),
               tok_s=med(x.timings.tokens_per_second for x in answers),
               e2e_tok_s=med(x.tokens / x.timings.generate for x in answers),
               total_s=med(x.timings.total for x in answers), plain_tok_s=med(plain))


def print_table(rows: list[Row]) -> None:
    head = ["model", "family", "frames", "vis tok", "new tok", "load s", "read s", "prep s", "ttft s",
            "gen s", "total s", "ttft %", "tok/s", "e2e tok/s", "plain tok/s"]
    lines = [head]
    for r in rows:
        lines.append([r.model, r.family.replace("ForConditionalGeneration", ""), str(r.frames), str(r.visual_tokens),
                      str(r.tokens), f"{r.load_s:.2f}", f"{r.read_s:.3f}", f"{r.prep_s:.3f}", f"{r.ttft_s:.3f}",
                      f"{r.gen_s:.3f}", f"{r.total_s:.3f}", f"{100 * r.ttft_s / r.total_s:.0f}",
                      f"{r.tok_s:.1f}", f"{r.e2e_tok_s:.1f}", f"{r.plain_tok_s:.1f}"])
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    for k, line in enumerate(lines):
        print("  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths))))
        if k == 0:
            print("  ".join("-" * w for w in widths))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", default=None,
                        help="model folder or hub id (repeatable); default: the two tiny test families")
    parser.add_argument("--video", default=None,
                        help="video file (default: the shared pancake clip, else a generated one)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--dtype", default="auto", help="auto (bf16 on CUDA, fp32 on CPU), float32, bfloat16, float16")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--max-visual-tokens", type=int, default=8192)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_dir = Path(tmp)
        video = Path(args.video) if args.video else (SHARED_VIDEO if SHARED_VIDEO.is_file()
                                                     else make_video(tmp_dir / "noise.mp4"))
        models = args.model
        if not models:
            from tests.tiny_vlm import FAMILIES, build_tiny_vlm

            models = [str(build_tiny_vlm(name, tmp_dir / f"tiny_{name}")) for name in sorted(FAMILIES)]
        rows = []
        for model in models:
            rows.append(measure(model, video, args))
            r = rows[-1]
            print(f"{r.model}: ttft {r.ttft_s:.3f} s, {r.tok_s:.1f} tok/s", file=sys.stderr)
    print(f"video {video.name}, {args.frames} frames, prompt {PROMPT!r}, {args.max_new_tokens} new tokens "
          f"(greedy), median of {args.repeat}")
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, {_device_name(args.device)}, "
          f"{platform.processor() or platform.machine()}")
    print_table(rows)
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) for r in rows], indent=2))
    return 0


def _device_name(device: str) -> str:
    if device in ("auto", None):
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return device


if __name__ == "__main__":
    sys.exit(main())
