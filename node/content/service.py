"""Content rules shared by the Kubo RPC dialect and the gateway: adding a spooled upload
as `ipfs add` does, streaming tar archives and CAR files, and priming streams so that
errors surface as a status code before the first byte is sent."""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from dataclasses import dataclass

from marketplace.content import dag
from marketplace.content.cid import parse_cid
from marketplace.content.store import ContentStore
from node.content.uploads import SpooledTree


@dataclass(frozen=True)
class Added:
    name: str
    cid: str
    size: int

    def kubo(self) -> dict[str, str]:
        """One line of `ipfs add` JSON output (Kubo prints Size as a string)."""
        return {"Name": self.name, "Hash": self.cid, "Size": str(self.size)}


def add_spooled(
    store: ContentStore,
    tree: SpooledTree,
    *,
    pin: bool,
    cid_version: int,
    raw_leaves: bool | None,
    wrap: bool,
) -> list[Added]:
    """Add what an upload spooled, entry by entry as Kubo reports them (contents before
    their directory); with `wrap`, the wrapping directory comes last with an empty name."""
    out: list[Added] = []
    if wrap:
        prefix = tree.root.name

        def on_wrapped(rel: str, cid: str, size: int) -> None:
            name = "" if rel == prefix else rel[len(prefix) + 1 :]
            out.append(Added(name, cid, size))

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
            out.append(Added(shown, cid, size))

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
