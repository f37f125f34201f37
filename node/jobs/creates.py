"""`POST /v1/jobs` with group commit: the creates that arrive while one transaction is
being written wait for it to end, then go in together, in one worker thread hop, one
flush and one commit (`CreateQueue`).

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

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker

from marketplace.errors import Forbidden, MarketplaceError
from node.auth.principal import Principal
from node.authz.policy import Action, authorize
from node.deps import GroupCommit
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


@dataclass(frozen=True)
class _Create:
    principal: Principal
    body: JobCreateV1


class CreateQueue(GroupCommit[_Create, JobEnvelopeV1]):
    """The node's creates, written in batches (`GroupCommit`)."""

    def __init__(self, sessions: sessionmaker[Session], max_batch: int = MAX_BATCH) -> None:
        super().__init__(max_batch)
        self._sessions = sessions

    async def create(self, principal: Principal, body: JobCreateV1) -> JobEnvelopeV1:
        """Create the job once its batch commits; raise what refused it."""
        return await self.submit(_Create(principal, body))

    def _transaction(self, batch: list[_Create]) -> list[JobEnvelopeV1 | Exception]:
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
                answers: list[JobEnvelopeV1 | Exception] = [
                    j if isinstance(j, MarketplaceError) else envelope(j) for j in jobs
                ]
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


def creates_of(request: Request) -> CreateQueue:
    """The node's create queue."""
    return request.app.state.runtime.creates


async def get_creates(request: Request) -> CreateQueue:
    return creates_of(request)


CreatesDep = Annotated[CreateQueue, Depends(get_creates)]
