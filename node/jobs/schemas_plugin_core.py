"""Wire types of seed 003's plugin-core Jobs API: camelCase, `{"success": true, "data"}`
envelopes, timestamps as `2025-07-10T12:34:56Z`, sizes with units (`512Mi`)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, StrictInt
from pydantic.alias_generators import to_camel
from sqlalchemy.orm import Session

from marketplace.units import format_bytes
from node.db import utcnow
from node.jobs import plugin_core
from node.jobs.container import NO_NETWORK, ContainerJobCreate
from node.jobs.schemas import JobMetrics
from node.models.jobs import Job, JobTemplate


def iso(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


Stamp = Annotated[dt.datetime | None, PlainSerializer(iso, return_type=str | None)]


class _Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class Cost(_Camel):
    current: int | float
    projected: int | float
    currency: Literal["ETH"] = "ETH"


class Port(_Camel):
    port: int
    expose: bool


class Config(_Camel):
    env: dict[str, str]
    ports: list[Port]


class Results(_Camel):
    exit_code: int | None = None
    output_url: str | None = None
    # ours: the endpoints the provider published for exposed ports (as Akash leases)
    endpoints: list[Any] = Field(default_factory=list)


class Event(_Camel):
    type: str
    timestamp: Stamp


class PluginJob(_Camel):
    """A job as lists and create answer it."""

    id: str
    provider: str
    status: str
    image: str
    cpu: int
    memory: str
    storage: str
    duration: int
    created_at: Stamp
    started_at: Stamp
    ended_at: Stamp
    cost: Cost
    # ours: why a pending job is not being claimed (unknown network...), else null
    status_message: str | None = None

    @classmethod
    def fields_of(cls, job: Job, status: str, cost: dict[str, Any], message: str | None) -> dict:
        spec = job.spec or {}
        return {
            "id": f"job_{job.id}",
            "provider": job.pool or spec.get("pool") or "default",
            "status": status,
            "image": spec.get("image") or "",
            "cpu": int(spec.get("cpu_millicores") or 0),
            "memory": format_bytes(int(spec.get("memory_bytes") or 0)),
            "storage": format_bytes(int(spec.get("storage_bytes") or 0)),
            "duration": int(spec.get("duration_seconds") or 0),
            "created_at": job.created_at,
            "started_at": job.started_at,
            "ended_at": job.completed_at,
            "cost": Cost(**cost),
            "status_message": message or job.error or _note(job.progress_message),
        }


def _note(message: str | None) -> str | None:
    """A stored progress note, unless it is a waiting reason (those are read live)."""
    return None if message is None or message.startswith(NO_NETWORK) else message


class PluginJobDetail(PluginJob):
    """One job (`GET /jobs/:id`): with its config, results and events."""

    config: Config
    results: Results
    events: list[Event]
    # ours: the wallet call that funds a job with a reward while it awaits its deposit
    # (`{chain_id, to, data, value}`, as `GET /v1/jobs/{id}` gives it), else null
    funding: dict[str, Any] | None = None


class Pagination(_Camel):
    total: int
    page: int
    limit: int
    pages: int


class ListMeta(_Camel):
    pagination: Pagination


class JobList(_Camel):
    success: Literal[True] = True
    data: list[PluginJob]
    meta: ListMeta


class JobEnvelope(_Camel):
    success: Literal[True] = True
    data: PluginJobDetail | PluginJob


class CancelData(_Camel):
    id: str
    status: str


class CancelEnvelope(_Camel):
    success: Literal[True] = True
    data: CancelData


class LogLineOut(_Camel):
    timestamp: Stamp
    line: str


class LogsData(_Camel):
    logs: list[LogLineOut]


class LogsEnvelope(_Camel):
    success: Literal[True] = True
    data: LogsData


class MetricsEnvelope(_Camel):
    success: Literal[True] = True
    data: JobMetrics


class BatchCreate(BaseModel):
    """`{jobs, concurrency}`: each entry is a create body, checked by the service so a bad
    one is named `jobs.N.field`."""

    model_config = ConfigDict(extra="forbid")

    jobs: list[dict[str, Any]] = Field(min_length=1, max_length=100)
    concurrency: StrictInt = Field(1, ge=1, le=100)


class BatchData(_Camel):
    job_ids: list[str]
    status: Literal["submitted"] = "submitted"
    # ours: the batch's id and its concurrency
    batch_id: str
    concurrency: int


class BatchEnvelope(_Camel):
    success: Literal[True] = True
    data: BatchData


class TemplateCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(None, max_length=2000)
    config: dict[str, Any]


class TemplateOut(_Camel):
    id: str
    name: str
    description: str | None
    config: dict[str, Any]
    created_at: Stamp

    @classmethod
    def of(cls, t: JobTemplate) -> TemplateOut:
        return cls(
            id=f"tpl_{t.id}",
            name=t.name,
            description=t.description,
            config=t.config,
            created_at=t.created_at,
        )


class TemplateEnvelope(_Camel):
    success: Literal[True] = True
    data: TemplateOut


class TemplateList(_Camel):
    success: Literal[True] = True
    data: list[TemplateOut]


class FromTemplate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    overrides: dict[str, Any] = Field(default_factory=dict)


JobCreate = ContainerJobCreate


def present(
    session: Session, jobs: list[Job], *, detail: bool = False, public_url: str = ""
) -> list[PluginJob]:
    """The jobs as this dialect shows them (status word, cost, why a pending job waits;
    with `detail`, config, results and events)."""
    now = utcnow()
    reasons = plugin_core.pending_reasons(session, jobs)
    out: list[PluginJob] = []
    for job in jobs:
        fields = PluginJob.fields_of(
            job, plugin_core.status_word(job, now), plugin_core.cost(job, now), reasons.get(job.id)
        )
        if not detail:
            out.append(PluginJob(**fields))
            continue
        spec, result = job.spec or {}, job.result or {}
        cid = job.result_cid or result.get("output_cid")
        out.append(
            PluginJobDetail(
                **fields,
                config=Config(
                    env=spec.get("env") or {},
                    ports=[Port(**p) for p in spec.get("ports") or []],
                ),
                results=Results(
                    exit_code=result.get("exit_code"),
                    output_url=f"{public_url.rstrip('/')}/ipfs/{cid}" if cid else None,
                    endpoints=result.get("endpoints") or [],
                ),
                events=[Event(**e) for e in plugin_core.events_of(job)],
            )
        )
    return out
