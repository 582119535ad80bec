"""Screenshots of every tab of ``avkit demo`` for the docs (docs/demo_<tab>.png, docs/demo.png = Separate).

Starts ``avkit demo`` on a free local port with the runs given (``--run``, as for ``avkit demo``), drives the
system Chromium (playwright, no browser download) through each tab on its default bundled example, and saves
a palette PNG of the page per tab. Separate uses the model shipped in ``assets/separation``. Where no
classification or localization run is given, the script trains a tiny one first (a C3D on 48 generated
motion clips, a one-stage localiser on 16 generated long videos: a few minutes on a CPU), so every tab
shows a result; a tab with nothing to run (Ask without ``--llm``) shows what is missing.

    python benchmarks/demo_screenshots.py                            # -> docs/demo_*.png
    python benchmarks/demo_screenshots.py --run runs/caption_av_s2   # the Caption tab too
    python benchmarks/demo_screenshots.py --tabs Separate --separate-regions 2x1   # docs/demo.png as the README shows it
"""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TABS = ("Separate", "Classify", "Select", "Localize", "Caption", "Ask")
DONE = r"source\(s\) in|top label|answer|segment\(s\)|done|Error"  # what a tab's status says when its work ends
BROWSER_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def tiny_classifier(root: Path) -> Path:
    from avkit.data.synthetic import generate
    from avkit.engine.config import load_config
    from avkit.engine.trainer import train

    generate("motion", root / "motion", 48, seed=0, duration=1.0, overwrite=True)
    cfg = load_config(ROOT / "recipes" / "motion_c3d.yaml", [
        f"data.source={root / 'motion'}", f"train.output_dir={root / 'c3d'}", "train.epochs=6", "train.progress=false",
        "train.tensorboard=false", "data.batch_size=8", "data.num_frames=8", "data.fps=8", "data.val_split="])
    train(cfg, quiet=True)
    return root / "c3d"


def tiny_localizer(root: Path) -> Path:
    from avkit.data.synthetic import generate
    from avkit.engine import train
    from avkit.engine.config import load_config

    generate("longvideo", root / "long", 16, seed=0, size=32, duration=16.0, segments=(2, 3),
             segment_duration=(1.5, 3.0), val_fraction=0.0)
    cfg = load_config(ROOT / "recipes" / "localize_onestage.yaml", [
        f"data.source={root / 'long'}", f"task_options.cache={root / 'features.npz'}",
        f"train.output_dir={root / 'localize'}", "train.epochs=40", "train.progress=false", "data.val_split="])
    train(cfg, quiet=True)
    return root / "localize"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(url: str, proc: subprocess.Popen, seconds: float = 180) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(f"avkit demo exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"avkit demo did not answer on {url} in {seconds} s")


def shoot(page: object, path: Path, colors: int) -> None:
    """A screenshot of the page as a palette PNG (``colors`` colours: a few tens of KB)."""
    from PIL import Image

    page.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
    Image.open(path).convert("RGB").quantize(colors).save(path, optimize=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", action="append", default=[], help="a run for the demo (repeatable)")
    ap.add_argument("--llm", default=None, help="a local video LLM for the Ask tab")
    ap.add_argument("--out", default=str(ROOT / "docs"), help="folder for demo_<tab>.png and demo.png")
    ap.add_argument("--colors", type=int, default=64, help="palette size of the PNGs")
    ap.add_argument("--tabs", nargs="+", default=list(TABS), choices=TABS, help="the tabs to shoot")
    ap.add_argument("--separate-regions", default="auto", help="the Separate tab's regions field")
    args = ap.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("no system chromium on PATH (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    from avkit.apps.demo.work import find_runs

    out = Path(args.out)
    with tempfile.TemporaryDirectory(prefix="avkit-shots-") as tmp:
        runs = list(args.run)
        found = find_runs(runs, quickstart=Path(tmp) / "none")
        if not found.of("classification") and "Classify" in args.tabs:
            print("training a tiny classifier ...", flush=True)
            runs.append(str(tiny_classifier(Path(tmp))))
        if not found.of("localization") and "Localize" in args.tabs:
            print("training a tiny localiser ...", flush=True)
            runs.append(str(tiny_localizer(Path(tmp))))
        port = free_port()
        url = f"http://127.0.0.1:{port}/"
        cmd = [sys.executable, "-m", "avkit", "demo", "--port", str(port)]
        cmd += [a for r in runs for a in ("--run", str(Path(r).resolve()))]
        cmd += ["--llm", args.llm] if args.llm else []
        proc = subprocess.Popen(cmd, cwd=tmp, env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"})
        try:
            wait_up(url, proc)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium, args=BROWSER_FLAGS)
                page = browser.new_page(viewport={"width": 1000, "height": 700})
                page.goto(url, wait_until="networkidle")
                for tab in args.tabs:
                    key = tab.lower()
                    page.get_by_role("tab", name=tab).click()
                    if key == "separate":
                        page.fill("#separate-regions textarea", args.separate_regions)
                    if not page.locator(f"#{key}-missing").is_visible():
                        page.click(f"#{key}-run")
                        page.wait_for_function("([id, done]) => new RegExp(done).test("
                                               "document.getElementById(id).innerText)",
                                               arg=[f"{key}-status", DONE], timeout=600_000)
                        page.wait_for_load_state("networkidle")
                        page.wait_for_timeout(1500)  # images and audio waveforms drawn
                    shoot(page, out / f"demo_{key}.png", args.colors)
                    print(f"{tab}: {out / f'demo_{key}.png'} ({(out / f'demo_{key}.png').stat().st_size // 1024} KB)")
                browser.close()
            if "Separate" in args.tabs:
                shutil.copy(out / "demo_separate.png", out / "demo.png")
        finally:
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
