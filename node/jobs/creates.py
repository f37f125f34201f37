"""`POST /v1/jobs` with group commit: the creates that arrive while one transaction is
being written wait for it to end, then go in together, in one worker thread hop, one
flush and one commit (`CreateQueue`).

Each create costs two rows. Alone, it cost a thread hop, a flush of its own (the ORM's
unit of work, two INSERTs) and a commit, and on SQLite it held the one write turn
(`node.db`) all that time, so 32 concurrent creates queued at the turn, each taking it
after a GIL wait: 283 creates/s, about 1 ms of worker time each in-process (issue 12's
profile). Together, their rows go in one INSERT per table (`_insert`), and a batch of 16
costs about 0.4 ms a create in-process.

What each request is told does not change: a refusal (a workspace it may not use) is
its own, decided before anything is written; the others still go in. If the batch's
transaction fails anyway (a statement or the commit), nothing of it is kept and each of
its creates is written again alone, as it would have been without the batch, so one
create's failure is never another's. A request is answered after the commit that holds
its job, as before.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker

from marketplace.errors import Forbidden, MarketplaceError
from node.auth.principal import Principal
from node.authz.policy import Action, authorize
from node.deps import db_thread
from node.jobs import service
from node.jobs.schemas import JobCreateV1, JobDetailV1, JobEnvelopeV1
from node.models.jobs import Job
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
    """The job a create writes (not yet added to a session)."""
    return service.new_job(
        job_type=body.type,
        spec=body.payload,
        created_by=principal.user_id,
        workspace_id=workspace_id,
        requester_address=principal.address,
        priority=body.priority,
        max_retries=body.max_retries,
    )


def envelope(job: Job) -> JobEnvelopeV1:
    return JobEnvelopeV1(data=JobDetailV1.from_job(job), message="Job created successfully")


@dataclass(eq=False)
class _Create:
    principal: Principal
    body: JobCreateV1
    answer: asyncio.Future[JobEnvelopeV1]
    outcome: JobEnvelopeV1 | BaseException | None = field(default=None)


class CreateQueue:
    """The node's creates, written in batches: at most one batch in a worker thread at a
    time; those that arrive meanwhile make the next one."""

    def __init__(self, sessions: sessionmaker[Session], max_batch: int = MAX_BATCH) -> None:
        self._sessions = sessions
        self._max_batch = max_batch
        self._waiting: list[_Create] = []
        self._writer: asyncio.Task[None] | None = None

    async def create(self, principal: Principal, body: JobCreateV1) -> JobEnvelopeV1:
        """Create the job once its batch commits; raise what refused it."""
        item = _Create(principal, body, asyncio.get_running_loop().create_future())
        self._waiting.append(item)
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_all())
        # A request that goes away cancels its answer, not its create: in a batch being
        # written (as in its own thread hop before) the job may still be made.
        return await item.answer

    async def _write_all(self) -> None:
        try:
            while self._waiting:
                batch = self._waiting[: self._max_batch]
                del self._waiting[: self._max_batch]
                try:
                    await db_thread(lambda batch=batch: self._write(batch))
                except BaseException as exc:  # the hop itself failed: no one waits forever
                    for item in batch:
                        if item.outcome is None:
                            item.outcome = exc
                    if not isinstance(exc, Exception):
                        raise
                finally:
                    for item in batch:
                        _answer(item)
        finally:
            self._writer = None
            for item in self._waiting:  # cancelled while some were waiting
                item.outcome = RuntimeError("job creation stopped")
                _answer(item)
            self._waiting.clear()

    def _write(self, batch: list[_Create]) -> None:
        """In a worker thread: the batch in one transaction, or each alone if that fails
        (what fails it then fails that create only)."""
        try:
            answers = self._transaction(batch)
        except Exception:
            answers = []
            for item in batch:
                try:
                    (answer,) = self._transaction([item])
                except Exception as exc:
                    answer = exc
                answers.append(answer)
        for item, outcome in zip(batch, answers, strict=True):
            item.outcome = outcome

    def _transaction(self, batch: list[_Create]) -> list[JobEnvelopeV1 | MarketplaceError]:
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
                answers = [j if isinstance(j, MarketplaceError) else envelope(j) for j in jobs]
                session.commit()
            except Exception:
                session.rollback()
                raise
        return answers


def _insert(session: Session, jobs: list[Job]) -> None:
    """Flush `jobs` (each with its `created` event) as few statements as the database
    allows.

    PostgreSQL returns the keys of many new rows in order, and the ORM inserts them in
    one statement per table. SQLite's RETURNING promises no order, so the ORM sends new
    rows whose keys it must read back one statement each; rows with their keys set it
    sends in one. So on SQLite the first job goes in alone, and the rest are numbered
    after it and its event: its INSERT took the write lock that the transaction holds to
    its commit, and SQLite numbers a new row after the largest key there is (or the
    largest it ever gave, for an AUTOINCREMENT table), so no key above the one it just
    gave is taken, nor can be until the commit."""
    if not jobs:
        return
    if session.get_bind().dialect.name != "sqlite" or len(jobs) == 1:
        session.add_all(jobs)
        session.flush()
        return
    first, rest = jobs[0], jobs[1:]
    session.add(first)
    session.flush()
    (first_event,) = first.events
    for n, job in enumerate(rest, start=1):
        job.id = first.id + n
        (event,) = job.events
        event.id = first_event.id + n
    session.add_all(rest)
    session.flush()


def _answer(item: _Create) -> None:
    if item.answer.done():
        return
    outcome: Any = item.outcome
    if isinstance(outcome, BaseException):
        item.answer.set_exception(outcome)
    elif outcome is None:
        item.answer.set_exception(RuntimeError("job creation did not answer"))
    else:
        item.answer.set_result(outcome)


def creates_of(request: Request) -> CreateQueue:
    """The node's create queue."""
    return request.app.state.runtime.creates


async def get_creates(request: Request) -> CreateQueue:
    return creates_of(request)


CreatesDep = Annotated[CreateQueue, Depends(get_creates)]
