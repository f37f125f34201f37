"""The provider daemon: sign in, register hardware, claim work, run it, return results.

After Prefect's worker: an async context manager owning its HTTP client; a claim loop that
long-polls the node; one heartbeat loop per running job (jittered, at a third of the lease
the node granted); transport errors and 5xx back off and retry, 4xx are final for that
call. The final steps (upload, result and failure reports) retry through a node outage for
as long as the lease may still be ours; nothing is uploaded or submitted on chain once the
lease is lost. A failure of the provider's own makes it back off, check itself and leave
that job to others. The first SIGTERM
stops claiming and lets running jobs finish within `grace_seconds`, handing back what is
left; the second stops at once and releases every lease.

Executors implement `worker.executors.base.Executor`; the loop knows nothing about YOLO or
Docker.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import importlib
import logging
import random
import shutil
import signal
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from marketplace.datasets.layout import stored_layout
from marketplace.errors import (
    Conflict,
    MarketplaceError,
    NotAdmitted,
    NotFound,
    UpstreamUnavailable,
    ValidationFailed,
)
from marketplace.leases import (
    MIN_RELIABLE_LEASE_SECONDS,
    AssignmentVoucher,
    Claim,
    Lease,
    ResourceSample,
    heartbeat_seconds,
    lease_too_short,
)
from marketplace.logcontext import set_job
from worker.api import NodeAPI
from worker.datasets import ContentCache, DatasetCache, DatasetMismatch
from worker.metrics import CLAIMS, EXECUTOR_SECONDS, RUNNING_JOBS

log = logging.getLogger("dcm.provider")

# The lease length assumed only until the node's first answer names one (an old node).
FALLBACK_LEASE_SECONDS = 60.0


@dataclass
class DaemonConfig:
    node_url: str
    workdir: Path
    job_types: list[str] = field(default_factory=lambda: ["image_processing"])
    max_concurrent: int = 1
    name: str = "provider"
    claim_wait_seconds: float = 25.0
    grace_seconds: float = 60.0
    max_backoff_seconds: float = 30.0
    run_once: bool = False  # stop after one job (tests, demo)
    # `provider` API keys of workspaces whose private pools this provider joins; without
    # them it is offered escrowed (open-market) jobs only.
    api_keys: list[str] = field(default_factory=list)
    # The provider networks it serves (`--pool`; seed 003's `provider` of a job).
    networks: list[str] = field(default_factory=lambda: ["default"])
    # After a failure of its own (unwritable workdir, executor crash): wait this long
    # (doubling per failure in a row, up to `max_backoff_seconds`), then check itself
    # before claiming again, and do not claim the failed job for `avoid_failed_seconds`.
    failure_backoff_seconds: float = 2.0
    avoid_failed_seconds: float = 600.0
    min_free_disk_bytes: int = 256 * 1024 * 1024
    # Resource samples of a running job's process tree this often (`worker.sampler`);
    # 0 turns the sampler off (an executor with `reports_own_metrics` sends its own).
    metrics_interval_seconds: float = 10.0


class _LeaseClock:
    """The lease as the node last granted it: its length and when it runs out here
    (monotonic, so the node's and this machine's clocks need not agree)."""

    def __init__(self, job_id: str, lease: Lease) -> None:
        self.job_id = job_id
        self.attempt = lease.attempt
        self.ttl = FALLBACK_LEASE_SECONDS
        self.renewed_at = time.monotonic()
        self.renewed(lease)

    def renewed(self, lease: Lease) -> None:
        if lease.ttl_seconds is not None:
            self.ttl = max(lease.ttl_seconds, 0.0)
        self.renewed_at = time.monotonic()

    @property
    def deadline(self) -> float:
        return self.renewed_at + self.ttl

    def remaining(self) -> float:
        return self.deadline - time.monotonic()


class _Reporter:
    """Bridges an executor thread to the node; `should_cancel` turns true when the lease is
    lost or shutdown forces it.

    Progress, log lines and metrics are queued and sent in order by one sender task with at
    most one request in flight: consecutive log lines go as one batch, and so do consecutive
    resource samples and training epochs (`POST .../metrics`, each stamped with the time it
    was taken), so a chatty trainer cannot flood the node (and starve the heartbeats that
    keep the lease). While the node does not answer, the queue waits and the same request
    is retried with backoff: an outage loses no line (up to `MAX_QUEUED` items, then the
    oldest log lines and resource samples go). A node without the metrics route (older)
    gets no more of them after its first 404."""

    MAX_LINES_PER_REQUEST = 500
    MAX_QUEUED = 20_000

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        api: NodeAPI,
        job_id: str,
        attempt: int,
        lease: _LeaseClock | None = None,
    ) -> None:
        self.loop, self.api, self.job_id, self.attempt = loop, api, job_id, attempt
        self.lease = lease
        self.cancelled = threading.Event()
        self.cancel_reason: str | None = None
        self.dropped = 0
        self.metrics_unsupported = False
        self._items: deque[tuple[str, dict[str, Any]]] = deque()
        self._lock = threading.Lock()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task = loop.create_task(self._sender())

    def _enqueue(self, kind: str, body: dict[str, Any]) -> None:
        with self._lock:
            if len(self._items) >= self.MAX_QUEUED:
                for i, (queued_kind, _body) in enumerate(self._items):
                    if queued_kind in ("log", "sample"):
                        del self._items[i]
                        self.dropped += 1
                        break
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

    def log(self, line: str, level: str = "info", stream: str | None = None) -> None:
        body: dict[str, Any] = {"line": line[:8000], "level": level}
        if stream in ("stdout", "stderr"):
            body["stream"] = stream
        self._enqueue("log", body)

    def report_metrics(self, sample: Mapping[str, Any]) -> None:
        if self.metrics_unsupported:
            return
        # only the fields the node takes (it refuses a batch with any other)
        body = {k: v for k, v in sample.items() if v is not None and k in _SAMPLE_FIELDS}
        at = body.get("at")
        body["at"] = at.isoformat() if isinstance(at, dt.datetime) else (at or _now_iso())
        self._enqueue("sample", body)

    def report_training(self, epoch: int, metrics: Mapping[str, float]) -> None:
        if self.metrics_unsupported:
            return
        self._enqueue("training", {"epoch": epoch, "at": _now_iso(), "metrics": dict(metrics)})

    def should_cancel(self) -> bool:
        return self.cancelled.is_set()

    def cancel(self, reason: str) -> None:
        if not self.cancelled.is_set():
            self.cancel_reason = reason
        self.cancelled.set()
        self.loop.call_soon_threadsafe(self._wake.set)

    @property
    def lease_lost(self) -> bool:
        return self.cancelled.is_set() and (self.cancel_reason or "").startswith("lease lost")

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
            elif kind in ("sample", "training"):
                key = "samples" if kind == "sample" else "training"
                if not (
                    out
                    and out[-1][0] == "metrics"
                    and len(out[-1][1][key]) < self.MAX_LINES_PER_REQUEST
                ):
                    out.append(("metrics", {"samples": [], "training": []}))
                out[-1][1][key].append(body)
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
        backoff = 0.5
        while not self.lease_lost:
            try:
                data = await self.api.job_write(self.job_id, action, self.attempt, **body)
            except (Conflict, NotAdmitted) as exc:  # lease lost, or the pool's key revoked
                self.cancel(f"lease lost: {exc.message}")
                return
            except UpstreamUnavailable as exc:  # the node is away: keep the line, retry
                log.info("job %s %s waits for the node: %s", self.job_id, action, exc.message)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            except NotFound as exc:
                if action == "metrics":  # a node from before metrics: stop sending them
                    self.metrics_unsupported = True
                log.warning("job %s %s not delivered: %s", self.job_id, action, exc.message)
                return
            except MarketplaceError as exc:
                log.warning("job %s %s not delivered: %s", self.job_id, action, exc.message)
                return
            if action == "progress" and self.lease is not None:
                with contextlib.suppress(ValidationError):  # an answer without a lease
                    self.lease.renewed(Lease.model_validate(data))
            return

    async def drain(self) -> None:
        """Wait until everything queued so far has been sent (or the lease is lost)."""
        while True:
            with self._lock:
                done = not self._items and self._idle.is_set()
            if done or self.lease_lost:
                return
            self._wake.set()
            await asyncio.sleep(0.02)

    async def close(self, timeout: float = 30.0) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.drain(), timeout)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


_SAMPLE_FIELDS = frozenset(ResourceSample.model_fields)


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


class _LeaseLost(Exception):
    """The lease ended under a running job (reaped, superseded, cancelled)."""


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
        self.content = ContentCache(config.workdir / "content")
        self._running: dict[str, tuple[asyncio.Task[Any], _Reporter, int]] = {}
        self._stopping = asyncio.Event()
        self.chain: Any = None
        self._forced = False
        self._forced_event = asyncio.Event()
        self.completed: list[dict[str, Any]] = []
        # failures of this provider's own (see `_own_failure`)
        self._own_failures = 0
        self._cooldown_until = 0.0
        self._failed_jobs: dict[str, float] = {}

    def runnable_job_types(self) -> list[str]:
        """The configured job types this machine can run: an executor for each, whose
        `missing()` (if it has one) finds nothing lacking. Only these are advertised, so
        a provider without the training extra never claims (and burns) a training job."""
        out = []
        for job_type in self.config.job_types:
            executor = self.executors.get(job_type)
            check = getattr(executor, "missing", None)
            problem = "no executor" if executor is None else (check() if callable(check) else None)
            if problem:
                log.warning("not offering %s: %s", job_type, problem)
            else:
                out.append(job_type)
        return out

    async def __aenter__(self) -> ProviderDaemon:
        runnable = self.runnable_job_types()
        if not runnable:
            raise ValidationFailed(
                "this machine can run none of the job types "
                f"{', '.join(self.config.job_types)}: "
                + "; ".join(
                    f"{t}: {getattr(self.executors.get(t), 'missing', lambda: 'no executor')()}"
                    for t in self.config.job_types
                )
            )
        self.config.job_types = runnable
        self.config.workdir.mkdir(parents=True, exist_ok=True)
        await self._recover_executors()
        self._clean_job_folders()
        await self._retry(lambda: self.api.sign_in(self.account))
        caps = self.hardware(self.config.workdir) if self.hardware else {}
        for executor in self._served_executors():
            if callable(getattr(executor, "capabilities", None)):  # e.g. export formats
                caps.update(await asyncio.to_thread(executor.capabilities))
        registered = await self._retry(
            lambda: self.api.register(
                {
                    "name": self.config.name,
                    "capabilities": caps,
                    "job_types": self.config.job_types,
                    "max_concurrent": self.config.max_concurrent,
                    "api_keys": self.config.api_keys,
                    "networks": self.config.networks,
                }
            )
        )
        pools = sorted({p["workspace_id"] for p in registered.get("pools") or []})
        log.info(
            "provider %s registered at %s (open market%s)",
            self.account.address,
            self.config.node_url,
            f" and the pools of workspaces {pools}" if pools else "",
        )
        info = await self._retry(self.api.chain_info)
        if info and info.get("escrow_address"):
            from worker.chain import ProviderChain, resolve_rpc

            rpc = await asyncio.to_thread(resolve_rpc, info, self.config.node_url)
            self.chain = ProviderChain(rpc, info["escrow_address"], self.account)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.api.aclose()

    def _served_executors(self) -> list[Any]:
        """The executors of the job types this provider serves, each once."""
        served = [e for t, e in self.executors.items() if t in self.config.job_types]
        return list({id(e): e for e in served}.values())

    async def _recover_executors(self) -> None:
        """Let each executor clean up what an earlier run of this provider left (a killed
        daemon's containers), before its job folders go and before any claim."""
        provider_id = str(getattr(self.account, "address", None) or self.config.name)
        for executor in {id(e): e for e in self.executors.values()}.values():
            recover = getattr(executor, "recover", None)
            if callable(recover):
                try:
                    await asyncio.to_thread(recover, provider_id)
                except Exception as exc:  # noqa: BLE001 - a self-check finds it again
                    log.warning("%s could not clean up: %s", type(executor).__name__, exc)

    def _clean_job_folders(self) -> None:
        """Job folders left by a run that was killed: no attempt resumes from them (a new
        lease starts over), so they only fill the disk."""
        jobs = self.config.workdir / "jobs"
        if not jobs.is_dir():
            return
        left = [p for p in jobs.iterdir()]
        for path in left:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    path.unlink()
        if left:
            log.info("removed %d job folder(s) left by an earlier run", len(left))

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
            self._forced_event.set()
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
            if self._own_failures and not await self._ready_to_claim():
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
            job_id, attempt = got.job.id, got.lease.attempt
            lease = _LeaseClock(job_id, got.lease)
            if lease_too_short(lease.ttl):
                log.warning(
                    "job %s: the node leases for %.1fs; heartbeats every %.1fs leave little "
                    "room for a slow answer (leases of %.0fs or more renew reliably)",
                    job_id,
                    lease.ttl,
                    heartbeat_seconds(lease.ttl),
                    MIN_RELIABLE_LEASE_SECONDS,
                )
            reporter = _Reporter(asyncio.get_running_loop(), self.api, job_id, attempt, lease)
            task = asyncio.create_task(self._run_job(got, lease, reporter))
            self._running[job_id] = (task, reporter, attempt)
        await self._drain()

    def _avoided_jobs(self) -> list[str]:
        now = time.monotonic()
        self._failed_jobs = {
            job_id: at
            for job_id, at in self._failed_jobs.items()
            if now - at < self.config.avoid_failed_seconds
        }
        return sorted(self._failed_jobs)[:100]

    async def _claim(self) -> Claim | None:
        claim = asyncio.create_task(
            self.api.claim(
                self.config.claim_wait_seconds, self.config.job_types, self._avoided_jobs()
            )
        )
        stop = asyncio.create_task(self._stopping.wait())
        done, _ = await asyncio.wait({claim, stop}, return_when=asyncio.FIRST_COMPLETED)
        if claim in done:
            stop.cancel()
            return claim.result()
        # Draining: a long-poll cut on our side may still be answered on the node's (a
        # lease granted, the job bound on chain, to a client no longer listening). So
        # ask the node to end the poll, wait for its answer (204 at once, or a lease it
        # granted just before) and hand back whatever it leased; only a second stop
        # signal cuts the wait.
        with contextlib.suppress(MarketplaceError):
            await self.api.end_claims()
        forced = asyncio.create_task(self._forced_event.wait())
        await asyncio.wait({claim, forced}, return_when=asyncio.FIRST_COMPLETED)
        forced.cancel()
        if not claim.done():
            claim.cancel()
        with contextlib.suppress(asyncio.CancelledError, MarketplaceError):
            result = await claim
            if result:  # the node leased a job as we stopped: hand it straight back
                log.info("draining: handing back job %s leased as we stopped", result.job.id)
                await self.api.job_write(
                    result.job.id, "release", result.lease.attempt, reason="provider stopping"
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
        if not self._stopping.is_set():
            # `--once` ended the loop, nobody asked to stop: the job runs to its end, and
            # the grace period starts only at a stop signal (not cancelled: that would
            # cancel the jobs themselves)
            everything = asyncio.gather(*tasks, return_exceptions=True)
            stop = asyncio.create_task(self._stopping.wait())
            await asyncio.wait({everything, stop}, return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            if everything.done():
                return
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

    # -- failures of this provider's own ----------------------------------------------

    def _own_failure(self, job_id: str) -> None:
        """The job failed here for a reason of this machine's (not the job's): back off,
        then check this machine before the next claim, and leave this job to others."""
        self._own_failures += 1
        self._failed_jobs[job_id] = time.monotonic()
        wait = min(
            self.config.failure_backoff_seconds * 2 ** (self._own_failures - 1),
            self.config.max_backoff_seconds,
        )
        self._cooldown_until = time.monotonic() + wait
        log.warning(
            "job %s failed on this provider (%d in a row): checking this machine in %.1fs "
            "before claiming again; the job is left to other providers",
            job_id,
            self._own_failures,
            wait,
        )

    async def _ready_to_claim(self) -> bool:
        """After failures of its own: wait out the backoff, then claim only if the
        self-check passes (else back off further)."""
        wait = self._cooldown_until - time.monotonic()
        if wait > 0:
            await self._sleep_or_stop(wait)
            return False
        problems = await asyncio.to_thread(self.self_check)
        if problems:
            self._own_failures += 1
            self._cooldown_until = time.monotonic() + min(
                self.config.failure_backoff_seconds * 2 ** (self._own_failures - 1),
                self.config.max_backoff_seconds,
            )
            log.error("self-check failed, not claiming: %s", "; ".join(problems))
            return False
        return True

    def self_check(self) -> list[str]:
        """What keeps this machine from running a job: an unwritable work directory, too
        little free disk, an executor whose code does not import. Empty when all is well."""
        problems = []
        jobs = self.config.workdir / "jobs"
        try:
            jobs.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=jobs, prefix=".self-check-") as fh:
                fh.write(b"ok")
                fh.flush()
        except OSError as exc:
            problems.append(f"work directory {jobs} is not writable: {exc.strerror or exc}")
        try:
            free = shutil.disk_usage(self.config.workdir).free
            if free < self.config.min_free_disk_bytes:
                problems.append(
                    f"{free // 2**20} MiB free under {self.config.workdir} "
                    f"(needs {self.config.min_free_disk_bytes // 2**20} MiB)"
                )
        except OSError as exc:
            problems.append(f"cannot read free disk space: {exc}")
        for job_type, executor in sorted(self.executors.items()):
            if job_type not in self.config.job_types and self.config.job_types:
                continue  # not served here: its engine may well be absent
            try:
                importlib.import_module(type(executor).__module__)
                check = getattr(executor, "self_check", None)
                if callable(check):
                    problems.extend(f"{job_type}: {p}" for p in check() or ())
            except Exception as exc:  # noqa: BLE001 - any import failure is the finding
                problems.append(f"executor for {job_type} does not load: {exc!r}")
        return problems

    # -- one job ----------------------------------------------------------------------

    async def _heartbeat(self, lease: _LeaseClock, reporter: _Reporter) -> None:
        """Renew the lease a third of its length after each renewal (the node's grant,
        not a local guess); while the node does not answer, retry every second or two."""
        failing = False
        while not reporter.should_cancel():
            if failing:
                wait = min(2.0, max(0.5, lease.remaining() / 4))
            else:
                due = lease.renewed_at + heartbeat_seconds(lease.ttl) * random.uniform(0.8, 1.0)
                wait = max(0.1, due - time.monotonic())
            await asyncio.sleep(wait)
            if not failing and time.monotonic() < due - 0.05:
                continue  # a progress write renewed the lease meanwhile
            try:
                lease.renewed(await self.api.renew(lease.job_id, lease.attempt))
                failing = False
            except (Conflict, NotAdmitted) as exc:  # lease lost, cancelled, superseded, or
                reporter.cancel(f"lease lost: {exc.message}")  # the pool's key was revoked
            except UpstreamUnavailable as exc:
                failing = True
                log.warning(
                    "heartbeat for %s failed (%.1fs of lease left): %s",
                    lease.job_id,
                    lease.remaining(),
                    exc.message,
                )
            except MarketplaceError as exc:
                log.warning("heartbeat for %s failed: %s", lease.job_id, exc.message)

    async def _within_lease(
        self, what: str, lease: _LeaseClock, reporter: _Reporter, call: Callable[[], Any]
    ) -> Any:
        """Run a final step (upload, result, failure report), retrying while the node does
        not answer, for as long as the lease may still be ours. The node cannot reap a
        lease while it is down, so the retries run up to one lease length past the local
        expiry; a node that comes back answers 409 when the lease is gone."""
        backoff = 0.5
        while True:
            if reporter.lease_lost:
                raise _LeaseLost(reporter.cancel_reason or "lease lost")
            try:
                return await call()
            except UpstreamUnavailable as exc:
                left = lease.remaining() + lease.ttl
                if left <= 0:
                    raise
                log.warning("%s for %s failed, retrying: %s", what, lease.job_id, exc.message)
                await asyncio.sleep(min(backoff, max(left, 0.1)))
                backoff = min(backoff * 2, 5.0)

    async def _drain_within_lease(self, reporter: _Reporter, lease: _LeaseClock) -> None:
        """Let queued progress and log lines reach the node first (they wait out an outage),
        but not past the time the lease may still be ours."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(reporter.drain(), max(1.0, lease.remaining() + lease.ttl))

    async def _still_ours(self, lease: _LeaseClock, reporter: _Reporter) -> None:
        """Before a step that publishes (upload, on-chain submit): the job must not have
        been cancelled here, and the node must still grant this lease (409 otherwise)."""
        if reporter.should_cancel():
            raise _LeaseLost(reporter.cancel_reason or "cancelled")
        renewed = await self._within_lease(
            "lease check", lease, reporter, lambda: self.api.renew(lease.job_id, lease.attempt)
        )
        lease.renewed(renewed)

    def _fetcher(self) -> Callable[[str], Path]:
        """`fetch(cid) -> Path` for an executor thread: the content cache's verified
        download, run on the daemon's event loop."""
        loop = asyncio.get_running_loop()

        def fetch(cid: str) -> Path:
            done = asyncio.run_coroutine_threadsafe(self.content.fetch(self.api, cid), loop)
            return done.result()

        return fetch

    async def _upload_and_fail(self, lease: _LeaseClock, reporter: _Reporter, failed: Any) -> None:
        """The job failed by its own doing (`ExecutionFailed`): its outputs are uploaded
        all the same (the requester sees what it wrote and its logs), then the job fails
        with no retry, carrying the result CID and metrics (the exit code...)."""
        result = failed.result
        await self._drain_within_lease(reporter, lease)
        await self._still_ours(lease, reporter)
        result_cid = await self._within_lease(
            "upload", lease, reporter, lambda: self.api.add_directory(result.output_dir)
        )
        await self._drain_within_lease(reporter, lease)
        await self._report_failure(
            lease,
            reporter,
            failed.message,
            retryable=False,
            result={
                "result_cid": result_cid,
                "result": result.metrics,
                "result_type": result.result_type,
            },
        )

    async def _run_job(self, got: Claim, lease: _LeaseClock, reporter: _Reporter) -> None:
        # this task's log lines (and its threads') carry the job id and attempt
        set_job(got.job.id, lease.attempt)
        CLAIMS.inc()
        RUNNING_JOBS.inc()
        try:
            await self._run_job_in_context(got, lease, reporter)
        finally:
            RUNNING_JOBS.dec()

    async def _run_job_in_context(
        self, got: Claim, lease: _LeaseClock, reporter: _Reporter
    ) -> None:
        from worker.executors.base import ExecutionCancelled, ExecutionFailed, JobSpec

        job, voucher = got.job, got.voucher
        job_id, attempt = job.id, lease.attempt
        workdir = self.config.workdir / "jobs" / f"{job_id}-a{attempt}"
        heartbeat = asyncio.create_task(self._heartbeat(lease, reporter))
        own_failure = False
        try:
            lease.renewed(
                await self._within_lease(
                    "start", lease, reporter, lambda: self.api.renew(job_id, attempt, "start")
                )
            )
            if voucher is not None and self.chain is None:
                raise _JobFailure("escrowed job but the node names no chain", retryable=True)
            executor = self.executors.get(job.type)
            if executor is None:
                raise _JobFailure(f"no executor for job type {job.type}", retryable=True)
            dataset_dir = None
            if job.folder_cid:
                reporter.progress(0, "Fetching dataset")
                dataset_dir = await self.datasets.fetch(self.api, job_id, job.folder_cid)
            spec = JobSpec(
                job_id=job_id,
                attempt=attempt,
                job_type=job.type,
                spec=job.spec,
                dataset_dir=dataset_dir,
                dataset_layout=stored_layout(job.spec),
                fetch=self._fetcher(),
            )
            ran = time.monotonic()
            outcome = "failed"
            try:
                workdir.mkdir(parents=True, exist_ok=True)
                with self._sampler(executor, reporter):
                    result = await asyncio.to_thread(executor.run, spec, workdir, reporter)
                outcome = "ok"
            except ExecutionCancelled:
                outcome = "cancelled"
                raise
            except (ExecutionFailed, MarketplaceError, DatasetMismatch):
                raise
            except Exception:
                own_failure = True
                raise
            finally:
                EXECUTOR_SECONDS.labels(job.type, outcome).observe(time.monotonic() - ran)
            await self._drain_within_lease(reporter, lease)
            # Training is over: nothing leaves this machine unless the lease is still ours
            # (reaped, superseded or cancelled meanwhile: stop here, upload nothing).
            await self._still_ours(lease, reporter)
            reporter.progress(100, "Uploading results")
            result_cid = await self._within_lease(
                "upload", lease, reporter, lambda: self.api.add_directory(result.output_dir)
            )
            await self._drain_within_lease(reporter, lease)
            if voucher is not None:
                # The lease must still be ours before anything reaches the chain: a lost
                # lease answers 409 here and nothing is sent (the node fenced the escrow).
                await self._still_ours(lease, reporter)
                # a node outage here (the chain RPC is the node's) is waited out as the
                # upload's is; a retry finds an earlier submit of this lease already done
                chain, claim = self.chain, voucher.model_dump()
                tx = await self._within_lease(
                    "chain submit",
                    lease,
                    reporter,
                    lambda: asyncio.to_thread(chain.submit, claim, result_cid),
                )
                reporter.log(f"result digest submitted on chain: {tx or 'earlier, this lease'}")
                await self._drain_within_lease(reporter, lease)
            body = {
                "result_cid": result_cid,
                "result": result.metrics,
                "result_type": result.result_type,
            }
            done = await self._within_lease(
                "result report",
                lease,
                reporter,
                lambda: self.api.report_result(job_id, attempt, **body),
            )
            self._own_failures = 0
            self.completed.append(
                {
                    "job_id": job_id,
                    "attempt": attempt,
                    "result_cid": result_cid,
                    "status": done.status,
                    "metrics": result.metrics,
                }
            )
            log.info("job %s attempt %d submitted: %s", job_id, attempt, result_cid)
        except ExecutionCancelled:
            await self._hand_back(job_id, attempt, reporter)
            await self._abandon_on_chain(job_id, voucher)
        except ExecutionFailed as exc:
            try:
                await self._upload_and_fail(lease, reporter, exc)
            except _LeaseLost as lost:
                log.warning("job %s attempt %d stopped: %s", job_id, attempt, lost)
            except MarketplaceError as err:  # the upload failed: fail the job without outputs
                await self._report_failure(
                    lease, reporter, f"{exc.message} (outputs not uploaded: {err.message})", False
                )
            await self._abandon_on_chain(job_id, voucher)
        except _LeaseLost as exc:
            log.warning("job %s attempt %d stopped, nothing published: %s", job_id, attempt, exc)
            await self._hand_back(job_id, attempt, reporter)
            await self._abandon_on_chain(job_id, voucher)
        except (DatasetMismatch, ValidationFailed) as exc:
            # Bytes that are not what the requester pinned, or a spec/dataset the executor
            # refuses: another attempt cannot do better, so the job fails.
            await self._report_failure(lease, reporter, exc.message, retryable=False)
            await self._abandon_on_chain(job_id, voucher)
        except _JobFailure as exc:
            self._own_failure(job_id)
            await self._report_failure(lease, reporter, str(exc), exc.retryable)
        except Conflict as exc:  # the node's 409, or the escrow holding another lease
            log.warning("job %s attempt %d lost its lease: %s", job_id, attempt, exc.message)
        except MarketplaceError as exc:
            await self._report_failure(lease, reporter, exc.message, retryable=True)
        except Exception as exc:  # an executor bug, or this machine (disk, permissions)
            log.exception("job %s failed", job_id)
            if own_failure or isinstance(exc, OSError):
                self._own_failure(job_id)
            await self._report_failure(
                lease, reporter, f"{type(exc).__name__}: {exc}", retryable=True
            )
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            await reporter.close()
            self._running.pop(job_id, None)
            shutil.rmtree(workdir, ignore_errors=True)

    def _sampler(self, executor: Any, reporter: _Reporter) -> contextlib.AbstractContextManager:
        """Resource samples of this process's tree while `executor` runs in it, unless the
        executor reports its own (`reports_own_metrics`) or sampling is off."""
        interval = self.config.metrics_interval_seconds
        if interval <= 0 or getattr(executor, "reports_own_metrics", False):
            return contextlib.nullcontext()
        from worker.sampler import ResourceSampler

        return ResourceSampler(reporter.report_metrics, interval_seconds=interval)

    async def _hand_back(self, job_id: str, attempt: int, reporter: _Reporter) -> None:
        """The attempt has stopped (its container, if any, is gone): tell the node. A job
        handed back at shutdown returns to the queue; one cancelled by its requester (its
        writes refused as `lease lost`) ends this lease, so it shows `cancelled` from now
        on; a lease that really is lost (reaped, superseded) is refused, and that is all."""
        reason = reporter.cancel_reason or "cancelled"
        try:
            await self.api.job_write(job_id, "release", attempt, reason=reason)
        except MarketplaceError as exc:
            log.info("job %s attempt %d stopped (%s): %s", job_id, attempt, reason, exc.message)
            return
        log.info("job %s attempt %d handed back: %s", job_id, attempt, reason)

    async def _abandon_on_chain(self, job_id: str, voucher: AssignmentVoucher | None) -> None:
        """Stopped without a result: release this lease's on-chain binding at once so the
        job can be rebound or refunded (the node's `unassign` would do it too). Sent only
        while the binding is still this lease's."""
        if voucher is None or self.chain is None:
            return
        try:
            tx = await asyncio.to_thread(self.chain.abandon, voucher.job_key, voucher.attempt)
            if tx:
                log.info("job %s abandoned on chain: %s", job_id, tx)
        except MarketplaceError as exc:
            log.info("job %s not abandoned on chain: %s", job_id, exc.message)

    async def _report_failure(
        self,
        lease: _LeaseClock,
        reporter: _Reporter,
        error: str,
        retryable: bool,
        result: dict[str, Any] | None = None,
    ) -> None:
        """Fail the attempt (`retryable`: another attempt may run); `result` carries what
        a failed run left (`result_cid`, `result` metrics, `result_type`)."""
        log.error("job %s attempt %d failed: %s", lease.job_id, lease.attempt, error)
        with contextlib.suppress(MarketplaceError, _LeaseLost):
            await self._within_lease(
                "failure report",
                lease,
                reporter,
                lambda: self.api.job_write(
                    lease.job_id,
                    "fail",
                    lease.attempt,
                    error=error[:3900],
                    retryable=retryable,
                    **(result or {}),
                ),
            )


class _JobFailure(Exception):
    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable
