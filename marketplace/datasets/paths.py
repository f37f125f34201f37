"""Relative paths of uploaded files and archive entries, made safe.

Both upload forms (many files whose filenames carry `images/train/a.jpg`, or one zip)
go through `safe_relative_path`: backslashes count as separators (Windows clients),
absolute paths, drive letters, `..`, empty or `.` components, control characters and
over-long names are refused. OS clutter (`__MACOSX/`, `.DS_Store`, `Thumbs.db`,
`desktop.ini`) is dropped silently, since zip tools and browsers add it unasked, and
so are hidden names (starting with `.`): `ipfs add -r` skips them too, so the dataset's
CID is the one Kubo gives for the unpacked folder.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

MAX_PATH_CHARS = 1024
MAX_NAME_BYTES = 255
MAX_DEPTH = 16
JUNK_NAMES = frozenset({".ds_store", "thumbs.db", "desktop.ini"})
JUNK_DIRS = frozenset({"__macosx"})

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DRIVE = re.compile(r"^[A-Za-z]:")


class UnsafePath(ValueError):
    """Why a path was refused; callers map it to their own error code."""


def safe_relative_path(raw: str) -> PurePosixPath | None:
    """Return the normalised relative path of an upload or archive entry, `None` for
    OS clutter to skip, or raise `UnsafePath`."""
    if not raw or len(raw) > MAX_PATH_CHARS:
        raise UnsafePath("empty or over-long path")
    if _CONTROL.search(raw):
        raise UnsafePath("control character in path")
    value = raw.replace("\\", "/")
    if value.startswith("/") or _DRIVE.match(value):
        raise UnsafePath("absolute path")
    parts = value.split("/")
    if parts and parts[-1] == "":
        raise UnsafePath("path names a directory, not a file")
    for part in parts:
        if part == "..":
            raise UnsafePath("'..' in path")
        if part in ("", "."):
            raise UnsafePath("empty or '.' path component")
        if len(part.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
            raise UnsafePath("path component over 255 bytes")
    if len(parts) > MAX_DEPTH:
        raise UnsafePath("path nested too deep")
    if parts[-1].lower() in JUNK_NAMES or any(p.lower() in JUNK_DIRS for p in parts[:-1]):
        return None
    if any(p.startswith(".") for p in parts):
        return None
    return PurePosixPath(value)  # its parts, each checked above (parsed once, not each)
