"""Rules of the job domain: creation, state transitions, the event log, and the reads
and actions the API dialects share (workspace lists, owner lists, update, cancel, retry).

Every state change goes through `transition`, which checks the one transition table
(`marketplace.jobs.states`) and appends to the job's event log. Services `flush()`;
the caller's session scope commits (and rolls everything back if a rule refuses).
Authorization by workspace role is the router's job (`require_role`); the reads here
scope every query to what the caller may see, so a job of another workspace or user is
indistinguishable from one that does not exist (404).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import inspect
from sqlalchemy.orm import Session

from marketplace.errors import CancelOnChain, JobNotFound, RetryLimitReached
from marketplace.jobs.ids import parse_job_id
from marketplace.jobs.states import OPEN_TO_PROVIDERS, JobStatus, check_transition
from node.db import utcnow
from node.deps import Principal
from node.jobs import repository
from node.jobs.cursor import Cursor, decode_cursor, encode_cursor
from node.jobs.models import Job, JobEvent
from node.jobs.repository import SORT_COLUMNS, JobFilters

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
    if "events" in inspect(job).unloaded:
        session.add(event)
    else:
        # Keep an already loaded log current without reloading it.
        job.events.append(event)
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


# --------------------------------------------------------------------------- reads

WORKSPACE_JOB_NOT_FOUND = "Job not found in specified workspace"


def get_workspace_job(session: Session, workspace_id: int, raw_job_id: str | int) -> Job:
    """The job `raw_job_id` (`job_5`/`5`) of workspace `workspace_id`, else 404.

    A malformed id, a missing job and another workspace's job all answer the same 404.
    """
    try:
        job_id = parse_job_id(raw_job_id)
    except JobNotFound:
        raise JobNotFound(WORKSPACE_JOB_NOT_FOUND) from None
    job = repository.get_job_in_workspace(session, job_id, workspace_id)
    if job is None:
        raise JobNotFound(WORKSPACE_JOB_NOT_FOUND)
    return job


def list_workspace_jobs(
    session: Session,
    principal: Principal,
    filters: JobFilters,
    *,
    workspace_id: int | None,
    sort: str,
    order: str,
    page: int,
    limit: int,
) -> tuple[list[Job], int]:
    """Jobs of one workspace (or, with `workspace_id=None`, of every workspace the caller
    belongs to), page-numbered: `(rows, total)`. The caller's role is checked upstream."""
    scope = repository.in_workspaces(principal.user_id, workspace_id, principal.workspace_id)
    rows, total = repository.page_of_jobs(
        session, scope, filters, sort=sort, order=order, page=page, limit=limit
    )
    return list(rows), total


def get_owned_job(session: Session, principal: Principal, raw_job_id: str) -> Job:
    """A job that belongs to the caller, with its event log; 404 otherwise (seed 002).

    Belongs = created by the caller, requested from the caller's wallet address, or in a
    workspace the caller is a member of (an API key scoped to a workspace: that one only).
    """
    job = repository.get_owned_job(
        session,
        parse_job_id(raw_job_id),
        user_id=principal.user_id,
        address=principal.address,
        scoped_workspace_id=principal.workspace_id,
    )
    if job is None:
        raise JobNotFound()
    return job


def list_owned_jobs(
    session: Session,
    principal: Principal,
    filters: JobFilters,
    *,
    sort: str,
    order: str,
    cursor: str | None,
    limit: int,
) -> tuple[list[Job], str | None]:
    """One keyset page of the caller's jobs and the cursor of the next page (None at the
    end). Raises InvalidCursor (400) for a cursor not issued for this sort/order."""
    after = decode_cursor(cursor, sort=sort, order=order) if cursor is not None else None
    scope = repository.owned_by(principal.user_id, principal.address, principal.workspace_id)
    rows = list(
        repository.keyset_jobs(
            session, scope, filters, sort=sort, order=order, after=after, limit=limit + 1
        )
    )
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    last = rows[-1]
    value = getattr(last, SORT_COLUMNS[sort].key)
    return rows, encode_cursor(Cursor(sort=sort, order=order, value=value, id=last.id))


def is_claimable(job: Job, now: dt.datetime) -> bool:
    """Python twin of `repository.claimable_clause`: open to providers, due, in time."""
    return (
        job.status in {s.value for s in OPEN_TO_PROVIDERS}
        and (job.scheduled_at is None or job.scheduled_at <= now)
        and (job.deadline_at is None or job.deadline_at > now)
    )


# --------------------------------------------------------------------------- actions


def update_job(
    session: Session,
    job: Job,
    changes: dict[str, Any],
    *,
    target: JobStatus | None = None,
) -> Job:
    """Apply a client update: progress fields, a result merge, and an optional transition.

    `changes` holds only the fields the client sent: `progress_percent` and
    `progress_message` are replaced (None clears), `result` is merged key by key into the
    stored result (None clears it). `target`, if given, goes through `transition`.
    """
    if "progress_percent" in changes:
        job.progress_percent = changes["progress_percent"]
    if "progress_message" in changes:
        job.progress_message = changes["progress_message"]
    if "result" in changes:
        new = changes["result"]
        job.result = None if new is None else {**(job.result or {}), **new}
    job.updated_at = utcnow()
    if target is not None and target.value != job.status:
        if target == JobStatus.CANCELLED:
            _refuse_escrowed_cancel(job)
        transition(session, job, target, message="Updated via API")
    session.flush()
    return job


def cancel_job(session: Session, job: Job, *, reason: str = "Cancelled via API") -> Job:
    """Cancel a job that has not finished (409 INVALID_TRANSITION otherwise); the reason
    is merged into its result.

    A job being worked on (claimed or running) is cancelled at once: its provider's next
    heartbeat or progress write is refused, training stops at the next epoch boundary and
    the provider abandons its on-chain binding, after which the requester's own escrow
    `cancel` refunds the deposit. A funded job nobody works on is refunded on chain only
    (409 CANCEL_ON_CHAIN)."""
    check_transition(job.status, JobStatus.CANCELLED)
    if job.status not in (JobStatus.CLAIMED.value, JobStatus.RUNNING.value):
        _refuse_escrowed_cancel(job)
    job.result = {**(job.result or {}), "cancelled_reason": reason}
    return transition(session, job, JobStatus.CANCELLED, message=reason)


def _refuse_escrowed_cancel(job: Job) -> None:
    """A funded job's deposit sits in the escrow: the node cannot refund it, only the
    requester's own `cancel` transaction can (409 CANCEL_ON_CHAIN, naming the route that
    returns the call to sign). The chain watcher cancels the job once the refund is mined."""
    if job.reward_wei > 0 and job.status != JobStatus.AWAITING_FUNDING.value:
        ref = f"job_{job.id}"
        raise CancelOnChain(
            "The reward is held by the escrow contract: sign the escrow's cancel call from "
            f"the requester wallet (GET /v1/jobs/{ref}/cancel-call); the job is cancelled "
            "when the refund is on chain",
            details={"cancel_call": f"/v1/jobs/{ref}/cancel-call", "status": job.status},
        )


def retry_job(session: Session, job: Job, *, reason: str = "Retried via API") -> Job:
    """Send a failed or cancelled job back to the queue as a fresh attempt.

    409 INVALID_TRANSITION unless the job is failed or cancelled; 409 RETRY_LIMIT_REACHED
    once `retry_count` has reached `max_retries`. A job with an escrowed reward goes back
    to `awaiting_funding` (its deposit was refunded when it ended), others to `pending`.
    The previous result is kept in the `retried` event.
    """
    target = JobStatus.AWAITING_FUNDING if job.reward_wei > 0 else JobStatus.PENDING
    check_transition(job.status, target)
    if job.retry_count >= job.max_retries:
        raise RetryLimitReached(
            f"Job already retried {job.retry_count} times (max_retries={job.max_retries})",
            details={"retry_count": job.retry_count, "max_retries": job.max_retries},
        )
    previous_result = job.result
    job.retry_count += 1
    job.result = {"retry_reason": reason, "previous_attempts": job.retry_count}
    job.error = None
    job.progress_percent = None
    job.progress_message = None
    job.started_at = None
    job.completed_at = None
    return transition(
        session,
        job,
        target,
        event_type="retried",
        message=reason,
        data={"previous_result": previous_result, "retry_count": job.retry_count},
    )
