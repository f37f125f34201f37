"""Blocks of one import written aside, to a private folder, before any store sees them.

An upload is hashed and chunked as its bytes arrive (`importer.FileBuilder`), and its
blocks land here, one file per block named by the same key as the block store's
(`b32(multihash)`). Nothing here is fsynced or renamed: the folder belongs to one request,
which removes it whatever happens. Once the upload is accepted, a store takes the blocks
over (`ContentStore.add_staged`): the embedded store renames the files into place, which
writes no byte again; Kubo is sent them with `block/put`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from marketplace.content.cid import Cid, b32encode
from marketplace.content.errors import ContentNotFound, CorruptBlock
from marketplace.content.nodes import Buffer


def block_key(cid: Cid) -> str:
    """The block store's file name for a block: base32 of its multihash."""
    return b32encode(cid.multihash)


class StagedBlocks:
    """A `BlockSink` writing each new block to `root/<key>`; a verified `get`."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True)
        self._cids: dict[str, Cid] = {}  # key -> a CID of the block, in write order
        self._sizes: dict[str, int] = {}

    def put(self, cid: Cid, parts: Sequence[Buffer]) -> None:
        key = block_key(cid)
        if key in self._cids:
            return
        fd = os.open(self.root / key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            size = _write_all(fd, parts)
        finally:
            os.close(fd)
        self._cids[key] = cid
        self._sizes[key] = size

    def path(self, key: str) -> Path:
        return self.root / key

    def size(self, key: str) -> int:
        return self._sizes[key]

    def get(self, cid: Cid) -> bytes:
        try:
            data = self.path(block_key(cid)).read_bytes()
        except FileNotFoundError:
            raise ContentNotFound(f"block {cid} is not staged") from None
        if not cid.verify(data):
            raise CorruptBlock(f"staged block {cid} changed on disk")
        return data

    def entries(self) -> Iterator[tuple[str, Cid]]:
        """(key, CID) of every staged block, in the order they were written."""
        return iter(list(self._cids.items()))

    def blocks(self) -> Iterator[tuple[Cid, bytes]]:
        """Every staged block with its bytes, verified."""
        for _, cid in self.entries():
            yield cid, self.get(cid)

    def __len__(self) -> int:
        return len(self._cids)


def _write_all(fd: int, parts: Sequence[Buffer]) -> int:
    views = [memoryview(p) for p in parts if len(p)]
    total = sum(len(v) for v in views)
    while views:
        n = os.writev(fd, views)
        while views and n >= len(views[0]):
            n -= len(views[0])
            views.pop(0)
        if views and n:
            views[0] = views[0][n:]
    return total
