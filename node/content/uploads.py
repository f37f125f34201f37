"""Streams a Kubo-style multipart `add` body to a temporary directory tree.

Kubo's clients send one part per file or directory: `Content-Disposition: form-data;
name="file"; filename="dir%2Fsub%2Ffile.txt"` (the path URL-encoded) and `Content-Type:
application/x-directory` for directories (kubo-rpc-client also sends `Abspath`, which only
matters for Kubo's filestore and is ignored here). Paths are checked before anything is
written (no absolute paths, no `..`, no duplicates); the byte and file-count limits of
`settings.upload` raise `PayloadTooLarge` as soon as they are passed.
"""

from __future__ import annotations

import errno
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, NoReturn
from urllib.parse import unquote

from python_multipart.multipart import MultipartParser, parse_options_header

from marketplace.errors import (
    BadUpload,
    InsufficientStorage,
    MarketplaceError,
    PayloadTooLarge,
    ValidationFailed,
)

__all__ = ["BadUpload", "SpooledTree", "safe_relpath", "raise_storage_error", "spool_multipart"]


def safe_relpath(raw: str) -> list[str]:
    """Split an uploaded path into safe components or refuse it."""
    name = unquote(raw).replace("\\", "/")
    if not name or name.startswith("/") or "\x00" in name:
        raise BadUpload(f"invalid path {raw!r} in upload")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts or any(p == ".." for p in parts):
        raise BadUpload(f"invalid path {raw!r} in upload")
    if any(len(p.encode()) > 255 for p in parts):
        raise BadUpload("a path component is longer than 255 bytes")
    return parts


@dataclass
class SpooledTree:
    """What an upload produced under `root`: its top-level names in arrival order."""

    root: Path
    top_level: list[str] = field(default_factory=list)
    files: int = 0
    bytes: int = 0
    unnamed: set[str] = field(default_factory=set)  # parts sent without a filename

    def _ensure_dir(self, parts: list[str]) -> Path:
        path = self.root
        for i, p in enumerate(parts):
            path = path / p
            if i == 0 and p not in self.top_level:
                self.top_level.append(p)
            if path.is_file():
                raise BadUpload(f"{'/'.join(parts[: i + 1])} is both a file and a directory")
            path.mkdir(exist_ok=True)
        return path

    def add_dir(self, parts: list[str]) -> None:
        self._ensure_dir(parts)

    def open_file(self, parts: list[str]) -> BinaryIO:
        parent = self._ensure_dir(parts[:-1])
        path = parent / parts[-1]
        if len(parts) == 1 and parts[0] not in self.top_level:
            self.top_level.append(parts[0])
        if path.exists():
            raise BadUpload(f"{'/'.join(parts)} appears twice in the upload")
        return open(path, "xb")


def raise_storage_error(exc: OSError) -> NoReturn:
    """Re-raise a failed write on the node's disk as what it means for the client: 507
    INSUFFICIENT_STORAGE when the disk (or a quota) is full, which clients retry; any other
    OSError stays what it is (a 500, a bug or a broken disk)."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        raise InsufficientStorage("The node is out of disk space; nothing was stored") from exc
    raise exc


async def spool_multipart(
    content_type: str,
    body: AsyncIterator[bytes],
    dest: Path,
    *,
    max_bytes: int,
    max_files: int,
) -> SpooledTree:
    """Write the parts of a multipart body under `dest` (which must exist and be empty)."""
    ctype, params = parse_options_header(content_type)
    if ctype != b"multipart/form-data" or b"boundary" not in params:
        raise BadUpload("expected a multipart/form-data body with a boundary")
    tree = SpooledTree(dest)
    state: dict = {"headers": {}, "field": b"", "value": b"", "out": None, "error": None}
    counter = {"n": 0}

    def on_part_begin() -> None:
        state["headers"] = {}

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state["field"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state["value"] += data[start:end]

    def on_header_end() -> None:
        state["headers"][state["field"].decode("latin-1").lower()] = state["value"].decode(
            "latin-1"
        )
        state["field"] = b""
        state["value"] = b""

    def on_headers_finished() -> None:
        headers = state["headers"]
        _, disp = parse_options_header(headers.get("content-disposition", ""))
        filename = disp.get(b"filename")
        part_type = headers.get("content-type", "application/octet-stream").split(";")[0].strip()
        if not filename:  # absent, or `filename=""` as kubo-rpc-client sends for bare bytes
            counter["n"] += 1
            name = f".unnamed-{counter['n']}"
            tree.unnamed.add(name)
            parts = [name]
        else:
            parts = safe_relpath(filename.decode("utf-8", "replace"))
        if part_type == "application/x-directory":
            tree.add_dir(parts)
            state["out"] = None
            return
        if part_type == "application/symlink":
            raise BadUpload("symlinks are not accepted in uploads")
        tree.files += 1
        if tree.files > max_files:
            raise PayloadTooLarge(f"more than {max_files} files in one upload")
        state["out"] = tree.open_file(parts)

    def on_part_data(data: bytes, start: int, end: int) -> None:
        out = state["out"]
        if out is None:
            if end > start:
                raise BadUpload("a directory part carries data")
            return
        tree.bytes += end - start
        if tree.bytes > max_bytes:
            raise PayloadTooLarge(f"upload larger than {max_bytes} bytes")
        out.write(data[start:end])

    def on_part_end() -> None:
        out = state["out"]
        if out is not None:
            out.close()
            state["out"] = None

    parser = MultipartParser(
        params[b"boundary"],
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
        max_header_count=16,
    )
    received = 0
    try:
        async for chunk in body:
            received += len(chunk)
            if received > max_bytes + 1024 * 1024 + 1024 * tree.files:
                raise PayloadTooLarge(f"upload larger than {max_bytes} bytes")
            parser.write(chunk)
        parser.finalize()
    except MarketplaceError:
        raise
    except OSError as exc:  # the node's own disk, never the client's fault
        raise_storage_error(exc)
    except Exception as exc:  # python-multipart's parse errors
        raise BadUpload(f"malformed multipart body: {exc}") from exc
    finally:
        if state["out"] is not None:
            state["out"].close()
    if not tree.top_level:
        raise ValidationFailed("no file in the upload")
    return tree
