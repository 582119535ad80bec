"""StagedOutput (write beside, swap in) and the atomic files of avkit.utils: a failure or a kill at
any point never loses the old output and never leaves a half-written new one."""
from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import pytest

import avkit.staging
from avkit.errors import AvkitError
from avkit.staging import OutputLock, StagedOutput, recover
from avkit.utils import TEMP_MARK, atomic_path, remove_stale_temps


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


OLD = {"manifest.jsonl": "old", "clips/a.mp4": "old a", "clips/b.mp4": "old b", "classes.json": "old classes",
       "notes.txt": "the user's"}
NEW = {"manifest.jsonl": "new", "clips/c.mp4": "new c"}  # no classes.json: a listed entry the new output lacks
ENTRIES = ["manifest.jsonl", "clips", "classes.json"]
EXPECTED_ENTRIES = {"manifest.jsonl": b"new", "clips/c.mp4": b"new c", "notes.txt": b"the user's"}


def test_whole_folder_swap(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _write(run, {"config.yaml": "old", "stale.txt": "x"})
    with StagedOutput(run) as staged:
        assert staged.path != run and staged.path.parent == tmp_path
        _write(staged.path, {"config.yaml": "new"})
        assert _tree(run) == {"config.yaml": b"old", "stale.txt": b"x"}  # untouched until the commit
    assert _tree(run) == {"config.yaml": b"new"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_entries_swap_removes_listed_and_keeps_unlisted(tmp_path: Path) -> None:
    out = tmp_path / "data"
    _write(out, OLD)
    with StagedOutput(out, entries=ENTRIES) as staged:
        _write(staged.path, NEW)
    assert _tree(out) == EXPECTED_ENTRIES
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_entries_swap_into_a_new_folder(tmp_path: Path) -> None:
    out = tmp_path / "fresh" / "data"
    with StagedOutput(out, entries=ENTRIES) as staged:
        _write(staged.path, NEW)
    assert _tree(out) == {"manifest.jsonl": b"new", "clips/c.mp4": b"new c"}


@pytest.mark.parametrize("entries", [None, ENTRIES])
def test_failure_inside_the_block_leaves_the_target_untouched(tmp_path: Path, entries) -> None:
    out = tmp_path / "out"
    _write(out, OLD)
    with pytest.raises(KeyboardInterrupt):
        with StagedOutput(out, entries=entries) as staged:
            _write(staged.path, NEW)
            raise KeyboardInterrupt
    assert _tree(out) == {k: v.encode() for k, v in OLD.items()}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging folder, no journal


def test_a_leftover_staging_folder_is_not_mixed_in(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _write(out, OLD)
    _write(tmp_path / ".out.avkit-new", {"clips/half.mp4": "killed while writing"})  # no journal: incomplete
    with StagedOutput(out, entries=ENTRIES) as staged:
        _write(staged.path, NEW)
    assert _tree(out) == EXPECTED_ENTRIES


class _KilledAt:
    """The os module as avkit.staging sees it, killed (KeyboardInterrupt) at its ``n``-th os.replace.
    It checks at every call that nothing of the old output is lost before the new output is in."""

    def __init__(self, n: int, out: Path, old: dict[str, bytes], entries) -> None:
        self.n, self.calls, self.out, self.old, self.entries = n, 0, out, old, entries

    def __getattr__(self, name: str):
        return getattr(os, name)

    def replace(self, src, dst) -> None:
        self.calls += 1
        if self.calls == self.n:
            raise KeyboardInterrupt
        os.replace(src, dst)
        self.check()

    def check(self) -> None:
        """Every old file is in the target or in the journal-recorded ``.out.avkit-old``."""
        aside = self.out.with_name(f".{self.out.name}.avkit-old")
        for name, data in self.old.items():
            here = self.out / name if self.entries is not None else self.out / name
            there = aside / name
            if (here.is_file() and here.read_bytes() == data) or (there.is_file() and there.read_bytes() == data):
                continue
            if self.new_is_in(name):
                continue  # replaced: the new output has taken this entry's place
            raise AssertionError(f"{name} of the old output is lost mid-swap")

    def new_is_in(self, name: str) -> bool:
        top = name.split("/")[0]
        return self.entries is None and not self.out.with_name(f".{self.out.name}.avkit-new").exists() or \
            self.entries is not None and top in self.entries and (self.out / top).exists() and \
            not self.out.with_name(f".{self.out.name}.avkit-new").joinpath(top).exists()


@pytest.mark.parametrize("entries", [None, ENTRIES])
def test_a_swap_killed_at_any_rename_is_finished_by_recover(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           entries) -> None:
    expected = EXPECTED_ENTRIES if entries is not None else {k: v.encode() for k, v in NEW.items()}
    old = {k: v.encode() for k, v in OLD.items()}
    total = None
    for n in range(1, 20):
        root = tmp_path / f"n{n}"
        out = root / "out"
        _write(out, OLD)
        killer = _KilledAt(n, out, old, entries)
        monkeypatch.setattr(avkit.staging, "os", killer)
        try:
            with StagedOutput(out, entries=entries) as staged:
                _write(staged.path, NEW)
        except KeyboardInterrupt:
            monkeypatch.setattr(avkit.staging, "os", os)
            if killer.calls >= 2:  # killed after the journal was written: recover finishes the swap
                recover(out)
                assert _tree(out) == expected, n
                assert sorted(p.name for p in root.iterdir()) == ["out"], n
            else:  # killed writing the journal: the swap had not begun, the old output stays
                recover(out)
                assert _tree(out) == old, n
                assert not (root / ".out.avkit-new").exists() and not (root / ".out.avkit-swap").exists(), n
            continue
        monkeypatch.setattr(avkit.staging, "os", os)
        assert _tree(out) == expected
        total = n - 1  # every rename of the swap was killed once
        break
    assert total is not None and total >= 3


def test_recover_removes_a_half_written_journal(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _write(out, OLD)
    (tmp_path / ".out.avkit-swap.tmp").write_text('{"entries": nu')  # killed mid-write
    recover(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.parametrize("umask", [0o022, 0o077])
@pytest.mark.parametrize("writer", ["text", "safetensors"])
def test_atomic_path_gives_the_umask_mode(tmp_path: Path, umask: int, writer: str) -> None:
    """Whatever the writer does to the temporary file (safetensors' save_file replaces it with a file of
    mode 0600, which every run's weights went through), the target gets a plain write's mode."""
    previous = os.umask(umask)
    try:
        target = tmp_path / ("file.json" if writer == "text" else "file.safetensors")
        with atomic_path(target) as tmp:
            assert tmp != target and tmp.parent == tmp_path
            if writer == "text":
                tmp.write_text("{}")
            else:
                import torch
                from safetensors.torch import save_file

                save_file({"x": torch.zeros(2)}, str(tmp))
            assert not target.exists()
    finally:
        os.umask(previous)
    assert (target.stat().st_mode & 0o777) == 0o666 & ~umask
    assert writer != "text" or target.read_text() == "{}"
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]


def test_remove_stale_temps_removes_only_dead_processes_files(tmp_path: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tmp_path / f".last{TEMP_MARK}{dead.pid}.abc.safetensors"
    live = tmp_path / f".last{TEMP_MARK}{os.getpid()}.def.safetensors"
    other = tmp_path / "last.safetensors"
    for p in (stale, live, other):
        p.write_text("x")
    assert remove_stale_temps(tmp_path) == [stale]
    assert not stale.exists() and live.exists() and other.exists()


# -- one writer at a time ----------------------------------------------------------------------

def _lock_file(out: Path, pid: int) -> Path:
    lock = out.with_name(f".{out.name}.avkit-lock")
    lock.write_text(json.dumps({"pid": pid, "host": socket.gethostname()}))
    return lock


def test_a_second_writer_is_refused_and_the_output_kept(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _write(out, OLD)
    _lock_file(out, os.getppid())  # a live process that is not this one is writing it
    with pytest.raises(AvkitError, match=r"another avkit process \(pid \d+ .*is writing it; wait for it"):
        StagedOutput(out, entries=ENTRIES)
    assert _tree(out) == {k: v.encode() for k, v in OLD.items()}
    assert not (tmp_path / ".out.avkit-new").exists()


def test_a_lock_of_a_process_that_is_gone_is_taken_over(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _write(out, OLD)
    gone = subprocess.Popen(["true"])
    gone.wait()
    lock = _lock_file(out, gone.pid)
    with StagedOutput(out, entries=ENTRIES) as staged:
        assert json.loads(lock.read_text())["pid"] == os.getpid()
        _write(staged.path, NEW)
    assert _tree(out) == EXPECTED_ENTRIES and not lock.exists()


def test_the_lock_is_held_while_staging_and_released_after(tmp_path: Path) -> None:
    out = tmp_path / "out"
    lock = tmp_path / ".out.avkit-lock"
    with pytest.raises(RuntimeError), StagedOutput(out) as staged:
        assert lock.exists()
        _write(staged.path, NEW)
        raise RuntimeError("failed while writing")
    assert not lock.exists() and not out.exists()
    with OutputLock(out):  # an outer holder (a training holding its run) may stage its own target
        with StagedOutput(out) as staged:
            _write(staged.path, NEW)
        assert lock.exists(), "the nested stage released the outer holder's lock"
    assert not lock.exists() and _tree(out) == {k: v.encode() for k, v in NEW.items()}
