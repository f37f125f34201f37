"""The block- and DAG-level reads of the Kubo RPC dialect: `dag get` in dag-json, `refs`,
`block put` parameters, and the node's peer identity for `id`.

The node is not a libp2p peer: its identity is an Ed25519-shaped peer ID derived from its
data directory (stable across restarts, distinct per node), and the addresses `id` reports
are the HTTP ones the node answers on, so clients that ask `isOnline()` learn that it is
reachable, and where.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from marketplace.content import car
from marketplace.content.cid import DAG_PB, RAW, Cid, b58encode, parse_cid
from marketplace.content.dag import child_cids
from marketplace.content.dagpb import decode_node
from marketplace.content.store import ContentStore
from marketplace.errors import BadQuery

# Kubo's `block put --cid-codec` names (and the legacy `--format` ones) this node stores.
_CODECS = {"raw": RAW, "dag-pb": DAG_PB, "protobuf": DAG_PB, "v0": DAG_PB}


def peer_id(seed: str) -> str:
    """An Ed25519 peer ID (`12D3KooW...`): the identity multihash of a libp2p public key
    protobuf (KeyType Ed25519 = 1, 32 bytes), the key bytes derived from `seed`."""
    key = hashlib.sha256(b"dcm-node-peer-id:" + seed.encode()).digest()
    protobuf = b"\x08\x01\x12\x20" + key
    return b58encode(b"\x00" + bytes((len(protobuf),)) + protobuf)


def http_multiaddr(host: str, port: int, scheme: str = "http") -> str:
    """`/ip4|ip6|dns/<host>/tcp/<port>/http|https`: where this node's RPC and gateway
    answer."""
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
        proto = "ip4" if ip.version == 4 else "ip6"
        host = str(ip)
    except ValueError:
        proto = "dns"
    return f"/{proto}/{host}/tcp/{port}/{'https' if scheme == 'https' else 'http'}"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def dag_json(cid: Cid, block: bytes) -> bytes:
    """A block in dag-json as `ipfs dag get` prints it (map keys sorted, bytes as
    `{"/": {"bytes": base64 without padding}}`, links as `{"/": cid}`)."""
    if cid.codec == RAW:
        value: object = {"/": {"bytes": _b64(block)}}
    else:
        node = decode_node(block)
        obj: dict[str, object] = {}
        if node.data is not None:
            obj["Data"] = {"/": {"bytes": _b64(node.data)}}
        obj["Links"] = [
            {"Hash": {"/": str(link.cid)}, "Name": link.name, "Tsize": link.tsize}
            for link in node.links
        ]
        value = obj
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def car_stats(path: Path) -> tuple[int, int]:
    """(blocks, block bytes) of a CAR file, as `ipfs dag import --stats` reports them."""
    count = size = 0
    with open(path, "rb") as f:
        _roots, blocks = car.read_car(f)
        for _cid, data in blocks:
            count += 1
            size += len(data)
    return count, size


def put_codec(cid_codec: str | None, fmt: str | None) -> tuple[int, int]:
    """(codec, CID version) of `block put`: Kubo's default is raw, CIDv1; `format=v0`
    (legacy) makes a dag-pb CIDv0. Other codecs are refused (400, as `add` refuses a
    chunker or hash it does not use): the node stores UnixFS."""
    name = cid_codec or fmt or "raw"
    codec = _CODECS.get(name)
    if codec is None:
        raise BadQuery(f"unsupported cid-codec {name!r}: this node stores raw and dag-pb blocks")
    return codec, 0 if name == "v0" else 1


def check_mhtype(mhtype: str | None, mhlen: int | None) -> None:
    if mhtype not in (None, "", "sha2-256") or mhlen not in (None, -1, 32):
        raise BadQuery("unsupported multihash: only sha2-256 multihashes (32 bytes) are supported")


@dataclass(frozen=True)
class RefsQuery:
    recursive: bool = False
    unique: bool = False
    edges: bool = False
    max_depth: int = -1
    fmt: str = "<dst>"


def refs(store: ContentStore, roots: list[str], q: RefsQuery) -> Iterator[dict[str, str]]:
    """`ipfs refs`: the links below each root, depth-first, as `{"Ref", "Err"}` lines."""
    if q.edges and q.fmt != "<dst>":
        raise BadQuery("using format argument with edges is not allowed")
    fmt = "<src> -> <dst>" if q.edges else q.fmt
    depth_limit = q.max_depth if q.recursive else 1
    seen: set[bytes] = set()

    def walk(cid: Cid, depth: int) -> Iterator[dict[str, str]]:
        if depth_limit >= 0 and depth >= depth_limit:
            return
        block = store.get_block(str(cid))
        if cid.codec == DAG_PB:
            links = [(link.name, link.cid) for link in decode_node(block).links]
        else:
            links = [("", c) for c in child_cids(cid, block)]
        for name, child in links:
            key = child.to_bytes()
            if q.unique and key in seen:
                continue
            seen.add(key)
            line = fmt.replace("<src>", str(cid)).replace("<dst>", str(child))
            yield {"Ref": line.replace("<linkname>", name), "Err": ""}
            yield from walk(child, depth + 1)

    for root in roots:
        yield from walk(parse_cid(store.resolve(root)), 0)
