"""SOURCE of ``avkit batch`` -> the list of videos to process, each with its resume key."""
from __future__ import annotations

import glob
import hashlib
from dataclasses import dataclass
from pathlib import Path

from avkit.errors import AvkitError

MANIFEST_SUFFIXES = (".jsonl", ".csv")


@dataclass(frozen=True)
class Video:
    """One video of the corpus. ``key`` names this version of the file (path, size, mtime): a rerun
    skips the keys already in the output, and a file changed since is done again."""

    path: str  # absolute
    size: int  # bytes
    mtime_ns: int

    @property
    def key(self) -> str:
        return video_key(self.path, self.size, self.mtime_ns)


def video_key(path: str, size: int, mtime_ns: int) -> str:
    """16 hex digits of sha1(path, size, mtime): the resume key."""
    return hashlib.sha1(f"{path}\0{size}\0{mtime_ns}".encode()).hexdigest()[:16]


def find_videos(source: str | Path) -> list[Video]:
    """The videos of ``source``: a folder (every video file under it; its manifest.jsonl/.csv when it has
    one), a glob pattern (``"data/**/*.mp4"``, every file it matches) or a manifest in avkit's format
    (:func:`avkit.data.dataset.load_records`; a ``path`` column is enough). Sorted, without duplicates.

    A file listed by a manifest but missing is kept (it becomes an error row); a source that gives
    no videos at all is a one-line :class:`AvkitError`.
    """
    from avkit.data.dataset import VIDEO_EXTENSIONS, load_records

    text = str(source)
    path = Path(source)
    if glob.has_magic(text) and not path.exists():
        paths = [Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file()]
        if not paths:
            raise AvkitError(f"{text}: the pattern matches no files")
    elif not path.exists():
        raise AvkitError(f"{path}: no such file or folder")
    elif path.is_dir() and not any((path / f"manifest{s}").is_file() for s in MANIFEST_SUFFIXES):
        try:
            paths = [p for p in path.rglob("*") if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file()]
        except OSError as err:
            raise AvkitError(f"{path}: cannot list the folder ({err.strerror or err})") from None
        if not paths:
            raise AvkitError(f"{path}: no video files in this folder ({', '.join(VIDEO_EXTENSIONS[:4])}, ...)")
    elif path.is_dir() or path.suffix.lower() in MANIFEST_SUFFIXES:
        # A corpus list: labels (if any) are not used, and its rows may name videos anywhere.
        records, _, _ = load_records(path, labels=False, allow_outside=True)
        paths = [Path(r.path) for r in records]
    else:
        raise AvkitError(f"{path}: expected a folder, a glob pattern or a .jsonl/.csv manifest")
    videos = {}
    for p in paths:
        p = p.absolute()
        try:
            st = p.stat()
            size, mtime = st.st_size, st.st_mtime_ns
        except OSError:
            size, mtime = -1, 0  # missing: processed (and reported) like any unreadable file
        videos[str(p)] = Video(str(p), size, mtime)
    return [videos[k] for k in sorted(videos)]
