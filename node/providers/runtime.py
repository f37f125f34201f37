"""Wires the provider domain into an app: the claim notifier and the lease reaper."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from node.providers.notifier import JobNotifier, install
from node.providers.router import run_reaper


def setup(app: Any) -> None:
    notifier = JobNotifier()
    app.state.job_notifier = notifier
    install(app.state.sessionmaker, notifier)

    async def start(app: Any) -> None:
        notifier.bind(asyncio.get_running_loop())
        app.state.reaper_task = asyncio.create_task(run_reaper(app), name="lease-reaper")

    async def stop(app: Any) -> None:
        task = getattr(app.state, "reaper_task", None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app.state.on_startup.append(start)
    app.state.on_shutdown.append(stop)
