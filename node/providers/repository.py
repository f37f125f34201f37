"""Every SQL query of the provider domain: registry lookups and the claim query."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from marketplace.jobs.states import ACTIVE, JobStatus
from node.jobs.models import Job
from node.jobs.repository import claimable_jobs
from node.providers.models import Provider


def provider_by_address(session: Session, address: str) -> Provider | None:
    return session.scalars(select(Provider).where(Provider.address == address)).first()


def list_providers(session: Session) -> Sequence[Provider]:
    return session.scalars(select(Provider).order_by(Provider.id)).all()


def active_job_counts(session: Session) -> dict[str, int]:
    rows = session.execute(
        select(Job.lease_holder, func.count())
        .where(Job.status.in_([s.value for s in ACTIVE]))
        .group_by(Job.lease_holder)
    ).all()
    return {holder: count for holder, count in rows if holder}


def active_jobs_of(session: Session, address: str) -> int:
    return (
        session.scalar(
            select(func.count()).where(
                Job.lease_holder == address, Job.status.in_([s.value for s in ACTIVE])
            )
        )
        or 0
    )


def claim_candidates(
    session: Session, job_types: Sequence[str], now: dt.datetime, limit: int = 16
) -> Sequence[Job]:
    """Claimable jobs of these types, best first. On PostgreSQL the rows are locked with
    SKIP LOCKED, so concurrent claimers are handed different candidates instead of
    queueing on one row; on SQLite (one writer) the compare-and-set in `take` settles it."""
    return claimable_jobs(session, now=now, limit=limit, job_types=job_types, lock=True)


def take(
    session: Session,
    job_id: int,
    *,
    holder: str,
    lease_id: str,
    expires_at: dt.datetime,
    now: dt.datetime,
) -> bool:
    """Compare-and-set a pending job to claimed; False if someone else got it first."""
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.PENDING.value)
        .values(
            status=JobStatus.CLAIMED.value,
            attempt=Job.attempt + 1,
            lease_id=lease_id,
            lease_holder=holder,
            lease_expires_at=expires_at,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def expired_leases(session: Session, now: dt.datetime, limit: int = 100) -> Sequence[Job]:
    stmt = (
        select(Job)
        .where(Job.status.in_([s.value for s in ACTIVE]), Job.lease_expires_at < now)
        .order_by(Job.lease_expires_at)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    return session.scalars(stmt).all()
