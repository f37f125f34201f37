"""On-chain assignments: the node's decision that a provider works on an escrowed job.

The escrow contract binds a provider to a funded job only on the word of the node's
operator key (the contract's assigner), at the lease's attempt number, so the chain
applies the same fencing as the node: a provider whose lease was reaped cannot bind over
its successor. The node gives that word twice for every lease of an escrowed job:

- `enqueue_assignment`: an outbox row that sends `assign(job, provider, attempt)` from the
  operator key right after the claim commits. The cheap path (no signature to verify on
  chain), and it binds the provider before it starts work: from then on the requester
  can no longer cancel.
- `assignment_voucher`: an EIP-712 voucher in the claim response, the provider's way in
  when the node's own transaction has not landed (`submitWithVoucher` binds and submits
  in one transaction; anyone may relay `bind`).
"""

from __future__ import annotations

import time
from typing import Any

from eth_utils import to_checksum_address
from sqlalchemy.orm import Session

from node.jobs.models import Job

VOUCHER_TTL_SECONDS = 3600


def _escrowed(chain: Any, job: Job) -> bool:
    return (
        job.reward_wei > 0
        and chain is not None
        and chain.operator is not None
        and bool(chain.escrow_address)
    )


def enqueue_assignment(session: Session, chain: Any, job: Job, provider: str, attempt: int) -> bool:
    """Queue the operator's `assign` for a new lease of an escrowed job, in the claim's own
    database transaction (the outbox sends it after commit; idempotent per attempt).
    Returns whether a row was queued."""
    if not _escrowed(chain, job):
        return False
    from node.chain.outbox import enqueue
    from node.chain.service import register_job_key

    key = register_job_key(session, chain.escrow(), job.id)
    enqueue(
        session,
        dedupe_key=f"assign:{job.id}:{attempt}",
        action="assign",
        function="assign",
        args=[key, to_checksum_address(provider), attempt],
        job_id=job.id,
    )
    return True


def assignment_voucher(chain: Any, job: Job, provider: str, attempt: int) -> dict[str, Any] | None:
    """A JSON-ready voucher for an escrowed job, or None (no reward, or no chain/escrow)."""
    if not _escrowed(chain, job):
        return None
    escrow = chain.escrow()
    expiry = int(time.time()) + VOUCHER_TTL_SECONDS
    if job.deadline_at is not None:
        expiry = min(expiry, int(job.deadline_at.timestamp()))
    voucher = escrow.sign_assignment(chain.operator.account, job.id, provider, attempt, expiry)
    return {
        "chain_id": chain.chain_id,
        "escrow": escrow.address,
        "job_key": "0x" + voucher.key.hex(),
        "provider": voucher.provider,
        "attempt": voucher.attempt,
        "expiry": voucher.expiry,
        "v": voucher.v,
        "r": "0x" + voucher.r.hex(),
        "s": "0x" + voucher.s.hex(),
    }
