"""Blocks of one import written aside, to a private folder, before any store sees them.

An upload is hashed and chunked as its bytes arrive (`importer.FileBuilder`), and its
blocks land here, one file per block named by the same key as the block store's
(`b32(multihash)`). Nothing here is fsynced or renamed: the folder belongs to one request,
which removes it whatever happens. Once the upload is accepted, a store takes the blocks
over (`ContentStore.add_staged`): the embedded store renames the files into place, which
writes no byte again; Kubo is sent them with `block/put`.

Inside `written_behind()` the block files are written by a thread of their own (a
`Stage`), in order, while the caller goes on hashing: `put` records the block and returns.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from marketplace.content.cid import Cid, b32encode
from marketplace.content.errors import ContentNotFound, CorruptBlock
from marketplace.content.nodes import Buffer

WRITE_BEHIND_BYTES = 8 * 1024 * 1024  # block bytes waiting for the writer, at most


class Stage:
    """One thread running submitted calls in order. The first call that raises stops
    the rest; its exception is raised to the caller by the next `submit` or `drain`."""

    def __init__(self, limit: int, name: str = "dcm-stage") -> None:
        self._limit = limit
        self._cond = threading.Condition()
        self._calls: deque[tuple[Callable[..., Any], tuple[Any, ...], int]] = deque()
        self._pending = 0  # bytes of the submitted calls not yet done, the running one too
        self._busy = False
        self._closed = False
        self._room_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(
        self, fn: Callable[..., Any], *args: Any, nbytes: int = 0, wait: bool = True
    ) -> None:
        """Queue `fn(*args)`, counting `nbytes` against the limit: past it, wait until the
        thread has caught up (unless not `wait`)."""
        with self._cond:
            while wait and self._pending > self._limit and self.error is None:
                self._cond.wait()
            if self.error is not None:
                raise self.error
            self._calls.append((fn, args, nbytes))
            self._pending += nbytes
            self._cond.notify_all()

    async def room(self) -> None:
        """For an event loop's caller: return once the calls waiting are under the limit
        (at once if they are), woken by the thread when they fall to half of it (or it
        failed, or closed): no polling, and not one wake-up per call."""
        loop = asyncio.get_running_loop()
        with self._cond:
            if self._pending <= self._limit or self.error is not None or self._closed:
                return
            woken: asyncio.Future[None] = loop.create_future()
            self._room_waiters.append((loop, woken))
        await woken

    def _wake_room_waiters(self) -> None:  # under self._cond
        for loop, woken in self._room_waiters:
            loop.call_soon_threadsafe(_set_done, woken)
        self._room_waiters.clear()

    def drain(self) -> None:
        """Wait until every submitted call has run; raise the first one's error."""
        with self._cond:
            while (self._calls or self._busy) and self.error is None:
                self._cond.wait()
            if self.error is not None:
                raise self.error

    def close(self) -> None:
        """Drop the calls not started, wait for the running one, end the thread."""
        with self._cond:
            self._closed = True
            self._calls.clear()
            self._wake_room_waiters()
            self._cond.notify_all()
        self._thread.join()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._calls and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                fn, args, nbytes = self._calls.popleft()
                self._busy = True
            try:
                fn(*args)
            except BaseException as exc:  # raised to the caller by submit or drain
                with self._cond:
                    self.error = exc
                    self._calls.clear()
            finally:
                with self._cond:
                    self._busy = False
                    self._pending -= nbytes
                    if self._room_waiters and (
                        self._pending <= self._limit // 2 or self.error is not None
                    ):
                        self._wake_room_waiters()
                    self._cond.notify_all()


def _set_done(woken: asyncio.Future[None]) -> None:
    if not woken.done():  # the waiter may have been cancelled meanwhile
        woken.set_result(None)


@contextmanager
def running_stage(limit: int, name: str) -> Iterator[Stage]:
    """A `Stage` for the block: drained at its end (raising what failed), closed always."""
    stage = Stage(limit, name)
    try:
        yield stage
        stage.drain()
    finally:
        stage.close()


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
        self._writer: Stage | None = None

    @contextmanager
    def written_behind(self) -> Iterator[None]:
        """Write the blocks `put` inside by a thread of their own; every one is on disk
        when the block ends without an error (the first write that failed is raised by a
        later `put`, by `drain` or here)."""
        if self._writer is not None:
            yield
            return
        try:
            with running_stage(WRITE_BEHIND_BYTES, "dcm-stage-writes") as self._writer:
                yield
        finally:
            self._writer = None

    def drain(self) -> None:
        """Wait until every block put so far is written (raising what failed)."""
        if self._writer is not None:
            self._writer.drain()

    def put(self, cid: Cid, parts: Sequence[Buffer]) -> None:
        key = block_key(cid)
        if key in self._cids:
            return
        size = sum(len(p) for p in parts)
        if self._writer is None:
            self._write(key, parts)  # listed below only once written
        else:  # the parts are the caller's only during this call: keep bytes, copy others
            kept = tuple(p if isinstance(p, bytes) else _owned(p) for p in parts)
            self._writer.submit(self._write, key, kept, nbytes=size)
        self._cids[key] = cid
        self._sizes[key] = size

    def _write(self, key: str, parts: Sequence[Buffer]) -> None:
        fd = os.open(self.root / key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            _write_all(fd, parts)
        finally:
            os.close(fd)

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


def _owned(part: Buffer) -> Buffer:
    """`part` itself if it views an immutable `bytes` (kept alive by the view), else a copy."""
    view = memoryview(part)
    return view if isinstance(view.obj, bytes) else bytes(view)


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
