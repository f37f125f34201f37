"""A draining provider takes no new work: the long-poll it had in flight when SIGTERM came
may still be answered with a lease (the node grants it as its wait ends, whether or not
the provider still listens); the daemon waits for that answer and hands the job straight
back, so the job does not sit claimed until the lease expires (issue 11)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from marketplace.leases import Claim
from tests.worker.test_daemon_faults import _daemon, _Executor, _Node, _run


class _GrantsLate(_Node):
    """A node whose claim long-poll is answered when the test says so; the grant is the
    node's own act (recorded in `granted`), done whether or not the caller still waits."""

    def __init__(self) -> None:
        super().__init__(jobs=1)
        self.polling = asyncio.Event()
        self.granted: list[str] = []
        self.released: list[str] = []
        self._answer: asyncio.Future[Claim | None] | None = None

    async def claim(self, wait: float, job_types: Any, exclude: Any = None) -> Claim | None:
        if self.granted:  # one job only
            await asyncio.sleep(min(wait, 0.05))
            return None
        self._answer = asyncio.get_running_loop().create_future()
        self.polling.set()
        return await asyncio.shield(self._answer)

    async def grant(self) -> None:
        claim = await super().claim(25, None)
        assert claim is not None
        self.granted.append(claim.job.id)
        if self._answer is not None and not self._answer.done():
            self._answer.set_result(claim)

    async def end_claims(self) -> None:
        self.calls.append("end_claims")

    async def job_write(self, job_id: str, action: str, attempt: int, **body: Any) -> dict:
        if action == "release":
            self.released.append(job_id)
        return await super().job_write(job_id, action, attempt, **body)


def test_a_lease_granted_to_a_draining_providers_poll_is_handed_back(tmp_path) -> None:
    executor = _Executor()
    node_box: list[_GrantsLate] = []

    async def main() -> None:
        node = _GrantsLate()
        node_box.append(node)
        daemon = _daemon(tmp_path, node, executor)
        running = asyncio.create_task(daemon.run())
        await asyncio.wait_for(node.polling.wait(), 10)
        daemon.request_stop()  # SIGTERM while the long-poll is in flight
        await asyncio.sleep(0.05)
        await node.grant()  # the node's wait ends: it leases the job to that poll
        await asyncio.wait_for(running, 10)

    asyncio.run(main())
    node = node_box[0]
    assert node.granted == ["job_1"]
    assert node.released == ["job_1"]  # handed back at once, not left to expire
    assert node.calls[0] == "end_claims"  # it asked the node to end its poll first
    assert "start" not in node.calls and "result" not in node.calls


def test_once_runs_its_job_past_the_grace_period_when_nobody_asked_to_stop(tmp_path) -> None:
    """`--once` ends the claim loop after one job, which is no stop request: the job runs
    to its end, however long it takes next to the shutdown grace period (the README's
    walkthrough trains for about a minute, the default grace)."""
    node = _Node()
    daemon = _daemon(
        tmp_path, node, _Executor(during=lambda: time.sleep(1.0)), run_once=True, grace_seconds=0.1
    )
    _run(daemon)
    assert [done["job_id"] for done in daemon.completed] == ["job_1"]
    assert "result" in node.calls and "release" not in node.calls
