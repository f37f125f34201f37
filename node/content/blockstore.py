"""Blocks on disk, one file per block, keyed by multihash (so a CIDv0 and a CIDv1 of the
same bytes share one file), in directories sharded like Kubo's flatfs (`next-to-last/2`).

Writes go to a temp file in the shard directory and are renamed into place, so a reader
never sees half a block; blocks staged by an upload (`StagedBlocks`, on the same
filesystem) are renamed into place the same way, without writing their bytes again.
Inside a `batch()` (one `add`), nothing is fsynced per block: the batch ends with one
flush of the block store's filesystem (`syncfs`; one fsync per file and directory where
that call is missing), and only then does the caller record a pin, so a crash before it
leaves unpinned blocks, garbage for the collector, never a pinned DAG with a hole. Every
read re-hashes the block: bytes that no longer match their CID raise `CorruptBlock` and
are never returned.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from marketplace.content.cid import Cid, b32encode
from marketplace.content.errors import ContentNotFound, CorruptBlock
from marketplace.content.importer import Buffer
from marketplace.content.staged import StagedBlocks


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
            _fsync(dest.parent)

    def adopt(self, staged: StagedBlocks) -> int:
        """Move every staged block into the store (a rename; a copy across filesystems),
        keeping a block already present with the same length. Returns the blocks moved.
        Call inside `batch()` so they are flushed before a pin records them."""
        moved = 0
        for key, cid in staged.entries():
            dest = self.root / key[-3:-1] / key
            src = staged.path(key)
            try:
                if dest.stat().st_size == staged.size(key):
                    continue
            except FileNotFoundError:
                pass
            try:
                try:
                    os.replace(src, dest)
                except FileNotFoundError:  # a new shard directory
                    dest.parent.mkdir(exist_ok=True)
                    os.replace(src, dest)
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
                self.put(cid, (staged.get(cid),))
                continue
            moved += 1
            if self._batch is not None:
                self._batch.append(dest)
            else:
                _fsync(dest)
                _fsync(dest.parent)
        return moved

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Defer the flush of the blocks written inside to one pass at the end."""
        if self._batch is not None:
            yield
            return
        self._batch = []
        try:
            yield
            written, self._batch = self._batch, None
            if written and not _syncfs(self.root):
                for path in written:
                    _fsync(path)
                for d in {path.parent for path in written}:
                    _fsync(d)
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


_LIBC = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
_SYNCFS = getattr(_LIBC, "syncfs", None)


def _syncfs(path: Path) -> bool:
    """Flush every written file and directory of the filesystem holding `path` at once
    (Linux `syncfs`): far cheaper than an fsync per block, each of which waits for its
    own journal commit. False where the call is missing or fails."""
    if _SYNCFS is None:
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        return bool(_SYNCFS(fd) == 0)
    finally:
        os.close(fd)


def _fsync(path: Path) -> None:
    """fsync a file or a directory (its entries) by path."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
