"""Seed 003 dialect (Cortex's plugin-core Jobs API): `/api/plugin-core/jobs`.

Container jobs over the one job model (rules: `node.jobs.plugin_core`; the spec the
provider's Docker executor reads: `node.jobs.container`). Envelopes `{"success": true,
"data": ...}`, lists with `meta.pagination{total, page, limit, pages}`; errors
`{"success": false, "error": {"code", "message", "details"}}` with seed 003's codes
(`node.errors.PLUGIN_CORE_CODES`). `Authorization: Bearer` takes a workspace API key (the
job lands in its workspace) or a user token (the caller's personal workspace).

Decisions where the seed is silent:
- `from`/`to` are ISO dates or date-times (UTC when no offset), inclusive; a bare date
  as `to` means the end of that day. `sort` is `field[:asc|desc]` with field createdAt
  (default, desc), updatedAt, status or priority.
- Creates answer 201. `GET /logs` without `follow` answers the stored lines; `follow=true`
  is the node's event stream (`node.jobs.router_events.follow`) with frames `data:
  {"timestamp", "line"}` and no `event:` line, so `EventSource.onmessage` gets them, and
  a last `event: end` once the job has ended.
- Templates are ids `tpl_N` of the workspace they were saved in, readable by whoever
  reads that workspace's jobs; `overrides` merge into the config key by key (`env`
  merges per variable), and the result is checked as a create body.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, status
from fastapi.responses import StreamingResponse

from marketplace.errors import (
    BadQuery,
    Forbidden,
    InvalidApiKey,
    InvalidField,
    InvalidToken,
    InvalidTransition,
    JobNotFound,
    RateLimited,
    TemplateNotFound,
    TokenExpired,
    Unauthorized,
)
from node.auth.deps import PrincipalDep, authenticate_request
from node.db import session_scope
from node.deps import BearerDoc, SessionDep, SettingsDep, notifier_of, sessions_of
from node.jobs import events, metrics, plugin_core
from node.jobs.funding import FundingDep
from node.jobs.router_events import follow
from node.jobs.schemas_plugin_core import (
    BatchCreate,
    BatchData,
    BatchEnvelope,
    CancelData,
    CancelEnvelope,
    FromTemplate,
    JobCreate,
    JobEnvelope,
    JobList,
    ListMeta,
    LogLineOut,
    LogsData,
    LogsEnvelope,
    MetricsEnvelope,
    Pagination,
    PluginJobDetail,
    TemplateCreate,
    TemplateEnvelope,
    TemplateList,
    TemplateOut,
    iso,
    present,
)
from node.models.jobs import JobEvent
from node.openapi import raises

router = APIRouter(prefix="/api/plugin-core/jobs", tags=["jobs (seed 003: plugin-core)"])

# What the logs route's own authentication may answer (it authenticates in its own
# session, not through PrincipalDep, so it names them itself).
AUTH_ERRORS = (Unauthorized, InvalidToken, TokenExpired, InvalidApiKey, Forbidden, RateLimited)
JobIdPath = Annotated[str, Path(alias="id", max_length=64, description="e.g. job_5")]
SORT = r"^(createdAt|updatedAt|status|priority)(:(asc|desc))?$"


def _when(value: str | None, field: str, *, end_of_day: bool = False) -> dt.datetime | None:
    """An ISO date or date-time query value, in UTC; 400 naming the field otherwise."""
    if value is None:
        return None
    text = value.strip()
    try:
        if len(text) == 10:
            day = dt.date.fromisoformat(text)
            moment = dt.datetime.combine(day, dt.time.max if end_of_day else dt.time.min)
        else:
            moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise InvalidField(
            f"{field}: not an ISO date or date-time: {text[:40]!r}", details={"field": field}
        ) from None
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


@router.get("", response_model=JobList)
@raises(InvalidField)
def list_jobs(
    principal: PrincipalDep,
    session: SessionDep,
    status_: Annotated[
        Literal[tuple(plugin_core.STATUS_FILTER)] | None,  # type: ignore[valid-type]
        Query(alias="status", description="pending, running, completed, failed..."),
    ] = None,
    provider: Annotated[str | None, Query(max_length=64, description="Network")] = None,
    from_: Annotated[str | None, Query(alias="from", max_length=40)] = None,
    to: Annotated[str | None, Query(max_length=40)] = None,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    sort: Annotated[str, Query(pattern=SORT, description="e.g. createdAt:desc")] = "createdAt:desc",
) -> JobList:
    """The caller's container jobs, filtered, sorted, page-numbered."""
    created_from, created_to = _when(from_, "from"), _when(to, "to", end_of_day=True)
    if created_from and created_to and created_from > created_to:
        raise BadQuery("from: must not be after `to`", details={"field": "from"})
    field, _, order = sort.partition(":")
    jobs, total = plugin_core.list_jobs(
        session,
        principal,
        status=status_,
        network=provider.strip().lower() if provider else None,
        created_from=created_from,
        created_to=created_to,
        sort=field,
        order=order or "desc",
        page=page,
        limit=limit,
    )
    return JobList(
        data=present(session, jobs),
        meta=ListMeta(
            pagination=Pagination(
                total=total, page=page, limit=limit, pages=math.ceil(total / limit)
            )
        ),
    )


@router.post("", response_model=JobEnvelope, status_code=status.HTTP_201_CREATED)
@raises(InvalidField, Forbidden)
def create_job(body: JobCreate, principal: PrincipalDep, session: SessionDep) -> JobEnvelope:
    """Submit a container job (in the API key's workspace, or the user's personal one)."""
    job = plugin_core.create_job(session, principal, body)
    return JobEnvelope(data=present(session, [job])[0])


@router.post("/batch", response_model=BatchEnvelope, status_code=status.HTTP_201_CREATED)
@raises(InvalidField, Forbidden)
def create_batch(body: BatchCreate, principal: PrincipalDep, session: SessionDep) -> BatchEnvelope:
    """Submit jobs together; at most `concurrency` of them are claimed or running at once."""
    batch_id, jobs = plugin_core.create_batch(session, principal, body.jobs, body.concurrency)
    return BatchEnvelope(
        data=BatchData(
            job_ids=[f"job_{j.id}" for j in jobs], batch_id=batch_id, concurrency=body.concurrency
        )
    )


@router.post("/templates", response_model=TemplateEnvelope, status_code=status.HTTP_201_CREATED)
@raises(InvalidField, Forbidden)
def create_template(
    body: TemplateCreate, principal: PrincipalDep, session: SessionDep
) -> TemplateEnvelope:
    """Save a reusable job configuration (`config` is checked as a create body)."""
    template = plugin_core.create_template(
        session, principal, name=body.name, description=body.description, config=body.config
    )
    return TemplateEnvelope(data=TemplateOut.of(template))


@router.get("/templates", response_model=TemplateList)
def list_templates(principal: PrincipalDep, session: SessionDep) -> TemplateList:
    """The templates of the workspaces whose jobs the caller reads, newest first."""
    return TemplateList(
        data=[TemplateOut.of(t) for t in plugin_core.list_templates(session, principal)]
    )


@router.post(
    "/from-template/{templateId}", response_model=JobEnvelope, status_code=status.HTTP_201_CREATED
)
@raises(TemplateNotFound, InvalidField, Forbidden)
def create_from_template(
    template_id: Annotated[str, Path(alias="templateId", max_length=32)],
    body: FromTemplate,
    principal: PrincipalDep,
    session: SessionDep,
) -> JobEnvelope:
    """A job from a template, with `overrides` merged into its config."""
    job = plugin_core.job_from_template(session, principal, template_id, body.overrides)
    return JobEnvelope(data=present(session, [job])[0])


@router.get("/{id}", response_model=JobEnvelope)
@raises(JobNotFound)
def get_job(
    job_id: JobIdPath,
    principal: PrincipalDep,
    session: SessionDep,
    settings: SettingsDep,
    funding: FundingDep,
) -> JobEnvelope:
    """One job with its config, results and events (and, while a job with a reward awaits
    its deposit, the wallet call that funds it)."""
    job = plugin_core.get_job(session, principal, job_id)
    detail = present(session, [job], detail=True, public_url=settings.public_url)[0]
    if isinstance(detail, PluginJobDetail):
        detail.funding = funding.funding_call(session, job)
    return JobEnvelope(data=detail)


@router.post("/{id}/cancel", response_model=CancelEnvelope)
@raises(JobNotFound, InvalidTransition, Forbidden)
def cancel_job(job_id: JobIdPath, principal: PrincipalDep, session: SessionDep) -> CancelEnvelope:
    """Cancel a job: `cancelling` while its provider stops the container, then
    `cancelled`; 409 PROVIDER_CONFLICT for a job that already ended."""
    job, word = plugin_core.cancel(session, principal, job_id)
    return CancelEnvelope(data=CancelData(id=f"job_{job.id}", status=word))


def _log_frame(row: JobEvent) -> bytes:
    data = json.dumps({"timestamp": iso(row.created_at), "line": row.message or ""})
    return f"id: {row.seq}\ndata: {data}\n\n".encode()


@router.get(
    "/{id}/logs",
    response_model=LogsEnvelope,
    responses={200: {"content": {"text/event-stream": {}}, "description": "JSON, or SSE"}},
)
@raises(JobNotFound, InvalidField, *AUTH_ERRORS)
def job_logs(
    job_id: JobIdPath,
    request: Request,
    settings: SettingsDep,
    _doc: BearerDoc = None,
    tail: Annotated[int | None, Query(ge=1, le=10_000)] = None,
    follow_: Annotated[bool, Query(alias="follow")] = False,
    since: Annotated[str | None, Query(max_length=40)] = None,
) -> Any:
    """The job's log lines; `follow=true` streams them (SSE). Its own session, closed
    before a stream starts: a follower holds no database connection while it waits."""
    since_at = _when(since, "since")
    factory = sessions_of(request)
    with session_scope(factory) as session:
        principal = authenticate_request(request, session, settings)
        job = plugin_core.get_job(session, principal, job_id)
        if not follow_:
            rows = plugin_core.logs(session, job, tail=tail, since=since_at)
            return LogsEnvelope(
                data=LogsData(
                    logs=[LogLineOut(timestamp=r.created_at, line=r.message or "") for r in rows]
                )
            ).model_dump(mode="json", by_alias=True)
        job_pk = job.id
    return StreamingResponse(
        follow(
            request,
            factory,
            notifier_of(request),
            job_pk,
            events.LOGS_KIND,
            after=None,
            since=since_at,
            tail=tail,
            heartbeat=settings.events.stream_heartbeat_seconds,
            max_seconds=settings.events.stream_max_seconds,
            render=_log_frame,
        ),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get("/{id}/metrics", response_model=MetricsEnvelope)
@raises(JobNotFound)
def job_metrics(
    job_id: JobIdPath,
    principal: PrincipalDep,
    session: SessionDep,
    period: Literal["1h", "6h", "24h", "7d"] = "1h",
    resolution: Literal["1m", "5m", "1h"] = "1m",
) -> MetricsEnvelope:
    """CPU (millicores), memory (bytes) and network (bytes) series of the job, one point per
    `resolution` over the last `period` of its run, plus its GPU series and per-epoch
    training metrics (`node.jobs.metrics.series`, the same as `/v1/jobs/{id}/metrics`)."""
    job = plugin_core.get_job(session, principal, job_id)
    return MetricsEnvelope(data=metrics.series(session, job, period, resolution))
