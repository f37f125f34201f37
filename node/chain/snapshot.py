"""Snapshots of the embedded chain, so that a start replays only the journal's tail.

The journal (`node.chain.journal`) stays the truth: a snapshot is a cache of the state
the journal's first `records` records produce, and a start that cannot use one replays
the whole journal, as it always did.

A snapshot is py-evm's key-value store (every block, receipt, trie node and lookup the
chain wrote: `backend.chain.chaindb.db`) and `EmbeddedEVM`'s logs index, taken under
the chain's lock at a journal position, written in the background (or at clean
shutdown) to `<chain dir>/snapshots/<records>-<offset>.snap` as temp file, fsync, rename,
fsync of the directory. The file is

    MAGIC | sha256(body) | body
    body = u32 length | header (JSON) | zlib(u32 length | logs index (JSON) | kv pairs)
    kv pair = u32 length | key | u32 length | value

The header names the chain id, the genesis block hash, the journal position (record
count and byte offset), the sha256 of the journal's bytes up to it, and the head block
(number, hash). At start a snapshot is used only if its checksum holds, it is of this
chain and genesis, the journal still holds its position with the same bytes before it
(so a journal cut back by `evm_revert`, or another journal, never matches), the journal
record at its position names the same head block hash (records carry the hash of the
block they mined), and the restored chain's head is that block. The records after it are
then replayed and verified one by one (transaction and block hash) as in a full replay;
should they diverge, the full replay runs. A snapshot that fails a check is logged and
deleted; the next older one is tried.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth.db.atomic import AtomicDB
from eth.db.backends.memory import MemoryDB

from node.chain.journal import Journal

log = logging.getLogger("dcm.chain")

MAGIC = b"DCM-CHAIN-SNAPSHOT-1\n"
SUFFIX = ".snap"
_U32 = struct.Struct(">I")


class SnapshotInvalid(Exception):
    """A snapshot file that cannot be used (the message says why)."""


@dataclass
class ChainState:
    """What a snapshot is of (`EmbeddedEVM.chain_state`): the journal, py-evm's chain, its
    chain id and `EmbeddedEVM`'s logs index (block number -> logs)."""

    journal: Journal
    chain: Any
    chain_id: int
    logs: dict[int, list[dict[str, Any]]]


@dataclass
class _Captured:
    """The chain at one journal position, copied under the chain's lock."""

    header: dict[str, Any]
    kv: dict[bytes, bytes]
    logs: dict[int, list[dict[str, Any]]]
    journal: Journal
    previous: int  # the journal position of the snapshot before this one


class Snapshots:
    """The snapshots of one chain under `directory`: restore at start, write every
    `every` journal records (0: only at clean shutdown), keep the newest `keep`."""

    def __init__(self, directory: Path, every: int = 500, keep: int = 2) -> None:
        self.directory = directory
        self.every = every
        self.keep = max(1, keep)
        self._last_records = 0  # journal position of the newest snapshot
        self._writer: threading.Thread | None = None
        self._write_error: BaseException | None = None

    # -- start ----------------------------------------------------------------------------

    def restore(self, fresh: ChainState) -> tuple[int, ChainState] | None:
        """The newest usable snapshot for `fresh` (a chain just built from its genesis):
        the journal record count it covers and the chain state there; None if none."""
        self.directory.mkdir(parents=True, exist_ok=True)
        for tmp in self.directory.glob("*.tmp"):  # a write a crash interrupted
            tmp.unlink(missing_ok=True)
        for path in self._files():
            try:
                restored = self._restore_one(fresh, path)
            except Exception as exc:  # SnapshotInvalid, or a header or store it cannot read
                log.warning("chain snapshot %s not used (deleted): %s", path.name, exc)
                path.unlink(missing_ok=True)
                continue
            self._last_records = restored[0]
            return restored
        return None

    def _restore_one(self, fresh: ChainState, path: Path) -> tuple[int, ChainState]:
        started = time.perf_counter()
        header, payload = _read(path)
        journal = fresh.journal
        chain = fresh.chain
        if header.get("chain_id") != fresh.chain_id:
            raise SnapshotInvalid(f"of chain {header.get('chain_id')}, not {fresh.chain_id}")
        genesis_hash = chain.get_canonical_block_header_by_number(0).hash.hex()
        if header.get("genesis_hash") != genesis_hash:
            raise SnapshotInvalid("of another genesis")
        records, offset = int(header["records"]), int(header["offset"])
        if records > journal.count or records < 1:
            raise SnapshotInvalid(
                f"at journal record {records}, the journal has {journal.count} "
                "(cut back by evm_revert?)"
            )
        if journal.end_of(records) != offset or journal.digest(offset) != header["journal"]:
            raise SnapshotInvalid(f"the journal's first {records} records are not its own")
        recorded = journal.entries[records - 1].get("block")
        if records > 1 and recorded is not None and recorded != header["head_hash"]:
            raise SnapshotInvalid(f"head {header['head_hash']}, the journal says {recorded}")
        logs, kv = _decode_payload(payload)
        restored = type(chain)(AtomicDB(MemoryDB(kv)))
        head = restored.get_canonical_head()
        if "0x" + head.hash.hex() != header["head_hash"] or head.block_number != int(
            header["head_number"]
        ):
            raise SnapshotInvalid("its head block is not the one its header names")
        log.info(
            "chain snapshot %s restored: journal record %d, head block %d (%.2f s)",
            path.name,
            records,
            head.block_number,
            time.perf_counter() - started,
        )
        return records, ChainState(journal, restored, fresh.chain_id, logs)

    def discard(self) -> None:
        """Delete every snapshot (the journal did not replay onto the one restored)."""
        self.wait()
        for path in self._files():
            path.unlink(missing_ok=True)
        self._last_records = 0

    def _files(self) -> list[Path]:
        """Snapshot files, newest (furthest journal position) first."""
        found = []
        for path in self.directory.glob("*" + SUFFIX):
            try:
                records, offset = (int(x) for x in path.stem.split("-"))
            except ValueError:
                continue
            found.append((records, offset, path))
        return [p for _, _, p in sorted(found, reverse=True)]

    # -- writing --------------------------------------------------------------------------

    def journaled(self, state: ChainState) -> None:
        """After a journal append (under the chain's lock): start a background write when
        `every` records have been journaled since the last snapshot."""
        if self.every <= 0 or state.journal.count - self._last_records < self.every:
            return
        if self._writer is not None and self._writer.is_alive():
            return  # the next append tries again
        captured = self._capture(state)
        self._writer = threading.Thread(
            target=self._write_logged, args=(captured,), name="chain-snapshot", daemon=True
        )
        self._writer.start()

    def write_now(self, state: ChainState) -> Path | None:
        """Write a snapshot of the chain as it is now (under the chain's lock), unless the
        newest already covers the journal; returns its path."""
        self.wait()
        if state.journal.count <= self._last_records:
            return None
        return self._write(self._capture(state))

    def wait(self) -> None:
        """Wait for a background write to finish."""
        if self._writer is not None:
            self._writer.join()
            self._writer = None

    def truncated(self, size: int) -> None:
        """The journal was cut back to `size` bytes (evm_revert): snapshots past it describe
        blocks that no longer exist, so they go (under the chain's lock)."""
        self.wait()
        kept = 0
        for path in self._files():
            records, offset = (int(x) for x in path.stem.split("-"))
            if offset > size:
                path.unlink(missing_ok=True)
                log.info("chain snapshot %s dropped: the journal was reverted before it", path.name)
            else:
                kept = max(kept, records)
        self._last_records = kept

    def _capture(self, state: ChainState) -> _Captured:
        journal = state.journal
        head = state.chain.get_canonical_head()
        records = journal.count
        header = {
            "chain_id": state.chain_id,
            "genesis_hash": state.chain.get_canonical_block_header_by_number(0).hash.hex(),
            "records": records,
            "offset": journal.end_of(records),
            "head_number": int(head.block_number),
            "head_hash": "0x" + head.hash.hex(),
            "created_at": int(time.time()),
        }
        kv = dict(_kv_store(state.chain.chaindb.db))
        logs = {n: list(entries) for n, entries in state.logs.items()}
        previous, self._last_records = self._last_records, records
        return _Captured(header, kv, logs, journal, previous)

    def _write_logged(self, captured: _Captured) -> None:
        try:
            self._write(captured)
        except Exception:  # a failed snapshot costs a longer start, never the chain
            log.exception("writing the chain snapshot failed")
            self._last_records = captured.previous  # the next append or shutdown tries again

    def _write(self, captured: _Captured) -> Path:
        started = time.perf_counter()
        header = captured.header
        # the journal only grows past this offset while we read (a revert waits for us)
        header["journal"] = captured.journal.digest(header["offset"])
        path = self.directory / f"{header['records']}-{header['offset']}{SUFFIX}"
        tmp = path.with_name(path.name + ".tmp")
        body = _encode_body(header, captured.logs, captured.kv)
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
            fh.write(MAGIC + hashlib.sha256(body).digest())
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_dir(self.directory)
        for old in self._files()[self.keep :]:
            old.unlink(missing_ok=True)
        log.info(
            "chain snapshot %s written: %d keys, %.1f MiB, %.2f s",
            path.name,
            len(captured.kv),
            len(body) / 2**20,
            time.perf_counter() - started,
        )
        return path


def _kv_store(db: Any) -> dict[bytes, bytes]:
    """The dict under eth-tester's AtomicDB(MemoryDB)."""
    wrapped = getattr(db, "wrapped_db", None)
    store = getattr(wrapped, "kv_store", None)
    if not isinstance(store, dict):  # pragma: no cover - another py-evm DB backend
        raise RuntimeError(f"cannot snapshot a chain database of type {type(db).__name__}")
    return store


def _encode_body(
    header: dict[str, Any], logs: dict[int, list[dict[str, Any]]], kv: dict[bytes, bytes]
) -> bytes:
    logs_json = json.dumps({str(n): v for n, v in logs.items()}, separators=(",", ":")).encode()
    pack = _U32.pack
    parts = [pack(len(logs_json)), logs_json]
    for key, value in kv.items():
        parts += (pack(len(key)), key, pack(len(value)), value)
    payload = zlib.compress(b"".join(parts), 1)
    header_json = json.dumps(header, sort_keys=True).encode()
    return _U32.pack(len(header_json)) + header_json + payload


def _read(path: Path) -> tuple[dict[str, Any], bytes]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SnapshotInvalid(f"unreadable: {exc}") from exc
    if not data.startswith(MAGIC):
        raise SnapshotInvalid("not a chain snapshot (magic)")
    start = len(MAGIC) + 32
    body = memoryview(data)[start:]
    if hashlib.sha256(body).digest() != data[len(MAGIC) : start]:
        raise SnapshotInvalid("checksum mismatch (a corrupt or torn file)")
    (header_len,) = _U32.unpack_from(body, 0)
    try:
        header = json.loads(bytes(body[4 : 4 + header_len]))
    except ValueError as exc:
        raise SnapshotInvalid(f"bad header: {exc}") from exc
    return header, bytes(body[4 + header_len :])


def _decode_payload(payload: bytes) -> tuple[dict[int, list[dict[str, Any]]], dict[bytes, bytes]]:
    try:
        raw = zlib.decompress(payload)
    except zlib.error as exc:
        raise SnapshotInvalid(f"bad payload: {exc}") from exc
    unpack = _U32.unpack_from
    (logs_len,) = unpack(raw, 0)
    pos = 4 + logs_len
    logs = {int(n): v for n, v in json.loads(raw[4:pos]).items()}
    kv: dict[bytes, bytes] = {}
    end = len(raw)
    while pos < end:
        (klen,) = unpack(raw, pos)
        pos += 4
        key = raw[pos : pos + klen]
        pos += klen
        (vlen,) = unpack(raw, pos)
        pos += 4
        kv[key] = raw[pos : pos + vlen]
        pos += vlen
    if pos != end:
        raise SnapshotInvalid("truncated key-value payload")
    return logs, kv


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
