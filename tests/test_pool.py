"""Forked workers always finish (issue #26): a worker that dies (``os._exit``, SIGKILL) or raises an
exception the parent cannot unpickle ends the caller's wait with one line naming the task, and no
worker is left behind. ``multiprocessing.Pool`` waited forever on each of these, so every case runs
in a subprocess with a timeout: a regression fails here instead of hanging the suite."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from avkit.pool import can_fork

pytestmark = pytest.mark.skipif(not can_fork(), reason="forked pools are Linux-only")

ROOT = Path(__file__).resolve().parents[1]

# Installed in each script: ``fail(mode)`` fails the way ``mode`` says, in the worker that calls it.
FAIL = textwrap.dedent('''
    import os, signal

    class Unpicklable(Exception):
        """Pickles, but cannot be rebuilt: unpickling calls Unpicklable(message), one argument short."""

        def __init__(self, code, detail):
            super().__init__(f"code {code}: {detail}")

    def fail(mode):
        if mode == "raise":
            raise Unpicklable(7, "bad input")
        if mode == "exit":
            os._exit(3)
        if mode == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        raise AssertionError(mode)
''')

EXPECTED = {"raise": "Unpicklable: code 7: bad input", "exit": "died (exit code 3)", "kill": "killed by SIGKILL"}


def run_script(body: str, timeout: float = 90) -> str:
    """Run ``body`` in a fresh Python in its own process group; its stdout. A hang kills the group
    (workers included) and fails the test."""
    proc = subprocess.Popen([sys.executable, "-c", FAIL + textwrap.dedent(body)], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"hung for {timeout} s; it printed:\n{out}")
    assert proc.returncode == 0, out
    return out


def case_lines(out: str) -> dict[str, str]:
    """``case: message`` lines printed by a script, by case."""
    return dict(line.split(": ", 1) for line in out.splitlines() if line.startswith(("imap-", "submit-", "case-")))


def test_each_failure_of_a_worker_ends_imap_and_submit_with_the_task_named():
    out = run_script('''
        import multiprocessing as mp
        from avkit.errors import WorkerError
        from avkit.pool import forked_pool

        MODE = None

        def task(x):
            if x == 5:
                fail(MODE)
            return x * 2

        for MODE in ["raise", "exit", "kill"]:
            for style in ["imap", "submit"]:
                with_pool_alive = None
                try:
                    with forked_pool(2) as pool:
                        if style == "imap":
                            list(pool.imap(task, range(8), what=lambda i: f"item {i}"))
                        else:
                            jobs = [pool.submit(task, i, what=f"item {i}") for i in range(8)]
                            [job.get() for job in jobs]
                    print(f"{style}-{MODE}: no error", flush=True)
                except WorkerError as err:
                    print(f"{style}-{MODE}: {err} | left {len(mp.active_children())}", flush=True)
    ''')
    lines = case_lines(out)
    for mode, expected in EXPECTED.items():
        for style in ("imap", "submit"):
            line = lines.get(f"{style}-{mode}", "")
            assert line.startswith("item 5: ") and expected in line, out
            assert "\n" not in line and line.endswith("| left 0"), out  # one line; the pool torn down


def test_results_in_order_and_a_picklable_error_comes_back_as_itself():
    out = run_script('''
        from avkit.errors import MediaError
        from avkit.pool import forked_pool

        def task(x):
            if x == 3:
                raise MediaError(f"clip{x}.mp4", "truncated")
            return x * x

        with forked_pool(3) as pool:
            print("case-imap:", list(pool.imap(task, [0, 1, 2, 4, 5, 6, 7], what=str)), flush=True)
            job = pool.submit(task, 9, what="nine")
            print("case-submit:", job.get(), flush=True)
        try:
            with forked_pool(2) as pool:
                list(pool.imap(task, range(6), what=lambda i: f"item {i}"))
        except MediaError as err:
            print("case-media:", type(err).__name__, err.path, "|", err.__notes__[0], flush=True)
    ''')
    lines = case_lines(out)
    assert lines["case-imap"] == "[0, 1, 4, 16, 25, 36, 49]"
    assert lines["case-submit"] == "81"
    assert lines["case-media"] == "MediaError clip3.mp4 | (in a worker process, item 3)"


def test_a_failing_initializer_ends_the_wait():
    out = run_script('''
        from avkit.errors import WorkerError
        from avkit.pool import forked_pool

        def init():
            fail("raise")

        try:
            with forked_pool(2, initializer=init) as pool:
                print("case-result:", list(pool.imap(abs, [1, 2, 3], what=lambda i: f"item {i}")))
        except WorkerError as err:
            print("case-init:", err, flush=True)
    ''')
    assert "starting the worker: Unpicklable: code 7: bad input" in case_lines(out)["case-init"], out


def test_generate_with_jobs_ends_with_one_line_when_a_worker_fails(tmp_path):
    """avkit generate --jobs 2 (an imap caller): the clip that failed is named; exit 2, no traceback."""
    out = run_script(f'''
        import avkit.data.synthetic as synthetic
        from avkit.cli.main import main

        write = synthetic._write_clip

        def write_or_fail(gen, cfg, kind, seed, index, label, root):
            if index == 3:
                fail(MODE)
            return write(gen, cfg, kind, seed, index, label, root)

        synthetic._write_clip = write_or_fail  # the forked workers inherit it
        for MODE in ["raise", "exit", "kill"]:
            print(f"=== {{MODE}}", flush=True)
            rc = main(["generate", "motion", f"{tmp_path}/{{MODE}}", "--num", "8", "--jobs", "2", "--size", "16",
                       "--duration", "0.5"])
            print(f"case-rc-{{MODE}}: {{rc}}", flush=True)
    ''')
    assert "Traceback" not in out, out
    for mode, expected in EXPECTED.items():
        assert case_lines(out)[f"case-rc-{mode}"] == "2", out
        printed = out.split(f"=== {mode}\n")[1].split(f"case-rc-{mode}")[0].strip()
        assert printed.startswith("avkit generate: error: generating clip 3: ") and "\n" not in printed, out
        assert expected in printed, out
        assert not (tmp_path / mode).exists()  # the staged dataset was discarded


def test_quickstart_parallel_training_ends_when_a_worker_fails(tmp_path):
    """The quickstart's parallel training (a submit/poll caller): the model that failed is named."""
    out = run_script(f'''
        import time
        from pathlib import Path
        from rich.console import Console
        import avkit.quickstart.workers as workers
        from avkit.errors import WorkerError
        from avkit.quickstart import QuickstartConfig
        from avkit.quickstart.models import default_models

        def train_or_fail(cfg, data, runs, name, groups):
            if name == chosen[1].name:
                fail(MODE)
            time.sleep(1)
            return {{"model": name, "epochs": 1, "motion_acc": 1.0, "appearance_acc": 1.0, "sound_acc": None,
                    "overall_acc": 1.0, "train_seconds": 1.0}}

        workers.train_one = train_or_fail  # the forked workers inherit it
        chosen = default_models()[:3]
        for MODE in ["raise", "exit", "kill"]:
            try:
                workers.train_models(QuickstartConfig(), Path("{tmp_path}"), Path("{tmp_path}"), chosen, {{}},
                                     jobs=2, threads=1, console=Console(), quiet=True)
                print(f"case-{{MODE}}: no error", flush=True)
            except WorkerError as err:
                print(f"case-{{MODE}}: {{err}}", flush=True)
        print("case-model:", chosen[1].name, flush=True)
    ''')
    lines = case_lines(out)
    for mode, expected in EXPECTED.items():
        assert lines[f"case-{mode}"].startswith(f"training {lines['case-model']}: "), out
        assert expected in lines[f"case-{mode}"], out
