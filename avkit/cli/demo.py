"""``avkit demo``: a local web page to look at and listen to every application (docs/demo.md)."""
from __future__ import annotations

import argparse

REQUIRES = ("torch", "torchvision", "torchaudio", "av", "matplotlib")  # gradio: loaded by serve(), analytics off first

EPILOG = """examples:
  avkit demo
        http://127.0.0.1:7860: Separate with the model shipped with avkit on a bundled example; Classify and
        Select with the quickstart's runs when avkit_runs/quickstart is there
  avkit demo --run runs/motion_r2plus1d --run runs/separation_gm --port 8080
        a classifier for Classify/Select and a separation run instead of the shipped model
  avkit demo --llm ~/models/Qwen2.5-VL-3B-Instruct
        also the Ask tab, with a local video LLM (the page never downloads)
  avkit demo --host 0.0.0.0 --max-upload-mb 200
        reachable from other machines of your network (no login: only on a network you trust)

Uploads and results live in a temporary folder, removed when the server stops (Ctrl+C). Gradio's analytics
are off; --share (a public *.gradio.live link through Gradio's servers) only when given.
"""


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("demo", help="a local web page to look at and listen to every application",
                              description="Start a local web page (Gradio) with a tab per application: Separate, "
                                          "Classify, Select, Localize, Caption, Ask.", epilog=EPILOG)
    p.add_argument("--run", action="append", default=[], metavar="RUN",
                   help="a trained run (or a folder of runs, e.g. a quickstart output); repeat for several")
    p.add_argument("--llm", default=None, help="a video LLM for the Ask tab: local folder or cached hub id")
    p.add_argument("--port", type=int, default=7860, help="port to serve on")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: this machine only)")
    p.add_argument("--share", action="store_true", help="also open a public Gradio link (off by default)")
    p.add_argument("--max-upload-mb", type=float, default=50.0, help="refuse uploads larger than this")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from avkit.apps.demo import serve
    from avkit.apps.demo.app import DemoOptions
    from avkit.errors import AvkitError

    if not 0 < args.port < 65536:
        raise AvkitError(f"--port must be in 1..65535, got {args.port}")
    if args.max_upload_mb <= 0:
        raise AvkitError(f"--max-upload-mb must be > 0, got {args.max_upload_mb}")
    print(f"avkit demo: http://{args.host}:{args.port} (Ctrl+C stops it)", flush=True)
    serve(DemoOptions(runs=args.run, llm=args.llm, max_upload_mb=args.max_upload_mb), host=args.host,
          port=args.port, share=args.share)
    return 0
