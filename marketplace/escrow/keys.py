"""Off-chain identifiers of the escrow: job keys and dataset CID digests.

`job_key(job_id)` is `bytes32(uint256(n))` for the node's job `job_<n>`: each node has its
own escrow (the contract's ASSIGNER is the node's key), so the number alone is unique there,
and its zero bytes make every transaction's calldata cheaper than a hash would.
`cid_digest(cid)` is the 32-byte sha2-256 digest inside a CID's
multihash (CIDv0 `Qm...` or CIDv1 base32 `b...`/base58btc `z...`).
"""

from __future__ import annotations

import base64

from marketplace.errors import JobNotFound, ValidationFailed
from marketplace.jobs.ids import parse_job_id

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58)}
_SHA2_256 = 0x12


def job_key(job_id: str | int) -> bytes:
    """The bytes32 key of the node's job `job_id` (`5`, `"5"` or `"job_5"`)."""
    number = parse_job_id(job_id)
    return number.to_bytes(32, "big")


def job_number_of_key(key: bytes | str) -> int | None:
    """The job number a key stands for (the inverse of `job_key`), or None for a key no
    job of this node can have (a stranger's funding under an arbitrary key)."""
    raw = bytes.fromhex(key.removeprefix("0x")) if isinstance(key, str) else bytes(key)
    try:
        return parse_job_id(int.from_bytes(raw, "big"))
    except JobNotFound:
        return None


def _b58decode(text: str) -> bytes:
    value = 0
    for char in text:
        try:
            value = value * 58 + _B58_INDEX[char]
        except KeyError:
            raise ValidationFailed("CID is not valid base58") from None
    body = value.to_bytes((value.bit_length() + 7) // 8, "big") if value else b""
    pad = len(text) - len(text.lstrip("1"))
    return b"\x00" * pad + body


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValidationFailed("CID has a truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def multihash_of(cid: str) -> bytes:
    """The multihash bytes of a CIDv0 or CIDv1 string."""
    cid = cid.strip()
    if len(cid) == 46 and cid.startswith("Qm"):
        return _b58decode(cid)
    if not cid:
        raise ValidationFailed("CID is empty")
    prefix, rest = cid[0], cid[1:]
    if prefix in "bB":
        padded = rest.upper() + "=" * (-len(rest) % 8)
        try:
            raw = base64.b32decode(padded)
        except ValueError:
            raise ValidationFailed("CID is not valid base32") from None
    elif prefix == "z":
        raw = _b58decode(rest)
    else:
        raise ValidationFailed("CID uses an unsupported multibase")
    version, pos = _varint(raw, 0)
    if version != 1:
        raise ValidationFailed("CID version is not 1")
    _codec, pos = _varint(raw, pos)
    return raw[pos:]


def cid_digest(cid: str) -> bytes:
    """The 32-byte sha2-256 digest of a CID's multihash (what `fund` records)."""
    mh = multihash_of(cid)
    code, pos = _varint(mh, 0)
    length, pos = _varint(mh, pos)
    digest = mh[pos:]
    if code != _SHA2_256 or length != 32 or len(digest) != 32:
        raise ValidationFailed("CID is not a sha2-256 multihash")
    return digest
