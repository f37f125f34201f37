"""Queries of the seed-000 routes (jobs are the canonical `jobs` rows)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from node.authz.repository import open_market
from node.models.jobs import Job


def job_by_id(session: Session, job_id: int) -> Job | None:
    return session.get(Job, job_id)


def open_jobs(
    session: Session, *, job_type: str, statuses: Iterable[str], limit: int
) -> Sequence[Job]:
    """Open-market jobs of `job_type` in `statuses`, oldest first (the order providers
    should take). Private jobs are never listed here."""
    stmt = (
        select(Job)
        .where(Job.job_type == job_type, Job.status.in_(list(statuses)), open_market())
        .order_by(Job.created_at, Job.id)
        .limit(limit)
    )
    return session.scalars(stmt).all()


def jobs_of_requester(
    session: Session, *, job_type: str, address: str, limit: int
) -> Sequence[Job]:
    """Open-market jobs of `job_type` that `address` posted (any case), newest first."""
    stmt = (
        select(Job)
        .where(
            Job.job_type == job_type,
            func.lower(Job.requester_address) == address.lower(),
            open_market(),
        )
        .order_by(Job.created_at.desc(), Job.id.desc())
        .limit(limit)
    )
    return session.scalars(stmt).all()


def jobs_of_contributor(
    session: Session,
    *,
    job_type: str,
    address: str,
    statuses: Iterable[str] | None,
    limit: int,
) -> Sequence[Job]:
    """Open-market jobs of `job_type` whose lease `address` holds or last held (in
    `statuses`, if given), newest first."""
    stmt = select(Job).where(
        Job.job_type == job_type, func.lower(Job.lease_holder) == address.lower(), open_market()
    )
    if statuses is not None:
        stmt = stmt.where(Job.status.in_(list(statuses)))
    stmt = stmt.order_by(Job.updated_at.desc(), Job.id.desc()).limit(limit)
    return session.scalars(stmt).all()
