"""Provider rules: registration, atomic claims with leases, fenced writes, and the reaper.

A claim hands a job to exactly one provider with a lease: a lease id, an attempt number
(the fencing token, incremented on every claim) and an expiry that heartbeats extend.
Every provider write names the attempt it holds; a write from an older attempt, from a
provider that is not the holder, or after the lease expired is refused with 409, so a
presumed-dead provider can never overwrite its successor. The reaper returns jobs with
expired leases to `pending` while attempts remain (`max_retries` + 1 in all), then fails them.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from marketplace.errors import Forbidden, JobNotFound, LeaseExpired, StaleAttempt
from marketplace.jobs.states import JobStatus
from node.config import NodeSettings
from node.db import utcnow
from node.deps import Principal
from node.jobs.models import Job
from node.jobs.service import record_event, transition
from node.providers import repository
from node.providers.models import Provider
from node.providers.schemas import RegisterProvider


class ProviderNotRegistered(Forbidden):
    code = "PROVIDER_NOT_REGISTERED"


class NotLeaseHolder(StaleAttempt):
    code = "NOT_LEASE_HOLDER"


@dataclass(frozen=True)
class Claim:
    job: Job
    lease_id: str
    attempt: int
    expires_at: dt.datetime


def register(session: Session, principal: Principal, body: RegisterProvider) -> Provider:
    """Create or update the caller's provider record; the caller must be a wallet."""
    if not principal.address:
        raise Forbidden("Providers sign in with their wallet (SIWE)", details=None)
    provider = repository.provider_by_address(session, principal.address)
    if provider is None:
        provider = Provider(user_id=principal.user_id, address=principal.address)
        session.add(provider)
    provider.name = body.name
    provider.capabilities = body.capabilities.model_dump()
    provider.job_types = sorted(set(body.job_types))
    provider.max_concurrent = body.max_concurrent
    provider.last_seen_at = utcnow()
    session.flush()
    return provider


def require_provider(session: Session, principal: Principal) -> Provider:
    provider = repository.provider_by_address(session, principal.address or "")
    if provider is None:
        raise ProviderNotRegistered("Register with POST /v1/providers first")
    provider.last_seen_at = utcnow()
    return provider


def describe(session: Session, settings: NodeSettings) -> list[dict[str, Any]]:
    now = utcnow()
    counts = repository.active_job_counts(session)
    online_after = now - dt.timedelta(seconds=settings.leases.provider_online_seconds)
    out = []
    for p in repository.list_providers(session):
        out.append(
            {
                "id": p.id,
                "address": p.address,
                "name": p.name,
                "capabilities": p.capabilities,
                "job_types": p.job_types,
                "max_concurrent": p.max_concurrent,
                "created_at": p.created_at,
                "last_seen_at": p.last_seen_at,
                "online": p.last_seen_at >= online_after,
                "active_jobs": counts.get(p.address, 0),
            }
        )
    return out


def _fits(job: Job, provider: Provider) -> bool:
    needs = (job.spec or {}).get("requirements") or {}
    min_gpu = int(needs.get("min_gpu_memory_mb") or 0)
    gpu_count = int(needs.get("gpu_count") or 0)
    gpus = provider.capabilities.get("gpus") or []
    return provider.gpu_memory_mb >= min_gpu and len(gpus) >= gpu_count


def claim(
    session: Session,
    settings: NodeSettings,
    provider: Provider,
    job_types: Sequence[str] | None = None,
) -> Claim | None:
    """Lease the best matching claimable job to `provider`, or return None."""
    if repository.active_jobs_of(session, provider.address) >= provider.max_concurrent:
        return None
    types = [t for t in provider.job_types if job_types is None or t in job_types]
    if not types:
        return None
    now = utcnow()
    for job in repository.claim_candidates(session, types, now):
        if not _fits(job, provider):
            continue
        lease_id = secrets.token_hex(12)
        expires_at = now + dt.timedelta(seconds=settings.leases.lease_seconds)
        if not repository.take(
            session,
            job.id,
            holder=provider.address,
            lease_id=lease_id,
            expires_at=expires_at,
            now=now,
        ):
            continue
        session.refresh(job)
        record_event(
            session,
            job,
            "claimed",
            f"Leased to {provider.address}",
            from_status=JobStatus.PENDING.value,
            to_status=JobStatus.CLAIMED.value,
            attempt=job.attempt,
            data={"provider": provider.address, "lease_id": lease_id},
        )
        return Claim(job=job, lease_id=lease_id, attempt=job.attempt, expires_at=expires_at)
    return None


def leased_job(session: Session, provider: Provider, job_id: int, attempt: int) -> Job:
    """The job, if `provider` holds its current, unexpired lease at `attempt`; else 409."""
    job = session.get(Job, job_id, with_for_update=session.get_bind().dialect.name == "postgresql")
    if job is None:
        raise JobNotFound()
    if attempt != job.attempt:
        raise StaleAttempt(
            f"Attempt {attempt} is stale (current attempt is {job.attempt})",
            details={"attempt": attempt, "current_attempt": job.attempt},
        )
    if job.lease_holder != provider.address:
        raise NotLeaseHolder("This job is leased to another provider")
    if job.status not in (JobStatus.CLAIMED.value, JobStatus.RUNNING.value):
        raise StaleAttempt(f"Job is {job.status}; the lease is no longer active")
    if job.lease_expires_at is None or job.lease_expires_at <= utcnow():
        raise LeaseExpired("The lease expired; the job returns to the queue")
    return job


def heartbeat(
    session: Session, settings: NodeSettings, provider: Provider, job_id: int, attempt: int
) -> Job:
    job = leased_job(session, provider, job_id, attempt)
    job.lease_expires_at = utcnow() + dt.timedelta(seconds=settings.leases.lease_seconds)
    session.flush()
    return job


def start(
    session: Session, settings: NodeSettings, provider: Provider, job_id: int, attempt: int
) -> Job:
    job = heartbeat(session, settings, provider, job_id, attempt)
    if job.status == JobStatus.CLAIMED.value:
        transition(
            session,
            job,
            JobStatus.RUNNING,
            event_type="started",
            message=f"Started by {provider.address}",
        )
    return job


def progress(
    session: Session,
    settings: NodeSettings,
    provider: Provider,
    job_id: int,
    attempt: int,
    percent: float | None,
    message: str | None,
    metrics: dict[str, Any] | None,
) -> Job:
    job = start(session, settings, provider, job_id, attempt)
    if percent is not None:
        job.progress_percent = int(percent)
    if message is not None:
        job.progress_message = message
    record_event(
        session,
        job,
        "progress",
        message,
        attempt=attempt,
        data={"percent": percent, "metrics": metrics or {}},
    )
    return job


def append_logs(
    session: Session,
    settings: NodeSettings,
    provider: Provider,
    job_id: int,
    attempt: int,
    lines: Sequence[tuple[str, str]],
) -> int:
    job = heartbeat(session, settings, provider, job_id, attempt)
    for line, level in lines:
        record_event(session, job, "log", line, level=level, attempt=attempt)
    return len(lines)


def submit_result(
    session: Session,
    settings: NodeSettings,
    provider: Provider,
    job_id: int,
    attempt: int,
    result_cid: str,
    result: dict[str, Any] | None,
    result_type: str | None,
) -> Job:
    """Record the result. Escrowed jobs (reward > 0) wait in `submitted` for settlement;
    jobs without a reward complete at once."""
    job = start(session, settings, provider, job_id, attempt)
    job.result_cid = result_cid
    job.result = {**(job.result or {}), **(result or {}), "result_cid": result_cid}
    job.result_type = result_type or job.result_type
    job.progress_percent = 100
    job.lease_expires_at = None
    target = JobStatus.SUBMITTED if job.reward_wei > 0 else JobStatus.COMPLETED
    transition(
        session,
        job,
        target,
        event_type="submitted" if job.reward_wei else "completed",
        message=f"Result {result_cid}",
        data={"result_cid": result_cid},
    )
    return job


def _requeue_or_fail(session: Session, job: Job, event_type: str, message: str) -> Job:
    job.lease_id = None
    job.lease_holder = None
    job.lease_expires_at = None
    if job.attempt > job.max_retries:
        job.error = message
        return transition(
            session,
            job,
            JobStatus.FAILED,
            event_type="failed",
            message=f"{message}; attempts exhausted ({job.attempt})",
        )
    return transition(session, job, JobStatus.PENDING, event_type=event_type, message=message)


def fail(
    session: Session, provider: Provider, job_id: int, attempt: int, error: str, retryable: bool
) -> Job:
    job = leased_job(session, provider, job_id, attempt)
    if not retryable:
        job.error = error
        job.lease_expires_at = None
        return transition(session, job, JobStatus.FAILED, event_type="failed", message=error)
    return _requeue_or_fail(session, job, "requeued", f"Attempt {attempt} failed: {error}")


def release(session: Session, provider: Provider, job_id: int, attempt: int, reason: str) -> Job:
    """Hand the job back (graceful shutdown): it returns to the queue at once instead of
    waiting for the lease to expire. The attempt still counts towards `max_retries`."""
    job = leased_job(session, provider, job_id, attempt)
    job.lease_id = None
    job.lease_holder = None
    job.lease_expires_at = None
    return transition(session, job, JobStatus.PENDING, event_type="released", message=reason)


def reap_expired(session: Session, now: dt.datetime | None = None) -> list[int]:
    """Return jobs whose lease expired to the queue (or fail them); returns their ids."""
    now = now or utcnow()
    reaped = []
    for job in repository.expired_leases(session, now):
        _requeue_or_fail(
            session,
            job,
            "lease_expired",
            f"Lease of attempt {job.attempt} held by {job.lease_holder} expired",
        )
        reaped.append(job.id)
    return reaped
