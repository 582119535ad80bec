"""JSON-lines manifests: one reader with one-line errors, shared by the datasets and the apps."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from avkit.errors import AvkitError


def manifest_file(source: str | Path, hint: str) -> Path:
    """``source`` itself, or ``source/manifest.jsonl`` for a folder; ``hint`` says how to make one."""
    path = Path(source)
    if path.is_dir():
        path = path / "manifest.jsonl"
    if not path.is_file():
        raise AvkitError(f"{source}: no manifest.jsonl ({hint})")
    return path


def read_jsonl(path: str | Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-empty line; a line that is not a JSON object is a one-line
    error naming the file and the line."""
    rows = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise AvkitError(f"{path}: line {n} is not valid JSON ({err.msg})") from None
        if not isinstance(row, dict):
            raise AvkitError(f"{path}: line {n} is not a JSON object")
        rows.append((n, row))
    return rows
