"""`avkit quickstart --overwrite` replaces only an earlier quickstart's output, and only once the
new one is complete: a folder it did not write is never deleted, a failed run puts the old output
back."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from avkit.cli.main import main
from avkit.errors import AvkitError
from avkit.quickstart import MARKER, QuickstartConfig, run_quickstart


def _tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (relative path -> bytes)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _quick(out: Path, num: int = 8, **kw) -> dict:
    return run_quickstart(QuickstartConfig(out=str(out), num=num, compare=False, **kw), quiet=True)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A user's folder that is not a quickstart output."""
    root = tmp_path / "project"
    (root / "src").mkdir(parents=True)
    (root / "src" / "main.py").write_text("print('hello')\n")
    (root / "results.json").write_text('{"mine": true}\n')  # a results.json of the user's own
    (root / "data").mkdir()
    return root


def test_overwrite_refuses_a_folder_the_quickstart_did_not_write(project: Path) -> None:
    before = _tree(project)
    with pytest.raises(AvkitError, match="not a quickstart output.*choose another --out"):
        _quick(project, overwrite=True)
    assert _tree(project) == before and not (project / MARKER).exists()


def test_cli_out_dot_overwrite_keeps_the_working_directory(project: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture) -> None:
    monkeypatch.chdir(project)
    before = _tree(project)
    assert main(["quickstart", "--out", ".", "--overwrite", "--no-train", "--num", "8"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a quickstart output" in err[0]
    assert _tree(project) == before


def test_overwrite_replaces_a_quickstart_output_and_leaves_other_files(tmp_path: Path) -> None:
    out = tmp_path / "qs"
    _quick(out, num=8)
    assert (out / MARKER).is_file()
    (out / "notes.txt").write_text("my notes")  # not the quickstart's: --overwrite leaves it
    with pytest.raises(AvkitError, match="--overwrite"):
        _quick(out, num=12)
    summary = _quick(out, num=12, overwrite=True)
    assert summary["read_back"]["clips"] == 12
    assert json.loads((out / "results.json").read_text())["data"]["num"] == 12
    assert len(list((out / "data" / "clips").glob("*.mp4"))) == 12
    assert (out / "notes.txt").read_text() == "my notes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["qs"]  # no staging folder or journal left beside it


def test_overwrite_recognises_an_output_from_before_the_marker(tmp_path: Path) -> None:
    out = tmp_path / "qs"
    _quick(out, num=8)
    (out / MARKER).unlink()  # written by an avkit without the marker: results.json + data/
    assert _quick(out, num=12, overwrite=True)["read_back"]["clips"] == 12


def test_a_failed_overwrite_puts_the_old_output_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "qs"
    _quick(out, num=8)
    before = _tree(out)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # Ctrl-C after the new data was generated

    monkeypatch.setattr("avkit.quickstart.run.read_back", crash)
    with pytest.raises(KeyboardInterrupt):
        _quick(out, num=12, overwrite=True)
    assert _tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["qs"]


def test_overwrite_after_a_killed_run_restores_the_complete_output(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "qs"
    _quick(out, num=8)
    before = _tree(out)
    # What a quickstart killed mid-run leaves: a partial new output in the staging folder beside it.
    partial = tmp_path / ".qs.avkit-new"
    (partial / "data" / "clips").mkdir(parents=True)
    (partial / "data" / "clips" / "000000.mp4").write_bytes(b"partial")
    monkeypatch.setattr("avkit.quickstart.run.read_back", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        _quick(out, num=12, overwrite=True)
    assert _tree(out) == before  # the complete old output, not the killed run's pieces
    assert sorted(p.name for p in tmp_path.iterdir()) == ["qs"]


def test_a_quickstart_killed_during_the_swap_is_finished_by_the_next_one(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Killed after the old outputs went out and before every new one came in: the next quickstart
    completes the swap (the staged output was complete), so nothing of either output is lost."""
    import os

    import avkit.staging

    out = tmp_path / "qs"
    _quick(out, num=8)

    class KilledHalfway:  # the os module as avkit.staging sees it, killed at the 5th rename of out's swap
        calls = 0
        swap_folders = {tmp_path, out, tmp_path / ".qs.avkit-old"}  # not generate()'s own staging inside

        def __getattr__(self, name):
            return getattr(os, name)

        def replace(self, src, dst):
            if Path(dst).parent in self.swap_folders:
                KilledHalfway.calls += 1
                if KilledHalfway.calls == 5:  # journal, results.json and data out, journal: killed moving data in
                    raise KeyboardInterrupt
            return os.replace(src, dst)

    monkeypatch.setattr(avkit.staging, "os", KilledHalfway())
    with pytest.raises(KeyboardInterrupt):
        _quick(out, num=12, overwrite=True)
    monkeypatch.setattr(avkit.staging, "os", os)
    assert not (out / "results.json").exists() and not (out / "data").exists()  # half swapped
    with pytest.raises(AvkitError, match="--overwrite"):  # the next run finishes the swap first
        _quick(out, num=8)
    assert json.loads((out / "results.json").read_text())["data"]["num"] == 12
    assert len(list((out / "data" / "clips").glob("*.mp4"))) == 12
    assert sorted(p.name for p in tmp_path.iterdir()) == ["qs"]
