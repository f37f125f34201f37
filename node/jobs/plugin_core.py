"""Rules of seed 003's plugin-core Jobs API (`/api/plugin-core/jobs`), over the one job
model: container jobs (`node.jobs.container`) created in the caller's workspace, their
status words, cost, batches and templates.

Decisions where the seed is silent:
- The job lands in the API key's workspace; with a user token, in the caller's personal
  workspace. The dialect shows container jobs only: a job of another type (or of a
  workspace the caller cannot read, or a malformed id) is 404 JOB_NOT_FOUND.
- Status words: `pending` (awaiting funding, pending, claimed), `running`, `completed`,
  `failed` (failed, expired), `cancelled`; a job cancelled while a provider held its
  lease is `cancelling` until that lease ends (the provider learns at its next
  heartbeat, stops the container and stops renewing); `submitted` (a result waiting for
  its escrow settlement) and `disputed` keep the canonical words.
- Cost, in ETH: `projected` is the reward (0 for a private job); `current` accrues pro
  rata to the run time (`startedAt` to now, over `duration`) while running, is the
  whole reward once the result is in (submitted, completed), and 0 otherwise (nothing
  ran, or the deposit is refunded).
- A batch's jobs share a `batch_id`; the claim offers no more than `concurrency` of
  them at once (`node.jobs.repository.batch_has_room`).
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Row, select
from sqlalchemy.orm import Session

from marketplace.errors import InvalidField, JobNotFound, TemplateNotFound
from marketplace.jobs.ids import parse_job_id
from marketplace.jobs.states import ACTIVE, JobStatus
from marketplace.money import WEI_PER_ETH
from node.auth.principal import Principal
from node.authz import repository as authz_repository
from node.authz.policy import (
    Action,
    authorize,
    authorize_job,
    effective_role,
    readable_jobs,
    roles_allowing,
)
from node.db import utcnow
from node.jobs import repository, service
from node.jobs.container import CONTAINER, ContainerJobCreate, waiting_reason
from node.jobs.events import LOGS_KIND, read_events
from node.jobs.repository import JobFilters
from node.models.jobs import Job, JobBatch, JobEvent, JobTemplate
from node.models.providers import Provider
from node.workspaces.service import personal_workspace_id

# seed word -> canonical statuses (list filter)
STATUS_FILTER: dict[str, tuple[str, ...]] = {
    "pending": ("awaiting_funding", "pending", "claimed"),
    "running": ("running",),
    "completed": ("completed",),
    "failed": ("failed", "expired"),
    "cancelled": ("cancelled",),
    "cancelling": ("cancelled",),
    "submitted": ("submitted",),
    "disputed": ("disputed",),
}
_WORD = {
    "awaiting_funding": "pending",
    "claimed": "pending",
    "expired": "failed",
}
# canonical event type -> the seed's (`scheduled`: a provider took it)
EVENT_WORDS = {"claimed": "scheduled"}
SORT_FIELDS = {
    "createdAt": "created_at",
    "updatedAt": "updated_at",
    "status": "status",
    "priority": "priority",
}
MAX_BATCH = 100


# --------------------------------------------------------------------------- views


def status_word(job: Job, now: dt.datetime) -> str:
    """The seed's status word for a job (see the module's docstring)."""
    if job.status == JobStatus.CANCELLED.value and _lease_alive(job, now):
        return "cancelling"
    return _WORD.get(job.status, job.status)


def _lease_alive(job: Job, now: dt.datetime) -> bool:
    return (
        job.lease_holder is not None
        and job.lease_expires_at is not None
        and job.lease_expires_at > now
    )


def cost(job: Job, now: dt.datetime) -> dict[str, Any]:
    """`{current, projected, currency}` in ETH (see the module's docstring)."""
    projected = Decimal(int(job.reward_wei)) / WEI_PER_ETH
    current = Decimal(0)
    if job.status in (JobStatus.SUBMITTED.value, JobStatus.COMPLETED.value):
        current = projected
    elif job.status == JobStatus.RUNNING.value and job.started_at is not None:
        duration = int((job.spec or {}).get("duration_seconds") or 0)
        ran = max(0.0, (now - job.started_at).total_seconds())
        share = Decimal(1) if duration <= 0 else min(Decimal(1), Decimal(ran) / duration)
        current = (projected * share).quantize(Decimal("1e-18"))
    return {"current": _number(current), "projected": _number(projected), "currency": "ETH"}


def _number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


def events_of(job: Job) -> list[dict[str, Any]]:
    """State changes only (`type`, `timestamp`), in order; progress and logs are left out."""
    return [
        {"type": EVENT_WORDS.get(e.type, e.type), "timestamp": e.created_at}
        for e in job.events
        if e.type not in ("log", "progress")
    ]


def pending_reasons(session: Session, jobs: Sequence[Job]) -> dict[int, str]:
    """Why each pending job of a network is not claimed, where the registry says so: no
    registered provider serves its network, or none of them runs container jobs."""
    waiting = [j for j in jobs if j.status == JobStatus.PENDING.value and j.pool]
    if not waiting:
        return {}
    served: set[str] = set()
    with_type: set[str] = set()
    for networks, job_types in session.execute(select(Provider.networks, Provider.job_types)):
        served.update(networks or [])
        if CONTAINER in (job_types or []):
            with_type.update(networks or [])
    out = {}
    for job in waiting:
        reason = waiting_reason(job.pool or "", served, job.pool in with_type)
        if reason is not None:
            out[job.id] = reason
    return out


# --------------------------------------------------------------------------- create


def _workspace_for(session: Session, principal: Principal) -> int:
    """The API key's workspace, else the caller's personal one; 403 unless the caller may
    create jobs there."""
    workspace_id = principal.workspace_id
    if workspace_id is None:
        workspace_id = personal_workspace_id(session, principal)
    authorize(session, principal, workspace_id, Action.CREATE_JOB)
    return workspace_id


def parse_body(raw: Any, where: str = "body") -> ContainerJobCreate:
    """A create body (from a template merge or a batch entry) checked like a request's:
    400 VALIDATION_ERROR naming the first bad field."""
    try:
        return ContainerJobCreate.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in (where, *first["loc"]))
        raise InvalidField(
            f"{field}: {first['msg']}",
            details=[{"loc": [where, *first["loc"]], "msg": e["msg"]} for e in exc.errors()],
        ) from None


def _create(
    session: Session,
    principal: Principal,
    workspace_id: int,
    body: ContainerJobCreate,
    batch_id: str | None = None,
) -> Job:
    reward = body.reward_wei
    if reward > 0 and not principal.address:
        raise InvalidField(
            "reward: a job with a reward is funded from the requester's wallet; sign in "
            "with a wallet (or use a key created by a wallet user)",
            details={"field": "reward"},
        )
    job = service.create_job(
        session,
        job_type=CONTAINER,
        spec=body.spec(),
        created_by=principal.user_id,
        workspace_id=workspace_id,
        requester_address=principal.address,
        reward_wei=reward,
        status=JobStatus.AWAITING_FUNDING if reward > 0 else JobStatus.PENDING,
        estimated_duration_seconds=body.duration,
        batch_id=batch_id,
    )
    job.pool = body.provider
    reason = pending_reasons(session, [job]).get(job.id) if reward == 0 else None
    job.progress_message = reason
    session.flush()
    return job


def create_job(session: Session, principal: Principal, body: ContainerJobCreate) -> Job:
    """One container job in the caller's workspace (see `_workspace_for`)."""
    return _create(session, principal, _workspace_for(session, principal), body)


def create_batch(
    session: Session, principal: Principal, bodies: Sequence[Any], concurrency: int
) -> tuple[str, list[Job]]:
    """Jobs submitted together, at most `concurrency` of them claimed or running at once.
    All or nothing: one bad entry (400 naming `jobs.N.field`) creates none."""
    parsed = [parse_body(b, f"jobs.{i}") for i, b in enumerate(bodies)]
    workspace_id = _workspace_for(session, principal)
    batch = JobBatch(
        id=f"batch_{secrets.token_hex(8)}",
        workspace_id=workspace_id,
        concurrency=concurrency,
        created_at=utcnow(),
    )
    session.add(batch)
    session.flush()
    jobs = [_create(session, principal, workspace_id, b, batch.id) for b in parsed]
    return batch.id, jobs


# --------------------------------------------------------------------------- reads


def get_job(
    session: Session, principal: Principal, raw_id: str, action: Action = Action.READ_JOB
) -> Job:
    """A container job the caller may read (404 JOB_NOT_FOUND otherwise: malformed id,
    missing, another workspace's, another type), 403 if it may read but not `action`."""
    try:
        job_id = parse_job_id(raw_id)
    except JobNotFound:
        raise JobNotFound() from None
    job = repository.get_job(session, job_id, with_events=True)
    if job is None or job.job_type != CONTAINER:
        raise JobNotFound()
    authorize_job(session, principal, job, action)
    return job


def list_jobs(
    session: Session,
    principal: Principal,
    *,
    status: str | None,
    network: str | None,
    created_from: dt.datetime | None,
    created_to: dt.datetime | None,
    sort: str,
    order: str,
    page: int,
    limit: int,
) -> tuple[list[Row[Any]], int]:
    """A page of the caller's container jobs (every workspace it reads; an API key: its
    own) and the total."""
    filters = JobFilters(
        statuses=STATUS_FILTER[status] if status else (),
        job_types=(CONTAINER,),
        pools=(network,) if network else (),
        created_from=created_from,
        created_to=created_to,
    )
    rows, total = repository.page_of_jobs(
        session,
        readable_jobs(session, principal),
        filters,
        sort=SORT_FIELDS[sort],
        order=order,
        page=page,
        limit=limit,
    )
    return list(rows), total


def logs(
    session: Session, job: Job, *, tail: int | None, since: dt.datetime | None
) -> list[JobEvent]:
    return read_events(session, job.id, LOGS_KIND, since=since, tail=tail, limit=10_000)


# --------------------------------------------------------------------------- actions


def cancel(session: Session, principal: Principal, raw_id: str) -> tuple[Job, str]:
    """Cancel a container job; the answer's word is `cancelling` while its provider still
    holds the lease (it stops the container at its next heartbeat), else `cancelled`.
    409 (PROVIDER_CONFLICT on this dialect) for a job that already ended."""
    job = get_job(session, principal, raw_id, Action.CANCEL_JOB)
    held = job.status in {s.value for s in ACTIVE}
    service.cancel_job(session, job, reason="Cancelled by the requester")
    return job, "cancelling" if held else "cancelled"


# --------------------------------------------------------------------------- templates


def create_template(
    session: Session,
    principal: Principal,
    *,
    name: str,
    description: str | None,
    config: dict[str, Any],
) -> JobTemplate:
    """Save a job configuration in the caller's workspace; `config` must be a valid create
    body (400 naming `config.field` otherwise)."""
    parse_body(config, "config")
    workspace_id = _workspace_for(session, principal)
    template = JobTemplate(
        workspace_id=workspace_id,
        created_by=principal.user_id,
        name=name,
        description=description,
        config=config,
        created_at=utcnow(),
    )
    session.add(template)
    session.flush()
    return template


def _readable_workspaces(session: Session, principal: Principal) -> list[int]:
    readers = roles_allowing(Action.READ_JOB)
    if principal.workspace_id is not None:
        role = effective_role(session, principal, principal.workspace_id)
        return [principal.workspace_id] if role in readers else []
    return authz_repository.member_workspace_ids(session, principal.user_id, readers)


def list_templates(session: Session, principal: Principal) -> list[JobTemplate]:
    ids = _readable_workspaces(session, principal)
    if not ids:
        return []
    stmt = (
        select(JobTemplate)
        .where(JobTemplate.workspace_id.in_(ids))
        .order_by(JobTemplate.created_at.desc(), JobTemplate.id.desc())
        .limit(500)
    )
    return list(session.scalars(stmt).all())


def get_template(session: Session, principal: Principal, raw_id: str) -> JobTemplate:
    text = raw_id.removeprefix("tpl_")
    if not text.isdigit() or len(text) > 9:
        raise TemplateNotFound()
    template = session.get(JobTemplate, int(text))
    if template is None or template.workspace_id not in _readable_workspaces(session, principal):
        raise TemplateNotFound()
    return template


def merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """`overrides` over `base`: objects (env) merge key by key, anything else replaces."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def job_from_template(
    session: Session, principal: Principal, raw_id: str, overrides: dict[str, Any]
) -> Job:
    """A job from a template's config with `overrides` merged (400 naming the field when
    the merge is not a valid body)."""
    template = get_template(session, principal, raw_id)
    body = parse_body(merge(template.config, overrides), "overrides")
    return create_job(session, principal, body)
