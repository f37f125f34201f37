"""Rules of the job domain: creation, state transitions and the event log.

Every state change goes through `transition`, which checks the one transition table
(`marketplace.jobs.states`) and appends to the job's event log. Services `flush()`;
the caller's session scope commits.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from marketplace.jobs.states import JobStatus, check_transition
from node.db import utcnow
from node.jobs.models import Job, JobEvent

PRIORITY_RANK = {"low": 0, "normal": 1, "high": 2, "urgent": 3}


def record_event(
    session: Session,
    job: Job,
    type: str,
    message: str | None = None,
    *,
    level: str = "info",
    data: dict[str, Any] | None = None,
    from_status: str | None = None,
    to_status: str | None = None,
    attempt: int | None = None,
) -> JobEvent:
    """Append one entry to the job's event log (state change or log line)."""
    event = JobEvent(
        job_id=job.id,
        type=type,
        message=message,
        level=level,
        data=data,
        from_status=from_status,
        to_status=to_status,
        attempt=attempt,
        created_at=utcnow(),
    )
    session.add(event)
    session.flush()
    return event


def create_job(
    session: Session,
    *,
    job_type: str,
    spec: dict[str, Any] | None = None,
    created_by: int | None = None,
    workspace_id: int | None = None,
    requester_address: str | None = None,
    priority: str = "normal",
    reward_wei: int = 0,
    status: JobStatus = JobStatus.PENDING,
    max_retries: int = 3,
    estimated_duration_seconds: int | None = None,
    scheduled_at: dt.datetime | None = None,
    deadline_at: dt.datetime | None = None,
    folder_cid: str | None = None,
    metadata_cid: str | None = None,
    batch_id: str | None = None,
) -> Job:
    """Insert a job in its first state and log the `created` event."""
    now = utcnow()
    job = Job(
        job_type=job_type,
        spec=spec or {},
        created_by=created_by,
        workspace_id=workspace_id,
        requester_address=requester_address,
        priority=priority,
        priority_rank=PRIORITY_RANK.get(priority, 1),
        reward_wei=reward_wei,
        status=status.value,
        max_retries=max_retries,
        estimated_duration_seconds=estimated_duration_seconds,
        scheduled_at=scheduled_at,
        deadline_at=deadline_at,
        folder_cid=folder_cid,
        metadata_cid=metadata_cid,
        batch_id=batch_id,
        created_at=now,
        updated_at=now,
    )
    session.add(job)
    session.flush()
    record_event(session, job, "created", "Job created", to_status=job.status)
    return job


def transition(
    session: Session,
    job: Job,
    target: JobStatus,
    *,
    event_type: str | None = None,
    message: str | None = None,
    data: dict[str, Any] | None = None,
) -> Job:
    """Move `job` to `target` (409 INVALID_TRANSITION if not allowed) and log it."""
    previous = job.status
    check_transition(previous, target)
    now = utcnow()
    job.status = target.value
    job.updated_at = now
    if target == JobStatus.RUNNING and job.started_at is None:
        job.started_at = now
    if target in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.EXPIRED):
        job.completed_at = now
    session.flush()
    record_event(
        session,
        job,
        event_type or target.value,
        message,
        data=data,
        from_status=previous,
        to_status=target.value,
        attempt=job.attempt or None,
    )
    return job
