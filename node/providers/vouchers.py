"""On-chain assignments: the node's decision that a provider works on an escrowed job.

The escrow contract binds a provider to a funded job only on the word of the node's
operator key (the contract's assigner), for an Open job, at the lease's attempt number,
so the chain applies the same fencing as the node. The node gives that word twice for
every lease of an escrowed job:

- `enqueue_assignment`: outbox rows, in the claim's own transaction, that release any
  binding no live lease holds (`unassign`) and then send `assign(job, provider, attempt)`
  from the operator key right after the claim commits. The cheap path (no signature to
  verify on chain), and it binds the provider before it starts work: from then on the
  requester can no longer cancel on chain.
- `assignment_voucher`: an EIP-712 voucher in the claim response, the provider's way in
  when the node's own transaction has not landed (`submitWithVoucher` binds and submits
  in one transaction; anyone may relay `bind`). It names the deposit it is for (its
  funding tag), so it never binds a later deposit on the same key.

When a lease ends (expired, handed back, failed, the job cancelled), the chain policy's
`reconcile` queues the `unassign` (`node.escrow.policy`); the reaper wakes it at once.
"""

from __future__ import annotations

import time
from typing import Any

from eth_utils import to_checksum_address
from sqlalchemy.orm import Session

from node.escrow.service import live_escrow, sync_lease
from node.models.jobs import Job

VOUCHER_TTL_SECONDS = 3600


def _escrowed(chain: Any, job: Job) -> bool:
    return (
        job.reward_wei > 0
        and chain is not None
        and chain.operator is not None
        and bool(chain.escrow_address)
    )


def enqueue_assignment(session: Session, chain: Any, job: Job, provider: str, attempt: int) -> bool:
    """Queue the chain calls of a new lease of an escrowed job, in the claim's own
    database transaction (the outbox sends them after commit; idempotent per lease).
    Returns whether a row was queued."""
    if not _escrowed(chain, job):
        return False

    return sync_lease(session, job)


def assignment_voucher(
    session: Session, chain: Any, job: Job, provider: str, attempt: int
) -> dict[str, Any] | None:
    """A JSON-ready voucher for an escrowed job's live deposit, or None (no reward, no
    chain/escrow, or no deposit the job runs on)."""
    if not _escrowed(chain, job):
        return None

    row = live_escrow(session, job)
    if row is None or row.funding_tag is None:
        return None
    escrow = chain.escrow()
    expiry = int(time.time()) + VOUCHER_TTL_SECONDS  # no chain call inside the claim
    if job.deadline_at is not None:
        expiry = min(expiry, int(job.deadline_at.timestamp()))
    voucher = escrow.sign_assignment(
        chain.operator.account,
        row.job_key,
        to_checksum_address(provider),
        attempt,
        row.funding_tag,
        expiry,
    )
    return {
        "chain_id": chain.chain_id,
        "escrow": escrow.address,
        "job_key": "0x" + voucher.key.hex(),
        "provider": voucher.provider,
        "attempt": voucher.attempt,
        "funding": voucher.funding,
        "expiry": voucher.expiry,
        "v": voucher.v,
        "r": "0x" + voucher.r.hex(),
        "s": "0x" + voucher.s.hex(),
    }
