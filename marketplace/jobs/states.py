"""The canonical job lifecycle, in one place.

    awaiting_funding -> pending -> claimed -> running -> submitted -> completed
    side exits: cancelled (refunded), failed (attempts exhausted), expired, disputed

A job whose money is on chain follows the escrow: a result frozen by a dispute makes a
pending, claimed or running job `disputed` (a stale provider's result, judged on chain),
and a submitted job whose result never reached the chain expires with its deadline.

Each API dialect maps these words to its own; every transition is checked here and
appended to the job's event log by the service that performs it.
"""

from __future__ import annotations

import enum

from marketplace.errors import InvalidTransition


class JobStatus(enum.StrEnum):
    AWAITING_FUNDING = "awaiting_funding"
    PENDING = "pending"
    CLAIMED = "claimed"
    RUNNING = "running"
    SUBMITTED = "submitted"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"
    EXPIRED = "expired"
    DISPUTED = "disputed"


S = JobStatus

TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    S.AWAITING_FUNDING: frozenset({S.PENDING, S.CANCELLED, S.EXPIRED}),
    # pending -> running serves plain (non-escrow) jobs driven by PATCH, seed 001 style.
    S.PENDING: frozenset({S.CLAIMED, S.RUNNING, S.CANCELLED, S.EXPIRED, S.FAILED, S.DISPUTED}),
    S.CLAIMED: frozenset({S.RUNNING, S.PENDING, S.CANCELLED, S.FAILED, S.EXPIRED, S.DISPUTED}),
    # running -> completed serves plain jobs with no result window; running -> pending is a
    # lease that expired or was handed back.
    S.RUNNING: frozenset(
        {S.SUBMITTED, S.COMPLETED, S.PENDING, S.FAILED, S.CANCELLED, S.EXPIRED, S.DISPUTED}
    ),
    S.SUBMITTED: frozenset({S.COMPLETED, S.DISPUTED, S.EXPIRED}),
    S.DISPUTED: frozenset({S.COMPLETED, S.CANCELLED}),
    # retry: a failed or cancelled job goes back to the queue (or to funding, if refunded).
    S.FAILED: frozenset({S.PENDING, S.AWAITING_FUNDING}),
    S.CANCELLED: frozenset({S.PENDING, S.AWAITING_FUNDING}),
    S.EXPIRED: frozenset(),
    S.COMPLETED: frozenset(),
}

TERMINAL = frozenset({S.COMPLETED, S.CANCELLED, S.FAILED, S.EXPIRED})
ACTIVE = frozenset({S.CLAIMED, S.RUNNING})
OPEN_TO_PROVIDERS = frozenset({S.PENDING})


def can_transition(current: JobStatus | str, target: JobStatus | str) -> bool:
    return JobStatus(target) in TRANSITIONS[JobStatus(current)]


def check_transition(current: JobStatus | str, target: JobStatus | str) -> JobStatus:
    """Return `target` as a JobStatus, or raise `InvalidTransition` (409)."""
    cur, tgt = JobStatus(current), JobStatus(target)
    if tgt not in TRANSITIONS[cur]:
        raise InvalidTransition(
            f"Cannot move job from {cur.value} to {tgt.value}",
            details={"from": cur.value, "to": tgt.value},
        )
    return tgt
