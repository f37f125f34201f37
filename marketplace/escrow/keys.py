"""Off-chain identifiers of the escrow: job keys and dataset CID digests.

`job_key(job_id, requester, generation)` is the contract's key of the node's job
`job_<n>`: the requester's 20 address bytes, then the generation (4 bytes), then the job
number (8 bytes). Only the requester a key names may fund it (nobody can squat another
requester's key); the node picks a new generation for every funding it asks for, so an old
funding, voucher or late transaction names a key that no longer holds the job's money. The
number and generation are mostly zero bytes, cheap in calldata.
`cid_digest(cid)` is the 32-byte sha2-256 digest inside a CID's
multihash (CIDv0 `Qm...` or CIDv1 base32 `b...`/base58btc `z...`).
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_utils import is_hex_address, to_checksum_address

from marketplace.content.cid import DAG_PB, SHA2_256, Cid, parse_cid
from marketplace.content.errors import InvalidCid
from marketplace.errors import JobNotFound, ValidationFailed
from marketplace.jobs.ids import parse_job_id

MAX_GENERATION = 2**32 - 1


@dataclass(frozen=True)
class KeyParts:
    """What a job key says: whose deposit it holds, which funding, which job number."""

    requester: str
    generation: int
    number: int


def job_key(job_id: str | int, requester: str, generation: int = 0) -> bytes:
    """The bytes32 key of the node's job `job_id` (`5`, `"5"` or `"job_5"`) funded by
    `requester`, for funding `generation` (0 for the first)."""
    number = parse_job_id(job_id)
    if not is_hex_address(requester):
        raise ValidationFailed("a job key needs the requester's 0x address")
    if not 0 <= generation <= MAX_GENERATION:
        raise ValidationFailed(f"generation must be 0..{MAX_GENERATION}")
    address = bytes.fromhex(to_checksum_address(requester)[2:])
    return address + generation.to_bytes(4, "big") + number.to_bytes(8, "big")


def parse_job_key(key: bytes | str) -> KeyParts:
    """The parts of a key (the inverse of `job_key`); `number` is 0 when the key's last 8
    bytes name no job this node can have (a stranger's own key)."""
    raw = bytes.fromhex(key.removeprefix("0x")) if isinstance(key, str) else bytes(key)
    if len(raw) != 32:
        raise ValidationFailed("job key must be 32 bytes")
    try:
        number = parse_job_id(int.from_bytes(raw[24:], "big"))
    except JobNotFound:
        number = 0
    return KeyParts(
        requester=to_checksum_address(raw[:20]),
        generation=int.from_bytes(raw[20:24], "big"),
        number=number,
    )


def multihash_of(cid: str) -> bytes:
    """The multihash bytes of a CIDv0 or CIDv1 string (parsed by the content package's one
    CID parser; a CID it refuses is a validation error here)."""
    return _parse(cid).multihash


def _parse(cid: str) -> Cid:
    if not cid.strip():
        raise ValidationFailed("CID is empty")
    try:
        return parse_cid(cid)
    except InvalidCid as exc:
        raise ValidationFailed(exc.message) from None


def cid_digest(cid: str) -> bytes:
    """The 32-byte sha2-256 digest of a CID's multihash (what `fund` records)."""
    parsed = _parse(cid)
    if parsed.hash_code != SHA2_256 or len(parsed.digest) != 32:
        raise ValidationFailed("CID is not a sha2-256 multihash")
    return parsed.digest


def cidv0_of_digest(digest: bytes | str) -> str:
    """The CIDv0 (`Qm...`, dag-pb sha2-256) whose digest is `digest`: what a result digest
    found only on chain most likely names (results are added as Kubo does, CIDv0)."""
    raw = bytes.fromhex(digest.removeprefix("0x")) if isinstance(digest, str) else bytes(digest)
    if len(raw) != 32:
        raise ValidationFailed("a sha2-256 digest is 32 bytes")
    return Cid.from_digest(raw, version=0, codec=DAG_PB).encode()
