"""``avkit demo``: upload checks, run discovery, the tabs' work without a browser, and the page itself driven
in a real headless Chromium (system browser: .ci/run installs Debian's ``chromium``; outside CI the browser
test skips when there is none, in CI (CI=true) it fails)."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from avkit.apps.demo import work
from avkit.apps.demo.examples import EXAMPLES, example_path
from avkit.errors import AvkitError, MediaError

ROOT = Path(__file__).resolve().parents[1]
BROWSER_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny C3D classification run on generated motion clips (one epoch)."""
    from avkit.data.synthetic import generate
    from avkit.engine.config import load_config
    from avkit.engine.trainer import train

    data = tmp_path_factory.mktemp("demo_data")
    generate("motion", data, 6, seed=0, duration=1.0, overwrite=True)
    out = tmp_path_factory.mktemp("demo_run") / "run"
    cfg = load_config(ROOT / "recipes" / "motion_c3d.yaml", [
        f"data.source={data}", f"train.output_dir={out}", "train.epochs=1", "train.progress=false",
        "train.tensorboard=false", "data.batch_size=4", "data.num_frames=8", "data.fps=8", "data.val_split=",
        "model.video_options.fc_dim=16"])
    train(cfg, quiet=True)
    return out


@pytest.fixture(scope="module")
def loc_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny sliding-window localiser on four generated long videos (two epochs)."""
    from avkit.data.synthetic import generate
    from avkit.engine import train
    from avkit.engine.config import load_config

    root = tmp_path_factory.mktemp("demo_loc")
    generate("longvideo", root / "data", 4, seed=0, size=16, duration=8.0, actions=("rotate_cw", "stripes"),
             segments=(2, 2), segment_duration=(1.5, 3.0), val_fraction=0.0)
    cfg = load_config(ROOT / "recipes" / "localize_sliding.yaml", [
        f"data.source={root / 'data'}", f"task_options.cache={root / 'features.npz'}", f"train.output_dir={root / 'run'}",
        "train.epochs=2", "task_options.hidden=16", "train.progress=false", "data.val_split="])
    train(cfg, quiet=True)
    return root / "run"


def test_examples_ship_small_and_are_videos() -> None:
    total = 0
    for ex in EXAMPLES:
        path = example_path(ex.name)
        assert work.check_upload(path, 1.0) == path
        total += path.stat().st_size
    assert total < 400_000, f"bundled examples are {total} bytes"
    assert "examples/*.mp4" in (ROOT / "pyproject.toml").read_text()  # they ship with the package


def test_bad_uploads_are_one_line(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a video\n")
    empty = tmp_path / "empty.mp4"
    empty.touch()
    with pytest.raises(MediaError, match="notes.txt: not a video avkit can read"):
        work.check_upload(text, 50)
    with pytest.raises(MediaError, match="empty.mp4: the file is empty"):
        work.check_upload(empty, 50)
    with pytest.raises(MediaError, match=r"over the upload limit of 0.01 MB \(--max-upload-mb\)"):
        work.check_upload(example_path("motion.mp4"), 0.01)
    with pytest.raises(AvkitError, match="no video"):
        work.check_upload(None, 50)


def test_find_runs(run_dir: Path, tmp_path: Path) -> None:
    quick = tmp_path / "quick"
    (quick / "runs").mkdir(parents=True)
    shutil.copytree(run_dir, quick / "runs" / "c3d")
    assert work.find_runs([run_dir], quickstart=tmp_path / "none").of("classification") == [run_dir]
    # a quickstart output (found by default) and a folder of runs
    assert work.find_runs([], quickstart=quick).of("classification") == [quick / "runs" / "c3d"]
    assert work.find_runs([quick], quickstart=tmp_path / "none").of("classification") == [quick / "runs" / "c3d"]
    with pytest.raises(AvkitError, match="not a run directory"):
        work.find_runs([tmp_path / "none"], quickstart=tmp_path / "none")


def test_classify_and_select_tabs(run_dir: Path, tmp_path: Path) -> None:
    from avkit.engine.classify import classify

    seen: list[float] = []
    res = work.classify(example_path("motion.mp4"), run_dir, tmp_path / "c", top=3, clips=4, cam_clip=1,
                        progress=lambda f, msg: seen.append(f))
    direct = classify(example_path("motion.mp4"), run_dir, top=3, clips=4, device="cpu")
    assert list(res["labels"]) == [d["label"] for d in direct]  # the same answer as avkit classify
    assert res["labels"][direct[0]["label"]] == pytest.approx(direct[0]["score"], abs=1e-5)
    assert len(res["clip_times"]) == 4 and res["clip_times"] == sorted(res["clip_times"])
    assert Path(res["timeline"]).stat().st_size > 1000 and Path(res["gradcam"]).stat().st_size > 1000
    assert seen == sorted(seen) and seen[-1] == 1.0
    with pytest.raises(AvkitError, match="Grad-CAM clip"):
        work.classify(example_path("motion.mp4"), run_dir, tmp_path / "c2", clips=4, cam_clip=4)
    sel = work.select(example_path("long.mp4"), run_dir, tmp_path / "s", budget=2, policy="uniform")
    assert len(sel["clips"]) == 2 and sel["gflops"]["selected"] < sel["gflops"]["dense"]
    assert sel["gflops"]["saved"] == pytest.approx(1 - sel["gflops"]["selected"] / sel["gflops"]["dense"], abs=0.01)


def test_localize_tab(loc_run: Path, tmp_path: Path) -> None:
    """The Localize tab runs the localiser as ``avkit localize`` does: the same segments, by start time."""
    from avkit.apps import localization

    assert work.find_runs([loc_run], quickstart=tmp_path / "none").of("localization") == [loc_run]
    video = example_path("long.mp4")
    every = localization.load(loc_run, device="cpu").localize(video)
    cut = sorted(s["score"] for s in every)[len(every) // 2]  # the median score: some segments kept, some not
    seen: list[float] = []
    res = work.localize(video, loc_run, tmp_path / "l", min_score=cut, progress=lambda f, msg: seen.append(f))
    direct = [s for s in every if s["score"] >= cut]
    assert 0 < len(direct) < len(every) and res["segments"] == sorted(direct, key=lambda s: s["start"])
    assert res["method"] == "sliding" and res["duration"] == pytest.approx(16.0, abs=0.2)
    assert Path(res["timeline"]).stat().st_size > 1000 and seen == sorted(seen) and seen[-1] == 1.0
    with pytest.raises(AvkitError, match=r"minimum score must be in \[0, 1\]"):
        work.localize(video, loc_run, tmp_path / "l2", min_score=1.5)


def test_localize_tab_says_what_is_missing(loc_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from avkit.apps.demo.app import DemoOptions, build

    monkeypatch.chdir(tmp_path)  # no quickstart output here

    def missing(runs: list[str]) -> list[str]:
        page = build(DemoOptions(runs=runs, workdir=tmp_path))
        return [str(getattr(b, "value", "")) for b in page.blocks.values() if getattr(b, "elem_id", None) == "localize-missing"]

    without = missing([])
    assert len(without) == 1 and "no localization run" in without[0]
    assert "`avkit train recipes/localize_onestage.yaml`" in without[0] and "avkit demo --run" in without[0]
    assert missing([str(loc_run)]) == []


def test_separation_missing_says_how(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from avkit.apps import separation

    real = separation.SHIPPED_MODEL
    monkeypatch.setattr(separation, "SHIPPED_MODEL", tmp_path / "gone")
    why = work.separation_missing(None)
    assert why is not None and "gone/config.yaml is missing" in why and "avkit demo --run RUN" in why
    assert work.separation_missing(tmp_path) is None  # a --run is given
    copy = tmp_path / "shipped"
    shutil.copytree(real, copy)
    (copy / separation.SHIPPED_STEMS / separation.SHIPPED_WEIGHTS).unlink()  # only its audio-only network gone
    monkeypatch.setattr(separation, "SHIPPED_MODEL", copy)
    why = work.separation_missing(None)
    assert why is not None and "audio_only/model.safetensors is missing" in why
    shutil.copytree(real / separation.SHIPPED_STEMS, copy / separation.SHIPPED_STEMS, dirs_exist_ok=True)
    (copy / separation.SHIPPED_NAMER / separation.SHIPPED_WEIGHTS).unlink()  # only the instrument namer gone
    why = work.separation_missing(None)
    assert why is not None and "instrument_names/model.safetensors is missing" in why


def test_separate_tab_takes_the_instruments(tmp_path: Path) -> None:
    """The Separate tab's instruments field: the bundled duet's two halves named by the user are separated by
    timbre and labelled with their instruments; an unknown name is a one-line error."""
    from avkit.errors import AvkitError

    duet = example_path("duet.mp4")
    res = work.separate(duet, None, tmp_path / "told", regions="2x1", instruments="violin, flute")
    assert [s.get("instrument") for s in res["stems"]] == ["violin", "flute"]
    with pytest.raises(AvkitError, match="unknown instrument 'kazoo'"):
        work.separate(duet, None, tmp_path / "bad", regions="2x1", instruments="violin,kazoo")


def test_demo_help_loads_no_gradio() -> None:
    code = ("import sys; from avkit.cli.main import main\ntry: main(['demo', '--help'])\nexcept SystemExit: pass\n"
            "print('LOADED=' + ','.join(m for m in ('gradio', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout
    assert "--max-upload-mb" in out and "--share" in out
    assert out.strip().splitlines()[-1] == "LOADED="


# ---------------------------------------------------------------------------------------------
# the page in a real browser


def _browser() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("no chromium on PATH in CI: .ci/run installs it (apt-get install chromium chromium-driver)")
        pytest.skip("no system chromium on PATH (apt-get install chromium); CI installs it and runs this test")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_up(url: str, proc: subprocess.Popen, seconds: float = 120) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"avkit demo exited with {proc.returncode}: {proc.stdout.read() if proc.stdout else ''}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"avkit demo did not answer on {url} in {seconds} s")


def _wait_images(page: Any, selector: str, count: int) -> None:
    """Wait until ``count`` images under ``selector`` have loaded (status text can come before the pictures)."""
    page.wait_for_function("([sel, n]) => [...document.querySelectorAll(sel)].filter(e => e.naturalWidth > 0).length == n",
                           arg=[selector, count], timeout=60_000)


def _upload(page: Any, component: str, path: Path, tries: int = 3) -> None:
    """Give ``path`` to an upload component and wait until the page shows its name. Under load a file set
    while the tab is still being drawn can be dropped (seen once in a CI run at load 2.5): while the file
    input is still there and no name shows, set it again; once the input has gone the upload is under way,
    so only wait."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    shown = f"{component} :text('{path.name}')"
    page.wait_for_selector(component, state="visible", timeout=60_000)
    for attempt in range(tries + 2):
        if page.locator(f"{component} input[type=file]").count() and attempt < tries:
            page.set_input_files(f"{component} input[type=file]", str(path))
        try:
            page.wait_for_selector(shown, timeout=60_000)
            return
        except PlaywrightTimeout:
            if attempt == tries + 1:
                raise


@pytest.mark.slow
def test_page_in_a_real_browser(run_dir: Path, loc_run: Path, tmp_path: Path) -> None:
    """Separate on the bundled duet (or, while the shipped model is missing, the tab's message), Classify and
    Localize with the tiny runs, then a text file uploaded: one line in the page, no traceback, and the server
    still answers."""
    chromium = _browser()
    from playwright.sync_api import sync_playwright

    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    proc = subprocess.Popen([sys.executable, "-m", "avkit", "demo", "--port", str(port), "--run", str(run_dir),
                             "--run", str(loc_run)],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    text = tmp_path / "notes.txt"
    text.write_text("not a video\n")
    shipped = work.separation_missing(None) is None
    expected = work.localize(example_path("long.mp4"), loc_run, tmp_path / "localize")["segments"]  # the tab's default
    assert expected
    hosts: set[str] = set()
    try:
        _wait_up(url, proc)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=BROWSER_FLAGS)
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.on("request", lambda r: hosts.add(r.url.split("/")[2]))
            page.goto(url, wait_until="networkidle")
            if shipped:
                page.click("#separate-run")
                page.wait_for_selector("#separate-status :text('source(s) in')", timeout=180_000)
                page.wait_for_selector("#separate-stem-0 audio, #separate-stem-0 wavesurfer", state="attached")
                played = page.eval_on_selector_all("audio", "els => els.filter(e => e.src).length")
                assert played >= 2, "the mixture and a stem should be playable in the page"
                _wait_images(page, "#separate-soundmap img", 1)
            else:
                assert "is missing" in page.inner_text("#separate-missing")
            page.get_by_role("tab", name="Classify").click()
            page.click("#classify-run")
            page.wait_for_selector("#classify-status :text('top label')", timeout=180_000)
            assert page.inner_text("#classify-labels").strip()
            _wait_images(page, "#classify-timeline img, #classify-gradcam img", 2)
            page.get_by_role("tab", name="Localize").click()
            page.click("#localize-run")
            page.wait_for_selector("#localize-status :text('segment(s)')", timeout=180_000)
            assert page.inner_text("#localize-status").startswith(f"{len(expected)} segment(s) in 16.0 s (sliding")
            _wait_images(page, "#localize-timeline img", 1)
            table = page.locator("#localize-segments [role=grid]")  # rows drawn as they scroll into view
            assert table.get_attribute("aria-rowcount") == str(len(expected) + 1)  # and the header
            shown = page.eval_on_selector_all('#localize-segments [role=gridcell][data-col="2"]',
                                              "cells => cells.map(c => c.innerText)")
            assert len(shown) >= min(5, len(expected)) and shown == [s["label"] for s in expected][:len(shown)]
            page.get_by_role("tab", name="Classify").click()
            tab = "classify"
            _upload(page, f"#{tab}-upload", text)
            page.click(f"#{tab}-run")
            page.wait_for_selector(f"#{tab}-status :text('Error')", timeout=60_000)
            status = page.inner_text(f"#{tab}-status").strip()
            assert status.startswith("Error: notes.txt: not a video avkit can read") and "\n" not in status
            assert "Traceback" not in page.content()
            browser.close()
        with urllib.request.urlopen(url, timeout=10) as r:  # still serving
            assert r.status == 200
        assert hosts == {f"127.0.0.1:{port}"}, f"the page reached out to {hosts}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
