"""Standard dataset layouts read as they are downloaded: no conversion script of your own.

:func:`read_format` turns a layout into manifest-like rows (``path``, ``label``, ``split``, optional
``start`` / ``end`` / ``caption`` / ``segments`` / ``meta``) that :func:`avkit.data.dataset.load_records`
then checks like any manifest. The layouts (docs/training.md, "Standard dataset layouts", shows
each one exactly):

- ``ucf101``: class folders plus ``classInd.txt`` and ``trainlist0N.txt`` / ``testlist0N.txt``;
- ``hmdb51``: class folders plus ``<class>_test_splitN.txt`` (1 = train, 2 = test, 0 = unused);
- ``kinetics``: the CSV ``label,youtube_id,time_start,time_end,split``, each row's file found by a
  file-name pattern (default ``{youtube_id}_{time_start:06d}_{time_end:06d}``);
- ``ssv2``: Something-Something v2's ``labels.json`` and ``train.json`` / ``validation.json``;
- ``vggsound``: the CSV ``youtube_id,start_seconds,label,split`` (default file
  ``{youtube_id}_{start_seconds:06d}``);
- ``activitynet``: ActivityNet / THUMOS style JSON, ``database -> id -> annotations`` with temporal
  ``segments`` (localisation);
- ``ava_activespeaker``: AVA-ActiveSpeaker CSV rows, one clip per entity track, boxes in ``meta``.

Official held-out lists become split ``val`` (``testlist``, HMDB's 2, ``validation``,
``validate``), as mmaction2 names them, so a recipe's default ``val_split`` uses them; VGGSound's
``test`` and Kinetics' ``test`` stay ``test``. Videos are looked up by file name under the video
root (any video extension, any subfolder); rows whose video is not there are listed (a one-line
warning with the count and first examples, all of them in ``SourceTable.missing``) and left out.
A malformed row is a one-line ``AvkitError`` naming the file, the line (or the video id) and the
problem.
"""
from __future__ import annotations

import csv
import json
import logging
import math
import re
import string
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from avkit.data.manifest_checks import warn_once
from avkit.errors import AvkitError

log = logging.getLogger("avkit.data")

FORMATS = ("auto", "manifest", "folder", "ucf101", "hmdb51", "kinetics", "ssv2", "vggsound", "activitynet",
           "ava_activespeaker")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".ogv", ".flv", ".wmv")
KINETICS_PATTERN = "{youtube_id}_{time_start:06d}_{time_end:06d}"
VGGSOUND_PATTERN = "{youtube_id}_{start_seconds:06d}"
VGGSOUND_SECONDS = 10.0  # every VGGSound clip is 10 s from start_seconds
_SPLIT_NAMES = {"training": "train", "train": "train", "validation": "val", "validate": "val", "val": "val",
                "testing": "test", "test": "test"}


@dataclass
class SourceTable:
    """What a layout holds: rows for ``load_records``, where paths start, and what is missing."""

    format: str
    source: Path  # the file (or folder) errors name
    base: Path  # row paths are relative to this folder (the video root)
    rows: list[dict[str, Any]]
    classes: list[str] | None = None  # label order the layout defines (classInd.txt, labels.json)
    missing: list[str] = field(default_factory=list)  # "where: expected file" for videos not found

    @property
    def columns(self) -> set[str]:
        return set().union(*(r.keys() for r in self.rows)) if self.rows else {"path", "label"}


@dataclass(frozen=True)
class FormatOptions:
    """Options of the layouts: the official split number (UCF-101, HMDB-51), the file-name pattern
    (Kinetics, VGGSound) and where the videos are (default: the annotation's folder)."""

    split_number: int = 1
    path_pattern: str = ""
    video_root: str = ""


def read_format(source: str | Path, format: str = "auto", options: FormatOptions | None = None
                ) -> SourceTable | None:
    """The rows of a standard layout at ``source``; None for an avkit manifest or class folders
    (``format`` ``"manifest"`` / ``"folder"``, or ``"auto"`` finding neither layout)."""
    if format not in FORMATS:
        raise AvkitError(f"unknown dataset format {format!r} (choose from {', '.join(FORMATS)})")
    source = Path(source)
    fmt = detect_format(source) if format == "auto" else format
    if fmt in ("manifest", "folder"):
        return None
    table = READERS[fmt](source, options or FormatOptions())
    _report_missing(table)
    return table


def detect_format(source: Path) -> str:
    """The layout at ``source`` from its file names (and a CSV's header): one of :data:`FORMATS`."""
    if source.is_dir():
        if (source / "manifest.jsonl").is_file() or (source / "manifest.csv").is_file():
            return "manifest"
        if _find_first(source, ("classInd.txt", "ucfTrainTestlist/classInd.txt")):
            return "ucf101"
        if list(source.glob("*_test_split1.txt")) or list(source.glob("testTrainMulti_7030_splits/*_test_split1.txt")):
            return "hmdb51"
        if _ssv2_files(source, strict=False)[0] is not None:
            return "ssv2"
        if list(source.glob("*activespeaker*.csv")):
            return "ava_activespeaker"
        return "folder"
    name = source.name.lower()
    if name == "classind.txt" or re.fullmatch(r"(train|test)list0\d\.txt", name):
        return "ucf101"
    if re.fullmatch(r".+_test_split\d\.txt", name):
        return "hmdb51"
    if name.startswith("something-something-v2"):
        return "ssv2"
    if source.suffix.lower() == ".json":
        try:
            head = source.read_text(encoding="utf-8")[:4096]
        except OSError as err:
            raise AvkitError(f"{source}: cannot read ({err.strerror or err})") from None
        if '"database"' in head:
            return "activitynet"
    if source.suffix.lower() == ".csv":
        header = _csv_header(source)
        if "activespeaker" in name or "entity_id" in header:
            return "ava_activespeaker"
        if "youtube_id" in header and "time_start" in header:
            return "kinetics"
        if "vggsound" in name or "start_seconds" in header:
            return "vggsound"
    return "manifest"


# -- shared pieces ----------------------------------------------------------------------------

class VideoIndex:
    """Every video file under ``root``, by file name without extension and by lower-cased relative
    path (UCF-101's lists spell some folders with other capitals than the files have)."""

    def __init__(self, root: Path) -> None:
        if not root.is_dir():
            raise AvkitError(f"{root}: video folder does not exist (set data.video_root)")
        self.root = root
        self.by_stem: dict[str, str] = {}
        self.by_lower: dict[str, str] = {}
        for f in sorted(root.rglob("*")):
            if f.suffix.lower() in VIDEO_SUFFIXES and f.is_file():
                rel = f.relative_to(root).as_posix()
                self.by_stem.setdefault(f.stem, rel)
                self.by_lower.setdefault(rel.lower(), rel)

    def stem(self, stem: str) -> str | None:
        return self.by_stem.get(stem)

    def relative(self, rel: str) -> str | None:
        """``rel`` as it is on disk (same path, any capitals), or None."""
        return self.by_lower.get(rel.replace("\\", "/").lower())


def _video_root(options: FormatOptions, default: Path, *subfolders: str) -> Path:
    """``data.video_root`` if set, else the first of ``default/<subfolder>`` that exists, else ``default``."""
    if options.video_root:
        return Path(options.video_root)
    for sub in subfolders:
        if (default / sub).is_dir():
            return default / sub
    return default


def _find_first(root: Path, names: tuple[str, ...]) -> Path | None:
    return next((root / n for n in names if (root / n).is_file()), None)


def _read_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, stripped text) of the non-empty lines of ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise AvkitError(f"{path}: cannot read ({err.strerror or err})") from None
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            yield n, line.strip()


def _csv_header(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8") as f:
        first = next(csv.reader(f), [])
    return [c.strip().lower() for c in first]


def _csv_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(line number, cells) of ``path``; the line is where the row starts."""
    try:
        f = path.open(newline="", encoding="utf-8")
    except OSError as err:
        raise AvkitError(f"{path}: cannot read ({err.strerror or err})") from None
    with f:
        reader = csv.reader(f)
        line = 1
        for cells in reader:
            if any(c.strip() for c in cells):
                yield line, [c.strip() for c in cells]
            line = reader.line_num + 1


def _number(value: str, what: str, where: str) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise AvkitError(f"{where}: {what} must be a number, got {value!r}") from None
    if not math.isfinite(x) or x < 0:
        raise AvkitError(f"{where}: {what} must be a non-negative number, got {value!r}")
    return x


def _whole(x: float) -> int | float:
    """``x`` as an int when it is one (so ``{time_start:06d}`` formats it)."""
    return int(x) if float(x).is_integer() else x


def _split_name(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    return _SPLIT_NAMES.get(value.strip().lower(), value.strip())


def _check_pattern(pattern: str, fields: tuple[str, ...]) -> str:
    """``pattern`` if it names only ``fields`` (a one-line error otherwise)."""
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(pattern) if name is not None}
    except ValueError as err:
        raise AvkitError(f"data.path_pattern {pattern!r}: {err}") from None
    unknown = names - set(fields)
    if unknown or not names:
        raise AvkitError(f"data.path_pattern {pattern!r}: use the fields {', '.join('{' + f + '}' for f in fields)}"
                         + (f" (unknown: {', '.join(sorted(unknown))})" if unknown else ""))
    return pattern


def _by_pattern(index: VideoIndex, pattern: str, values: dict[str, Any], where: str) -> tuple[str | None, str]:
    """(path relative to the video root or None, the name looked for) of the file ``pattern`` names.

    A pattern with a folder or an extension is a path under the root; otherwise it is a file name
    searched in every subfolder with any video extension."""
    try:
        name = pattern.format(**values)
    except (ValueError, KeyError) as err:
        raise AvkitError(f"{where}: data.path_pattern {pattern!r} does not fit this row ({err})") from None
    if "/" in name or Path(name).suffix.lower() in VIDEO_SUFFIXES:
        return index.relative(name), name
    return index.stem(name), name


def _report_missing(table: SourceTable) -> None:
    if table.missing:
        total = len(table.rows) + len(table.missing)
        warn_once(f"{table.source}: {len(table.missing)} of {total} videos not found under {table.base}, left out "
                  f"(not downloaded?): {'; '.join(table.missing[:3])}{'; ...' if len(table.missing) > 3 else ''}")


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise AvkitError(f"{path}: cannot read ({err.strerror or err})") from None
    except json.JSONDecodeError as err:
        raise AvkitError(f"{path}: line {err.lineno} is not valid JSON ({err.msg})") from None


def _json_array(path: Path) -> list[tuple[int, Any]]:
    """(line number where it starts, element) for each element of the JSON array in ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise AvkitError(f"{path}: cannot read ({err.strerror or err})") from None
    decoder = json.JSONDecoder()
    ws = re.compile(r"\s*")
    i = ws.match(text, 0).end()  # type: ignore[union-attr]
    if not text.startswith("[", i):
        raise AvkitError(f"{path}: expected a JSON list of entries")
    out: list[tuple[int, Any]] = []
    line, counted = 1, 0
    i = ws.match(text, i + 1).end()  # type: ignore[union-attr]
    while not text.startswith("]", i):
        line += text.count("\n", counted, i)
        counted = i
        try:
            element, i = decoder.raw_decode(text, i)
        except json.JSONDecodeError as err:
            raise AvkitError(f"{path}: line {err.lineno} is not valid JSON ({err.msg})") from None
        out.append((line, element))
        i = ws.match(text, i).end()  # type: ignore[union-attr]
        if text.startswith(",", i):
            i = ws.match(text, i + 1).end()  # type: ignore[union-attr]
        elif not text.startswith("]", i):
            raise AvkitError(f"{path}: line {line + text.count(chr(10), counted, i)} is not valid JSON "
                             "(expected ',' or ']' after an entry)")
    return out


# -- UCF-101 and HMDB-51 ------------------------------------------------------------------------

def _split_number(options: FormatOptions, fmt: str) -> int:
    if options.split_number not in (1, 2, 3):
        raise AvkitError(f"{fmt}: data.split_number must be 1, 2 or 3, got {options.split_number!r}")
    return options.split_number


def _ucf101(source: Path, options: FormatOptions) -> SourceTable:
    """UCF-101: ``classInd.txt`` ("1 ApplyEyeMakeup"), ``trainlist0N.txt`` ("Class/v_x.avi 1"),
    ``testlist0N.txt`` ("Class/v_x.avi"), in the root or ``ucfTrainTestlist/``; videos under
    ``UCF-101/`` (or the root) as ``Class/v_x.avi``."""
    number = _split_number(options, "ucf101")
    root = source if source.is_dir() else source.parent
    lists = root / "ucfTrainTestlist" if (root / "ucfTrainTestlist" / "classInd.txt").is_file() else root
    if lists.name == "ucfTrainTestlist" and lists == root:
        root = root.parent
    class_file = lists / "classInd.txt"
    if not class_file.is_file():
        raise AvkitError(f"{lists}: no classInd.txt (the UCF-101 split files, ucfTrainTestlist/)")
    classes: list[str] = []
    for n, line in _read_lines(class_file):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit() or int(parts[0]) != len(classes) + 1:
            raise AvkitError(f"{class_file} line {n}: expected '{len(classes) + 1} ClassName', got {line!r}")
        classes.append(parts[1])
    by_lower = {c.lower(): c for c in classes}
    index = VideoIndex(_video_root(options, root, "UCF-101"))
    rows: list[dict[str, Any]] = []
    missing: list[str] = []
    for split, name in (("train", f"trainlist0{number}.txt"), ("val", f"testlist0{number}.txt")):
        list_file = lists / name
        if not list_file.is_file():
            raise AvkitError(f"{list_file}: missing (the UCF-101 split {number} list)")
        for n, line in _read_lines(list_file):
            where = f"{list_file} line {n}"
            parts = line.split()
            rel = parts[0] if parts else ""
            if "/" not in rel or len(parts) > 2 or (split == "train" and len(parts) != 2):
                raise AvkitError(f"{where}: expected 'Class/video.avi{' INDEX' if split == 'train' else ''}', "
                                 f"got {line!r}")
            label = by_lower.get(rel.split("/")[0].lower())
            if label is None:
                raise AvkitError(f"{where}: class folder {rel.split('/')[0]!r} is not in {class_file.name}")
            if len(parts) == 2 and (not parts[1].isdigit() or int(parts[1]) != classes.index(label) + 1):
                raise AvkitError(f"{where}: class index {parts[1]!r} does not match {label!r} "
                                 f"(index {classes.index(label) + 1} in {class_file.name})")
            _add(rows, missing, index.relative(rel), rel, where, label=label, split=split)
    return SourceTable("ucf101", lists, index.root, rows, classes, missing)


def _hmdb51(source: Path, options: FormatOptions) -> SourceTable:
    """HMDB-51: ``<class>_test_splitN.txt`` ("video.avi 1": 1 train, 2 test, 0 neither) in the root or
    ``testTrainMulti_7030_splits/``; videos under ``hmdb51_org/`` (or the root) as ``class/video.avi``."""
    number = _split_number(options, "hmdb51")
    root = source if source.is_dir() else source.parent
    lists = root / "testTrainMulti_7030_splits"
    if root.name == "testTrainMulti_7030_splits":  # the split folder itself
        lists, root = root, root.parent
    elif not lists.is_dir():
        lists = root
    files = sorted(lists.glob(f"*_test_split{number}.txt"))
    if not files:
        raise AvkitError(f"{lists}: no *_test_split{number}.txt files (the HMDB-51 splits)")
    index = VideoIndex(_video_root(options, root, "hmdb51_org"))
    rows: list[dict[str, Any]] = []
    missing: list[str] = []
    classes = []
    for list_file in files:
        label = list_file.name[: -len(f"_test_split{number}.txt")]
        classes.append(label)
        for n, line in _read_lines(list_file):
            where = f"{list_file} line {n}"
            parts = line.split()
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise AvkitError(f"{where}: expected 'video.avi 0|1|2' (0 unused, 1 train, 2 test), got {line!r}")
            if parts[1] == "0":
                continue
            rel = f"{label}/{parts[0]}"
            _add(rows, missing, index.relative(rel), rel, where, label=label,
                 split="train" if parts[1] == "1" else "val")
    return SourceTable("hmdb51", lists, index.root, rows, classes, missing)


def _add(rows: list[dict[str, Any]], missing: list[str], path: str | None, wanted: str, where: str,
         **fields: Any) -> None:
    """Append a row for ``path``, or note ``wanted`` as missing."""
    if path is None:
        missing.append(f"{where}: {wanted}")
    else:
        rows.append({"path": path, **fields, "_where": where})


# -- Kinetics and VGGSound ----------------------------------------------------------------------

def _kinetics(source: Path, options: FormatOptions) -> SourceTable:
    """Kinetics CSV with a header naming ``label, youtube_id, time_start, time_end, split`` (any order).

    The pattern names a trimmed clip by default; a pattern without ``{time_start}`` names the whole
    YouTube video, and the row then reads ``[time_start, time_end)`` of it."""
    fields = ("youtube_id", "time_start", "time_end", "label", "split")
    pattern = _check_pattern(options.path_pattern or KINETICS_PATTERN, fields)
    header = _csv_header(source)
    need = [c for c in ("youtube_id", "time_start", "time_end", "label") if c not in header]
    if need:
        raise AvkitError(f"{source} line 1: missing column(s) {', '.join(need)} "
                         "(need label,youtube_id,time_start,time_end[,split])")
    index = VideoIndex(_video_root(options, source.parent))
    rows: list[dict[str, Any]] = []
    missing: list[str] = []
    labels: set[str] = set()  # of every row, found or not: the classes do not depend on what is downloaded
    for n, cells in _csv_rows(source):
        if n == 1:
            continue
        where = f"{source} line {n}"
        if len(cells) != len(header):
            raise AvkitError(f"{where}: {len(cells)} fields, the header has {len(header)}")
        row = dict(zip(header, cells))
        if not row["youtube_id"]:
            raise AvkitError(f"{where}: empty youtube_id")
        start = _number(row["time_start"], "time_start", where)
        end = _number(row["time_end"], "time_end", where)
        if end <= start:
            raise AvkitError(f"{where}: time_end ({row['time_end']}) must be after time_start ({row['time_start']})")
        if row["label"]:
            labels.add(row["label"])
        values = {**row, "time_start": _whole(start), "time_end": _whole(end)}
        path, wanted = _by_pattern(index, pattern, values, where)
        segment = {} if "{time_start" in pattern else {"start": start, "end": end}
        _add(rows, missing, path, wanted, where, label=row["label"] or None, split=_split_name(row.get("split")),
             meta={"youtube_id": row["youtube_id"]}, **segment)
    return SourceTable("kinetics", source, index.root, rows, sorted(labels), missing)


def _vggsound(source: Path, options: FormatOptions) -> SourceTable:
    """VGGSound CSV ``youtube_id,start_seconds,label,split`` (the official file has no header; a header
    row naming those columns is accepted). Clips are 10 s from ``start_seconds``."""
    fields = ("youtube_id", "start_seconds", "label", "split")
    pattern = _check_pattern(options.path_pattern or VGGSOUND_PATTERN, fields)
    index = VideoIndex(_video_root(options, source.parent))
    rows: list[dict[str, Any]] = []
    missing: list[str] = []
    labels: set[str] = set()  # of every row, found or not: the classes do not depend on what is downloaded
    for n, cells in _csv_rows(source):
        where = f"{source} line {n}"
        if n == 1 and [c.lower() for c in cells[:2]] in (["youtube_id", "start_seconds"], ["ytid", "start"]):
            continue  # a header
        if len(cells) != 4:
            raise AvkitError(f"{where}: expected 4 fields youtube_id,start_seconds,label,split, got {len(cells)}")
        ytid, start_text, label, split = cells
        if not ytid:
            raise AvkitError(f"{where}: empty youtube_id")
        start = _number(start_text, "start_seconds", where)
        if label:
            labels.add(label)
        values = {"youtube_id": ytid, "start_seconds": _whole(start), "label": label, "split": split}
        path, wanted = _by_pattern(index, pattern, values, where)
        segment = {} if "{start_seconds" in pattern else {"start": start, "end": start + VGGSOUND_SECONDS}
        _add(rows, missing, path, wanted, where, label=label or None, split=_split_name(split),
             meta={"youtube_id": ytid}, **segment)
    return SourceTable("vggsound", source, index.root, rows, sorted(labels), missing)


# -- Something-Something v2 -----------------------------------------------------------------

_SSV2_NAMES = {
    "labels": ("something-something-v2-labels.json", "labels.json"),
    "train": ("something-something-v2-train.json", "train.json"),
    "val": ("something-something-v2-validation.json", "validation.json"),
}


def _ssv2_files(root: Path, strict: bool = True) -> tuple[Path | None, dict[str, Path]]:
    """(labels file, {split: entries file}) in ``root`` or ``root/labels``."""
    for folder in (root, root / "labels"):
        labels = _find_first(folder, _SSV2_NAMES["labels"])
        splits = {s: p for s in ("train", "val") if (p := _find_first(folder, _SSV2_NAMES[s])) is not None}
        if labels is not None and splits:
            return labels, splits
    if strict:
        raise AvkitError(f"{root}: no Something-Something v2 labels (something-something-v2-labels.json and "
                         "something-something-v2-train.json / -validation.json, or labels/labels.json, train.json)")
    return None, {}


def _ssv2(source: Path, options: FormatOptions) -> SourceTable:
    """Something-Something v2: ``labels.json`` ({template: "index"}), entries ``{"id", "label",
    "template", "placeholders"}``; the class is the template without brackets, the caption the
    entry's own ``label``; videos ``<id>.webm`` under ``20bn-something-something-v2/`` (or the root)."""
    root = source if source.is_dir() else source.parent
    if root.name == "labels" and not (root / "20bn-something-something-v2").is_dir():
        root = root.parent
    labels_file, split_files = _ssv2_files(root)
    assert labels_file is not None
    labels = _json(labels_file)
    if not isinstance(labels, dict) or not labels:
        raise AvkitError(f"{labels_file}: expected an object {{template: index}}")
    try:
        order = sorted(labels, key=lambda k: int(labels[k]))
    except (TypeError, ValueError):
        raise AvkitError(f"{labels_file}: every class index must be a whole number") from None
    classes = [_template(t) for t in order]
    index = VideoIndex(_video_root(options, root, "20bn-something-something-v2"))
    rows: list[dict[str, Any]] = []
    missing: list[str] = []
    for split, path in split_files.items():
        for line, entry in _json_array(path):
            where = f"{path} line {line}"
            if not isinstance(entry, dict) or "id" not in entry or "template" not in entry:
                raise AvkitError(f"{where}: expected an entry with 'id' and 'template'")
            label = _template(str(entry["template"]))
            if label not in classes:
                raise AvkitError(f"{where}: template {entry['template']!r} is not in {labels_file.name}")
            vid = str(entry["id"])
            _add(rows, missing, index.stem(vid), f"{vid}.webm", where, label=label, split=split,
                 caption=str(entry.get("label") or ""), meta={"id": vid})
    return SourceTable("ssv2", root, index.root, rows, classes, missing)


def _template(text: str) -> str:
    return text.replace("[", "").replace("]", "")


# -- ActivityNet / THUMOS -----------------------------------------------------------------

def _activitynet(source: Path, options: FormatOptions) -> SourceTable:
    """ActivityNet / THUMOS style JSON: ``{"database": {id: {"subset", "duration", "annotations":
    [{"segment": [start, end], "label"}]}}}``. One record per annotated video (label: the class
    covering most of it; every segment in ``segments``); videos ``v_<id>`` or ``<id>`` under the
    JSON's folder. Videos without annotations (the test subset) are left out, with a count."""
    data = _json(source)
    database = data.get("database") if isinstance(data, dict) else None
    if not isinstance(database, dict):
        raise AvkitError(f"{source}: expected an object with a 'database' of videos")
    index = VideoIndex(_video_root(options, source.parent))
    rows: list[dict[str, Any]] = []
    missing: list[str] = []
    labels: set[str] = set()
    unannotated = 0
    for vid, video in database.items():
        where = f"{source}: video {vid!r}"
        if not isinstance(video, dict):
            raise AvkitError(f"{where}: expected an object")
        annotations = video.get("annotations") or []
        if not isinstance(annotations, list):
            raise AvkitError(f"{where}: 'annotations' must be a list")
        if not annotations:
            unannotated += 1
            continue
        segments: list[dict[str, Any]] = []
        for k, ann in enumerate(annotations):
            seg = ann.get("segment") if isinstance(ann, dict) else None
            if not isinstance(seg, (list, tuple)) or len(seg) != 2 or not ann.get("label"):
                raise AvkitError(f"{where}: annotation {k} needs 'segment': [start, end] and 'label'")
            start = _number(seg[0], f"annotation {k} start", where)
            end = _number(seg[1], f"annotation {k} end", where)
            if end <= start:
                raise AvkitError(f"{where}: annotation {k} ends ({seg[1]}) before it starts ({seg[0]})")
            segments.append({"label": str(ann["label"]), "start": start, "end": end})
        cover: Counter[str] = Counter()
        for s in segments:
            cover[s["label"]] += s["end"] - s["start"]
        labels.update(cover)
        label = max(sorted(cover), key=lambda c: cover[c])
        path = index.stem(f"v_{vid}") or index.stem(str(vid))
        meta = {"id": vid, **({"duration": video["duration"]} if "duration" in video else {})}
        _add(rows, missing, path, f"v_{vid} or {vid}", where, label=label, split=_split_name(video.get("subset")),
             segments=segments, meta=meta)
    if unannotated:
        log.info("%s: %d videos without annotations (a test subset) left out", source, unannotated)
    return SourceTable("activitynet", source, index.root, rows, sorted(labels), missing)


# -- AVA-ActiveSpeaker ------------------------------------------------------------------------

AVA_COLUMNS = ("video_id", "frame_timestamp", "x1", "y1", "x2", "y2", "label", "entity_id")


def _ava_activespeaker(source: Path, options: FormatOptions) -> SourceTable:
    """AVA-ActiveSpeaker CSV rows ``video_id,frame_timestamp,x1,y1,x2,y2,label,entity_id`` (boxes in
    0..1; a header row is accepted), one file or a folder of ``*-activespeaker.csv``. One record per
    entity track from its first to its last box: label the one it has most often, ``segments`` the
    runs of each label, ``meta.boxes`` ``[[t, x1, y1, x2, y2], ...]`` and ``meta.labels`` per box.
    Videos ``<video_id>`` under the annotation folder; the split comes from the file or folder name."""
    files = sorted(source.glob("*.csv")) if source.is_dir() else [source]
    if not files:
        raise AvkitError(f"{source}: no AVA-ActiveSpeaker .csv files")
    folder = source if source.is_dir() else source.parent
    index = VideoIndex(_video_root(options, folder))
    tracks: dict[tuple[str, str], list[tuple[float, list[float], str]]] = {}
    first_where: dict[tuple[str, str], str] = {}
    split_of: dict[tuple[str, str], str | None] = {}
    for csv_file in files:
        split = _split_in_name(csv_file)
        for n, cells in _csv_rows(csv_file):
            where = f"{csv_file} line {n}"
            if n == 1 and cells and cells[0].lower() == "video_id":
                continue
            if len(cells) != len(AVA_COLUMNS):
                raise AvkitError(f"{where}: expected 8 fields {','.join(AVA_COLUMNS)}, got {len(cells)}")
            video_id, ts, *box_text, label, entity = cells
            t = _number(ts, "frame_timestamp", where)
            box = [_number(v, name, where) for v, name in zip(box_text, AVA_COLUMNS[2:6])]
            if not (box[0] < box[2] and box[1] < box[3]):
                raise AvkitError(f"{where}: box must have x1 < x2 and y1 < y2, got {box_text}")
            if not label or not entity:
                raise AvkitError(f"{where}: empty label or entity_id")
            key = (video_id, entity)
            tracks.setdefault(key, []).append((t, box, label))
            first_where.setdefault(key, where)
            split_of[key] = split
    rows: list[dict[str, Any]] = []
    missing: list[str] = []
    for (video_id, entity), boxes in tracks.items():
        boxes.sort(key=lambda b: b[0])
        times = [b[0] for b in boxes]
        steps = sorted(b - a for a, b in zip(times, times[1:]) if b > a)
        step = steps[len(steps) // 2] if steps else 0.05  # a box covers up to the next one
        segments: list[dict[str, Any]] = []
        for t, _, label in boxes:
            if segments and segments[-1]["label"] == label:
                segments[-1]["end"] = t + step
            else:
                segments.append({"label": label, "start": t, "end": t + step})
        counts = Counter(b[2] for b in boxes)
        label = max(sorted(counts), key=lambda c: counts[c])
        meta = {"video_id": video_id, "entity_id": entity, "boxes": [[t, *box] for t, box, _ in boxes],
                "labels": [b[2] for b in boxes]}
        _add(rows, missing, index.stem(video_id), video_id, first_where[(video_id, entity)], label=label,
             split=split_of[(video_id, entity)], start=times[0], end=times[-1] + step, segments=segments, meta=meta)
    classes = sorted({b[2] for boxes in tracks.values() for b in boxes})
    return SourceTable("ava_activespeaker", source, index.root, rows, classes, missing)


def _split_in_name(path: Path) -> str | None:
    """``train`` / ``val`` / ``test`` when the file's or its folder's name says so."""
    words = re.split(r"[^a-z]+", f"{path.parent.name} {path.stem}".lower())
    for word in words:
        if word in _SPLIT_NAMES:
            return _SPLIT_NAMES[word]
    return None


READERS: dict[str, Callable[[Path, FormatOptions], SourceTable]] = {
    "ucf101": _ucf101, "hmdb51": _hmdb51, "kinetics": _kinetics, "ssv2": _ssv2, "vggsound": _vggsound,
    "activitynet": _activitynet, "ava_activespeaker": _ava_activespeaker,
}

__all__ = ["FORMATS", "FormatOptions", "KINETICS_PATTERN", "SourceTable", "VGGSOUND_PATTERN", "VideoIndex",
           "detect_format", "read_format"]
