"""Rules of the job domain: creation, state transitions, the event log, and the reads
and actions the API dialects share (workspace lists, owner lists, update, cancel, retry).

Every state change goes through `transition`, which checks the one transition table
(`marketplace.jobs.states`) and appends to the job's event log. Services `flush()`;
the caller's session scope commits (and rolls everything back if a rule refuses).
Who may do what is `node.authz.policy`: routers authorize workspace-level actions, and
the reads here scope every query to what the caller may read, so a job of another
workspace or user is indistinguishable from one that does not exist (404).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import Row, and_, inspect
from sqlalchemy.orm import Session

from marketplace.errors import InvalidTransition, JobNotFound, RetryLimitReached
from marketplace.jobs.ids import parse_job_id
from marketplace.jobs.states import TERMINAL, JobStatus, check_transition
from marketplace.logcontext import set_job
from node.auth.principal import Principal
from node.authz.policy import (
    Action,
    authorize_job,
    readable_in_workspace,
    readable_jobs,
    readable_scope,
)
from node.config import EventSettings
from node.db import utcnow
from node.jobs import repository
from node.jobs.cursor import Cursor, decode_cursor, encode_cursor
from node.jobs.events import DROPPED_MARKER, LOG, LogLine, admit_lines, next_seq
from node.jobs.repository import SORT_COLUMNS, JobFilters
from node.models.jobs import Job, JobEvent

PRIORITY_RANK = {"low": 0, "normal": 1, "high": 2, "urgent": 3}

J = TypeVar("J", Job, Row[Any])  # a job as the ORM loads it, or as a read's row


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
    stream: str | None = None,
    seq: int | None = None,
    flush: bool = True,
) -> JobEvent:
    """Append one entry to the job's event log (state change, progress or log line), with
    the job's next sequence number (`node.jobs.events`), or `seq` when the caller already
    took it (a claim takes it in the same UPDATE that leases the job). `flush=False`
    leaves the INSERT to the session's next flush (the claims of one transaction send
    their events in one statement)."""
    event = _add_event(
        session,
        job,
        next_seq(session, job) if seq is None else seq,
        type,
        message,
        level=level,
        data=data,
        from_status=from_status,
        to_status=to_status,
        attempt=attempt,
        stream=stream,
    )
    if flush:
        session.flush()
    return event


def _add_event(
    session: Session,
    job: Job,
    seq: int,
    type: str,
    message: str | None = None,
    *,
    level: str = "info",
    data: dict[str, Any] | None = None,
    from_status: str | None = None,
    to_status: str | None = None,
    attempt: int | None = None,
    stream: str | None = None,
) -> JobEvent:
    """Add entry number `seq` (taken with `next_seq`) to the job's event log, unflushed."""
    event = JobEvent(
        job_id=job.id,
        seq=seq,
        type=type,
        message=message,
        level=level,
        stream=stream,
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
    return event


def append_log_lines(
    session: Session, job: Job, lines: list[LogLine], limits: EventSettings, attempt: int | None
) -> int:
    """Store a batch of log lines within the per-job limits; return how many were kept.
    Dropped lines leave one marker line (level warning) saying how many."""
    kept, dropped = admit_lines(job, lines, limits)
    count = len(kept) + (1 if dropped else 0)
    if count == 0:
        return 0
    seq = next_seq(session, job, count)  # one UPDATE for the whole batch
    for line in kept:
        _add_event(
            session, job, seq, LOG, line.line, level=line.level, stream=line.stream, attempt=attempt
        )
        seq += 1
    job.log_lines += len(kept)
    if dropped:
        job.log_dropped += dropped
        _add_event(
            session,
            job,
            seq,
            LOG,
            DROPPED_MARKER.format(n=dropped, limit=limits.max_log_lines_per_job),
            level="warning",
            data={"dropped": dropped, "dropped_total": job.log_dropped},
            attempt=attempt,
        )
    session.flush()
    return len(kept)


def create_job(session: Session, *, job_type: str, **fields: Any) -> Job:
    """Insert a job in its first state and log the `created` event (`new_job`)."""
    job = new_job(job_type=job_type, **fields)
    session.add(job)
    session.flush()
    return job


def new_job(**fields: Any) -> Job:
    """A job in its first state with its `created` event, for the caller to add to a
    session (`create_job`); `fields` as `new_job_values` takes them."""
    job, event = new_job_values(**fields)
    return Job(**job, events=[JobEvent(**event)])


def new_job_values(
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
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The attributes of a new job in its first state, and of its `created` event: what
    `new_job` builds, and the creates written by Core INSERTs (`node.jobs.creates`)."""
    now = utcnow()
    job = {
        "job_type": job_type,
        "spec": spec or {},
        "created_by": created_by,
        "workspace_id": workspace_id,
        "requester_address": requester_address,
        "priority": priority,
        "priority_rank": PRIORITY_RANK.get(priority, 1),
        "reward_wei": reward_wei,
        "status": status.value,
        "max_retries": max_retries,
        "estimated_duration_seconds": estimated_duration_seconds,
        "scheduled_at": scheduled_at,
        "deadline_at": deadline_at,
        "folder_cid": folder_cid,
        "metadata_cid": metadata_cid,
        "batch_id": batch_id,
        "created_at": now,
        "updated_at": now,
        # A job no one else can see yet takes its first event number without the row
        # lock of `next_seq`: the job and its `created` event go in one flush, and its
        # event log is known (no read of it back).
        "event_seq": 1,
        # The columns with a server default, set: the ORM reads back a default it does not
        # know, which on SQLite costs each new row a statement of its own.
        "retry_base_attempt": 0,
        "log_lines": 0,
        "log_dropped": 0,
    }
    event = {
        "seq": 1,
        "type": "created",
        "message": "Job created",
        "level": "info",
        "to_status": status.value,
        "created_at": now,
    }
    return job, event


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
    set_job(job.id, job.attempt or None)  # this request's or pass's later log lines
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
) -> tuple[list[Row[Any]], int]:
    """Jobs of one workspace where the caller may read jobs (404 or 403 otherwise), or,
    with `workspace_id=None`, of every workspace it may read, page-numbered:
    `(rows, total)`."""
    scope = (
        and_(readable_jobs(session, principal), Job.workspace_id.is_not(None))
        if workspace_id is None
        else readable_in_workspace(session, principal, workspace_id)
    )
    rows, total = repository.page_of_jobs(
        session, scope, filters, sort=sort, order=order, page=page, limit=limit
    )
    return list(rows), total


def get_owned_job(
    session: Session,
    principal: Principal,
    raw_job_id: str,
    action: Action = Action.READ_JOB,
    *,
    with_events: bool = True,
) -> Job:
    """A job the caller may read, with its event log, if it may also do `action` on it:
    404 if it may not read it (seed 002), 403 if it may read it but not do this.

    Readable = in a workspace where the caller's role reads jobs (a workspace-scoped API
    key: that one only), or, for a job without a workspace, created by the caller or
    requested from its wallet (`node.authz.policy`).
    """
    job = repository.get_job(session, parse_job_id(raw_job_id), with_events=with_events)
    return _allowed(session, principal, job, action)


def get_owned_job_detail(
    session: Session, principal: Principal, raw_job_id: str
) -> tuple[Row[Any], Sequence[Row[Any]]]:
    """`get_owned_job` for a read that answers with the event log: the job and its events
    as rows (`repository.job_row`, `repository.events_of`), not ORM objects; the escrow
    view and the funding call read a row's attributes as they read a `Job`'s."""
    job = _allowed(session, principal, repository.job_row(session, parse_job_id(raw_job_id)))
    return job, repository.events_of(session, job.id)


def _allowed(
    session: Session, principal: Principal, job: J | None, action: Action = Action.READ_JOB
) -> J:
    """`job` (an ORM `Job` or a row) if the caller may do `action` on it; 404 if there is
    none or it may not read it, 403 if it may read it but not do this."""
    if job is None:
        raise JobNotFound()
    authorize_job(session, principal, job, action)
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
) -> tuple[list[Row[Any]], str | None]:
    """One keyset page of the jobs the caller may read (rows, `repository.keyset_jobs`)
    and the cursor of the next page (None at the end). Raises InvalidCursor (400) for a
    cursor not issued for this sort/order."""
    after = decode_cursor(cursor, sort=sort, order=order) if cursor is not None else None
    scope = readable_scope(session, principal)
    rows = list(
        repository.keyset_jobs(
            session,
            scope.branches,
            scope.params,
            filters,
            sort=sort,
            order=order,
            after=after,
            limit=limit + 1,
        )
    )
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    last = rows[-1]
    value = getattr(last, SORT_COLUMNS[sort].key)
    return rows, encode_cursor(Cursor(sort=sort, order=order, value=value, id=last.id))


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
            _refuse_disputed_cancel(job)
        transition(session, job, target, message="Updated via API")
    session.flush()
    return job


def cancel_job(session: Session, job: Job, *, reason: str = "Cancelled via API") -> Job:
    """Cancel a job that has not finished (409 INVALID_TRANSITION otherwise); the reason
    is merged into its result.

    A job being worked on (claimed or running) is cancelled at once: its provider's next
    heartbeat or progress write is refused and training stops at the next epoch boundary.
    A funded job's deposit comes back to its requester through the node: the chain policy
    releases the provider's binding (`unassign`) and refunds the deposit (`refund`). A
    disputed job is not cancelled: its money waits for the arbiter's ruling."""
    check_transition(job.status, JobStatus.CANCELLED)
    _refuse_disputed_cancel(job)
    job.result = {**(job.result or {}), "cancelled_reason": reason}
    return transition(session, job, JobStatus.CANCELLED, message=reason)


def _refuse_disputed_cancel(job: Job) -> None:
    """A dispute ends with the arbiter's ruling (or its silence), never with a cancel."""
    if job.status == JobStatus.DISPUTED.value:
        raise InvalidTransition(
            "The job's result is disputed in the escrow: the arbiter's ruling ends it",
            details={"from": job.status, "to": JobStatus.CANCELLED.value},
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
    job.retry_base_attempt = job.attempt  # a fresh round of provider attempts
    job.last_failed_by = None
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


# --------------------------------------------------------------------------- content


def jobs_needing_cid(session: Session, cid: str) -> list[int]:
    """Jobs that still need the content `cid` (their dataset, metadata or result): every
    job that has not reached a final state. Its pin must stay."""
    live = {s.value for s in JobStatus} - {s.value for s in TERMINAL}
    return list(repository.jobs_using_cid(session, cid, live))
