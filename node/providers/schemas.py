"""Wire types of the provider routes (canonical `/v1` dialect)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from marketplace.jobs.networks import DEFAULT_NETWORK, MAX_NETWORKS, network_name
from marketplace.leases import ResourceSample, TrainingSample


def _mb(values: dict[str, Any], mb_key: str, bytes_key: str) -> None:
    if values.get(mb_key) is None and isinstance(values.get(bytes_key), int):
        values[mb_key] = values[bytes_key] // (1024 * 1024)


class Gpu(BaseModel):
    """One GPU as `worker.hardware` reports it (memory in bytes or MiB; extra fields such
    as uuid and compute capability are kept)."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(max_length=200)
    memory_mb: int = Field(0, ge=0, le=10_000_000)
    cuda: str | None = Field(None, max_length=32)

    @model_validator(mode="before")
    @classmethod
    def _memory(cls, values: Any) -> Any:
        if isinstance(values, dict):
            values = dict(values)
            _mb(values, "memory_mb", "memory_bytes")
        return values


class Capabilities(BaseModel):
    model_config = ConfigDict(extra="allow")

    gpus: list[Gpu] = Field(default_factory=list, max_length=64)
    cpu_cores: int = Field(1, ge=1, le=4096)
    ram_mb: int = Field(0, ge=0)
    disk_free_mb: int = Field(0, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _sizes(cls, values: Any) -> Any:
        if isinstance(values, dict):
            values = dict(values)
            _mb(values, "ram_mb", "memory_bytes")
            _mb(values, "disk_free_mb", "disk_free_bytes")
        return values


class RegisterProvider(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field("provider", min_length=1, max_length=100)
    capabilities: Capabilities = Field(default_factory=Capabilities)
    job_types: list[str] = Field(default_factory=lambda: ["image_processing"], max_length=32)
    max_concurrent: int = Field(1, ge=1, le=256)
    api_keys: list[Annotated[str, StringConstraints(min_length=1, max_length=128)]] = Field(
        default_factory=list,
        max_length=32,
        description=(
            "`provider`-role API keys of the workspaces whose private pools this provider "
            "joins. They replace the ones presented before; none means the open market only."
        ),
    )
    networks: list[str] = Field(
        default_factory=lambda: [DEFAULT_NETWORK],
        min_length=1,
        max_length=MAX_NETWORKS,
        description=(
            "The provider networks this provider serves (`dcm provider run --pool`): jobs "
            "of a network (seed 003's `provider`) are claimed only by its providers."
        ),
    )

    @field_validator("networks", mode="before")
    @classmethod
    def _networks(cls, value: Any) -> Any:
        if isinstance(value, list):
            return sorted({network_name(v) for v in value})
        return value


class PoolRead(BaseModel):
    """A private pool the provider was admitted to (the key's prefix, never the key)."""

    workspace_id: int
    api_key_id: int
    key_prefix: str


class ProviderRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    address: str
    name: str
    capabilities: dict[str, Any]
    job_types: list[str]
    networks: list[str] = Field(default_factory=lambda: [DEFAULT_NETWORK])
    max_concurrent: int
    created_at: dt.datetime
    last_seen_at: dt.datetime
    online: bool = False
    active_jobs: int = 0


class RegisteredProvider(ProviderRead):
    """The registration answer: the provider, and the pools its keys admitted it to."""

    pools: list[PoolRead] = Field(default_factory=list)


class ClaimRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    job_types: list[str] | None = Field(None, max_length=32)
    wait_seconds: float = Field(0, ge=0, le=300)
    exclude_job_ids: list[Annotated[str, StringConstraints(max_length=32)]] = Field(
        default_factory=list,
        max_length=100,
        description="Jobs not to be given (this provider just failed them).",
    )


class AttemptBody(BaseModel):
    """Every provider write carries the attempt (fencing token) it holds."""

    model_config = ConfigDict(extra="forbid")

    attempt: int = Field(ge=1)


class ProgressBody(AttemptBody):
    percent: float | None = Field(None, ge=0, le=100)
    message: str | None = Field(None, max_length=2000)
    metrics: dict[str, Any] | None = None


class LogLine(BaseModel):
    model_config = ConfigDict(extra="forbid")

    line: str = Field(max_length=8192)
    level: str = Field("info", pattern="^(debug|info|warning|error)$")
    stream: Literal["stdout", "stderr"] | None = None


class LogsBody(AttemptBody):
    lines: list[LogLine] = Field(max_length=1000)


class ResultBody(AttemptBody):
    result_cid: str = Field(min_length=46, max_length=128, pattern="^[A-Za-z0-9]+$")
    result: dict[str, Any] | None = None
    result_type: str | None = Field(None, max_length=64)


class FailBody(AttemptBody):
    error: str = Field(max_length=4000)
    retryable: bool = True
    # What a run that failed by its own doing left (a container's outputs, its exit code):
    # kept on the job when the failure is final (`retryable: false`).
    result_cid: str | None = Field(None, min_length=46, max_length=128, pattern="^[A-Za-z0-9]+$")
    result: dict[str, Any] | None = None
    result_type: str | None = Field(None, max_length=64)


class ReleaseBody(AttemptBody):
    reason: str = Field("released by provider", max_length=2000)


class MetricsBody(AttemptBody):
    """Resource samples and per-epoch training metrics of the leased job."""

    samples: list[ResourceSample] = Field(default_factory=list, max_length=1000)
    training: list[TrainingSample] = Field(default_factory=list, max_length=1000)
