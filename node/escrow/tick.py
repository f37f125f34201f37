"""The chain tick: one loop service that keeps the node and its chain in step.

Each pass (`ChainTick.run_once`), under one lock: send the outbox, poll the escrow's
events (`node.escrow.watcher`), then the settlement policy's `reconcile` (bindings follow
leases, results are judged) or, every `chain_policy_interval_seconds`, the whole policy
(`node.escrow.policy`); the outbox rows they write are sent and their events applied in
the same pass. A committed outbox row calls `wake_chain` so the next pass runs at once.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from node.chain.host import ChainHost
from node.config import NodeSettings
from node.escrow.outbox import OutboxSender
from node.escrow.policy import PolicyReport, SettlementPolicy
from node.escrow.watcher import ChainWatcher
from node.services import LoopService


class ChainTick(LoopService):
    name = "chain-tick"
    run_at_start = True

    def __init__(
        self,
        host: ChainHost,
        sessions: sessionmaker[Session],
        settings: NodeSettings,
        content: Any = None,
    ) -> None:
        super().__init__(settings.chain_watch_interval_seconds)
        self.lock = threading.Lock()
        self.watcher = ChainWatcher(host, sessions)
        self.outbox = OutboxSender(host, sessions)
        self.policy = SettlementPolicy(
            host,
            sessions,
            funding_timeout_seconds=settings.funding_timeout_seconds,
            content=content,
        )
        self.policy_seconds = settings.chain_policy_interval_seconds
        self._last_policy = float("-inf")
        # False: a committed outbox row waits for the next interval (tests drive passes)
        self.wake_on_commit = True

    def run_once(self, *, drain: bool = False) -> PolicyReport:
        """One pass. `drain`: run the whole settlement policy whatever its interval, then
        send and watch again whatever is queued (by the policy or by the events just
        applied), bringing node and chain in step now: the pass tests drive by hand."""
        with self.lock:
            self.outbox.process()
            self.watcher.poll_once()
            if drain or time.monotonic() - self._last_policy >= self.policy_seconds:
                self._last_policy = time.monotonic()
                report = self.policy.run_once()
            else:
                report = self.policy.reconcile()
            if drain or report.enqueued:
                self.outbox.process()
                self.watcher.poll_once()
            return report

    async def stop(self) -> None:
        await super().stop()
        # a pass already running in its thread finishes before the chain is closed
        await run_in_threadpool(lambda: (self.lock.acquire(), self.lock.release()))


def wake_chain(app: Any) -> None:
    """Run the next chain tick now rather than after the poll interval (from any thread):
    an outbox row was just committed."""
    app.state.runtime.wake_chain()
