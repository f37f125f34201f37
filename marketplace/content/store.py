"""The protocol every content store implements: the node's embedded block store and the
Kubo RPC adapter. Services receive one through their constructor; neither knows which.

CIDs are strings as Kubo prints them (CIDv0 `Qm...`, CIDv1 base32 `b...`). Every byte a
store returns has been checked against its CID.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from marketplace.content.staged import StagedBlocks


@dataclass(frozen=True)
class RepoStat:
    """What `ipfs repo stat` reports: blocks stored and their bytes."""

    num_objects: int
    repo_size: int
    storage_max: int


@dataclass(frozen=True)
class Entry:
    """One link of a UnixFS directory."""

    name: str
    cid: str
    size: int  # file bytes (files) or cumulative DAG size (directories)
    is_dir: bool


# (path relative to the added root's parent, CID, cumulative DAG size): one call per file
# and directory, in `ipfs add` output order (contents before their directory, root last).
AddedCallback = Callable[[str, str, int], None]


class ContentStore(Protocol):
    def add_path(
        self,
        path: Path,
        *,
        pin: bool = True,
        cid_version: int = 0,
        raw_leaves: bool | None = None,
        include_hidden: bool = False,
        on_entry: AddedCallback | None = None,
    ) -> str:
        """Import a file or a directory tree exactly as `ipfs add -r` would; return the root CID."""

    def add_bytes(
        self, data: bytes, *, pin: bool = True, cid_version: int = 0, raw_leaves: bool | None = None
    ) -> str:
        """Import one file's bytes; return its CID."""

    def add_stream(
        self,
        stream: BinaryIO,
        *,
        pin: bool = True,
        cid_version: int = 0,
        raw_leaves: bool | None = None,
    ) -> str:
        """Import one file read from a binary stream (constant memory); return its CID."""

    def add_staged(self, staged: StagedBlocks, root: str, *, pin: bool = True) -> str:
        """Take over the blocks of a DAG imported aside (`root` and everything under it
        are in `staged`); return `root`. The staged files may be moved away."""

    def cat(self, cid: str, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        """Stream a file's bytes, verified against the CID block by block. `cid` may carry
        a path (`CID/dir/file`)."""

    def ls(self, cid: str) -> list[Entry]:
        """The links of a directory, in DAG order (sorted by name)."""

    def has(self, cid: str) -> bool:
        """Whether every block of the DAG under `cid` is available locally."""

    def get_block(self, cid: str) -> bytes:
        """One raw block, verified against its CID (ContentNotFound if absent)."""

    def resolve(self, ref: str) -> str:
        """`CID[/path]` or `/ipfs/CID[/path]` to the CID of the node it names."""

    def export_car(self, cid: str) -> Iterator[bytes]:
        """The DAG under `cid` as a CARv1 stream (depth-first, each block once)."""

    def put_block(self, cid: str, data: bytes, *, pin: bool = False) -> None:
        """Store one block whose bytes hash to `cid` (raw or dag-pb); with `pin`, pin it."""

    def import_car(self, stream: BinaryIO, *, pin: bool = True) -> list[str]:
        """Store every block of a CARv1 stream (each verified); pin its roots when `pin`
        and the DAGs are complete. Returns the roots."""

    def repo_stat(self) -> RepoStat:
        """Blocks stored and their total size."""

    def pin(self, cid: str) -> None: ...

    def unpin(self, cid: str) -> None: ...

    def is_pinned(self, cid: str) -> bool: ...

    def pins(self) -> list[str]:
        """Every recursively pinned root."""

    def hold(self) -> AbstractContextManager[None]:
        """Keep what is added inside from garbage collection until the block exits, so an
        importer can add, then pin (or give up), without a collection in between."""
