"""Transactions the node itself sends, through an outbox.

A service that decides "the node must send X" calls `enqueue(session, ...)` in the SAME
database transaction as its state change; nothing touches the network there. After
commit, `OutboxSender.process()` sends the open rows one at a time, in id order:

1. `pending`: build and sign the call with the operator key, store the raw transaction,
   its hash and nonce, status `signed` -- and COMMIT before sending. A call that would
   revert (gas estimation fails: a newer assignment landed first, the job was settled
   meanwhile) is never sent: status `skipped`, with the revert in `last_error`.
2. `signed`: send the stored raw transaction (re-sending the same bytes can never make a
   second transaction: same hash, same nonce), wait for the receipt, status
   `confirmed` (or `failed` for a mined revert).

After a crash at any point a restart resumes from the row's status: a signed row whose
receipt exists is confirmed without resending; one whose nonce was consumed by another
transaction is signed again. `dedupe_key` makes enqueueing idempotent.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from eth_typing import HexStr
from eth_utils import to_checksum_address
from sqlalchemy.orm import Session, sessionmaker
from web3.exceptions import ContractLogicError, TransactionNotFound

from marketplace.escrow.errors import chain_error
from marketplace.logcontext import job_context
from node.chain.host import ChainHost
from node.db import session_scope
from node.escrow import repository
from node.metrics import CHAIN_TRANSACTIONS
from node.models.escrow import ChainOutbox

log = logging.getLogger("dcm.chain.outbox")

MAX_ATTEMPTS = 5


def enqueue(
    session: Session,
    *,
    dedupe_key: str,
    action: str,
    function: str,
    args: list[Any],
    job_id: int | None = None,
    job_keys: list[str] | None = None,
    job_ids: list[int] | None = None,
    value_wei: int = 0,
) -> ChainOutbox:
    """Queue an escrow call signed by the operator (idempotent per `dedupe_key`).
    `job_keys`/`job_ids` name the escrows and jobs it acts on (`covered_keys`)."""
    existing = repository.outbox_by_dedupe(session, dedupe_key)
    if existing is not None:
        return existing
    payload: dict[str, Any] = {"function": function, "args": args, "value": str(value_wei)}
    if job_keys:
        payload["job_keys"] = job_keys
    if job_ids:
        payload["job_ids"] = job_ids
    row = ChainOutbox(
        dedupe_key=dedupe_key,
        action=action,
        job_id=job_id,
        payload=payload,
        status="pending",
    )
    session.add(row)
    session.flush()
    return row


def enqueue_new(session: Session, *, dedupe_key: str, **call: Any) -> ChainOutbox | None:
    """`enqueue`, returning None when that decision was queued before (whatever became of
    it): the caller then has nothing new to log or report."""
    if repository.outbox_by_dedupe(session, dedupe_key) is not None:
        return None
    return enqueue(session, dedupe_key=dedupe_key, **call)


def covered_keys(session: Session) -> set[str]:
    """Escrow keys an open outbox row (pending or signed) already acts on: the node does
    not decide anything else for them until that call is mined or skipped."""
    covered: set[str] = set()
    for row in repository.outbox_open(session):
        covered.update((row.payload or {}).get("job_keys") or ())
    return covered


class OutboxSender:
    def __init__(
        self,
        host: ChainHost,
        sessions: sessionmaker[Session],
        receipt_timeout_seconds: float = 60.0,
    ) -> None:
        self.host = host
        self.sessions = sessions
        self.receipt_timeout_seconds = receipt_timeout_seconds

    def process(self) -> int:
        """Drive every open row as far as it goes; returns how many were confirmed."""
        if self.host.operator is None or not self.host.escrow_address:
            return 0
        ids = []
        with session_scope(self.sessions) as session:
            ids = [(row.id, row.job_id) for row in repository.outbox_open(session)]
        done = 0
        for row_id, job_id in ids:
            with job_context(job_id) if job_id is not None else contextlib.nullcontext():
                if self._drive(row_id) == "confirmed":
                    done += 1
        return done

    def _drive(self, row_id: int) -> str:
        with self.host.operator_lock:
            return self._drive_locked(row_id)

    def _drive_locked(self, row_id: int) -> str:
        status = self._load_status(row_id)
        if status == "pending":
            status = self._sign(row_id)
        if status == "signed":
            status = self._send(row_id)
        return status

    def _load_status(self, row_id: int) -> str:
        with session_scope(self.sessions) as session:
            row = session.get(ChainOutbox, row_id)
            return row.status if row else "missing"

    def _sign(self, row_id: int) -> str:
        operator = self.host.operator
        assert operator is not None
        escrow = self.host.escrow()
        with session_scope(self.sessions) as session:
            row = session.get(ChainOutbox, row_id)
            assert row is not None
            payload = row.payload
            fn = getattr(escrow.contract.functions, payload["function"])(*payload["args"])
            fields = self.host.operator_tx_fields()  # under operator_lock (`_drive`)
            nonce = fields["nonce"]
            try:
                tx = fn.build_transaction({**fields, "value": int(payload.get("value", "0"))})
            except ContractLogicError as exc:
                reason = chain_error(exc, action=payload["function"]).message
                row.status = "skipped"
                row.last_error = reason[:1000]
                log.info("outbox %s %s skipped: %s", row.id, row.action, reason)
                return "skipped"
            signed = operator.account.sign_transaction(tx)
            row.nonce = nonce
            row.raw_tx = "0x" + bytes(signed.raw_transaction).hex()
            row.tx_hash = "0x" + bytes(signed.hash).hex()
            row.status = "signed"
        return "signed"

    def _send(self, row_id: int) -> str:
        w3 = self.host.w3
        operator = self.host.operator
        assert operator is not None
        with session_scope(self.sessions) as session:
            row = session.get(ChainOutbox, row_id)
            assert row is not None and row.tx_hash and row.raw_tx and row.nonce is not None
            receipt = self._receipt(row.tx_hash)
            if receipt is None:
                if (
                    w3.eth.get_transaction_count(to_checksum_address(operator.address), "latest")
                    > row.nonce
                ):
                    # the nonce went to another transaction: this one can never be mined
                    row.status = "pending"
                    row.attempts += 1
                    row.last_error = "nonce consumed by another transaction; re-signing"
                    return "pending"
                try:
                    w3.eth.send_raw_transaction(HexStr(row.raw_tx))
                except Exception as exc:  # already known / nonce races: the receipt decides
                    row.last_error = str(exc)[:1000]
                try:
                    receipt = w3.eth.wait_for_transaction_receipt(
                        HexStr(row.tx_hash), timeout=self.receipt_timeout_seconds, poll_latency=0.05
                    )
                except Exception as exc:
                    row.attempts += 1
                    row.last_error = f"no receipt yet: {exc}"[:1000]
                    if row.attempts >= MAX_ATTEMPTS:
                        row.status = "failed"
                    return row.status
            row.block_number = int(receipt["blockNumber"])
            row.receipt_status = int(receipt["status"])
            row.status = "confirmed" if receipt["status"] == 1 else "failed"
            CHAIN_TRANSACTIONS.labels(row.action, row.status).inc()
            if row.status == "failed":
                row.last_error = "transaction reverted on chain"
            return row.status

    def _receipt(self, tx_hash: str) -> Any:
        try:
            return self.host.w3.eth.get_transaction_receipt(HexStr(tx_hash))
        except TransactionNotFound:
            return None
