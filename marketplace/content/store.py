"""The protocol every content store implements: the node's embedded block store and the
Kubo RPC adapter. Services receive one through their constructor; neither knows which."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class Entry:
    """One link of a UnixFS directory."""

    name: str
    cid: str
    size: int  # file bytes (files) or cumulative DAG size (directories)
    is_dir: bool


class ContentStore(Protocol):
    def add_path(
        self, path: Path, *, pin: bool = True, cid_version: int = 0, raw_leaves: bool | None = None
    ) -> str:
        """Import a file or a directory tree exactly as `ipfs add -r` would; return the root CID."""

    def add_bytes(
        self, data: bytes, *, pin: bool = True, cid_version: int = 0, raw_leaves: bool | None = None
    ) -> str:
        """Import one file's bytes; return its CID."""

    def cat(self, cid: str, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        """Stream a file's bytes, verified against the CID block by block."""

    def ls(self, cid: str) -> list[Entry]:
        """The links of a directory, in DAG order (sorted by name)."""

    def has(self, cid: str) -> bool:
        """Whether every block of the DAG under `cid` is available locally."""

    def pin(self, cid: str) -> None: ...

    def unpin(self, cid: str) -> None: ...

    def is_pinned(self, cid: str) -> bool: ...
