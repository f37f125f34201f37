"""The streaming UnixFS importer: the same DAG, hence the same CID, as Kubo's `ipfs add`.

Defaults are Kubo's: CIDv0, dag-pb file leaves, fixed 262144-byte chunks, balanced layout
with at most 174 links per node, no hidden files in recursive adds. `cid_version=1` implies
raw leaves (as in Kubo) unless `raw_leaves=False` is given.

Memory stays constant in the file size: one chunk buffer is reused, each chunk is fed to
sha256 without being copied, and the tree is built bottom-up keeping at most 174 links per
level. Blocks go to an optional `BlockSink` (a store); without one, only the CID is computed.
A sink receives the block as a list of buffers that are only valid during the call.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

from marketplace.content.cid import DAG_PB, RAW, Cid, encode_varint
from marketplace.content.dagpb import (
    DIRECTORY_DATA,
    encode_link,
    encode_node,
    leaf_prefix,
    unixfs_file_parent,
)
from marketplace.content.hamt import build_hamt
from marketplace.content.nodes import (  # noqa: F401  (importable from here too)
    CHUNK_SIZE,
    HAMT_SHARDING_SIZE,
    MAX_LINKS,
    BlockSink,
    Buffer,
    ImportOptions,
    Node,
)


class FileBuilder:
    """Build one file's DAG from consecutive chunks of exactly `chunk_size` bytes (the last
    one may be shorter). Call `write_chunk` per chunk, then `finish` for the root."""

    def __init__(self, options: ImportOptions = ImportOptions(), sink: BlockSink | None = None):
        self.options = options
        self.sink = sink
        self._raw = options.use_raw_leaves
        self._version = options.cid_version
        # levels[0] holds leaves; each entry (cid, tsize, filesize)
        self._levels: list[list[tuple[Cid, int, int]]] = [[]]
        self._chunks = 0
        self.size = 0

    def write_chunk(self, chunk: Buffer) -> None:
        n = len(chunk)
        self._chunks += 1
        self.size += n
        if self._raw:
            cid = Cid.from_digest(hashlib.sha256(chunk).digest(), version=1, codec=RAW)
            if self.sink is not None:
                self.sink.put(cid, (chunk,))
            self._push(0, (cid, n, n))
            return
        head, tail = leaf_prefix(n)
        h = hashlib.sha256(head)
        h.update(chunk)
        h.update(tail)
        cid = Cid.from_digest(h.digest(), version=self._version, codec=DAG_PB)
        if self.sink is not None:
            self.sink.put(cid, (head, chunk, tail))
        self._push(0, (cid, len(head) + n + len(tail), n))

    def _push(self, level: int, entry: tuple[Cid, int, int]) -> None:
        if level == len(self._levels):
            self._levels.append([])
        row = self._levels[level]
        if len(row) == self.options.max_links:
            self._levels[level] = []
            self._push(level + 1, self._parent(row))
            row = self._levels[level]
        row.append(entry)

    def _parent(self, children: list[tuple[Cid, int, int]]) -> tuple[Cid, int, int]:
        links = [encode_link(c.to_bytes(), b"", t) for c, t, _ in children]
        filesize = sum(f for _, _, f in children)
        data = unixfs_file_parent(filesize, [f for _, _, f in children])
        block = encode_node(links, data)
        cid = Cid.of_block(block, version=self._version, codec=DAG_PB)
        if self.sink is not None:
            self.sink.put(cid, (block,))
        return cid, len(block) + sum(t for _, t, _ in children), filesize

    def finish(self) -> Node:
        if self._chunks == 0:
            self.write_chunk(b"")
        levels = self._levels
        i = 0
        while True:
            row = levels[i]
            higher = any(levels[j] for j in range(i + 1, len(levels)))
            if not higher and len(row) == 1:
                cid, tsize, filesize = row[0]
                return Node(cid, tsize, filesize)
            if row:
                parent = self._parent(row)
                levels[i] = []
                if i + 1 == len(levels):
                    levels.append([])
                levels[i + 1].append(parent)
            i += 1


def _readinto_full(stream: BinaryIO, view: memoryview) -> int:
    """Fill `view` from `stream` unless it ends first; return the bytes read."""
    got = 0
    while got < len(view):
        n = stream.readinto(view[got:])  # type: ignore[attr-defined]
        if not n:
            break
        got += n
    return got


def import_stream(
    stream: BinaryIO, options: ImportOptions = ImportOptions(), sink: BlockSink | None = None
) -> Node:
    """Import a file from a binary stream (anything with `readinto`)."""
    builder = FileBuilder(options, sink)
    buf = bytearray(options.chunk_size)
    view = memoryview(buf)
    while True:
        n = _readinto_full(stream, view)
        if n == 0:
            break
        builder.write_chunk(view if n == len(buf) else view[:n])
        if n < len(buf):
            break
    return builder.finish()


def import_chunks(
    chunks: Iterable[Buffer],
    options: ImportOptions = ImportOptions(),
    sink: BlockSink | None = None,
) -> Node:
    """Import a file given as an iterable of byte pieces of any sizes (re-chunked here)."""
    builder = FileBuilder(options, sink)
    pending = bytearray()
    size = options.chunk_size
    for piece in chunks:
        mv = memoryview(piece)
        if not pending and len(mv) >= size:
            full = len(mv) - len(mv) % size
            for off in range(0, full, size):
                builder.write_chunk(mv[off : off + size])
            mv = mv[full:]
        pending += mv
        while len(pending) >= size:
            builder.write_chunk(memoryview(pending)[:size])
            del pending[:size]
    if pending:
        builder.write_chunk(pending)
    return builder.finish()


def import_bytes(
    data: Buffer, options: ImportOptions = ImportOptions(), sink: BlockSink | None = None
) -> Node:
    return import_chunks((data,), options, sink)


def build_directory(
    entries: Iterable[tuple[str, Node]],
    options: ImportOptions = ImportOptions(),
    sink: BlockSink | None = None,
) -> Node:
    """A UnixFS directory node over named children, links sorted by name bytewise (as
    go-merkledag sorts them), or a HAMT shard where Kubo would build one. Names must be
    unique and contain no `/`."""
    items = sorted(((name.encode("utf-8"), node) for name, node in entries), key=lambda x: x[0])
    for i in range(1, len(items)):
        if items[i][0] == items[i - 1][0]:
            raise ValueError(f"duplicate name {items[i][0]!r} in a directory")
    estimate = sum(len(name) + len(n.cid.to_bytes()) for name, n in items)
    if estimate >= options.hamt_sharding_size:
        return build_hamt(items, options, sink)
    links = [encode_link(n.cid.to_bytes(), name, n.tsize) for name, n in items]
    block = encode_node(links, DIRECTORY_DATA)
    cid = Cid.of_block(block, version=options.cid_version, codec=DAG_PB)
    if sink is not None:
        sink.put(cid, (block,))
    return Node(cid, len(block) + sum(n.tsize for _, n in items), 0, is_dir=True)


def build_symlink(target: str, options: ImportOptions, sink: BlockSink | None) -> Node:
    t = target.encode("utf-8")

    data = b"\x08\x04\x12" + encode_varint(len(t)) + t
    block = encode_node([], data)
    cid = Cid.of_block(block, version=options.cid_version, codec=DAG_PB)
    if sink is not None:
        sink.put(cid, (block,))
    return Node(cid, len(block), 0)


EntryCallback = Callable[[str, Node], None]


def import_path(
    path: Path | str,
    options: ImportOptions = ImportOptions(),
    sink: BlockSink | None = None,
    on_entry: EntryCallback | None = None,
) -> Node:
    """Import a file or a directory tree like `ipfs add -r PATH`. `on_entry(relpath, node)`
    is called for every file and directory in Kubo's output order (a directory after its
    contents, the root, named after the path's last component, last)."""
    path = Path(path)
    return _import_any(path, path.name, options, sink, on_entry)


def _import_any(
    path: Path,
    rel: str,
    options: ImportOptions,
    sink: BlockSink | None,
    on_entry: EntryCallback | None,
) -> Node:
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        node = build_symlink(os.readlink(path), options, sink)
    elif stat.S_ISDIR(st.st_mode):
        children = []
        with os.scandir(path) as it:
            names = sorted(e.name for e in it)
        for name in names:
            if name.startswith(".") and not options.include_hidden:
                continue
            children.append(
                (name, _import_any(path / name, f"{rel}/{name}", options, sink, on_entry))
            )
        node = build_directory(children, options, sink)
    elif stat.S_ISREG(st.st_mode):
        with open(path, "rb", buffering=0) as f:
            node = import_stream(f, options, sink)  # type: ignore[arg-type]
    else:
        raise ValueError(f"{path}: not a regular file, directory or symlink")
    if on_entry is not None:
        on_entry(rel, node)
    return node
