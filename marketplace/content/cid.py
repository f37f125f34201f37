"""CIDs as Kubo writes them: varints, sha2-256 multihashes, CIDv0 (base58btc) and CIDv1
(multibase base32 lower, `b` prefix), for the two codecs a UnixFS DAG uses (dag-pb, raw)."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from marketplace.content.errors import InvalidCid

DAG_PB = 0x70
RAW = 0x55
SHA2_256 = 0x12
CODEC_NAMES = {DAG_PB: "dag-pb", RAW: "raw"}

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58)}


def encode_varint(n: int) -> bytes:
    """Unsigned LEB128, as protobuf and multiformats use it."""
    if n < 0:
        raise ValueError("varint of a negative number")
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def decode_varint(buf: bytes | memoryview, pos: int = 0) -> tuple[int, int]:
    """Decode a varint at `pos`; return (value, position after it)."""
    value = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def b58encode(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    out = []
    while n:
        n, r = divmod(n, 58)
        out.append(_B58[r])
    pad = len(data) - len(data.lstrip(b"\0"))
    return "1" * pad + "".join(reversed(out))


def b58decode(text: str) -> bytes:
    n = 0
    for c in text:
        if c not in _B58_INDEX:
            raise ValueError(f"not base58btc: {c!r}")
        n = n * 58 + _B58_INDEX[c]
    pad = len(text) - len(text.lstrip("1"))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\0" * pad + body


def b32encode(data: bytes) -> str:
    return base64.b32encode(data).decode("ascii").lower().rstrip("=")


def b32decode(text: str) -> bytes:
    text = text.upper()
    return base64.b32decode(text + "=" * (-len(text) % 8))


@dataclass(frozen=True, slots=True)
class Cid:
    """A content identifier. `multihash` is the full multihash (code, length, digest)."""

    version: int
    codec: int
    multihash: bytes

    @classmethod
    def from_digest(cls, digest: bytes, *, version: int, codec: int) -> Cid:
        if version == 0 and codec != DAG_PB:
            raise ValueError("CIDv0 is dag-pb only")
        return cls(version, codec, bytes((SHA2_256, len(digest))) + digest)

    @classmethod
    def of_block(cls, block: bytes, *, version: int = 0, codec: int = DAG_PB) -> Cid:
        return cls.from_digest(hashlib.sha256(block).digest(), version=version, codec=codec)

    @property
    def digest(self) -> bytes:
        return self.multihash[2:]

    @property
    def hash_code(self) -> int:
        return self.multihash[0]

    def to_bytes(self) -> bytes:
        if self.version == 0:
            return self.multihash
        return encode_varint(1) + encode_varint(self.codec) + self.multihash

    def encode(self) -> str:
        if self.version == 0:
            return b58encode(self.multihash)
        return "b" + b32encode(self.to_bytes())

    def __str__(self) -> str:
        return self.encode()

    def to_v1(self) -> Cid:
        return Cid(1, self.codec, self.multihash)

    def verify(self, block: bytes | memoryview) -> bool:
        """Whether `block` hashes to this CID's digest."""
        if self.hash_code != SHA2_256:
            return False
        return hashlib.sha256(block).digest() == self.digest

    @classmethod
    def from_bytes(cls, data: bytes) -> Cid:
        cid, end = cls.read(data, 0)
        if end != len(data):
            raise InvalidCid("trailing bytes after CID")
        return cls(cid.version, cid.codec, cid.multihash)

    @classmethod
    def read(cls, data: bytes | memoryview, pos: int) -> tuple[Cid, int]:
        """Read a binary CID at `pos` (as in CAR sections); return it and the end position."""
        try:
            if len(data) - pos >= 34 and data[pos] == SHA2_256 and data[pos + 1] == 0x20:
                return cls(0, DAG_PB, bytes(data[pos : pos + 34])), pos + 34
            version, p = decode_varint(data, pos)
            if version != 1:
                raise InvalidCid(f"unsupported CID version {version}")
            codec, p = decode_varint(data, p)
            start = p
            _code, p = decode_varint(data, p)
            length, p = decode_varint(data, p)
            if p + length > len(data):
                raise InvalidCid("truncated multihash")
            return cls(1, codec, bytes(data[start : p + length])), p + length
        except ValueError as exc:
            raise InvalidCid(str(exc)) from exc


def parse_cid(text: str) -> Cid:
    """Parse a CID string (CIDv0 `Qm...`, or CIDv1 in base32 `b...` or base58btc `z...`)."""
    text = text.strip()
    try:
        if len(text) == 46 and text.startswith("Qm"):
            mh = b58decode(text)
            if len(mh) != 34 or mh[0] != SHA2_256 or mh[1] != 0x20:
                raise InvalidCid(f"invalid CIDv0 {text!r}")
            return Cid(0, DAG_PB, mh)
        if text.startswith("b"):
            raw = b32decode(text[1:])
        elif text.startswith("B"):
            raw = b32decode(text[1:].lower())
        elif text.startswith("z"):
            raw = b58decode(text[1:])
        else:
            raise InvalidCid(f"invalid CID {text[:80]!r}")
        cid = Cid.from_bytes(raw)
    except InvalidCid:
        raise
    except (ValueError, TypeError) as exc:
        raise InvalidCid(f"invalid CID {text[:80]!r}") from exc
    if cid.codec not in CODEC_NAMES:
        raise InvalidCid(f"unsupported codec 0x{cid.codec:x} in {text[:80]!r}")
    if cid.hash_code != SHA2_256 or len(cid.digest) != 32:
        raise InvalidCid(f"unsupported multihash in {text[:80]!r}")
    return cid
