"""The lease reaper: a loop service that returns jobs whose lease expired to the queue (or
fails them past their retries), every `leases.reaper_interval_seconds`. As it starts (the
node starts), it first gives every running lease one more lease length: no provider could
renew while the node was down."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from node.config import NodeSettings
from node.db import session_scope
from node.metrics import LEASE_EXPIRIES
from node.providers import service
from node.services import LoopService

log = logging.getLogger("dcm.providers")


class LeaseReaper(LoopService):
    name = "lease-reaper"
    run_at_start = True

    def __init__(
        self,
        sessions: sessionmaker[Session],
        settings: NodeSettings,
        on_reaped: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(settings.leases.reaper_interval_seconds)
        self.sessions = sessions
        self.settings = settings
        self.on_reaped = on_reaped

    async def start(self) -> None:
        extended = await asyncio.to_thread(self.extend_running_leases)
        if extended:
            log.info("node started: %d running lease(s) extended by one lease length", extended)
        await super().start()

    def extend_running_leases(self) -> int:
        with session_scope(self.sessions) as session:
            return service.extend_leases_at_start(session, self.settings)

    def run_once(self) -> list[int]:
        """Reap once; return the ids of the jobs whose lease was taken back."""
        with session_scope(self.sessions) as session:
            reaped = service.reap_expired(session)
        if reaped:
            LEASE_EXPIRIES.inc(len(reaped))
        if reaped and self.on_reaped is not None:
            self.on_reaped()  # committed: the chain is fenced (unassign) at once
        return reaped
