"""``avkit ask``: ask a video-capable vision-language model a question about a video."""
from __future__ import annotations

import argparse
import json
import sys

REQUIRES = ("torch", "av", "transformers")  # loaded (or reported in one line) before the command runs

EPILOG = """examples:
  avkit ask clip.mp4 "What is the person cooking?" --model llava-hf/LLaVA-NeXT-Video-7B-hf
  avkit ask clip.mp4 "Describe the video." --model ./models/Qwen2-VL-2B-Instruct --frames 16
  avkit ask talk.mkv "When does the speaker stand up?" --model Qwen/Qwen2.5-VL-3B-Instruct --fps 1
  avkit ask clip.mp4 "Summarise." --model ./my_model --json        answer, frame times, timings as JSON

The model: a hub id or a local folder (config.json, weights, processor and chat template), of any
model AutoModelForImageTextToText loads whose processor takes videos: LLaVA-NeXT-Video,
Video-LLaVA, LLaVA-OneVision, Qwen2/2.5/3-VL, SmolVLM2, InternVL (the -hf checkpoints). A local
folder never touches the network; a hub id is taken from the Hugging Face cache, else downloaded
(--offline: never). Code from the model repository runs only with --trust-remote-code.

avkit reads the frames itself: --frames N spread evenly over the video (or --start/--end), or
--fps R frames per second. Qwen-VL models take frames in pairs (an odd count is rounded down).
If the frames would cost more than --max-visual-tokens, avkit uses fewer frames, then a lower
resolution, and says so on stderr (the "budget" field with --json). On CUDA the model runs in
bfloat16 with fused (SDPA) attention, on CPU in float32. --temperature 0 is greedy decoding.
"""


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("ask", help="ask a video-LLM a question about a video",
                              description="Answer a question about a video with a video-capable "
                                          "vision-language model (Hugging Face), streaming the answer.",
                              epilog=EPILOG)
    p.add_argument("video", help="video file")
    p.add_argument("prompt", help="the question or instruction, in quotes")
    p.add_argument("--model", required=True, default=argparse.SUPPRESS,
                   help="hub id (org/name) or local model folder")
    frames = p.add_mutually_exclusive_group()
    frames.add_argument("--frames", type=int, default=8, help="frames spread evenly over the video")
    frames.add_argument("--fps", type=float, default=None,
                        help="frames per second instead of a frame count (%(default)s = use --frames)")
    p.add_argument("--start", type=float, default=0.0, help="first second to look at")
    p.add_argument("--end", type=float, default=None, help="second to stop at (%(default)s = the end of the video)")
    p.add_argument("--max-new-tokens", type=int, default=256, help="longest answer in tokens")
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy; above 0 samples")
    p.add_argument("--top-p", type=float, default=None,
                   help="nucleus sampling with --temperature > 0 (%(default)s = the model's setting)")
    p.add_argument("--seed", type=int, default=0, help="random seed for sampling")
    p.add_argument("--max-visual-tokens", type=int, default=8192,
                   help="budget for the frames' tokens; 0 = no limit")
    p.add_argument("--dtype", default="auto",
                   help="auto (bfloat16 on CUDA, float32 on CPU), float32, bfloat16, float16")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--attn", default=None,
                   help="attention implementation, e.g. sdpa, eager, flash_attention_2 "
                        "(%(default)s = sdpa on CUDA, the model's default on CPU)")
    p.add_argument("--trust-remote-code", action="store_true", help="run code shipped with the model repository")
    p.add_argument("--offline", action="store_true", help="never contact the Hugging Face hub")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of streaming text")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from avkit.apps import video_llm
    from avkit.apps.video_llm.hub import quiet_transformers

    quiet_transformers()
    vlm = video_llm.load(args.model, device=args.device, dtype=args.dtype, attn_implementation=args.attn,
                         trust_remote_code=args.trust_remote_code, local_files_only=True if args.offline else None)
    stream = None if args.json else _print_piece
    frames = None if args.fps is not None else args.frames
    answer = vlm.ask(args.video, args.prompt, num_frames=frames, fps=args.fps, start=args.start, end=args.end,
                     max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p,
                     seed=args.seed, max_visual_tokens=args.max_visual_tokens, stream=stream,
                     on_note=None if args.json else _print_note)
    if args.json:
        print(json.dumps(answer.to_dict(), indent=2))
        return 0
    print(flush=True)
    t = answer.timings
    times = ", ".join(f"{x:.2f}" for x in answer.frame_times)
    print(f"avkit ask: {len(answer.frame_times)} frames at {times} s, {answer.frame_size[1]}x{answer.frame_size[0]}, "
          f"{answer.visual_tokens} visual tokens; {answer.tokens} tokens, first after {t.time_to_first_token:.2f} s, "
          f"{t.tokens_per_second:.1f} tokens/s (load {t.load:.1f} s)", file=sys.stderr)
    return 0


def _print_note(text: str) -> None:
    """What avkit changed (frame rounding, the token budget), before the answer streams."""
    print(f"avkit ask: {text}", file=sys.stderr, flush=True)


def _print_piece(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()
