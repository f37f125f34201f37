"""Background loop services (after Prefect's `LoopService`): a name, `loop_seconds`, and
`run_once()`, the one pass of work, which tests call directly instead of waiting for the
loop. The node's runtime (`node.runtime`) starts every service with the app and stops it
on shutdown.

`run_once` is synchronous and runs on a worker thread, so a pass that touches the disk or
the database never blocks the event loop. A pass that raises is logged and the loop goes
on: one bad pass must not end the service. After consecutive failures the next pass waits
longer (doubling up to `max_backoff_seconds`, with jitter, so that replicas and services
do not retry in step); the first pass that succeeds returns to `loop_seconds`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from starlette.concurrency import run_in_threadpool

log = logging.getLogger("dcm.services")


def backoff_seconds(loop_seconds: float, failures: int, max_backoff_seconds: float) -> float:
    """The wait after `failures` consecutive failed passes (0: the plain interval)."""
    if failures <= 0:
        return loop_seconds
    ceiling = min(max_backoff_seconds, max(loop_seconds, 1.0) * 2**failures)
    return max(loop_seconds, ceiling * random.uniform(0.5, 1.0))


class LoopService:
    name = "loop-service"
    # True: the first pass runs as the service starts; False: after one interval.
    run_at_start = False
    max_backoff_seconds = 60.0
    # Set by the runtime when replicas share a database (`node.replicas.pass_fence`): each
    # pass runs inside it and is skipped when it yields False (another replica's pass of
    # this service still runs: a leader deposed without knowing it yet).
    guard: Callable[[str], AbstractContextManager[bool]] | None = None

    def __init__(self, loop_seconds: float) -> None:
        self.loop_seconds = loop_seconds
        self.failures = 0
        self._task: asyncio.Task[None] | None = None
        self._woken: asyncio.Event | None = None
        self._loop_of_task: asyncio.AbstractEventLoop | None = None

    def run_once(self) -> Any:
        """One pass of the service's work."""
        raise NotImplementedError

    def wake(self) -> None:
        """Run the next pass now rather than after the interval (callable from any thread);
        a no-op while the service is not running."""
        loop, woken = self._loop_of_task, self._woken
        if loop is not None and woken is not None and not loop.is_closed():
            loop.call_soon_threadsafe(woken.set)

    async def _pass(self) -> None:
        try:
            await run_in_threadpool(self._guarded_pass)
        except asyncio.CancelledError:
            raise
        except Exception:
            self.failures += 1
            log.exception("%s: pass failed (%d in a row)", self.name, self.failures)
        else:
            self.failures = 0

    def _guarded_pass(self) -> Any:
        if self.guard is None:
            return self.run_once()
        with self.guard(self.name) as ours:
            return self.run_once() if ours else None

    async def _loop(self) -> None:
        assert self._woken is not None
        if self.run_at_start:
            await self._pass()
        while True:
            delay = backoff_seconds(self.loop_seconds, self.failures, self.max_backoff_seconds)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), delay)
            self._woken.clear()
            await self._pass()

    async def start(self) -> None:
        self._woken = asyncio.Event()
        self._loop_of_task = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._loop(), name=self.name)

    async def stop(self) -> None:
        self._loop_of_task = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
