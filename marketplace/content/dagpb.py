"""dag-pb nodes and the UnixFS `Data` message inside them, encoded byte for byte as Kubo
(go-merkledag, go-unixfs) writes them, and decoded strictly enough to walk a DAG.

Encoding (protobuf): a PBNode is its links first (field 2, each `0A hash 12 name 18 tsize`),
then its data (field 1). UnixFS Data: Type (1), Data (2), filesize (3), blocksizes (4,
one key per value, not packed).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from marketplace.content.cid import Cid, decode_varint, encode_varint
from marketplace.content.errors import InvalidBlock

# UnixFS Data.Type
RAW_T = 0
DIRECTORY = 1
FILE = 2
METADATA = 3
SYMLINK = 4
HAMT_SHARD = 5


@dataclass(frozen=True, slots=True)
class Link:
    cid: Cid
    name: str
    tsize: int


@dataclass(slots=True)
class UnixFS:
    type: int
    data: bytes = b""
    filesize: int | None = None
    blocksizes: list[int] = field(default_factory=list)


@dataclass(slots=True)
class PBNode:
    links: list[Link]
    data: bytes | None


def encode_link(cid_bytes: bytes, name: bytes, tsize: int) -> bytes:
    body = (
        b"\x0a"
        + encode_varint(len(cid_bytes))
        + cid_bytes
        + b"\x12"
        + encode_varint(len(name))
        + name
        + b"\x18"
        + encode_varint(tsize)
    )
    return b"\x12" + encode_varint(len(body)) + body


def encode_node(links: Iterable[bytes], data: bytes) -> bytes:
    """A PBNode from already encoded links (see `encode_link`) and its Data bytes."""
    return b"".join(links) + b"\x0a" + encode_varint(len(data)) + data


def unixfs_file_parent(filesize: int, blocksizes: Sequence[int]) -> bytes:
    return (
        b"\x08\x02\x18"
        + encode_varint(filesize)
        + b"".join(b"\x20" + encode_varint(bs) for bs in blocksizes)
    )


DIRECTORY_DATA = b"\x08\x01"


def leaf_prefix(n: int) -> tuple[bytes, bytes]:
    """The bytes around a chunk of `n` bytes in a UnixFS file leaf node:
    `0A len(08 02 [12 n] data 18 n)`. Returns (before the data, after the data)."""
    size = encode_varint(n)
    inner_head = b"\x08\x02" + (b"\x12" + size if n else b"")
    inner_tail = b"\x18" + size
    inner_len = len(inner_head) + n + len(inner_tail)
    return b"\x0a" + encode_varint(inner_len) + inner_head, inner_tail


def _fields(buf: bytes | memoryview) -> Iterable[tuple[int, int, int | memoryview]]:
    """Yield (field number, wire type, value) of a protobuf message."""
    mv = memoryview(buf)
    pos = 0
    end = len(mv)
    while pos < end:
        key, pos = decode_varint(mv, pos)
        num, wt = key >> 3, key & 7
        if wt == 0:
            val, pos = decode_varint(mv, pos)
            yield num, wt, val
        elif wt == 2:
            ln, pos = decode_varint(mv, pos)
            if pos + ln > end:
                raise ValueError("truncated length-delimited field")
            yield num, wt, mv[pos : pos + ln]
            pos += ln
        else:
            raise ValueError(f"unsupported wire type {wt}")


def decode_node(block: bytes | memoryview) -> PBNode:
    """Decode a dag-pb block; raise InvalidBlock when it is not one."""
    links: list[Link] = []
    data: bytes | None = None
    try:
        for num, wt, val in _fields(block):
            if num == 2 and wt == 2:
                assert isinstance(val, memoryview)
                cid: Cid | None = None
                name = ""
                tsize = 0
                for lnum, lwt, lval in _fields(val):
                    if lnum == 1 and lwt == 2:
                        assert isinstance(lval, memoryview)
                        cid = Cid.from_bytes(bytes(lval))
                    elif lnum == 2 and lwt == 2:
                        assert isinstance(lval, memoryview)
                        name = bytes(lval).decode("utf-8")
                    elif lnum == 3 and lwt == 0:
                        assert isinstance(lval, int)
                        tsize = lval
                if cid is None:
                    raise ValueError("link without hash")
                links.append(Link(cid, name, tsize))
            elif num == 1 and wt == 2:
                assert isinstance(val, memoryview)
                data = bytes(val)
            else:
                raise ValueError(f"unexpected field {num}")
    except (ValueError, UnicodeDecodeError, AssertionError) as exc:
        raise InvalidBlock(f"not a dag-pb node: {exc}") from exc
    except Exception as exc:  # InvalidCid of a link
        raise InvalidBlock(f"not a dag-pb node: {exc}") from exc
    return PBNode(links, data)


def decode_unixfs(data: bytes | None) -> UnixFS:
    if data is None:
        raise InvalidBlock("dag-pb node without UnixFS data")
    out = UnixFS(type=-1)
    try:
        for num, wt, val in _fields(data):
            if num == 1 and wt == 0:
                assert isinstance(val, int)
                out.type = val
            elif num == 2 and wt == 2:
                assert isinstance(val, memoryview)
                out.data = bytes(val)
            elif num == 3 and wt == 0:
                assert isinstance(val, int)
                out.filesize = val
            elif num == 4 and wt == 0:
                assert isinstance(val, int)
                out.blocksizes.append(val)
            elif num == 4 and wt == 2:  # packed, as some writers emit
                assert isinstance(val, memoryview)
                p = 0
                while p < len(val):
                    v, p = decode_varint(val, p)
                    out.blocksizes.append(v)
    except (ValueError, AssertionError) as exc:
        raise InvalidBlock(f"invalid UnixFS data: {exc}") from exc
    if out.type < 0:
        raise InvalidBlock("UnixFS data without a type")
    return out
