"""Polling filters of `/chain/rpc` (`eth_newFilter`, `eth_newBlockFilter`, ...), as geth
keeps them: in memory, per node process, each remembering the last block it reported.

A filter nobody polls for `IDLE_SECONDS` (geth's five minutes) is dropped, so clients
that forget `eth_uninstallFilter` do not grow the node; `MAX_FILTERS` bounds how many
live at once. Blocks are mined one per transaction, so nothing is ever pending: a
pending-transaction filter exists (web3.py and viem create one) and always answers [].
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

IDLE_SECONDS = 300.0
MAX_FILTERS = 1024


class FilterNotFound(Exception):
    """No such filter (never made, uninstalled, or expired)."""


class TooManyFilters(Exception):
    """`MAX_FILTERS` filters are live."""


@dataclass
class Filter:
    kind: str  # "logs" | "blocks" | "pending"
    last_block: int  # the newest block already reported
    criteria: dict[str, Any] = field(default_factory=dict)  # logs: lo, hi, addresses, topics
    touched: float = 0.0


class FilterRegistry:
    """Live filters by id (`0x` + 16 random bytes, as geth's ids are opaque)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._filters: dict[str, Filter] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def _expire(self, now: float) -> None:
        for fid in [f for f, flt in self._filters.items() if now - flt.touched > IDLE_SECONDS]:
            del self._filters[fid]

    def install(self, kind: str, head: int, criteria: dict[str, Any] | None = None) -> str:
        with self._lock:
            now = self._clock()
            self._expire(now)
            if len(self._filters) >= MAX_FILTERS:
                raise TooManyFilters(f"too many filters (at most {MAX_FILTERS})")
            fid = "0x" + secrets.token_hex(16)
            self._filters[fid] = Filter(kind, head, dict(criteria or {}), now)
            return fid

    def get(self, fid: str) -> Filter:
        """The filter `fid`, marked as just polled."""
        with self._lock:
            now = self._clock()
            self._expire(now)
            flt = self._filters.get(fid.lower() if isinstance(fid, str) else fid)
            if flt is None:
                raise FilterNotFound("filter not found")
            flt.touched = now
            return flt

    def advance(self, fid: str, head: int) -> tuple[Filter, int]:
        """Poll filter `fid` at chain head `head`: the filter and the first block not yet
        reported (after an `evm_revert` cut the chain, from the new head on), recording
        `head` as reported, in one step so that two concurrent polls never both get a
        block."""
        with self._lock:
            now = self._clock()
            self._expire(now)
            flt = self._filters.get(fid.lower() if isinstance(fid, str) else fid)
            if flt is None:
                raise FilterNotFound("filter not found")
            flt.touched = now
            since = min(flt.last_block, head) + 1
            flt.last_block = head
            return flt, since

    def uninstall(self, fid: str) -> bool:
        with self._lock:
            self._expire(self._clock())
            return self._filters.pop(fid.lower() if isinstance(fid, str) else fid, None) is not None

    def __len__(self) -> int:
        with self._lock:
            return len(self._filters)
