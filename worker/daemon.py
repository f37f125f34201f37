"""The provider daemon: sign in, register hardware, claim work, run it, return results.

After Prefect's worker: an async context manager owning its HTTP client; a claim loop that
long-polls the node; one heartbeat loop per running job (jittered, at a third of the lease);
transport errors and 5xx back off and retry, 4xx are final for that call. The first SIGTERM
stops claiming and lets running jobs finish within `grace_seconds`, handing back what is
left; the second stops at once and releases every lease.

Executors implement `worker.executors.base.Executor`; the loop knows nothing about YOLO or
Docker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import shutil
import signal
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from marketplace.errors import Conflict, MarketplaceError, UpstreamUnavailable, ValidationFailed
from worker.api import NodeAPI
from worker.datasets import DatasetCache, DatasetMismatch

log = logging.getLogger("dcm.provider")


@dataclass
class DaemonConfig:
    node_url: str
    workdir: Path
    job_types: list[str] = field(default_factory=lambda: ["image_processing"])
    max_concurrent: int = 1
    name: str = "provider"
    claim_wait_seconds: float = 25.0
    lease_seconds: float = 60.0
    grace_seconds: float = 60.0
    max_backoff_seconds: float = 30.0
    run_once: bool = False  # stop after one job (tests, demo)


class _Reporter:
    """Bridges an executor thread to the node; `should_cancel` turns true when the lease is
    lost or shutdown forces it.

    Progress and log lines are queued and sent in order by one sender task with at most one
    request in flight: consecutive log lines go as one batch, so a chatty trainer cannot
    flood the node (and starve the heartbeats that keep the lease)."""

    MAX_LINES_PER_REQUEST = 500

    def __init__(
        self, loop: asyncio.AbstractEventLoop, api: NodeAPI, job_id: str, attempt: int
    ) -> None:
        self.loop, self.api, self.job_id, self.attempt = loop, api, job_id, attempt
        self.cancelled = threading.Event()
        self.cancel_reason: str | None = None
        self._items: deque[tuple[str, dict[str, Any]]] = deque()
        self._lock = threading.Lock()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task = loop.create_task(self._sender())

    def _enqueue(self, kind: str, body: dict[str, Any]) -> None:
        with self._lock:
            self._items.append((kind, body))
        self.loop.call_soon_threadsafe(self._wake.set)

    def progress(
        self,
        percent: float | None,
        message: str | None = None,
        metrics: dict[str, Any] | None = None,
    ) -> None:
        self._enqueue(
            "progress", {"percent": percent, "message": message, "metrics": metrics or {}}
        )

    def log(self, line: str, level: str = "info") -> None:
        self._enqueue("log", {"line": line[:8000], "level": level})

    def should_cancel(self) -> bool:
        return self.cancelled.is_set()

    def cancel(self, reason: str) -> None:
        self.cancel_reason = reason
        self.cancelled.set()

    def _take(self) -> list[tuple[str, dict[str, Any]]]:
        with self._lock:
            batch = list(self._items)
            self._items.clear()
            if batch:
                self._idle.clear()
        return batch

    def _requests(self, batch: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict]]:
        out: list[tuple[str, dict[str, Any]]] = []
        for kind, body in batch:
            if kind == "log":
                if (
                    out
                    and out[-1][0] == "logs"
                    and (len(out[-1][1]["lines"]) < self.MAX_LINES_PER_REQUEST)
                ):
                    out[-1][1]["lines"].append(body)
                else:
                    out.append(("logs", {"lines": [body]}))
            else:
                out.append((kind, body))
        return out

    async def _sender(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while batch := self._take():
                for action, body in self._requests(batch):
                    await self._send(action, body)
            self._idle.set()

    async def _send(self, action: str, body: dict[str, Any]) -> None:
        try:
            await self.api.job_write(self.job_id, action, self.attempt, **body)
        except Conflict as exc:
            self.cancel(f"lease lost: {exc.message}")
        except MarketplaceError as exc:
            log.warning("job %s %s not delivered: %s", self.job_id, action, exc.message)

    async def drain(self) -> None:
        """Wait until everything queued so far has been sent (or given up on)."""
        while True:
            with self._lock:
                done = not self._items and self._idle.is_set()
            if done:
                return
            self._wake.set()
            await asyncio.sleep(0.02)

    async def close(self) -> None:
        await self.drain()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


class ProviderDaemon:
    def __init__(
        self,
        config: DaemonConfig,
        account: Any,
        executors: dict[str, Any],
        hardware: Callable[[Path], dict[str, Any]] | None = None,
    ) -> None:
        self.config = config
        self.account = account
        self.executors = executors
        self.hardware = hardware
        self.api = NodeAPI(config.node_url)
        self.datasets = DatasetCache(config.workdir / "datasets")
        self._running: dict[str, tuple[asyncio.Task[Any], _Reporter, int]] = {}
        self._stopping = asyncio.Event()
        self.chain: Any = None
        self._forced = False
        self.completed: list[dict[str, Any]] = []

    async def __aenter__(self) -> ProviderDaemon:
        self.config.workdir.mkdir(parents=True, exist_ok=True)
        await self._retry(lambda: self.api.sign_in(self.account))
        caps = self.hardware(self.config.workdir) if self.hardware else {}
        await self._retry(
            lambda: self.api.register(
                {
                    "name": self.config.name,
                    "capabilities": caps,
                    "job_types": self.config.job_types,
                    "max_concurrent": self.config.max_concurrent,
                }
            )
        )
        log.info("provider %s registered at %s", self.account.address, self.config.node_url)
        info = await self._retry(self.api.chain_info)
        if info and info.get("escrow_address"):
            from worker.chain import ProviderChain

            rpc = info.get("rpc_url") or self.config.node_url.rstrip("/") + "/chain/rpc"
            self.chain = ProviderChain(rpc, info["escrow_address"], self.account)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.api.aclose()

    # -- signals ----------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)

    def request_stop(self) -> None:
        """First call: drain. Second call: stop at once and release leases."""
        if self._stopping.is_set():
            log.warning("second stop signal: cancelling running jobs and releasing leases")
            self._forced = True
            for _task, reporter, _attempt in self._running.values():
                reporter.cancel("provider shutting down")
            return
        log.info("stop requested: no new claims; draining %d job(s)", len(self._running))
        self._stopping.set()

    # -- main loop --------------------------------------------------------------------

    async def run(self) -> None:
        backoff = 1.0
        claimed_any = False
        while not self._stopping.is_set():
            if self.config.run_once and claimed_any:
                break
            if len(self._running) >= self.config.max_concurrent:
                await self._wait_for_slot()
                continue
            try:
                got = await self._claim()
                backoff = 1.0
            except UpstreamUnavailable as exc:
                log.warning("node unavailable (%s); retrying in %.1fs", exc.message, backoff)
                await self._sleep_or_stop(backoff)
                backoff = min(backoff * 2, self.config.max_backoff_seconds)
                continue
            if got is None:
                continue
            claimed_any = True
            job, lease = got["job"], got["lease"]
            reporter = _Reporter(asyncio.get_running_loop(), self.api, job["id"], lease["attempt"])
            task = asyncio.create_task(self._run_job(job, lease, got.get("voucher"), reporter))
            self._running[job["id"]] = (task, reporter, lease["attempt"])
        await self._drain()

    async def _claim(self) -> dict[str, Any] | None:
        claim = asyncio.create_task(
            self.api.claim(self.config.claim_wait_seconds, self.config.job_types)
        )
        stop = asyncio.create_task(self._stopping.wait())
        done, _ = await asyncio.wait({claim, stop}, return_when=asyncio.FIRST_COMPLETED)
        if claim in done:
            stop.cancel()
            return claim.result()
        claim.cancel()
        with contextlib.suppress(asyncio.CancelledError, MarketplaceError):
            result = await claim
            if result:  # the node leased a job as we stopped: hand it straight back
                await self.api.job_write(
                    result["job"]["id"],
                    "release",
                    result["lease"]["attempt"],
                    reason="provider stopping",
                )
        return None

    async def _wait_for_slot(self) -> None:
        tasks = [t for t, _r, _a in self._running.values()]
        stop = asyncio.create_task(self._stopping.wait())
        await asyncio.wait([*tasks, stop], return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()

    async def _sleep_or_stop(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _drain(self) -> None:
        if not self._running:
            return
        tasks = [t for t, _r, _a in self._running.values()]
        _done, pending = await asyncio.wait(tasks, timeout=self.config.grace_seconds)
        if pending:
            log.warning("grace period over: handing back %d job(s)", len(pending))
            for _task, reporter, _attempt in self._running.values():
                reporter.cancel("provider shutting down")
            await asyncio.wait(pending, timeout=30)

    async def _retry(self, call: Callable[[], Any]) -> Any:
        backoff = 0.5
        while True:
            try:
                return await call()
            except UpstreamUnavailable:
                if self._stopping.is_set():
                    raise
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.config.max_backoff_seconds)

    # -- one job ----------------------------------------------------------------------

    async def _heartbeat(self, job_id: str, attempt: int, reporter: _Reporter) -> None:
        period = self.config.lease_seconds / 3
        while not reporter.should_cancel():
            await asyncio.sleep(period * random.uniform(0.8, 1.0))
            try:
                await self.api.job_write(job_id, "heartbeat", attempt)
            except Conflict as exc:  # lease lost, job cancelled, or superseded
                reporter.cancel(f"lease lost: {exc.message}")
            except MarketplaceError as exc:
                log.warning("heartbeat for %s failed: %s", job_id, exc.message)

    async def _run_job(
        self,
        job: dict[str, Any],
        lease: dict[str, Any],
        voucher: dict[str, Any] | None,
        reporter: _Reporter,
    ) -> None:
        from worker.executors.base import ExecutionCancelled, JobSpec

        job_id, attempt = job["id"], lease["attempt"]
        workdir = self.config.workdir / "jobs" / f"{job_id}-a{attempt}"
        heartbeat = asyncio.create_task(self._heartbeat(job_id, attempt, reporter))
        try:
            await self.api.job_write(job_id, "start", attempt)
            if voucher is not None and self.chain is None:
                raise _JobFailure("escrowed job but the node names no chain", retryable=True)
            executor = self.executors.get(job["type"])
            if executor is None:
                raise _JobFailure(f"no executor for job type {job['type']}", retryable=True)
            dataset_dir = None
            if job.get("folder_cid"):
                reporter.progress(0, "Fetching dataset")
                dataset_dir = await self.datasets.fetch(self.api, job_id, job["folder_cid"])
            spec = JobSpec(
                job_id=job_id,
                attempt=attempt,
                job_type=job["type"],
                spec=job.get("spec") or {},
                dataset_dir=dataset_dir,
            )
            workdir.mkdir(parents=True, exist_ok=True)
            result = await asyncio.to_thread(executor.run, spec, workdir, reporter)
            await reporter.drain()
            reporter.progress(100, "Uploading results")
            result_cid = await self.api.add_directory(result.output_dir)
            await reporter.drain()
            if voucher is not None:
                tx = await asyncio.to_thread(self.chain.submit, voucher, result_cid)
                reporter.log(f"result digest submitted on chain: {tx}")
                await reporter.drain()
            body = {
                "result_cid": result_cid,
                "result": result.metrics,
                "result_type": result.result_type,
            }
            done = await self.api.job_write(job_id, "result", attempt, **body)
            self.completed.append(
                {
                    "job_id": job_id,
                    "attempt": attempt,
                    "result_cid": result_cid,
                    "status": done["status"],
                    "metrics": result.metrics,
                }
            )
            log.info("job %s attempt %d submitted: %s", job_id, attempt, result_cid)
        except ExecutionCancelled:
            await self._hand_back(job_id, attempt, reporter)
            await self._abandon_on_chain(job_id, voucher)
        except (DatasetMismatch, ValidationFailed) as exc:
            # Bytes that are not what the requester pinned, or a spec/dataset the executor
            # refuses: another attempt cannot do better, so the job fails.
            await self._report_failure(job_id, attempt, exc.message, retryable=False)
            await self._abandon_on_chain(job_id, voucher)
        except _JobFailure as exc:
            await self._report_failure(job_id, attempt, str(exc), exc.retryable)
        except Conflict as exc:
            log.warning("job %s attempt %d lost its lease: %s", job_id, attempt, exc.message)
        except MarketplaceError as exc:
            await self._report_failure(job_id, attempt, exc.message, retryable=True)
        except Exception as exc:  # an executor bug must not kill the daemon
            log.exception("job %s failed", job_id)
            await self._report_failure(
                job_id, attempt, f"{type(exc).__name__}: {exc}", retryable=True
            )
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            await reporter.close()
            self._running.pop(job_id, None)
            shutil.rmtree(workdir, ignore_errors=True)

    async def _hand_back(self, job_id: str, attempt: int, reporter: _Reporter) -> None:
        reason = reporter.cancel_reason or "cancelled"
        if reason.startswith("lease lost"):
            log.info("job %s attempt %d stopped: %s", job_id, attempt, reason)
            return
        with contextlib.suppress(MarketplaceError):
            await self.api.job_write(job_id, "release", attempt, reason=reason)
        log.info("job %s attempt %d handed back: %s", job_id, attempt, reason)

    async def _abandon_on_chain(self, job_id: str, voucher: dict[str, Any] | None) -> None:
        """Stopped without a result: release the on-chain binding so the job can be rebound
        or refunded. Best effort: a successor may already have rebound it (NotProvider)."""
        if voucher is None or self.chain is None:
            return
        try:
            tx = await asyncio.to_thread(self.chain.abandon, voucher["job_key"])
            log.info("job %s abandoned on chain: %s", job_id, tx)
        except MarketplaceError as exc:
            log.info("job %s not abandoned on chain: %s", job_id, exc.message)

    async def _report_failure(self, job_id: str, attempt: int, error: str, retryable: bool) -> None:
        log.error("job %s attempt %d failed: %s", job_id, attempt, error)
        with contextlib.suppress(MarketplaceError):
            await self.api.job_write(
                job_id, "fail", attempt, error=error[:3900], retryable=retryable
            )


class _JobFailure(Exception):
    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable
