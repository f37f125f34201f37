"""The chain watcher: escrow events -> job states, exactly once, across restarts.

`ChainWatcher.poll_once()` reads the escrow's logs from the block after its persisted
cursor up to `head - confirmations`, in ranges; each range is applied in ONE database
transaction together with the cursor update, so a crash either applies a range and
moves the cursor, or does neither. Applying an already-recorded log is a no-op
(`chain_events` is unique by chain, tx and log index), so overlapping reads are safe.

The chain tick (`node.escrow.tick.ChainTick`, a loop service) runs it together with the
outbox sender and the settlement policy.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from node.chain.host import ChainHost
from node.db import session_scope, utcnow
from node.escrow import repository
from node.escrow.service import apply_escrow_event, terms_of
from node.models.escrow import ChainCursor

log = logging.getLogger("dcm.chain.watcher")

ESCROW_CURSOR = "escrow"
MAX_BLOCK_RANGE = 2000


class ChainWatcher:
    def __init__(
        self, host: ChainHost, sessions: sessionmaker[Session], name: str = ESCROW_CURSOR
    ) -> None:
        self.host = host
        self.sessions = sessions
        self.name = name
        self._topics: dict[str, str] | None = None

    def _event_topics(self, contract: Any) -> dict[str, str]:
        if self._topics is None:
            self._topics = {}
            for item in contract.abi:
                if item["type"] == "event":
                    topic = getattr(contract.events, item["name"])().topic
                    self._topics[_hex(topic)] = item["name"]
        return self._topics

    def poll_once(self) -> int:
        """Apply every confirmed escrow event not applied yet; returns how many."""
        if not self.host.escrow_address:
            return 0
        escrow = self.host.escrow()
        w3 = self.host.w3
        safe_head = int(w3.eth.block_number) - self.host.confirmations
        start = self._start_block()
        applied = 0
        while start <= safe_head:
            end = min(safe_head, start + MAX_BLOCK_RANGE - 1)
            logs = w3.eth.get_logs({"fromBlock": start, "toBlock": end, "address": escrow.address})
            end_block = w3.eth.get_block(end)
            applied += self._apply_range(escrow, logs, end, _hex(end_block["hash"]))
            start = end + 1
        return applied

    def _start_block(self) -> int:
        """The block after the cursor; from the escrow's deployment when there is no
        cursor, or when the cursor's block hash is not on this chain any more (a reorg
        or a reset chain: re-reading is safe, applying is idempotent)."""
        first = self.host.deployment_block or 0
        with session_scope(self.sessions) as session:
            cur = repository.cursor(session, self.name)
            if cur is None or cur.chain_id != self.host.chain_id:
                return first
            number, known_hash = cur.block_number, cur.block_hash
        try:
            block = self.host.w3.eth.get_block(number)
        except Exception:  # BlockNotFound: the chain is shorter than the cursor
            block = None
        if block is None or (known_hash and _hex(block["hash"]) != known_hash):
            log.warning("watcher cursor block %s is not on the chain: rescanning", number)
            return first
        return number + 1

    def _apply_range(self, escrow: Any, logs: list[Any], end: int, end_hash: str) -> int:
        topics = self._event_topics(escrow.contract)
        terms = terms_of(self.host)
        timestamps: dict[int, int] = {}
        applied = 0
        with session_scope(self.sessions) as session:
            for entry in logs:
                name = (
                    topics.get("0x" + bytes(entry["topics"][0]).hex()) if entry["topics"] else None
                )
                if name is None:
                    continue
                decoded = getattr(escrow.contract.events, name)().process_log(entry)
                number = int(entry["blockNumber"])
                if number not in timestamps:
                    timestamps[number] = int(self.host.w3.eth.get_block(number)["timestamp"])
                if apply_escrow_event(
                    session,
                    escrow,
                    chain_id=self.host.chain_id,
                    event=name,
                    args=dict(decoded["args"]),
                    address=escrow.address,
                    block_number=number,
                    block_hash=_hex(entry["blockHash"]),
                    block_timestamp=timestamps[number],
                    tx_hash=_hex(entry["transactionHash"]),
                    log_index=int(entry["logIndex"]),
                    terms=terms,
                ):
                    applied += 1
            cur = repository.cursor(session, self.name)
            if cur is None:
                cur = ChainCursor(name=self.name, chain_id=self.host.chain_id, block_number=end)
                session.add(cur)
            cur.chain_id = self.host.chain_id
            cur.block_number = end
            cur.block_hash = end_hash
            cur.updated_at = utcnow()
        return applied


def _hex(value: bytes | str) -> str:
    if isinstance(value, str):
        value = value.lower()
        return value if value.startswith("0x") else "0x" + value
    return "0x" + bytes(value).hex()
