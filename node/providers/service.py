"""Provider rules: registration, atomic claims with leases, fenced writes, and the reaper.

Who is offered what (`node.authz.policy`): escrowed jobs are the open market, offered to
every registered provider; a job without escrow only to providers admitted to its
workspace's private pool. A provider joins a pool by presenting a `provider`-role API key
of that workspace when it registers; the node checks the key and stores an admission
that references it (never the secret), so revoking the key ends the admission at once.
Claims and every provider write check it; they come from the provider's wallet sign-in,
never from an API key bearer.

A claim hands a job to exactly one provider with a lease: a lease id, an attempt number
(the fencing token, incremented on every claim) and an expiry that heartbeats extend.
Every provider write names the attempt it holds; a write from an older attempt, from a
provider that is not the holder, or after the lease expired is refused with 409, so a
presumed-dead provider can never overwrite its successor. The reaper returns jobs with
expired leases to `pending` while attempts remain (`max_retries` + 1 in all), then fails them.

A job goes only to a provider that can make its export format (`marketplace.exports`: the
formats the provider advertised at registration). A job that no registered provider can
make says so in its `progress_message` when a provider passes it over, until one claims it.
"""

from __future__ import annotations

import datetime as dt
import functools
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam
from sqlalchemy.orm import Session

from marketplace.errors import (
    Forbidden,
    InvalidApiKey,
    JobNotClaimable,
    JobNotFound,
    LeaseExpired,
    MarketplaceError,
    NotAdmitted,
    NotLeaseHolder,
    ProviderNotRegistered,
    StaleAttempt,
)
from marketplace.exports import advertised_formats, can_make, requested_format
from marketplace.jobs.networks import DEFAULT_NETWORK
from marketplace.jobs.states import JobStatus
from node.auth.api_keys import live_api_key
from node.auth.principal import Principal
from node.authz.policy import admission_role, authorize_provider_job, claimable_by
from node.config import NodeSettings
from node.db import utcnow
from node.jobs import metrics as job_metrics
from node.jobs.container import CONTAINER, NO_NETWORK
from node.jobs.events import LogLine
from node.jobs.repository import batch_has_room, in_networks, lock_batch
from node.jobs.service import append_log_lines, record_event, transition
from node.models.auth import ApiKey
from node.models.jobs import Job
from node.models.providers import Provider, ProviderAdmission
from node.providers import repository
from node.providers.schemas import MetricsBody, RegisterProvider


@dataclass(frozen=True)
class Claim:
    job: Job
    lease_id: str
    attempt: int
    expires_at: dt.datetime


def _require_wallet(principal: Principal) -> str:
    if principal.api_key_id is not None:
        raise Forbidden(
            "Providers sign in with their wallet (SIWE); an API key joins a pool when "
            "presented at registration (`api_keys`), not as the bearer"
        )
    if not principal.address:
        raise Forbidden("Providers sign in with their wallet (SIWE)", details=None)
    return principal.address


def register(
    session: Session, principal: Principal, body: RegisterProvider
) -> tuple[Provider, list[tuple[ProviderAdmission, ApiKey]]]:
    """Create or update the caller's provider record (the caller must be a wallet), and
    replace its pool admissions with the ones `body.api_keys` grant.

    Every key must be a live `provider` key (403 NOT_ADMITTED names the first that is
    not), so a misconfigured daemon fails at start instead of silently missing a pool."""
    address = _require_wallet(principal)
    keys = _pool_keys(session, body.api_keys)
    provider = repository.provider_by_address(session, address)
    if provider is None:
        provider = Provider(user_id=principal.user_id, address=principal.address)
        session.add(provider)
    provider.name = body.name
    provider.capabilities = body.capabilities.model_dump()
    provider.job_types = sorted(set(body.job_types))
    provider.networks = list(body.networks)
    provider.max_concurrent = body.max_concurrent
    provider.last_seen_at = utcnow()
    session.flush()
    admissions = repository.replace_admissions(
        session, provider.id, [(key.id, key.workspace_id) for key in keys]
    )
    return provider, list(zip(admissions, keys, strict=True))


def _pool_keys(session: Session, secrets_: list[str]) -> list[ApiKey]:
    keys: dict[int, ApiKey] = {}
    for index, secret in enumerate(secrets_):
        try:
            key = live_api_key(session, secret)
        except InvalidApiKey as exc:
            raise NotAdmitted(
                f"api_keys[{index}]: {exc.message}", details={"index": index}
            ) from None
        if admission_role(session, key) is None:
            raise NotAdmitted(
                f"api_keys[{index}] ({key.prefix}...) does not admit a provider: pools take "
                f"live `provider` keys of a member who may write jobs (this one: {key.role})",
                details={"index": index, "prefix": key.prefix},
            )
        keys[key.id] = key
    return list(keys.values())


def require_provider(session: Session, principal: Principal) -> Provider:
    """The caller's provider record, its `last_seen_at` now (403 PROVIDER_NOT_REGISTERED
    without one)."""
    provider = repository.seen_provider(session, _require_wallet(principal), utcnow())
    if provider is None:
        raise _not_registered()
    return provider


def require_providers(
    session: Session, principals: Sequence[Principal]
) -> list[Provider | MarketplaceError]:
    """`require_provider` for several callers in one statement: each one's provider
    record, or in its place what refuses it."""
    wallets = [_wallet_or_refusal(principal) for principal in principals]
    found = repository.seen_providers(session, {w for w in wallets if isinstance(w, str)}, utcnow())
    return [
        w if isinstance(w, MarketplaceError) else found.get(w) or _not_registered() for w in wallets
    ]


def _wallet_or_refusal(principal: Principal) -> str | MarketplaceError:
    try:
        return _require_wallet(principal)
    except MarketplaceError as refused:
        return refused


def _not_registered() -> ProviderNotRegistered:
    return ProviderNotRegistered("Register with POST /v1/providers first")


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
                "networks": p.networks,
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
    if provider.gpu_memory_mb < min_gpu or len(gpus) < gpu_count:
        return False
    return job.job_type != CONTAINER or _container_fits(job.spec or {}, provider)


def _container_fits(spec: dict[str, Any], provider: Provider) -> bool:
    """A container job's CPU, memory, storage and GPUs against what the provider
    registered (a size it did not report is not held against it)."""
    caps = provider.capabilities
    mib = 1024 * 1024
    cores = int(caps.get("cpu_cores") or 0)
    if cores and int(spec.get("cpu_millicores") or 0) > cores * 1000:
        return False
    ram = int(caps.get("ram_mb") or 0)
    if ram and int(spec.get("memory_bytes") or 0) > ram * mib:
        return False
    disk = int(caps.get("disk_free_mb") or 0)
    if disk and int(spec.get("storage_bytes") or 0) > disk * mib:
        return False
    return len(caps.get("gpus") or []) >= int(spec.get("gpus") or 0)


NO_MAKER = "No registered provider can export to "


class _Makers:
    """The export formats the registered providers make, read once per claim when a job's
    format is not the claimant's; notes on such a job when nobody can make it."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._formats: frozenset[str] | None = None

    def formats(self) -> frozenset[str]:
        if self._formats is None:
            self._formats = frozenset().union(
                *(
                    advertised_formats(p.capabilities)
                    for p in repository.list_providers(self.session)
                )
            )
        return self._formats

    def note_if_nobody(self, job: Job) -> None:
        wanted = requested_format(job.spec)
        if wanted in self.formats():
            return
        message = f"{NO_MAKER}{wanted!r}; formats on offer: {', '.join(sorted(self.formats()))}"
        if job.progress_message != message:
            job.progress_message = message


# How long after a provider's attempt failed the job is kept from it while another
# provider that runs its type is online.
REFAIL_AVOID_SECONDS = 300


def _left_to_others(
    session: Session, settings: NodeSettings, job: Job, provider: Provider, now: dt.datetime
) -> bool:
    """Whether `job` should wait for another provider: `provider` failed it (or let its
    lease lapse) a moment ago and another provider able to run it is online."""
    if job.last_failed_by != provider.address:
        return False
    if job.updated_at < now - dt.timedelta(seconds=REFAIL_AVOID_SECONDS):
        return False
    online_after = now - dt.timedelta(seconds=settings.leases.provider_online_seconds)
    return any(
        p.address != provider.address
        and p.last_seen_at >= online_after
        and job.job_type in (p.job_types or [])
        and can_make(p.capabilities, job.spec)
        for p in repository.list_providers(session)
    )


# How many candidates a claim reads (and, on PostgreSQL, locks) at a time: the best job
# alone first, which the claimant takes unless it cannot run it; then a wider look. A
# claimant that locked many rows would hide them from the others claiming meanwhile.
CANDIDATE_ROUNDS = (1, 16)


def claim(
    session: Session,
    settings: NodeSettings,
    provider: Provider,
    job_types: Sequence[str] | None = None,
    exclude: Sequence[int] = (),
) -> Claim | None:
    """Lease the best matching claimable job to `provider`, or return None. Jobs in
    `exclude` (the provider asks not to be given them) are skipped, and so is a job this
    provider just failed while another provider could run it. A provider holding
    `max_concurrent` jobs is offered none (`_offered`)."""
    types = [t for t in provider.job_types if job_types is None or t in job_types]
    if not types:
        return None
    now = utcnow()
    makers = _Makers(session)
    scope, scope_params = _offered_to(provider)
    passed = set(exclude)
    for limit in CANDIDATE_ROUNDS:
        candidates = repository.claim_candidates(
            session, types, now, scope, scope_params, limit, passed
        )
        for job in candidates:
            passed.add(job.id)
            if not can_make(provider.capabilities, job.spec):
                makers.note_if_nobody(job)
                continue
            if not _fits(job, provider):
                continue
            if _left_to_others(session, settings, job, provider, now):
                continue
            got = _grant(session, settings, provider, job, now)
            if got is not None:
                return got
        if len(candidates) < limit:
            return None
    return None


def _offered_to(provider: Provider) -> tuple[ColumnElement[bool], dict[str, Any]]:
    """The jobs `provider` may be offered: the open market and its private pools
    (`claimable_by`), of the networks it serves, whose batch has room, and none while it
    holds `max_concurrent` jobs; as a clause built once (`_offered`) and its parameters'
    values."""
    networks = sorted(provider.networks or [DEFAULT_NETWORK])
    return _offered(), {
        "provider_id": provider.id,
        "networks": networks,
        "holder": provider.address,
        "max_active": provider.max_concurrent,
    }


@functools.cache
def _offered() -> ColumnElement[bool]:
    return and_(
        claimable_by(bindparam("provider_id")),
        in_networks(),
        batch_has_room(),
        repository.has_capacity(),
    )


def _grant(
    session: Session, settings: NodeSettings, provider: Provider, job: Job, now: dt.datetime
) -> Claim | None:
    """Lease `job` to `provider` (compare-and-set from `pending`); None if another
    claimant took it first."""
    lease_id = secrets.token_hex(12)
    expires_at = now + dt.timedelta(seconds=settings.leases.lease_seconds)
    if job.batch_id is not None:
        lock_batch(session, job.batch_id)
    if not repository.take(
        session,
        job,
        holder=provider.address,
        lease_id=lease_id,
        expires_at=expires_at,
        now=now,
    ):
        return None
    if (job.progress_message or "").startswith((NO_MAKER, NO_NETWORK)):
        job.progress_message = None
    record_event(
        session,
        job,
        "claimed",
        f"Leased to {provider.address}",
        from_status=JobStatus.PENDING.value,
        to_status=JobStatus.CLAIMED.value,
        attempt=job.attempt,
        data={"provider": provider.address, "lease_id": lease_id},
        seq=job.event_seq,  # taken by `take`
        flush=False,  # sent with the transaction's next flush (`node.providers.claims`)
    )
    return Claim(job=job, lease_id=lease_id, attempt=job.attempt, expires_at=expires_at)


def claim_job(session: Session, settings: NodeSettings, provider: Provider, job_id: int) -> Claim:
    """Lease the job `provider` chose (TrainChain's apply) through the daemon's claim
    path: the same candidates (claimable, offered to this provider), the same checks
    (concurrency, job type, export format, hardware) and the same compare-and-set, so a
    chosen claim and a polled one fence each other. 404 JOB_NOT_FOUND for no such job
    (or one this provider is not offered); 409 JOB_NOT_CLAIMABLE saying why otherwise."""
    job = session.get(Job, job_id)
    if job is None:
        raise JobNotFound()
    if repository.active_jobs_of(session, provider.address) >= provider.max_concurrent:
        raise JobNotClaimable(
            f"This provider already runs {provider.max_concurrent} job(s) (its max_concurrent)",
            details={"reason": "max_concurrent"},
        )
    if job.job_type not in provider.job_types:
        raise JobNotClaimable(
            f"This provider did not register job type {job.job_type!r}",
            details={"reason": "job_type"},
        )
    if not can_make(provider.capabilities, job.spec):
        raise JobNotClaimable(
            f"This provider cannot export to {requested_format(job.spec)!r}",
            details={"reason": "export_format"},
        )
    if not _fits(job, provider):
        raise JobNotClaimable(
            "This provider's hardware does not meet the job's requirements",
            details={"reason": "requirements"},
        )
    now = utcnow()
    scope, scope_params = _offered_to(provider)
    chosen = repository.chosen_candidate(session, job_id, job.job_type, now, scope, scope_params)
    got = _grant(session, settings, provider, chosen, now) if chosen is not None else None
    if got is None:
        raise JobNotClaimable(
            f"Job is {job.status} and cannot be claimed now",
            details={"reason": "status", "status": job.status},
        )
    return got


def leased_job(session: Session, provider: Provider, job_id: int, attempt: int) -> Job:
    """The job, if `provider` may work on it (403 NOT_ADMITTED: a private job of a pool it
    is no longer admitted to) and holds its current, unexpired lease at `attempt` (409
    otherwise)."""
    job = session.get(Job, job_id, with_for_update=session.get_bind().dialect.name == "postgresql")
    if job is None:
        raise JobNotFound()
    authorize_provider_job(session, provider.id, job)
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
    lines: Sequence[LogLine],
) -> int:
    """Store the lines (within the per-job limits); return how many were kept."""
    job = heartbeat(session, settings, provider, job_id, attempt)
    return append_log_lines(session, job, list(lines), settings.events, attempt)


def append_metrics(
    session: Session,
    settings: NodeSettings,
    provider: Provider,
    job_id: int,
    body: MetricsBody,
) -> job_metrics.Recorded:
    """Store resource samples and training epochs under the lease (which they renew, as
    log lines do); `node.jobs.metrics.record` says what is kept."""
    job = heartbeat(session, settings, provider, job_id, body.attempt)
    return job_metrics.record(
        session, job, body.attempt, body.samples, body.training, settings.events
    )


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


def _requeue_or_fail(
    session: Session, job: Job, event_type: str, message: str, *, failed_by: str | None = None
) -> Job:
    """Return the job to the queue, or fail it once this round's provider attempts
    (`attempt - retry_base_attempt`; a manual retry starts a new round) pass `max_retries`."""
    job.lease_id = None
    job.lease_holder = None
    job.lease_expires_at = None
    if failed_by is not None:
        job.last_failed_by = failed_by
    if job.attempt - job.retry_base_attempt > job.max_retries:
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
    session: Session,
    provider: Provider,
    job_id: int,
    attempt: int,
    error: str,
    retryable: bool,
    *,
    result_cid: str | None = None,
    result: dict[str, Any] | None = None,
    result_type: str | None = None,
) -> Job:
    """Fail the attempt. A final failure (`retryable` false) may carry what the run left
    (a container that exited non-zero: its outputs' CID and its exit code), kept on the job
    as a result is; a retryable one is requeued and what it left is dropped."""
    job = leased_job(session, provider, job_id, attempt)
    if not retryable:
        job.error = error
        job.lease_expires_at = None
        data = None
        if result_cid is not None or result:
            job.result_cid = result_cid or job.result_cid
            job.result = {
                **(job.result or {}),
                **(result or {}),
                **({"result_cid": result_cid} if result_cid else {}),
            }
            job.result_type = result_type or job.result_type
            data = {"result_cid": result_cid} if result_cid else None
        return transition(
            session, job, JobStatus.FAILED, event_type="failed", message=error, data=data
        )
    return _requeue_or_fail(
        session,
        job,
        "requeued",
        f"Attempt {attempt} failed: {error}",
        failed_by=provider.address,
    )


def release(session: Session, provider: Provider, job_id: int, attempt: int, reason: str) -> Job:
    """Hand the job back (graceful shutdown): it returns to the queue at once instead of
    waiting for the lease to expire. The attempt still counts towards `max_retries`.

    A job cancelled under this provider's lease (seed 003's `cancelling`: the provider is
    stopping its work) is released the same way once the provider has stopped: the lease
    ends there and the job stays `cancelled`, instead of showing `cancelling` until the
    lease would have run out."""
    stopped = _cancelled_under_lease(session, provider, job_id, attempt)
    if stopped is not None:
        stopped.lease_id = stopped.lease_expires_at = None  # the holder is kept, as history
        session.flush()
        return stopped
    job = leased_job(session, provider, job_id, attempt)
    job.lease_id = None
    job.lease_holder = None
    job.lease_expires_at = None
    return transition(session, job, JobStatus.PENDING, event_type="released", message=reason)


def _cancelled_under_lease(
    session: Session, provider: Provider, job_id: int, attempt: int
) -> Job | None:
    """The job, if it was cancelled while `provider` held its current lease at `attempt`
    and that lease has not ended; else None (`leased_job` then answers why not)."""
    job = session.get(Job, job_id)
    if (
        job is None
        or job.status != JobStatus.CANCELLED.value
        or job.attempt != attempt
        or job.lease_holder != provider.address
        or job.lease_expires_at is None
    ):
        return None
    authorize_provider_job(session, provider.id, job)
    return job


def extend_leases_at_start(
    session: Session, settings: NodeSettings, now: dt.datetime | None = None
) -> int:
    """At node start: give every running lease a full lease length from now. While the node
    was down no provider could renew (a node outage must not cost them the work); a
    provider that died meanwhile is reaped one lease later. Returns how many were extended."""
    now = now or utcnow()
    until = now + dt.timedelta(seconds=settings.leases.lease_seconds)
    extended = 0
    for job in repository.active_leases(session):
        if job.lease_expires_at is not None and job.lease_expires_at < until:
            job.lease_expires_at = until
            extended += 1
    session.flush()
    return extended


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
            failed_by=job.lease_holder,
        )
        reaped.append(job.id)
    return reaped
