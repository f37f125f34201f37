"""An in-memory block store: a `BlockSink` plus a verified `get`, for tests, CAR round
trips and small in-process DAGs (nothing is persisted)."""

from __future__ import annotations

from collections.abc import Sequence

from marketplace.content.cid import Cid
from marketplace.content.errors import ContentNotFound, CorruptBlock
from marketplace.content.importer import Buffer


class MemoryBlocks:
    def __init__(self) -> None:
        self.blocks: dict[bytes, bytes] = {}  # multihash -> block

    def put(self, cid: Cid, parts: Sequence[Buffer]) -> None:
        self.blocks[cid.multihash] = b"".join(bytes(p) for p in parts)

    def get(self, cid: Cid) -> bytes:
        try:
            block = self.blocks[cid.multihash]
        except KeyError:
            raise ContentNotFound(f"block {cid} not found") from None
        if not cid.verify(block):
            raise CorruptBlock(f"block {cid} does not match its hash")
        return block

    def __len__(self) -> int:
        return len(self.blocks)
