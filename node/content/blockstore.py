"""Blocks on disk, one file per block, keyed by multihash (so a CIDv0 and a CIDv1 of the
same bytes share one file), in directories sharded like Kubo's flatfs (`next-to-last/2`).

Writes go to a temp file in the shard directory and are renamed into place, so a reader
never sees half a block. Inside a `batch()` (one `add`), files and directories are fsynced
once at the end instead of once per block. Every read re-hashes the block: bytes that no
longer match their CID raise `CorruptBlock` and are never returned.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from marketplace.content.cid import Cid, b32encode
from marketplace.content.errors import ContentNotFound, CorruptBlock
from marketplace.content.importer import Buffer


class FsBlocks:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._batch: list[Path] | None = None

    @staticmethod
    def key(cid: Cid) -> str:
        return b32encode(cid.multihash)

    def path(self, cid: Cid) -> Path:
        key = self.key(cid)
        return self.root / key[-3:-1] / key

    def put(self, cid: Cid, parts: Sequence[Buffer]) -> None:
        """Store a block unless present. The caller has computed `cid` from these bytes."""
        dest = self.path(cid)
        try:
            # present with the right length: keep it (a flipped byte is caught on read)
            if dest.stat().st_size == sum(len(p) for p in parts):
                return
        except FileNotFoundError:
            pass
        dest.parent.mkdir(exist_ok=True)
        tmp = dest.parent / f".tmp-{uuid.uuid4().hex}"
        try:
            with open(tmp, "wb") as f:
                for part in parts:
                    f.write(part)
                if self._batch is None:
                    f.flush()
                    os.fsync(f.fileno())
            os.replace(tmp, dest)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        if self._batch is not None:
            self._batch.append(dest)
        else:
            _fsync_dir(dest.parent)

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Defer fsyncs of the blocks written inside to one pass at the end."""
        if self._batch is not None:
            yield
            return
        self._batch = []
        try:
            yield
            written, self._batch = self._batch, None
            dirs = set()
            for path in written:
                fd = os.open(path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
                dirs.add(path.parent)
            for d in dirs:
                _fsync_dir(d)
        finally:
            self._batch = None

    def get(self, cid: Cid) -> bytes:
        try:
            data = self.path(cid).read_bytes()
        except FileNotFoundError:
            raise ContentNotFound(f"block {cid} not found") from None
        if not cid.verify(data):
            raise CorruptBlock(f"block {cid} does not match its hash; refusing to serve it")
        return data

    def first_byte(self, cid: Cid) -> int | None:
        """The first byte of a stored block (None if absent or empty), read without the rest:
        enough to tell a dag-pb leaf (Data first) from a node with links (Links first)."""
        try:
            with open(self.path(cid), "rb") as f:
                head = f.read(1)
        except FileNotFoundError:
            return None
        return head[0] if head else None

    def delete(self, key: str) -> None:
        (self.root / key[-3:-1] / key).unlink(missing_ok=True)

    def keys(self) -> Iterator[str]:
        """Keys (base32 multihashes) of every stored block."""
        for shard in self.root.iterdir():
            if not shard.is_dir():
                continue
            for f in shard.iterdir():
                if not f.name.startswith("."):
                    yield f.name

    def usage(self) -> tuple[int, int]:
        """(number of stored blocks, their total bytes), from the file sizes."""
        count = size = 0
        for shard in self.root.iterdir():
            if not shard.is_dir():
                continue
            for f in shard.iterdir():
                if not f.name.startswith("."):
                    count += 1
                    size += f.stat().st_size
        return count, size

    def remove_temp_files(self) -> int:
        """Delete temp files left by a crash mid-write; return how many."""
        n = 0
        for shard in self.root.iterdir():
            if shard.is_dir():
                for f in shard.glob(".tmp-*"):
                    f.unlink(missing_ok=True)
                    n += 1
        return n


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
