"""The embedded content store: Kubo-identical imports into the on-disk block store, pins in
the `pins` table, and garbage collection of blocks no pin reaches.

Pins are written in their own short transaction (the pin set belongs to the store, as
Kubo's does, not to the caller's request). On SQLite, call `add_*`/`pin` before your
request has written anything, or the two connections will wait on each other.

Collection (`gc`, run by `node.content.collector.BlockCollector`) never races an import:
an import and a collection pass exclude each other (`_lock`), and what an import added
without a pin stays protected while the importer holds it (`with store.hold(): add,
then pin or give up`), so the gap between an add and its pin is safe too.
"""

from __future__ import annotations

import contextvars
import itertools
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from sqlalchemy.orm import Session, sessionmaker

from marketplace.content import car, dag
from marketplace.content.cid import DAG_PB, RAW, Cid, parse_cid
from marketplace.content.dag import DagReader
from marketplace.content.errors import ContentNotFound, InvalidBlock, PinNotFound
from marketplace.content.importer import (
    ImportOptions,
    Node,
    import_bytes,
    import_path,
    import_stream,
)
from marketplace.content.staged import StagedBlocks
from marketplace.content.store import AddedCallback, RepoStat
from node.content import repository
from node.content.blockstore import FsBlocks

# The roots added under the innermost `EmbeddedStore.hold()` of this thread/task.
_HELD_ROOTS: contextvars.ContextVar[set[str] | None] = contextvars.ContextVar(
    "dcm_held_roots", default=None
)
# dag-pb encodes Links (field 2) before Data (field 1): a node whose first byte is not
# the Links tag has no links, and its (up to 256 KiB) body need not be read by the walk.
_PB_LINKS_TAG = 0x12


class EmbeddedStore(DagReader):
    """A `ContentStore` on local disk and the node's database."""

    def __init__(self, blocks_dir: Path, sessions: sessionmaker[Session]) -> None:
        self.blocks = FsBlocks(blocks_dir)
        self.blocks.remove_temp_files()
        self._sessions = sessions
        # Held by imports and by gc, so gc never sweeps blocks an import is writing.
        self._lock = threading.RLock()
        self._holds: dict[int, set[str]] = {}
        self._hold_ids = itertools.count()

    # -- adding -------------------------------------------------------------------
    def _add(self, do_import: Callable[[], Node], pin: bool) -> str:
        with self._lock:
            with self.blocks.batch():
                node: Node = do_import()
            cid = str(node.cid)
            if pin:  # every block was just written or found present: no re-walk needed
                self._record_pin(cid)
            else:
                held = _HELD_ROOTS.get()
                if held is not None:
                    held.add(cid)
            return cid

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Protect what is added inside from the collector until the block exits: the
        importer then has pinned it (kept) or given up (garbage for the next pass)."""
        roots: set[str] = set()
        token = _HELD_ROOTS.set(roots)
        with self._lock:
            hold_id = next(self._hold_ids)
            self._holds[hold_id] = roots
        try:
            yield
        finally:
            _HELD_ROOTS.reset(token)
            with self._lock:
                del self._holds[hold_id]

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
        opts = ImportOptions(
            cid_version=cid_version, raw_leaves=raw_leaves, include_hidden=include_hidden
        )
        cb = None
        if on_entry is not None:

            def cb(rel: str, node: Node) -> None:
                on_entry(rel, str(node.cid), node.tsize)

        return self._add(lambda: import_path(Path(path), opts, self.blocks, cb), pin)

    def add_bytes(
        self, data: bytes, *, pin: bool = True, cid_version: int = 0, raw_leaves: bool | None = None
    ) -> str:
        opts = ImportOptions(cid_version=cid_version, raw_leaves=raw_leaves)
        return self._add(lambda: import_bytes(data, opts, self.blocks), pin)

    def add_stream(
        self,
        stream: BinaryIO,
        *,
        pin: bool = True,
        cid_version: int = 0,
        raw_leaves: bool | None = None,
    ) -> str:
        opts = ImportOptions(cid_version=cid_version, raw_leaves=raw_leaves)
        return self._add(lambda: import_stream(stream, opts, self.blocks), pin)

    def add_staged(self, staged: StagedBlocks, root: str, *, pin: bool = True) -> str:
        """Rename the staged blocks into the store (their bytes are not written again),
        flush once, then pin `root` without a re-walk: every block was just moved in or
        found present."""
        parse_cid(root)
        with self._lock:
            with self.blocks.batch():
                self.blocks.adopt(staged)
            if pin:
                self._record_pin(root)
            elif (held := _HELD_ROOTS.get()) is not None:
                held.add(root)
            return root

    def import_car(self, stream: BinaryIO, *, pin: bool = True) -> list[str]:
        """Store every (verified) block of a CAR; pin its roots if complete. Returns roots."""
        with self._lock:
            roots, blocks = car.read_car(stream)
            with self.blocks.batch():
                for cid, data in blocks:
                    self.blocks.put(cid, (data,))
            out = [str(r) for r in roots]
            if pin:
                for r in out:
                    self.pin(r)
            elif (held := _HELD_ROOTS.get()) is not None:
                held.update(out)
            return out

    def put_block(self, cid: str, data: bytes, *, pin: bool = False) -> None:
        c = parse_cid(cid)
        if not c.verify(data):
            raise InvalidBlock(f"the block does not hash to {cid}")
        with self._lock:
            self.blocks.put(c, (data,))
            if pin:
                self.pin(cid)
            elif (held := _HELD_ROOTS.get()) is not None:
                held.add(cid)

    def repo_stat(self) -> RepoStat:
        count, size = self.blocks.usage()
        return RepoStat(num_objects=count, repo_size=size, storage_max=_free_and_used(self, size))

    # -- reading ------------------------------------------------------------------
    def _get(self, cid: Cid) -> bytes:
        return self.blocks.get(cid)

    # -- pins ---------------------------------------------------------------------
    def pin(self, cid: str) -> None:
        """Pin the DAG under `cid` recursively; every block must be present."""
        parse_cid(cid)
        with self._lock:
            if not self.has(cid):
                raise ContentNotFound(f"cannot pin {cid}: not all of its blocks are stored")
            self._record_pin(cid)

    def _record_pin(self, cid: str) -> None:
        with self._sessions.begin() as session:
            repository.add(session, cid)

    def unpin(self, cid: str) -> None:
        parse_cid(cid)
        with self._sessions.begin() as session:
            if not repository.remove(session, cid):
                raise PinNotFound(f"{cid} is not pinned")

    def is_pinned(self, cid: str) -> bool:
        with self._sessions.begin() as session:
            return repository.get(session, cid) is not None

    def pins(self) -> list[str]:
        with self._sessions.begin() as session:
            return repository.all_cids(session)

    def _mfs_roots(self) -> list[str]:
        # MFS roots are kept as Kubo keeps its own: never collected, though not pins
        with self._sessions.begin() as session:
            return repository.mfs_root_cids(session)

    def gc(self) -> int:
        """Delete every block no pin (and no open `hold`) reaches; return how many were
        removed. A pinned DAG with a missing or corrupt block keeps what it can still
        reach. Leaves are recognised without reading them (raw codec, or a dag-pb node
        that starts with its Data), so a pass costs about one small read per block."""
        with self._lock:
            roots = set(self.pins()) | set(self._mfs_roots())
            for held in self._holds.values():
                roots |= held
            live: set[str] = set()
            walked: set[tuple[int, str]] = set()  # (codec, key): one block, two readings
            for root in roots:
                stack = [parse_cid(root)]
                while stack:
                    cid = stack.pop()
                    key = FsBlocks.key(cid)
                    if (cid.codec, key) in walked:
                        continue
                    walked.add((cid.codec, key))
                    live.add(key)
                    if cid.codec == RAW or (
                        cid.codec == DAG_PB and self.blocks.first_byte(cid) != _PB_LINKS_TAG
                    ):
                        continue
                    try:
                        block = self.blocks.get(cid)
                        stack.extend(dag.child_cids(cid, block))
                    except Exception:  # missing/corrupt: nothing below it is reachable
                        continue
            removed = 0
            for key in list(self.blocks.keys()):
                if key not in live:
                    self.blocks.delete(key)
                    removed += 1
            return removed


def _free_and_used(store: EmbeddedStore, used: int) -> int:
    """StorageMax as Kubo means it (the most the repo may grow to): here, what the block
    store's disk could still hold plus what it holds."""
    return shutil.disk_usage(store.blocks.root).free + used
