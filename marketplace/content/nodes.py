"""What the UnixFS importer and the HAMT builder share: import options, the block sink
they write to, and the root node an import returns (kept apart so that neither module
imports the other)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from marketplace.content.cid import Cid

CHUNK_SIZE = 262144
MAX_LINKS = 174
# Kubo turns a directory into a HAMT shard once the sum over its links of
# len(name) + len(binary CID) reaches this (boxo `HAMTShardingSize`, "links" estimation).
HAMT_SHARDING_SIZE = 262144

Buffer = bytes | bytearray | memoryview


class BlockSink(Protocol):
    def put(self, cid: Cid, parts: Sequence[Buffer]) -> None:
        """Store one block given as consecutive buffers (valid only during the call)."""


@dataclass(frozen=True)
class ImportOptions:
    cid_version: int = 0
    raw_leaves: bool | None = None  # None: Kubo's default (raw leaves iff CIDv1)
    chunk_size: int = CHUNK_SIZE
    max_links: int = MAX_LINKS
    include_hidden: bool = False  # Kubo's `ipfs add -r` skips dot files unless --hidden
    # Kubo's Import.UnixFSHAMTDirectorySizeThreshold (estimated from name and CID lengths)
    hamt_sharding_size: int = HAMT_SHARDING_SIZE

    def __post_init__(self) -> None:
        if self.cid_version not in (0, 1):
            raise ValueError("cid_version must be 0 or 1")
        if self.chunk_size < 1 or self.max_links < 2:
            raise ValueError("chunk_size >= 1 and max_links >= 2 required")

    @property
    def use_raw_leaves(self) -> bool:
        return self.cid_version == 1 if self.raw_leaves is None else self.raw_leaves


@dataclass(frozen=True, slots=True)
class Node:
    """The root of an imported DAG. `tsize` is the cumulative size of all its blocks (what
    Kubo shows as `Size` in `ipfs add` output and puts in parent links); `filesize` the
    number of file bytes (0 for directories)."""

    cid: Cid
    tsize: int
    filesize: int
    is_dir: bool = False
