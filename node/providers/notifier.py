"""Wakes long-polling claimers when a job becomes claimable.

Jobs open in sync service code (a request's threadpool thread). A session hook notes that a
job entered `pending` during a flush and, after the commit (so that the row is visible),
bumps a generation counter on the event loop. Claimers wait for the generation to change,
with a short fallback poll for jobs opened by other node replicas sharing the database.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.orm import Session, sessionmaker

from marketplace.jobs.states import JobStatus
from node.jobs.models import Job

_FLAG = "dcm_jobs_opened"


class JobNotifier:
    def __init__(self) -> None:
        self.generation = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._changed: asyncio.Event | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._changed = asyncio.Event()

    def notify(self) -> None:
        """Thread-safe: may be called from any thread."""
        loop = self._loop
        if loop is None or loop.is_closed():
            self.generation += 1
            return
        try:
            asyncio.get_running_loop()
            on_loop = True
        except RuntimeError:
            on_loop = False
        if on_loop:
            self._bump()
        else:
            loop.call_soon_threadsafe(self._bump)

    def _bump(self) -> None:
        self.generation += 1
        if self._changed is not None:
            self._changed.set()
            self._changed = asyncio.Event()

    async def wait(self, seen_generation: int, timeout: float) -> None:
        """Return when the generation moves past `seen_generation` or after `timeout`."""
        if self.generation != seen_generation or self._changed is None:
            return
        changed = self._changed
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), timeout)


def install(factory: sessionmaker[Session], notifier: JobNotifier) -> None:
    """Hook the sessions of `factory` so that commits opening a job wake claimers."""

    @event.listens_for(factory, "after_flush")
    def _after_flush(session: Session, _ctx: Any) -> None:
        for obj in list(session.new) + list(session.dirty):
            if isinstance(obj, Job) and obj.status == JobStatus.PENDING.value:
                hist = inspect(obj).attrs.status.history
                if obj in session.new or hist.has_changes():
                    session.info[_FLAG] = True
                    return

    @event.listens_for(factory, "after_commit")
    def _after_commit(session: Session) -> None:
        if session.info.pop(_FLAG, False):
            notifier.notify()

    @event.listens_for(factory, "after_rollback")
    def _after_rollback(session: Session) -> None:
        session.info.pop(_FLAG, None)
