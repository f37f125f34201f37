"""Queries of the seed-000 routes (jobs are the canonical `jobs` rows)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from node.jobs.models import Job


def job_by_id(session: Session, job_id: int) -> Job | None:
    return session.get(Job, job_id)


def open_jobs(
    session: Session, *, job_type: str, statuses: Iterable[str], limit: int
) -> Sequence[Job]:
    """Jobs of `job_type` in `statuses`, oldest first (the order providers should take)."""
    stmt = (
        select(Job)
        .where(Job.job_type == job_type, Job.status.in_(list(statuses)))
        .order_by(Job.created_at, Job.id)
        .limit(limit)
    )
    return session.scalars(stmt).all()
