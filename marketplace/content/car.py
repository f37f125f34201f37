"""CARv1 (Content Addressable aRchive) export and import of a DAG, as `ipfs dag export` /
`ipfs dag import` exchange them.

Layout: `varint(len) dag-cbor{"roots": [CID...], "version": 1}`, then per block
`varint(len(cid)+len(data)) cid data`. Reading verifies every block against its CID.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO

from marketplace.content.cid import Cid, decode_varint, encode_varint
from marketplace.content.errors import InvalidBlock

MAX_SECTION = 8 * 1024 * 1024  # no UnixFS block comes near this; bounds a hostile CAR


def _cbor_head(major: int, n: int) -> bytes:
    if n < 24:
        return bytes((major << 5 | n,))
    for add, width in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if n < 1 << (8 * width):
            return bytes((major << 5 | add,)) + n.to_bytes(width, "big")
    raise ValueError("integer too large")


def _cbor_text(s: str) -> bytes:
    b = s.encode()
    return _cbor_head(3, len(b)) + b


def encode_header(roots: list[Cid]) -> bytes:
    """The dag-cbor header (map keys in canonical length-first order: roots, version)."""
    out = _cbor_head(5, 2) + _cbor_text("roots") + _cbor_head(4, len(roots))
    for root in roots:
        raw = b"\x00" + root.to_bytes()
        out += b"\xd8\x2a" + _cbor_head(2, len(raw)) + raw
    out += _cbor_text("version") + _cbor_head(0, 1)
    return encode_varint(len(out)) + out


def _cbor_decode(buf: bytes, pos: int) -> tuple[Any, int]:
    ib = buf[pos]
    pos += 1
    major, add = ib >> 5, ib & 31
    if add < 24:
        n = add
    elif add in (24, 25, 26, 27):
        width = 1 << (add - 24)
        n = int.from_bytes(buf[pos : pos + width], "big")
        pos += width
    else:
        raise ValueError("indefinite or reserved CBOR item")
    if major == 0:
        return n, pos
    if major in (2, 3):
        raw = buf[pos : pos + n]
        if len(raw) != n:
            raise ValueError("truncated CBOR string")
        return (raw if major == 2 else raw.decode()), pos + n
    if major == 4:
        items = []
        for _ in range(n):
            item, pos = _cbor_decode(buf, pos)
            items.append(item)
        return items, pos
    if major == 5:
        obj = {}
        for _ in range(n):
            k, pos = _cbor_decode(buf, pos)
            v, pos = _cbor_decode(buf, pos)
            obj[k] = v
        return obj, pos
    if major == 6 and n == 42:
        raw, pos = _cbor_decode(buf, pos)
        if not isinstance(raw, bytes) or not raw.startswith(b"\x00"):
            raise ValueError("bad CID in CBOR")
        return Cid.from_bytes(raw[1:]), pos
    raise ValueError(f"unsupported CBOR major type {major}")


def write_car(roots: list[Cid], blocks: Iterable[tuple[Cid, bytes]]) -> Iterator[bytes]:
    """Yield the CAR stream piece by piece (header, then one section per block).

    The first block is read before the header is yielded: a root that is not stored
    raises from the first `next()`, while a server can still answer with an error status
    (as Kubo does), instead of a 200 carrying a header and nothing else."""
    blocks = iter(blocks)
    first = next(blocks, None)
    yield encode_header(roots)
    for cid, data in itertools.chain([first] if first is not None else [], blocks):
        raw = cid.to_bytes()
        yield encode_varint(len(raw) + len(data)) + raw
        yield data


def _read_exact(stream: BinaryIO, n: int) -> bytes:
    data = stream.read(n)
    if len(data) != n:
        raise InvalidBlock("truncated CAR")
    return data


def _read_varint(stream: BinaryIO) -> int | None:
    buf = bytearray()
    while True:
        b = stream.read(1)
        if not b:
            if buf:
                raise InvalidBlock("truncated varint in CAR")
            return None
        buf += b
        if not b[0] & 0x80:
            return decode_varint(bytes(buf))[0]
        if len(buf) > 9:
            raise InvalidBlock("varint too long in CAR")


def read_car(stream: BinaryIO) -> tuple[list[Cid], Iterator[tuple[Cid, bytes]]]:
    """Parse a CARv1 stream: its roots, and an iterator of verified (cid, block) pairs.
    A block that does not hash to its CID raises InvalidBlock."""
    n = _read_varint(stream)
    if n is None or n > MAX_SECTION:
        raise InvalidBlock("not a CAR file (no header)")
    try:
        header, end = _cbor_decode(_read_exact(stream, n), 0)
    except (ValueError, IndexError, UnicodeDecodeError) as exc:
        raise InvalidBlock(f"bad CAR header: {exc}") from exc
    if not isinstance(header, dict) or header.get("version") != 1 or end != n:
        raise InvalidBlock("not a CARv1 header")
    roots = header.get("roots")
    if not isinstance(roots, list) or not all(isinstance(r, Cid) for r in roots):
        raise InvalidBlock("bad CAR roots")

    def blocks() -> Iterator[tuple[Cid, bytes]]:
        while True:
            size = _read_varint(stream)
            if size is None:
                return
            if size > MAX_SECTION:
                raise InvalidBlock("CAR section too large")
            section = _read_exact(stream, size)
            try:
                cid, pos = Cid.read(section, 0)
            except Exception as exc:
                raise InvalidBlock(f"bad CID in CAR: {exc}") from exc
            data = section[pos:]
            if not cid.verify(data):
                raise InvalidBlock(f"block {cid} in CAR does not match its hash")
            yield cid, data

    return list(roots), blocks()
