"""Wakes long-polling claimers when a job becomes claimable (the node's one notifier,
`node.notifier`, topic `CLAIMABLE`).

Jobs open in sync service code (a request's threadpool thread). A session hook notes that a
job entered `pending` (a new one, `node.db.on_new`, or one back to it in a flush) and,
after the commit (so that the row is visible), bumps a generation counter on the event
loop. Claimers wait for the generation to change, with a short fallback poll for jobs
opened by other node replicas sharing the database.
On shutdown `close()` ends every open long-poll at once (the claimer gets "no work" and
retries elsewhere), so stopping the node never waits for a claim's wait to run out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.orm import Session, sessionmaker

from marketplace.jobs.states import JobStatus
from node.db import on_new
from node.models.jobs import Job
from node.notifier import CLAIMABLE, Notifier

_FLAG = "dcm_jobs_opened"


# The node's one notifier (`node.notifier`); claims wait on its `CLAIMABLE` topic.
JobNotifier = Notifier


def install(factory: sessionmaker[Session], notifier: JobNotifier) -> None:
    """Hook the sessions of `factory` so that commits opening a job wake claimers."""

    def _new_rows(session: Session, new: Sequence[Any]) -> None:
        if any(isinstance(obj, Job) and obj.status == JobStatus.PENDING.value for obj in new):
            session.info[_FLAG] = True

    on_new(factory, _new_rows)

    @event.listens_for(factory, "after_flush")
    def _after_flush(session: Session, _ctx: Any) -> None:
        for obj in session.dirty:  # a job back to pending (a release, a retry)
            if (
                isinstance(obj, Job)
                and obj.status == JobStatus.PENDING.value
                and inspect(obj).attrs.status.history.has_changes()
            ):
                session.info[_FLAG] = True
                return

    @event.listens_for(factory, "after_commit")
    def _after_commit(session: Session) -> None:
        if session.info.pop(_FLAG, False):
            notifier.notify(CLAIMABLE)

    @event.listens_for(factory, "after_rollback")
    def _after_rollback(session: Session) -> None:
        session.info.pop(_FLAG, None)
