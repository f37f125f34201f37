"""Append-only, fsynced journal of every decision that changes the embedded chain.

One JSON object per line. The first line is the genesis record (timestamp and
allocation); every later line is a raw transaction with the block timestamp it was
mined at, or a time-travel (empty block at a timestamp). Replaying the lines in order
on a fresh EVM rebuilds the same blocks, hashes, receipts and logs.

A torn last line (a crash in the middle of a write) is ignored and truncated away at
open: the transaction it described was never acknowledged to the caller.

A position in the journal is a record count and the byte offset where that record ends
(`ends`); a chain snapshot (`node.chain.snapshot`) names the position it was taken at and
the digest of the bytes before it (`digest`), so that it is only used on this journal.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any


class Journal:
    """An append-only JSON-lines file; `append` returns only after fsync."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._ends: list[int] = []  # byte offset where each record ends
        self._entries = self._load()
        self._fh = open(path, "ab")  # noqa: SIM115 - held open for the process lifetime

    def _load(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        entries: list[dict[str, Any]] = []
        good_len = 0
        with open(self.path, "rb") as fh:
            for line in fh:
                if not line.endswith(b"\n"):
                    break
                try:
                    entries.append(json.loads(line))
                except ValueError:
                    break
                good_len += len(line)
                self._ends.append(good_len)
        if good_len != self.path.stat().st_size:
            with open(self.path, "r+b") as fh:
                fh.truncate(good_len)
                fh.flush()
                os.fsync(fh.fileno())
        return entries

    @property
    def entries(self) -> list[dict[str, Any]]:
        """The records present when the journal was opened (for replay)."""
        return self._entries

    @property
    def count(self) -> int:
        """Records in the journal now (the genesis record included)."""
        return len(self._ends)

    def end_of(self, count: int) -> int:
        """The byte offset where the first `count` records end."""
        return self._ends[count - 1] if count else 0

    def digest(self, size: int) -> str:
        """sha256 (hex) of the journal's first `size` bytes."""
        h = hashlib.sha256()
        with open(self.path, "rb") as fh:
            left = size
            while left > 0:
                chunk = fh.read(min(left, 1 << 20))
                if not chunk:
                    break
                h.update(chunk)
                left -= len(chunk)
        return h.hexdigest()

    def append(self, record: dict[str, Any]) -> None:
        self._fh.write(json.dumps(record, separators=(",", ":")).encode() + b"\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._ends.append(self._fh.tell())

    def size(self) -> int:
        """Bytes written so far (a point `truncate` can return to)."""
        return self._fh.tell()

    def truncate(self, size: int) -> None:
        """Drop every record after byte `size` (development `evm_revert`); fsynced."""
        self._fh.flush()
        self._fh.truncate(size)
        self._fh.seek(size)
        os.fsync(self._fh.fileno())
        while self._ends and self._ends[-1] > size:
            self._ends.pop()

    def close(self) -> None:
        self._fh.close()
