"""Assignment vouchers: the node's signed decision that a provider works on a job.

The escrow contract binds a provider to a funded job only with an EIP-712 `Assignment`
signed by the node's operator key (the contract's assigner). The voucher carries the
lease's attempt number, so the chain applies the same fencing as the node: a provider
whose lease was reaped cannot bind over its successor.
"""

from __future__ import annotations

import time
from typing import Any

from node.jobs.models import Job

VOUCHER_TTL_SECONDS = 3600


def assignment_voucher(chain: Any, job: Job, provider: str, attempt: int) -> dict[str, Any] | None:
    """A JSON-ready voucher for an escrowed job, or None (no reward, or no chain/escrow)."""
    if job.reward_wei <= 0 or chain is None or chain.operator is None:
        return None
    if not chain.escrow_address:
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
