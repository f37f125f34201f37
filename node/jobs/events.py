"""The job event log as a store to read and follow: sequence numbers, log limits and
retention, the reads of `GET /v1/jobs/{id}/events|logs`, and the session hooks that wake
followers after a commit (`node.notifier`, topic `job_topic(id)`).

Every entry of a job's log (`node.models.jobs.JobEvent`) takes the next number of the
job's `event_seq`, incremented by one UPDATE of the job row: under PostgreSQL that row
lock orders concurrent writers, so sequence order is commit order and a follower that has
seen N never later finds an N-1. A log line longer than `events.max_line_chars` is cut
with a marker; past `events.max_log_lines_per_job` lines are dropped, and one marker
line per refused batch says how many (`Job.log_dropped` counts them all).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, event, select, update
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.attributes import set_committed_value

from marketplace.jobs.states import TERMINAL
from node.config import EventSettings
from node.db import on_new, utcnow
from node.jobs.schemas import JobEventV1
from node.models.jobs import Job, JobEvent
from node.notifier import EVENTS, Notifier, job_topic

LOG = "log"
DROPPED_MARKER = "[dcm] {n} log line(s) dropped: this job reached its limit of {limit} lines"
_TOUCHED = "dcm_job_events_touched"
FINAL = frozenset(s.value for s in TERMINAL)


def next_seq(session: Session, job: Job, count: int = 1) -> int:
    """Take the job's next `count` event numbers in one UPDATE (locks the job row until
    commit); return the first of them."""
    last = session.execute(
        update(Job)
        .where(Job.id == job.id)
        .values(event_seq=Job.event_seq + count, updated_at=Job.updated_at)  # not an update
        .returning(Job.event_seq)
        .execution_options(synchronize_session=False)
    ).scalar_one()
    set_committed_value(job, "event_seq", last)
    return last - count + 1


@dataclass(frozen=True)
class LogLine:
    line: str
    level: str = "info"
    stream: str | None = None


def clip(line: str, limit: int) -> str:
    if len(line) <= limit:
        return line
    cut = len(line) - limit
    return line[:limit] + f" …[dcm: {cut} more characters cut]"


def admit_lines(
    job: Job, lines: Sequence[LogLine], limits: EventSettings
) -> tuple[list[LogLine], int]:
    """The lines to store (clipped) and how many are dropped past the per-job limit."""
    room = max(0, limits.max_log_lines_per_job - job.log_lines)
    kept = [LogLine(clip(x.line, limits.max_line_chars), x.level, x.stream) for x in lines[:room]]
    return kept, len(lines) - len(kept)


# --------------------------------------------------------------------------- reads

EVENTS_KIND = "events"
LOGS_KIND = "logs"


def read_events(
    session: Session,
    job_id: int,
    kind: str,
    *,
    after: int | None = None,
    since: dt.datetime | None = None,
    tail: int | None = None,
    limit: int = 1000,
) -> list[JobEvent]:
    """The job's entries of `kind` (`logs`: log lines; `events`: everything else) in
    sequence order: after sequence `after`, at or after `since`, the last `tail` of them,
    at most `limit`."""
    query = select(JobEvent).where(JobEvent.job_id == job_id)
    query = query.where(JobEvent.type == LOG if kind == LOGS_KIND else JobEvent.type != LOG)
    if after is not None:
        query = query.where(JobEvent.seq > after)
    if since is not None:
        query = query.where(JobEvent.created_at >= since)
    if tail is not None:
        rows = session.scalars(query.order_by(JobEvent.seq.desc()).limit(tail)).all()
        return list(reversed(rows))[:limit]
    return list(session.scalars(query.order_by(JobEvent.seq).limit(limit)).all())


def job_state(session: Session, job_id: int) -> tuple[str, int] | None:
    """(status, last sequence number) of a job, None if it is gone."""
    row = session.execute(select(Job.status, Job.event_seq).where(Job.id == job_id)).first()
    return (row[0], row[1]) if row is not None else None


def event_view(ev: JobEvent) -> dict[str, Any]:
    """One entry as streams and lists show it (camelCase, as the /v1 dialect)."""
    return JobEventV1.from_event(ev).model_dump(mode="json", by_alias=True)


# --------------------------------------------------------------------------- retention


def prune_logs(session: Session, limits: EventSettings) -> int:
    """Delete log lines older than the retention period; return how many."""
    if limits.log_retention_days <= 0:
        return 0
    cutoff = utcnow() - dt.timedelta(days=limits.log_retention_days)
    result = session.execute(
        delete(JobEvent).where(JobEvent.type == LOG, JobEvent.created_at < cutoff)
    )
    return int(result.rowcount or 0)


# --------------------------------------------------------------------------- wake-ups


def install(factory: sessionmaker[Session], notifier: Notifier) -> None:
    """After a commit that added job events, wake that job's followers and the `EVENTS`
    listeners (the webhook sender)."""

    def _new_rows(session: Session, new: Sequence[Any]) -> None:
        touched = {obj.job_id for obj in new if isinstance(obj, JobEvent)}
        if touched:
            session.info.setdefault(_TOUCHED, set()).update(touched)

    on_new(factory, _new_rows)

    @event.listens_for(factory, "after_commit")
    def _after_commit(session: Session) -> None:
        touched = session.info.pop(_TOUCHED, None)
        if touched:
            notifier.notify(*(job_topic(j) for j in touched), EVENTS)

    @event.listens_for(factory, "after_rollback")
    def _after_rollback(session: Session) -> None:
        session.info.pop(_TOUCHED, None)
