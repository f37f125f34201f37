"""Content rules shared by the Kubo RPC dialect and the gateway: adding a spooled upload
as `ipfs add` does, streaming tar archives and CAR files, and priming streams so that
errors surface as a status code before the first byte is sent."""

from __future__ import annotations

import json
import queue
import shutil
import tarfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from marketplace.content import dag
from marketplace.content.cid import parse_cid
from marketplace.content.store import ContentStore
from marketplace.errors import MarketplaceError, PinInUse
from node.content.uploads import SpooledTree
from node.jobs.service import jobs_needing_cid


@dataclass(frozen=True)
class Added:
    name: str
    cid: str
    size: int
    file_bytes: int | None = None  # a file's length (None for a directory)

    def kubo(self) -> dict[str, str]:
        """One line of `ipfs add` JSON output (Kubo prints Size as a string)."""
        return {"Name": self.name, "Hash": self.cid, "Size": str(self.size)}

    def progress(self) -> dict[str, str | int]:
        """The `progress=true` line Kubo sends once a file's bytes are read."""
        return {"Name": self.name, "Bytes": self.file_bytes or 0}


def add_spooled(
    store: ContentStore,
    tree: SpooledTree,
    *,
    pin: bool,
    cid_version: int,
    raw_leaves: bool | None,
    wrap: bool,
    on_added: Callable[[Added], None] | None = None,
) -> list[Added]:
    """Add what an upload spooled, entry by entry as Kubo reports them (contents before
    their directory); with `wrap`, the wrapping directory comes last with an empty name.
    `on_added` sees each entry as soon as it is stored (for streamed progress)."""
    out: list[Added] = []

    def emit(added: Added) -> None:
        out.append(added)
        if on_added is not None:
            on_added(added)

    def file_bytes(path: Path) -> int | None:
        return path.stat().st_size if path.is_file() else None

    if wrap:
        prefix = tree.root.name

        def on_wrapped(rel: str, cid: str, size: int) -> None:
            name = "" if rel == prefix else rel[len(prefix) + 1 :]
            emit(Added(name, cid, size, file_bytes(tree.root.parent / rel)))

        store.add_path(
            tree.root,
            pin=pin,
            cid_version=cid_version,
            raw_leaves=raw_leaves,
            include_hidden=True,
            on_entry=on_wrapped,
        )
        return out
    for name in tree.top_level:

        def on_entry(rel: str, cid: str, size: int, _name: str = name) -> None:
            shown = cid if rel in tree.unnamed else rel
            emit(Added(shown, cid, size, file_bytes(tree.root / rel)))

        store.add_path(
            tree.root / name,
            pin=pin,
            cid_version=cid_version,
            raw_leaves=raw_leaves,
            include_hidden=True,
            on_entry=on_entry,
        )
    return out


def primed(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Pull the first chunk now (so a missing or corrupt root raises before the response
    starts), then hand back an iterator over everything."""
    first = next(chunks, None)

    def rest() -> Iterator[bytes]:
        if first is not None:
            yield first
        yield from chunks

    return rest()


def _pad(n: int) -> bytes:
    return b"\0" * (-n % tarfile.BLOCKSIZE)


def tar_stream(store: ContentStore, ref: str, name: str) -> Iterator[bytes]:
    """A tar archive of a file or directory, as `ipfs get` returns it: entries under
    `name`, directories first then their children in DAG order, mtime 0 (deterministic)."""
    cid = store.resolve(ref)

    def header(path: str, kind: bytes, size: int = 0) -> bytes:
        info = tarfile.TarInfo(path)
        info.type = kind
        info.size = size
        info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
        info.mtime = 0
        return info.tobuf(format=tarfile.PAX_FORMAT)

    def entry(path: str, cid: str, is_dir: bool, size: int) -> Iterator[bytes]:
        if is_dir:
            yield header(path, tarfile.DIRTYPE)
            for child in store.ls(cid):
                child_size = 0 if child.is_dir else child.size
                yield from entry(f"{path}/{child.name}", child.cid, child.is_dir, child_size)
            return
        yield header(path, tarfile.REGTYPE, size)
        sent = 0
        for chunk in store.cat(cid):
            sent += len(chunk)
            yield chunk
        yield _pad(sent)

    def run() -> Iterator[bytes]:
        st = stat_of(store, cid)
        yield from entry(name, cid, st.is_dir, st.filesize)
        yield b"\0" * (2 * tarfile.BLOCKSIZE)

    return run()


def stat_of(store: ContentStore, cid: str) -> dag.Stat:
    """Type and file size of the node `cid` (a CID, no path)."""
    return dag.stat(lambda c: store.get_block(str(c)), parse_cid(cid))


def remove_pin(session: Session, store: ContentStore, cid: str) -> None:
    """Unpin `cid` unless a job that has not finished needs it (409 PIN_IN_USE): the
    dataset, metadata and result pins of a live job stay, whoever asks."""
    needed_by = jobs_needing_cid(session, cid)
    if needed_by:
        raise PinInUse(
            f"{cid} is the dataset, metadata or result of a job that has not finished",
            details={"jobs": [f"job_{i}" for i in needed_by]},
        )
    store.unpin(cid)


def add_streamed(
    run: Callable[[Callable[[Added], None]], object], scratch: Path
) -> Iterator[bytes]:
    """Run an add (`run(on_added)`) in a thread of its own and yield its NDJSON lines as
    entries are stored: each file's progress line, then its entry. An error after the
    response started is one Kubo error object (`{"Message", "Code", "Type": "error"}`),
    the way Kubo reports a failure inside a stream. `scratch` is removed at the end."""
    lines: queue.Queue[object] = queue.Queue()  # unbounded: a gone client never blocks the add
    done = object()

    def on_added(added: Added) -> None:
        if added.file_bytes is not None:
            lines.put(added.progress())
        lines.put(added.kubo())

    def work() -> None:
        try:
            run(on_added)
            lines.put(done)
        except Exception as exc:  # reported in the stream; the status is already sent
            lines.put(exc)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    threading.Thread(target=work, name="kubo-add", daemon=True).start()
    while True:
        item = lines.get()
        if item is done:
            return
        if isinstance(item, Exception):
            message = str(item) if isinstance(item, MarketplaceError) else "internal error"
            obj: object = {"Message": message, "Code": 0, "Type": "error"}
            yield (json.dumps(obj, separators=(",", ":")) + "\n").encode()
            return
        yield (json.dumps(item, separators=(",", ":")) + "\n").encode()
