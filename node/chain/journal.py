"""Append-only, fsynced journal of every decision that changes the embedded chain.

One JSON object per line. The first line is the genesis record (timestamp and
allocation); every later line is a raw transaction with the block timestamp it was
mined at, or a time-travel (empty block at a timestamp). Replaying the lines in order
on a fresh EVM rebuilds the same blocks, hashes, receipts and logs.

A torn last line (a crash in the middle of a write) is ignored and truncated away at
open: the transaction it described was never acknowledged to the caller.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


class Journal:
    """An append-only JSON-lines file; `append` returns only after fsync."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
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

    def append(self, record: dict[str, Any]) -> None:
        self._fh.write(json.dumps(record, separators=(",", ":")).encode() + b"\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()
