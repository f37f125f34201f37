"""The embedded content store: Kubo-identical imports into the on-disk block store, pins in
the `pins` table, and garbage collection of blocks no pin reaches.

Pins are written in their own short transaction (the pin set belongs to the store, as
Kubo's does, not to the caller's request). On SQLite, call `add_*`/`pin` before your
request has written anything, or the two connections will wait on each other.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from sqlalchemy.orm import Session, sessionmaker

from marketplace.content import car, dag
from marketplace.content.cid import Cid, parse_cid
from marketplace.content.dag import DagReader
from marketplace.content.errors import ContentNotFound, PinNotFound
from marketplace.content.importer import (
    ImportOptions,
    Node,
    import_bytes,
    import_path,
    import_stream,
)
from marketplace.content.store import AddedCallback
from node.content import repository
from node.content.blockstore import FsBlocks


class EmbeddedStore(DagReader):
    """A `ContentStore` on local disk and the node's database."""

    def __init__(self, blocks_dir: Path, sessions: sessionmaker[Session]) -> None:
        self.blocks = FsBlocks(blocks_dir)
        self.blocks.remove_temp_files()
        self._sessions = sessions
        # Held by imports-with-pin and by gc, so gc never sweeps a DAG being pinned.
        self._lock = threading.RLock()

    # -- adding -------------------------------------------------------------------
    def _add(self, do_import: Callable[[], Node], pin: bool) -> str:
        with self._lock:
            with self.blocks.batch():
                node: Node = do_import()
            cid = str(node.cid)
            if pin:  # every block was just written or found present: no re-walk needed
                self._record_pin(cid)
            return cid

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
            return out

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

    def gc(self) -> int:
        """Delete every block no pin reaches; return how many were removed. A pinned DAG
        with a missing or corrupt block keeps what it can still reach."""
        with self._lock:
            live: set[str] = set()
            for root in self.pins():
                stack = [parse_cid(root)]
                while stack:
                    cid = stack.pop()
                    key = FsBlocks.key(cid)
                    if key in live:
                        continue
                    live.add(key)
                    try:
                        block = self.blocks.get(cid)
                    except Exception:  # missing/corrupt: nothing below it is reachable
                        continue
                    stack.extend(dag.child_cids(cid, block))
            removed = 0
            for key in list(self.blocks.keys()):
                if key not in live:
                    self.blocks.delete(key)
                    removed += 1
            return removed
