"""Wire types of the job APIs: seed 001 (`/workspace/{id}/jobs`, snake_case, seed 001
status words) and seed 002 (`/v1/jobs`, the canonical camelCase representation).

Create/update schemas forbid unknown fields; read schemas are built from a `Job` row with
`from_job`, which is where ids (`job_5`), status words, durations and amounts are
translated. Timestamps are UTC ISO-8601 with a `Z`: whole seconds on seed 001 (as its
examples print them), milliseconds on `/v1` (whose filters are Unix milliseconds).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    field_validator,
)
from pydantic.alias_generators import to_camel
from sqlalchemy import Row

from marketplace.jobs.dialects import SEED001_PATCH_TARGET, seed001_word
from marketplace.jobs.ids import format_job_id
from marketplace.jobs.states import JobStatus
from marketplace.money import wei_to_eth
from node.models.jobs import Job, JobEvent

Priority = Literal["low", "normal", "high", "urgent"]
JobType = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$")]


def _iso_seconds(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _iso_millis(value: dt.datetime) -> str:
    # isoformat is C; strftime plus an f-string was 4 % of a list's profile (issue 12)
    return value.astimezone(dt.UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


IsoSeconds = Annotated[dt.datetime, PlainSerializer(_iso_seconds, return_type=str)]
IsoMillis = Annotated[dt.datetime, PlainSerializer(_iso_millis, return_type=str)]


def as_utc(value: dt.datetime | None) -> dt.datetime | None:
    """Aware UTC datetime; a naive one given by a client is read as UTC."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def actual_duration_seconds(job: Job) -> int | None:
    """Seconds from start to finish; null until the job has both."""
    if job.started_at is None or job.completed_at is None:
        return None
    return max(0, round((job.completed_at - job.started_at).total_seconds()))


# --------------------------------------------------------------------------- seed 001


class _Action(BaseModel):
    model_config = ConfigDict(extra="forbid")


class JobCreate001(_Action):
    """`POST /workspace/{workspace_id}/jobs`. `workspace_id` must equal the URL's."""

    job_type: JobType
    workspace_id: int = Field(ge=1, le=2**31 - 1)
    priority: Priority = "normal"
    metadata: dict[str, Any] = Field(default_factory=dict)
    estimated_duration: int | None = Field(None, ge=0, le=10**9)
    scheduled_at: dt.datetime | None = None
    max_retries: int = Field(3, ge=0, le=100)

    @field_validator("scheduled_at")
    @classmethod
    def _utc(cls, value: dt.datetime | None) -> dt.datetime | None:
        return as_utc(value)


class JobUpdate001(_Action):
    """`PATCH /workspace/{workspace_id}/jobs/{job_id}`: every field optional.

    `result` is merged into the stored result (keys given replace keys stored; `null`
    clears the stored result); `progress_*: null` clears that field; `status: null` is
    refused (a job always has a status).
    """

    status: Literal["pending", "running", "success", "completed", "failed", "cancelled"] | None = (
        None
    )
    progress_percent: int | None = Field(None, ge=0, le=100)
    progress_message: str | None = Field(None, max_length=2000)
    result: dict[str, Any] | None = None

    @field_validator("status")
    @classmethod
    def _status_not_null(cls, value: str | None) -> str | None:
        if value is None:
            raise ValueError("status cannot be null")
        return value

    @property
    def target_status(self) -> JobStatus | None:
        return SEED001_PATCH_TARGET[self.status] if self.status else None


def result_view_001(job: Job) -> dict[str, Any] | None:
    """Seed 001's `result`: progress fields (while set) merged with the stored result."""
    view: dict[str, Any] = {}
    if job.progress_percent is not None:
        view["progress_percent"] = job.progress_percent
    if job.progress_message is not None:
        view["progress_message"] = job.progress_message
    if job.result:
        view.update(job.result)
    return view or None


class Job001(BaseModel):
    job_id: str = Field(examples=["job_5"])
    job_type: str
    status: str = Field(description="pending, running, success, failed or cancelled")
    priority: str
    workspace_id: int | None
    created_by: int | None
    result: dict[str, Any] | None
    estimated_duration: int | None
    actual_duration: int | None
    retry_count: int
    max_retries: int
    created_at: IsoSeconds
    updated_at: IsoSeconds
    started_at: IsoSeconds | None
    completed_at: IsoSeconds | None
    scheduled_at: IsoSeconds | None

    @classmethod
    def from_job(cls, job: Job) -> Job001:
        return cls(
            job_id=format_job_id(job.id),
            job_type=job.job_type,
            status=seed001_word(job.status),
            priority=job.priority,
            workspace_id=job.workspace_id,
            created_by=job.created_by,
            result=result_view_001(job),
            estimated_duration=job.estimated_duration_seconds,
            actual_duration=actual_duration_seconds(job),
            retry_count=job.retry_count,
            max_retries=job.max_retries,
            created_at=job.created_at,
            updated_at=job.updated_at,
            started_at=job.started_at,
            completed_at=job.completed_at,
            scheduled_at=job.scheduled_at,
        )


class JobStatus001(BaseModel):
    job_id: str
    status: str
    progress_percent: int | None
    progress_message: str | None
    updated_at: IsoSeconds

    @classmethod
    def from_job(cls, job: Job) -> JobStatus001:
        return cls(
            job_id=format_job_id(job.id),
            status=seed001_word(job.status),
            progress_percent=job.progress_percent,
            progress_message=job.progress_message,
            updated_at=job.updated_at,
        )


class JobResult001(BaseModel):
    job_id: str
    result: dict[str, Any] | None
    status: str
    completed_at: IsoSeconds | None

    @classmethod
    def from_job(cls, job: Job) -> JobResult001:
        return cls(
            job_id=format_job_id(job.id),
            result=result_view_001(job),
            status=seed001_word(job.status),
            completed_at=job.completed_at,
        )


class PagePagination(BaseModel):
    page: int
    limit: int
    total: int
    total_pages: int


class JobPage001(BaseModel):
    data: list[Job001]
    pagination: PagePagination


# --------------------------------------------------------------------------- seed 002 (/v1)


class _CamelAction(BaseModel):
    model_config = ConfigDict(
        extra="forbid", alias_generator=to_camel, validate_by_name=True, validate_by_alias=True
    )


class JobCreateV1(_CamelAction):
    """`POST /v1/jobs`: `type` and `payload` as seed 002 requires; the rest optional."""

    type: JobType = Field(description="The type of job to create")
    payload: dict[str, Any] = Field(description="The job payload data")
    priority: Priority = "normal"
    workspace_id: int | None = Field(
        None, ge=1, le=2**31 - 1, description="Create the job in this workspace (member role)."
    )
    max_retries: int = Field(3, ge=0, le=100)


class _Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class JobEventV1(_Camel):
    id: int
    seq: int = Field(description="The job's event number: 1, 2, 3... (resume after one)")
    type: str
    from_status: str | None
    to_status: str | None
    level: str
    stream: str | None = Field(None, description="stdout or stderr, for a log line where known")
    message: str | None
    data: dict[str, Any] | None
    attempt: int | None
    created_at: IsoMillis

    @classmethod
    def from_event(cls, event: JobEvent | Row[Any]) -> JobEventV1:
        return cls(
            id=event.id,
            seq=event.seq,
            type=event.type,
            from_status=event.from_status,
            to_status=event.to_status,
            level=event.level,
            stream=event.stream,
            message=event.message,
            data=event.data,
            attempt=event.attempt,
            created_at=event.created_at,
        )


class JobV1(_Camel):
    """The canonical job: what every dialect is a view of."""

    id: str = Field(examples=["job_5"])
    type: str
    status: JobStatus
    payload: dict[str, Any]
    result: dict[str, Any] | None
    result_type: str | None
    result_cid: str | None
    error: str | None
    progress: int | None = Field(description="Percent complete, 0-100")
    progress_message: str | None
    priority: str
    workspace_id: int | None
    created_by: int | None
    requester_address: str | None
    reward: str = Field(description="Escrowed reward in ETH, exact decimal string")
    attempt: int
    retry_count: int
    max_retries: int
    estimated_duration: int | None
    created_at: IsoMillis
    updated_at: IsoMillis
    started_at: IsoMillis | None
    completed_at: IsoMillis | None
    scheduled_at: IsoMillis | None
    deadline_at: IsoMillis | None

    @classmethod
    def fields_from(cls, job: Job | Row[Any]) -> dict[str, Any]:
        # A row is read through its mapping: a Row's attribute lookup cost three times
        # as much, 580 of the 700 us that building a list's 50 jobs took (issue 12).
        get = job._mapping.__getitem__ if isinstance(job, Row) else job.__getattribute__
        return {
            "id": format_job_id(get("id")),
            "type": get("job_type"),
            "status": JobStatus(get("status")),
            "payload": get("spec") or {},
            "result": get("result"),
            "result_type": get("result_type"),
            "result_cid": get("result_cid"),
            "error": get("error"),
            "progress": get("progress_percent"),
            "progress_message": get("progress_message"),
            "priority": get("priority"),
            "workspace_id": get("workspace_id"),
            "created_by": get("created_by"),
            "requester_address": get("requester_address"),
            "reward": wei_to_eth(get("reward_wei")),
            "attempt": get("attempt"),
            "retry_count": get("retry_count"),
            "max_retries": get("max_retries"),
            "estimated_duration": get("estimated_duration_seconds"),
            "created_at": get("created_at"),
            "updated_at": get("updated_at"),
            "started_at": get("started_at"),
            "completed_at": get("completed_at"),
            "scheduled_at": get("scheduled_at"),
            "deadline_at": get("deadline_at"),
        }

    @classmethod
    def from_job(cls, job: Job | Row[Any]) -> JobV1:
        return cls(**cls.fields_from(job))


class JobDetailV1(JobV1):
    events: list[JobEventV1]
    funding: dict[str, Any] | None = Field(
        None,
        description="While awaiting funding: the escrow call {chain_id, to, data, value} "
        "the requester's wallet signs (value in wei); null otherwise",
    )
    escrow: dict[str, Any] | None = Field(
        None,
        description="The job's escrow as the node saw it on chain (key, status, amount, "
        "binding, a result on chain with who submitted it); null without an escrow key",
    )

    @classmethod
    def from_job(cls, job: Job, events: Sequence[Any] | None = None) -> JobDetailV1:
        """`events`: the job's event log when it was read apart from the job (rows of
        `repository.events_of`); else `job.events`."""
        log = job.events if events is None else events
        return cls(**cls.fields_from(job), events=[JobEventV1.from_event(e) for e in log])


class CursorPagination(_Camel):
    limit: int
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page")
    has_more: bool


class JobListV1(_Camel):
    success: bool = True
    data: list[JobV1]
    pagination: CursorPagination


class JobEnvelopeV1(_Camel):
    success: bool = True
    data: JobDetailV1
    message: str


class JobEventListV1(_Camel):
    """`GET /v1/jobs/{jobId}/events|logs` without `follow`."""

    success: bool = True
    data: list[JobEventV1]
    last_seq: int = Field(description="The job's last event number (any kind)")


# --------------------------------------------------------------------------- metrics


class MetricPoint(BaseModel):
    """One bucket of a series: its start (seed 003 prints whole seconds) and its value."""

    timestamp: str = Field(examples=["2025-07-10T12:36:00Z"])
    value: int | float


class NetworkSeries(BaseModel):
    rx: list[MetricPoint] = Field(description="Bytes received during each bucket.")
    tx: list[MetricPoint] = Field(description="Bytes sent during each bucket.")


class GpuSeries(BaseModel):
    utilization: list[MetricPoint] = Field(description="Mean GPU utilization, percent.")
    memory: list[MetricPoint] = Field(description="Mean GPU memory in use, bytes.")


class TrainingEpoch(BaseModel):
    epoch: int
    attempt: int
    timestamp: str
    metrics: dict[str, float | None]


class JobMetrics(BaseModel):
    """A job's metrics over a window (seed 003's shape: `cpu`, `memory`, `network.rx/tx`,
    plus `gpu` and `training`); see `node.jobs.metrics`."""

    cpu: list[MetricPoint] = Field(description="Mean CPU use in millicores.")
    memory: list[MetricPoint] = Field(description="Mean memory in use, bytes.")
    network: NetworkSeries
    gpu: GpuSeries
    training: list[TrainingEpoch] = Field(
        description="Per-epoch training metrics of the job's latest attempt that reported any."
    )
    period: str
    resolution: str
    start: str = Field(description="The window's start (exclusive).")
    end: str = Field(description="The window's end (inclusive).")


class JobMetricsEnvelopeV1(BaseModel):
    success: bool = True
    data: JobMetrics
