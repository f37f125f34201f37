"""`POST /v1/jobs` with group commit: the creates that arrive while one transaction is
being written wait for it to end, then go in together, in one worker thread hop, one
INSERT per table and one commit (`CreateQueue`).

Each create costs two rows. Alone, it cost a thread hop, a flush of its own (the ORM's
unit of work, two INSERTs) and a commit, and on SQLite it held the one write turn
(`node.db`) all that time, so 32 concurrent creates queued at the turn, each taking it
after a GIL wait: 283 creates/s, about 1 ms of worker time each in-process (issue 12's
profile). Together, their rows go in one INSERT per table (`_insert`), and a batch of 16
costs about 0.4 ms a create in-process.

What each request is told does not change (`node.deps.GroupCommit`): a refusal (a
workspace it may not use) is its own, decided before anything is written; the others
still go in; a batch whose transaction fails is written again one create at a time.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import insert, text
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.attributes import set_committed_value

from marketplace.errors import Forbidden, MarketplaceError
from node.auth.principal import Principal
from node.authz.policy import Action, authorize
from node.db import as_loaded, insert_rows, inserted, recordset, recordset_columns
from node.deps import GroupCommit, rendered
from node.jobs import service
from node.jobs.schemas import JobCreateV1, JobDetailV1, JobEnvelopeV1
from node.models.jobs import Job, JobEvent
from node.workspaces.service import personal_workspace_id

# The most creates one transaction takes: enough that 32 concurrent requesters go in one
# or two batches; few enough that a batch written again one by one stays short.
MAX_BATCH = 64


def workspace_for(session: Session, principal: Principal, workspace_id: int | None) -> int:
    """The workspace a create goes to: the one named, if the caller may create jobs
    there (403/404 otherwise), else the caller's personal workspace (an API key must
    name its own)."""
    if workspace_id is not None:
        authorize(session, principal, workspace_id, Action.CREATE_JOB)
        return workspace_id
    if principal.workspace_id is not None:
        raise Forbidden("This API key may only create jobs in its workspace")
    return personal_workspace_id(session, principal)  # the caller owns it


def new_job(principal: Principal, body: JobCreateV1, workspace_id: int) -> Job:
    """The job a create writes, with its `created` event, built for `_insert` (not yet
    added to a session): as `service.new_job` builds it, without the constructors'
    attribute events, which were a fifth of a batch's worker thread time (py-spy)."""
    values, event = service.new_job_values(
        job_type=body.type,
        spec=body.payload,
        created_by=principal.user_id,
        workspace_id=workspace_id,
        requester_address=principal.address,
        priority=body.priority,
        max_retries=body.max_retries,
    )
    job, created = as_loaded(Job, values), as_loaded(JobEvent, event)
    # both ways: the new-row hooks find an event's job on it (the job is not the session's)
    set_committed_value(job, "events", [created])
    set_committed_value(created, "job", job)
    return job


def envelope(job: Job) -> str:
    """The create's answer, rendered (`node.deps.rendered`): in the batch's worker thread,
    with the job just built, where the event loop rendered it later (16 % of a create's
    request path on the loop, in-process under py-spy)."""
    return rendered(
        JobEnvelopeV1(data=JobDetailV1.from_job(job), message="Job created successfully")
    )


@dataclass(frozen=True)
class _Create:
    principal: Principal
    body: JobCreateV1


class CreateQueue(GroupCommit[_Create, str]):
    """The node's creates, written in batches (`GroupCommit`)."""

    def __init__(self, sessions: sessionmaker[Session], max_batch: int = MAX_BATCH) -> None:
        super().__init__(max_batch)
        self._sessions = sessions

    async def create(self, principal: Principal, body: JobCreateV1) -> str:
        """Create the job once its batch commits; raise what refused it."""
        return await self.submit(_Create(principal, body))

    def _transaction(self, batch: list[_Create]) -> list[str | Exception]:
        """Write the batch's creates in one transaction and commit it: each create's
        answer, or the refusal of a create decided before any write of its; raise (all
        rolled back) if a statement or the commit fails."""
        with self._sessions() as session:
            try:
                # Every workspace first: its reads would flush the jobs added so far.
                targets: list[int | MarketplaceError] = []
                for item in batch:
                    try:
                        targets.append(
                            workspace_for(session, item.principal, item.body.workspace_id)
                        )
                    except MarketplaceError as refused:
                        targets.append(refused)
                jobs = [
                    target
                    if isinstance(target, MarketplaceError)
                    else new_job(item.principal, item.body, target)
                    for item, target in zip(batch, targets, strict=True)
                ]
                _insert(session, [j for j in jobs if isinstance(j, Job)])
                answers: list[str | Exception] = [
                    j if isinstance(j, MarketplaceError) else envelope(j) for j in jobs
                ]
                session.commit()
            except Exception:
                session.rollback()
                raise
        return answers


def _insert(session: Session, jobs: list[Job]) -> None:
    """Write `jobs`, each with its `created` event, in Core INSERTs, as few as the
    database allows, and tell the new-row hooks of them as a flush would
    (`node.db.inserted`: webhooks and wake-ups see them alike). The ORM's unit of work
    for the same rows (its bookkeeping of each object's state, its sort of the work, its
    read back of each key) was 29 % of the node's GIL time on `POST /v1/jobs` on SQLite
    under py-spy, the statements themselves 8 % of it."""
    if not jobs:
        return
    events = [event for job in jobs for event in job.events]  # its `created` event
    if session.get_bind().dialect.name == "postgresql":
        _insert_recordsets(session, jobs, events)
    else:
        _insert_numbered(session, jobs, events)
    inserted(session, [*jobs, *events])


def _insert_numbered(session: Session, jobs: list[Job], events: list[JobEvent]) -> None:
    """SQLite: one INSERT per table. Its RETURNING promises no order, so the first job
    goes in alone, and the rest are numbered after it (and the events after its event):
    its INSERT took the write lock that the transaction holds to its commit, and SQLite
    numbers a new row after the largest key there is (or the largest it ever gave, for an
    AUTOINCREMENT table), so no key above the one it just gave is taken, nor can be until
    the commit."""
    for job, key in zip(jobs, _numbered(session, _JOBS, jobs), strict=True):
        job.id = key
    for event in events:
        event.job_id = event.job.id
    for event, key in zip(events, _numbered(session, _EVENTS, events), strict=True):
        event.id = key


_JOBS, _EVENTS = Job.__table__, JobEvent.__table__


def _numbered(session: Session, table: Any, objects: list[Any]) -> Sequence[int]:
    """Insert the rows of `objects` (`node.db.insert_rows`) into `table`; their new keys,
    in order (`_insert_numbered` says how)."""
    rows = insert_rows(objects)
    key = table.c.id
    first = session.execute(insert(table).returning(key), rows[0]).scalar_one()
    keys = range(first, first + len(rows))
    if len(rows) > 1:
        for row, n in zip(rows[1:], keys[1:], strict=True):
            row["id"] = n
        session.execute(insert(table), rows[1:])
    return keys


# Each new job's key and its event's, taken from their sequences before the rows go in.
_KEYS = text(
    "SELECT nextval(pg_get_serial_sequence('jobs', 'id')),"
    " nextval(pg_get_serial_sequence('job_events', 'id')) FROM generate_series(1, :n)"
)


def _insert_recordsets(session: Session, jobs: list[Job], events: list[JobEvent]) -> None:
    """PostgreSQL: the keys first (`_KEYS`), then the jobs and their events in one
    statement, each table's rows one JSON parameter (`node.db.recordset`). A multi-row
    INSERT of the same rows had SQLAlchemy render and psycopg dump each of their
    parameters (a job has 18), and its RETURNING read the keys back in order: 72 us of
    CPU a job in-process, 50 this way, and 137 us of wall time, 85 this way."""
    keys = session.execute(_KEYS, {"n": len(jobs)}).all()
    for job, event, (job_key, event_key) in zip(jobs, events, keys, strict=True):
        job.id = event.job_id = job_key
        event.id = event_key
    job_rows, event_rows = insert_rows(jobs), insert_rows(events)
    dialect = session.get_bind().dialect
    session.connection().exec_driver_sql(
        _both_inserts(tuple(job_rows[0]), tuple(event_rows[0])),
        (recordset(_JOBS, job_rows, dialect), recordset(_EVENTS, event_rows, dialect)),
    )


@functools.cache
def _both_inserts(job_columns: tuple[str, ...], event_columns: tuple[str, ...]) -> str:
    """The statement of `_insert_recordsets` for rows of these columns."""
    jobs, events = ", ".join(job_columns), ", ".join(event_columns)
    return (
        f"WITH new_jobs AS (INSERT INTO jobs ({jobs})"
        f" SELECT {recordset_columns(_JOBS, job_columns)}"
        " FROM json_populate_recordset(NULL::jobs, $1::json))"
        f" INSERT INTO job_events ({events})"
        f" SELECT {recordset_columns(_EVENTS, event_columns)}"
        " FROM json_populate_recordset(NULL::job_events, $2::json)"
    )


def creates_of(request: Request) -> CreateQueue:
    """The node's create queue."""
    return request.app.state.runtime.creates


async def get_creates(request: Request) -> CreateQueue:
    return creates_of(request)


CreatesDep = Annotated[CreateQueue, Depends(get_creates)]
