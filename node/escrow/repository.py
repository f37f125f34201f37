"""Every SQL query of the chain domain.

The settlement policy's "what is due" queries select exactly the escrows that need the
node, by status and phase end (indexed), whatever their job ids: a long-lived old job
never hides a newer one (each returns at most `limit` rows, the most overdue first).

A deposit is the job's *live funding* when the node accepted it, it is the job's newest
generation, and the job is at a stage that uses it (`LIVE_JOB_STATUSES`). Everything else
that holds money (a refused deposit, one of a retried or cancelled job) goes back to its
requester.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Integer, Row, Select, and_, bindparam, func, not_, or_, select
from sqlalchemy.orm import Session, aliased

from marketplace.jobs.states import JobStatus
from node.models.escrow import ChainCursor, ChainEscrow, ChainEvent, ChainOutbox
from node.models.jobs import Job

S = JobStatus
LIVE_JOB_STATUSES = tuple(
    s.value for s in (S.PENDING, S.CLAIMED, S.RUNNING, S.SUBMITTED, S.DISPUTED, S.COMPLETED)
)
# a binding its lease holder keeps: working, or reported (its on-chain submit may follow)
LEASE_JOB_STATUSES = tuple(s.value for s in (S.CLAIMED, S.RUNNING, S.SUBMITTED))


def cursor(session: Session, name: str) -> ChainCursor | None:
    return session.get(ChainCursor, name)


def event_exists(session: Session, chain_id: int, tx_hash: str, log_index: int) -> bool:
    stmt = select(ChainEvent.id).where(
        ChainEvent.chain_id == chain_id,
        ChainEvent.tx_hash == tx_hash,
        ChainEvent.log_index == log_index,
    )
    return session.execute(stmt).first() is not None


# -- escrows -------------------------------------------------------------------------------


def escrow(session: Session, job_key: str) -> ChainEscrow | None:
    return session.get(ChainEscrow, job_key)


def escrows_of_job(session: Session, job_id: int) -> list[ChainEscrow]:
    stmt = select(ChainEscrow).where(ChainEscrow.job_id == job_id).order_by(ChainEscrow.generation)
    return list(session.execute(stmt).scalars())


_NEWEST_ESCROW = (  # built once (the by-id read's statement; see node.jobs.repository)
    select(ChainEscrow)
    .where(ChainEscrow.job_id == bindparam("job_id"))
    .order_by(ChainEscrow.generation.desc())
    .limit(1)
)


def newest_escrow(session: Session, job_id: int) -> ChainEscrow | None:
    return session.execute(_NEWEST_ESCROW, {"job_id": job_id}).scalar_one_or_none()


_ESCROWS = ChainEscrow.__table__
_NEWEST_ESCROW_ROW = (
    select(_ESCROWS)
    .where(_ESCROWS.c.job_id == bindparam("job_id"))
    .order_by(_ESCROWS.c.generation.desc())
    .limit(1)
)


def newest_escrow_row(session: Session, job_id: int) -> Row[Any] | None:
    """`newest_escrow` as a row with the escrow's attribute names, for a read that only
    reads it (the by-id read's escrow view): no ORM identity map or loading."""
    return session.execute(_NEWEST_ESCROW_ROW, {"job_id": job_id}).first()


def _newest_generation() -> ColumnElement[int]:
    other = aliased(ChainEscrow)
    return (
        select(func.max(other.generation))
        .where(other.job_id == ChainEscrow.job_id)
        .scalar_subquery()
    )


def _live() -> ColumnElement[bool]:
    """SQL: the escrow row is its job's live funding (joined with `Job`)."""
    return and_(
        ChainEscrow.accepted.is_(True),
        ChainEscrow.generation == _newest_generation(),
        Job.status.in_(LIVE_JOB_STATUSES),
    )


# The "what is due" queries, built once with bound `limit` and `now`: the chain tick runs
# all seven every second, and building them (the aliased subquery of `_live` above all)
# was most of an idle node's CPU (issue 12's profile: a fifth of a core on 2 cores).
_LIMIT = bindparam("limit", type_=Integer)
_NOW = bindparam("now")  # typed by each comparison: the column's type


def _due(*where: ColumnElement[bool], order_by: ColumnElement[object]) -> Select[Any]:
    stmt = select(ChainEscrow, Job).join(Job, Job.id == ChainEscrow.job_id).where(*where)
    return stmt.order_by(order_by).limit(_LIMIT)


_BINDINGS_TO_RELEASE = _due(
    ChainEscrow.status == "bound",
    not_(
        and_(
            _live(),
            Job.status.in_(LEASE_JOB_STATUSES),
            func.lower(Job.lease_holder) == func.lower(ChainEscrow.provider),
            Job.attempt == ChainEscrow.attempt,
        )
    ),
    order_by=ChainEscrow.updated_at,
)
_LEASES_TO_BIND = _due(
    ChainEscrow.status == "open",
    _live(),
    Job.status.in_((S.CLAIMED.value, S.RUNNING.value)),
    Job.lease_holder.is_not(None),
    ChainEscrow.attempt < Job.attempt,
    order_by=ChainEscrow.updated_at,
)
_RESULTS_TO_JUDGE = _due(
    ChainEscrow.status == "submitted",
    or_(ChainEscrow.verdict.is_(None), ChainEscrow.verdict == "awaiting_report"),
    order_by=ChainEscrow.phase_end,
)
_DEPOSITS_TO_REFUND = _due(
    ChainEscrow.status == "open", not_(_live()), order_by=ChainEscrow.updated_at
)
_EXPIRED_DEPOSITS = _due(
    ChainEscrow.status.in_(("open", "bound")),
    ChainEscrow.phase_end <= _NOW,
    order_by=ChainEscrow.phase_end,
)
_RESULTS_TO_FINALIZE = _due(
    ChainEscrow.status == "submitted",
    ChainEscrow.verdict == "accepted",
    ChainEscrow.phase_end <= _NOW,
    order_by=ChainEscrow.phase_end,
)
_DISPUTES_TO_CLOSE = _due(
    ChainEscrow.status == "disputed", ChainEscrow.phase_end <= _NOW, order_by=ChainEscrow.phase_end
)

Due = Sequence[tuple[ChainEscrow, Job]]


def bindings_to_release(session: Session, limit: int) -> Due:
    """Bound escrows whose binding no live lease holds any more (the lease expired, was
    handed back or failed, the job was cancelled, the deposit is not the job's)."""
    return session.execute(_BINDINGS_TO_RELEASE, {"limit": limit}).tuples().all()


def leases_to_bind(session: Session, limit: int) -> Due:
    """Live leases whose escrow is Open at a lower attempt: the node's `assign` is due."""
    return session.execute(_LEASES_TO_BIND, {"limit": limit}).tuples().all()


def results_to_judge(session: Session, limit: int) -> Due:
    """Results on chain the node has not judged yet, or waits for the report of."""
    return session.execute(_RESULTS_TO_JUDGE, {"limit": limit}).tuples().all()


def deposits_to_refund(session: Session, limit: int) -> Due:
    """Open deposits that are not their job's live funding: refused ones, and those of
    jobs that ended without a result (cancelled, failed, expired) or were retried."""
    return session.execute(_DEPOSITS_TO_REFUND, {"limit": limit}).tuples().all()


def expired_deposits(session: Session, now: int, limit: int) -> Due:
    """Open or bound escrows whose result deadline passed: `refundExpired` is due."""
    return session.execute(_EXPIRED_DEPOSITS, {"now": now, "limit": limit}).tuples().all()


def results_to_finalize(session: Session, now: int, limit: int) -> Due:
    """Results the node accepted whose challenge window is over: the provider is paid."""
    return session.execute(_RESULTS_TO_FINALIZE, {"now": now, "limit": limit}).tuples().all()


def disputes_to_close(session: Session, now: int, limit: int) -> Due:
    """Disputes the arbiter left unresolved: the default ruling refunds the requester."""
    return session.execute(_DISPUTES_TO_CLOSE, {"now": now, "limit": limit}).tuples().all()


# -- events: settlements, deferred payments ------------------------------------------------


def settlements(
    session: Session,
    *,
    provider: str | None = None,
    requester: str | None = None,
    job_id: int | None = None,
    accepted_only: bool = False,
    limit: int = 100,
) -> list[ChainEvent]:
    stmt = select(ChainEvent).where(ChainEvent.event == "JobSettled")
    if provider:
        stmt = stmt.where(ChainEvent.provider == provider)
    if requester:
        stmt = stmt.where(ChainEvent.requester == requester)
    if job_id is not None:
        stmt = stmt.where(ChainEvent.job_id == job_id)
    if accepted_only:
        stmt = stmt.where(ChainEvent.accepted_funding.is_(True))
    stmt = stmt.order_by(ChainEvent.block_number.desc(), ChainEvent.log_index.desc()).limit(limit)
    return list(session.execute(stmt).scalars())


def deferred_payments(session: Session, tx_hashes: Sequence[str]) -> list[ChainEvent]:
    """`PaymentDeferred` events of these transactions (pushes that were credited)."""
    if not tx_hashes:
        return []
    stmt = (
        select(ChainEvent)
        .where(ChainEvent.event == "PaymentDeferred", ChainEvent.tx_hash.in_(list(tx_hashes)))
        .order_by(ChainEvent.block_number, ChainEvent.log_index)
    )
    return list(session.execute(stmt).scalars())


# -- jobs awaiting funding ----------------------------------------------------------------


def unfunded_jobs_before(session: Session, cutoff: dt.datetime, limit: int) -> list[Job]:
    """`awaiting_funding` jobs created before `cutoff`, oldest first."""
    stmt = (
        select(Job)
        .where(Job.status == S.AWAITING_FUNDING.value, Job.created_at < cutoff)
        .order_by(Job.id)
        .limit(limit)
    )
    return list(session.execute(stmt).scalars())


def cids_in_use(session: Session, cids: Sequence[str]) -> set[str]:
    """Which of `cids` a job that is not expired still uses (dataset or metadata)."""
    live = Job.status != S.EXPIRED.value
    folders = select(Job.folder_cid).where(Job.folder_cid.in_(list(cids)), live)
    metadata = select(Job.metadata_cid).where(Job.metadata_cid.in_(list(cids)), live)
    return set(session.execute(folders).scalars()) | set(session.execute(metadata).scalars())


# -- outbox --------------------------------------------------------------------------------


def outbox_open(session: Session) -> list[ChainOutbox]:
    stmt = (
        select(ChainOutbox)
        .where(ChainOutbox.status.in_(("pending", "signed")))
        .order_by(ChainOutbox.id)
    )
    return list(session.execute(stmt).scalars())


def outbox_by_dedupe(session: Session, dedupe_key: str) -> ChainOutbox | None:
    stmt = select(ChainOutbox).where(ChainOutbox.dedupe_key == dedupe_key)
    return session.execute(stmt).scalar_one_or_none()
