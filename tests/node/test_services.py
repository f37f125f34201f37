"""The loop-service base (`node.services.LoopService`): a pass that raises is logged and
the loop goes on, backing off with jitter while it keeps failing; `wake()` runs a pass
now."""

from __future__ import annotations

import asyncio

from node.services import LoopService, backoff_seconds


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    assert backoff_seconds(1.0, 0, 60) == 1.0
    for failures in range(1, 10):
        ceiling = min(60.0, 2.0**failures)
        waits = {backoff_seconds(1.0, failures, 60) for _ in range(50)}
        assert all(max(1.0, ceiling / 2) <= w <= ceiling for w in waits)
        if ceiling > 2:
            assert len(waits) > 1  # jittered: replicas do not retry in step


class Flaky(LoopService):
    name = "flaky"
    run_at_start = True
    max_backoff_seconds = 0.05

    def __init__(self, failing: int, loop_seconds: float = 0.01) -> None:
        super().__init__(loop_seconds)
        self.failing = failing
        self.calls = 0

    def run_once(self) -> int:
        self.calls += 1
        if self.calls <= self.failing:
            raise RuntimeError("upstream down")
        return self.calls


async def _run_until(service: LoopService, done, seconds: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    await service.start()
    try:
        for _ in range(int(seconds / 0.01)):
            if done():
                return
            await asyncio.sleep(0.01)
    finally:
        await service.stop()


def test_a_failing_pass_does_not_end_the_service() -> None:
    service = Flaky(failing=2)
    asyncio.run(_run_until(service, lambda: service.calls >= 3 and service.failures == 0))
    assert service.calls >= 3
    assert service.failures == 0  # the first pass that succeeds ends the backoff


def test_wake_runs_a_pass_before_the_interval() -> None:
    service = Flaky(failing=0, loop_seconds=3600)
    service.run_at_start = False

    async def scenario() -> None:
        await service.start()
        try:
            await asyncio.sleep(0.05)
            assert service.calls == 0  # an hour to wait
            service.wake()
            for _ in range(200):
                if service.calls:
                    break
                await asyncio.sleep(0.01)
        finally:
            await service.stop()

    asyncio.run(scenario())
    assert service.calls == 1


def test_run_once_is_the_pass_tests_drive() -> None:
    assert Flaky(failing=0).run_once() == 1
