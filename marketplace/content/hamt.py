"""HAMT-sharded UnixFS directories, as Kubo builds them for directories whose links reach
`HAMT_SHARDING_SIZE` (boxo `ipld/unixfs/hamt`): fanout 256, names hashed with murmur3-x64-64
(the first 64 bits of murmur3 x64 128, seed 0, big-endian), one byte of the hash per level.

A shard node's links are sorted by slot; a slot holding one entry links it as
`%02X<slot>` + name, a slot where several entries collide links a child shard as just
`%02X<slot>`. Data: `Type=HAMTShard(5), Data=bitfield (big-endian, leading zero bytes
stripped), hashType=0x22, fanout=256`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from marketplace.content.cid import DAG_PB, Cid, encode_varint
from marketplace.content.dagpb import (
    HAMT_SHARD,
    decode_node,
    decode_unixfs,
    encode_link,
    encode_node,
)
from marketplace.content.nodes import BlockSink, ImportOptions, Node

FANOUT = 256
MURMUR3_X64_64 = 0x22
_M = 0xFFFFFFFFFFFFFFFF


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (64 - r))) & _M


def _fmix(k: int) -> int:
    k ^= k >> 33
    k = (k * 0xFF51AFD7ED558CCD) & _M
    k ^= k >> 33
    k = (k * 0xC4CEB9FE1A85EC53) & _M
    k ^= k >> 33
    return k


def murmur3_x64_128(data: bytes, seed: int = 0) -> tuple[int, int]:
    c1, c2 = 0x87C37B91114253D5, 0x4CF5AD432745937F
    h1 = h2 = seed
    n = len(data)
    nblocks = n // 16
    for i in range(nblocks):
        k1 = int.from_bytes(data[16 * i : 16 * i + 8], "little")
        k2 = int.from_bytes(data[16 * i + 8 : 16 * i + 16], "little")
        k1 = (_rotl((k1 * c1) & _M, 31) * c2) & _M
        h1 ^= k1
        h1 = (((_rotl(h1, 27) + h2) & _M) * 5 + 0x52DCE729) & _M
        k2 = (_rotl((k2 * c2) & _M, 33) * c1) & _M
        h2 ^= k2
        h2 = (((_rotl(h2, 31) + h1) & _M) * 5 + 0x38495AB5) & _M
    tail = data[16 * nblocks :]
    if len(tail) > 8:
        k2 = int.from_bytes(tail[8:], "little")
        h2 ^= (_rotl((k2 * c2) & _M, 33) * c1) & _M
    if tail:
        k1 = int.from_bytes(tail[:8], "little")
        h1 ^= (_rotl((k1 * c1) & _M, 31) * c2) & _M
    h1 ^= n
    h2 ^= n
    h1 = (h1 + h2) & _M
    h2 = (h2 + h1) & _M
    h1 = _fmix(h1)
    h2 = _fmix(h2)
    h1 = (h1 + h2) & _M
    h2 = (h2 + h1) & _M
    return h1, h2


def name_hash(name: bytes) -> bytes:
    """murmur3-x64-64 of a name: 8 bytes, big-endian, consumed from the first byte."""
    return murmur3_x64_128(name)[0].to_bytes(8, "big")


def _shard_data(slots: Sequence[int]) -> bytes:
    bits = 0
    for s in slots:
        bits |= 1 << s
    bitfield = bits.to_bytes((bits.bit_length() + 7) // 8, "big")
    return (
        b"\x08\x05\x12"
        + encode_varint(len(bitfield))
        + bitfield
        + b"\x28"
        + encode_varint(MURMUR3_X64_64)
        + b"\x30"
        + encode_varint(FANOUT)
    )


def build_hamt(
    items: Sequence[tuple[bytes, Node]], options: ImportOptions, sink: BlockSink | None
) -> Node:
    """The root shard over (name, node) entries (names unique)."""
    entries = [(name_hash(name), name, node) for name, node in items]
    return _shard(entries, 0, options, sink)


def _shard(
    entries: list[tuple[bytes, bytes, Node]],
    depth: int,
    options: ImportOptions,
    sink: BlockSink | None,
) -> Node:
    if depth >= 8:
        raise ValueError("murmur3-x64-64 collision across all 8 bytes")
    slots: dict[int, list[tuple[bytes, bytes, Node]]] = {}
    for entry in entries:
        slots.setdefault(entry[0][depth], []).append(entry)
    links = []
    tsize = 0
    for slot in sorted(slots):
        group = slots[slot]
        prefix = f"{slot:02X}".encode()
        if len(group) == 1:
            _, name, node = group[0]
            links.append(encode_link(node.cid.to_bytes(), prefix + name, node.tsize))
            tsize += node.tsize
        else:
            child = _shard(group, depth + 1, options, sink)
            links.append(encode_link(child.cid.to_bytes(), prefix, child.tsize))
            tsize += child.tsize
    block = encode_node(links, _shard_data(sorted(slots)))
    cid = Cid.of_block(block, version=options.cid_version, codec=DAG_PB)
    if sink is not None:
        sink.put(cid, (block,))
    return Node(cid, len(block) + tsize, 0, is_dir=True)


def iter_shard(get, cid: Cid) -> Iterator[tuple[str, Cid, int]]:  # type: ignore[no-untyped-def]
    """(name, cid, tsize) of every entry under a shard node, in shard order."""
    node = decode_node(get(cid))
    fs = decode_unixfs(node.data)
    if fs.type != HAMT_SHARD:
        raise ValueError("not a HAMT shard")
    for link in node.links:
        if len(link.name) > 2:
            yield link.name[2:], link.cid, link.tsize
        else:
            yield from iter_shard(get, link.cid)
