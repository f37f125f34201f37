"""Reading UnixFS DAGs over any verified block source: walk (for CAR export, pin
reachability and `has`), `cat` with offset/length, `ls`, path resolution and `stat`.

A block source is a callable `get(cid) -> bytes` that raises `ContentNotFound` when the
block is absent and only ever returns bytes that hash to `cid` (stores verify on read).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from marketplace.content.cid import DAG_PB, RAW, Cid, parse_cid
from marketplace.content.dagpb import (
    DIRECTORY,
    FILE,
    HAMT_SHARD,
    RAW_T,
    SYMLINK,
    decode_node,
    decode_unixfs,
)
from marketplace.content.errors import ContentNotFound, InvalidBlock, NotADirectory, NotAFile
from marketplace.content.hamt import iter_shard
from marketplace.content.store import Entry

GetBlock = Callable[[Cid], bytes]


def child_cids(cid: Cid, block: bytes) -> list[Cid]:
    if cid.codec == RAW:
        return []
    if cid.codec != DAG_PB:
        raise InvalidBlock(f"unsupported codec 0x{cid.codec:x}")
    return [link.cid for link in decode_node(block).links]


def walk(get: GetBlock, root: Cid) -> Iterator[tuple[Cid, bytes]]:
    """Every block of the DAG under `root`, depth-first pre-order, each once."""
    seen: set[bytes] = set()
    stack = [root]
    while stack:
        cid = stack.pop()
        key = cid.to_bytes()
        if key in seen:
            continue
        seen.add(key)
        block = get(cid)
        yield cid, block
        stack.extend(reversed(child_cids(cid, block)))


@dataclass(frozen=True)
class Stat:
    cid: Cid
    is_dir: bool
    filesize: int  # file bytes; 0 for directories
    type: int


def stat(get: GetBlock, cid: Cid) -> Stat:
    block = get(cid)
    if cid.codec == RAW:
        return Stat(cid, False, len(block), RAW_T)
    fs = decode_unixfs(decode_node(block).data)
    if fs.type in (DIRECTORY, HAMT_SHARD):
        return Stat(cid, True, 0, fs.type)
    if fs.type in (FILE, RAW_T):
        return Stat(cid, False, fs.filesize if fs.filesize is not None else len(fs.data), fs.type)
    return Stat(cid, False, len(fs.data), fs.type)


def ls(get: GetBlock, cid: Cid) -> list[Entry]:
    """The links of a directory, in DAG order, with each child's file size or, for a
    subdirectory, its cumulative size."""
    block = get(cid)
    if cid.codec != DAG_PB:
        raise NotADirectory(f"{cid} is not a directory")
    out = []
    for name, child, tsize in dir_links(get, cid, block):
        st = stat(get, child)
        size = tsize if st.is_dir else st.filesize
        out.append(Entry(name, str(child), size, st.is_dir))
    return out


def dir_links(get: GetBlock, cid: Cid, block: bytes) -> Iterator[tuple[str, Cid, int]]:
    """(name, cid, tsize) of a directory's entries, plain or HAMT-sharded."""
    if cid.codec != DAG_PB:
        raise NotADirectory(f"{cid} is not a directory")
    node = decode_node(block)
    fs = decode_unixfs(node.data)
    if fs.type == HAMT_SHARD:
        yield from iter_shard(get, cid)
        return
    if fs.type != DIRECTORY:
        raise NotADirectory(f"{cid} is not a directory")
    for link in node.links:
        yield link.name, link.cid, link.tsize


def resolve(get: GetBlock, ref: str) -> Cid:
    """Resolve `CID`, `CID/a/b` or `/ipfs/CID/a/b` to the CID of the named node."""
    ref = ref.strip()
    if ref.startswith("/ipfs/"):
        ref = ref[len("/ipfs/") :]
    head, _, rest = ref.partition("/")
    cid = parse_cid(head)
    for name in (p for p in rest.split("/") if p):
        for link_name, child, _ in dir_links(get, cid, get(cid)):
            if link_name == name:
                cid = child
                break
        else:
            raise ContentNotFound(f"no link named {name!r} under {cid}")
    return cid


def cat(get: GetBlock, cid: Cid, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
    """Stream a file's bytes from `offset`, at most `length` of them, skipping subtrees
    outside the range by their block sizes."""
    if offset < 0 or (length is not None and length < 0):
        raise ValueError("offset and length must be >= 0")
    end = None if length is None else offset + length
    root = get(cid)
    if cid.codec == DAG_PB:
        fs = decode_unixfs(decode_node(root).data)
        if fs.type in (DIRECTORY, HAMT_SHARD):
            raise NotAFile(f"{cid} is a directory")
        if fs.type == SYMLINK:
            raise NotAFile(f"{cid} is a symlink")
    yield from _cat(get, cid, root, 0, offset, end)


def _cat(
    get: GetBlock, cid: Cid, block: bytes, start: int, offset: int, end: int | None
) -> Iterator[bytes]:
    """Bytes of the subtree `cid` (which begins at file position `start`) within
    [offset, end)."""
    if cid.codec == RAW:
        data: bytes = block
        children: list[tuple[Cid, int]] = []
    else:
        node = decode_node(block)
        fs = decode_unixfs(node.data)
        if fs.type not in (FILE, RAW_T):
            raise InvalidBlock(f"unexpected UnixFS type {fs.type} inside a file")
        data = fs.data
        if len(fs.blocksizes) != len(node.links):
            raise InvalidBlock("blocksizes do not match links")
        children = [(link.cid, bs) for link, bs in zip(node.links, fs.blocksizes, strict=True)]
    if data:
        lo = max(offset - start, 0)
        hi = len(data) if end is None else min(end - start, len(data))
        if lo < hi:
            yield data[lo:hi]
    pos = start + len(data)
    for child, size in children:
        if end is not None and pos >= end:
            return
        if pos + size > offset:
            yield from _cat(get, child, get(child), pos, offset, end)
        pos += size


class DagReader:
    """The read side every content store shares, over one verified block fetcher.

    Subclasses implement `_get(cid) -> bytes` (raising `ContentNotFound` for a missing
    block and `CorruptBlock` for bytes that do not hash to the CID); the rest follows."""

    def _get(self, cid: Cid) -> bytes:
        raise NotImplementedError

    def get_block(self, cid: str) -> bytes:
        return self._get(parse_cid(cid))

    def resolve(self, ref: str) -> str:
        return str(resolve(self._get, ref))

    def cat(self, cid: str, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        return cat(self._get, resolve(self._get, cid), offset, length)

    def ls(self, cid: str) -> list[Entry]:
        return ls(self._get, resolve(self._get, cid))

    def stat(self, cid: str) -> Stat:
        return stat(self._get, resolve(self._get, cid))

    def has(self, cid: str) -> bool:
        try:
            for _ in walk(self._get, parse_cid(cid)):
                pass
        except ContentNotFound:
            return False
        return True

    def export_car(self, cid: str) -> Iterator[bytes]:
        from marketplace.content import car

        root = parse_cid(cid)
        return car.write_car([root], walk(self._get, root))
