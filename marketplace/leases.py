"""The contract between the node and its providers: what a claim, a lease and a job look
like on the wire (`/v1/providers/claim` and the fenced job writes).

The node declares these models as the `response_model` of its provider routes and the
daemon validates every answer with them, so both sides read one shape. A lease carries its
expiry twice: `expires_at` (the node's clock) and `ttl_seconds` (how long it runs from the
moment the node answered), from which the daemon paces its heartbeats without trusting
that the two clocks agree.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

T = TypeVar("T")

# Below this many seconds a lease leaves too little room for a heartbeat that meets one
# slow answer or a short blip (a third of the lease between heartbeats, as `heartbeat_seconds`
# paces them, is then under 5 s): the daemon warns.
MIN_RELIABLE_LEASE_SECONDS = 15.0


class _Wire(BaseModel):
    # Read models: a newer node may add fields an older daemon does not know.
    model_config = ConfigDict(extra="ignore")


class Lease(_Wire):
    lease_id: str | None
    job_id: str
    attempt: int = Field(ge=0)
    expires_at: dt.datetime | None
    ttl_seconds: float | None = Field(
        None, description="Seconds the lease runs from the node's answer (None: no lease)."
    )
    status: str


class ProviderJob(_Wire):
    """What a provider needs to run a job."""

    id: str
    type: str
    status: str
    spec: dict[str, Any] = Field(default_factory=dict)
    folder_cid: str | None = None
    metadata_cid: str | None = None
    requester_address: str | None = None
    reward_wei: str = "0"
    attempt: int
    max_retries: int
    deadline_at: dt.datetime | None = None


class AssignmentVoucher(_Wire):
    """The node's signed assignment of an escrowed job to this lease (`submitWithVoucher`)."""

    chain_id: int
    escrow: str
    job_key: str
    provider: str
    attempt: int
    funding: int
    expiry: int
    v: int
    r: str
    s: str


class Claim(_Wire):
    lease: Lease
    job: ProviderJob
    voucher: AssignmentVoucher | None = None


class LogsAccepted(_Wire):
    accepted: int


class ResourceSample(BaseModel):
    """One resource sample of a running job (`POST /v1/jobs/{id}/metrics`), as
    `Reporter.report_metrics` takes it. Every value is optional (a machine without a GPU
    leaves those out); network counters are cumulative since the attempt started (the
    node turns them into bytes per interval)."""

    model_config = ConfigDict(extra="forbid")

    at: dt.datetime | None = Field(
        None, description="When it was taken (default: when the node receives it)."
    )
    cpu_millicores: float | None = Field(None, ge=0, le=1e8)
    memory_bytes: int | None = Field(None, ge=0, le=2**62)
    network_rx_bytes: int | None = Field(None, ge=0, le=2**62)
    network_tx_bytes: int | None = Field(None, ge=0, le=2**62)
    gpu_utilization: float | None = Field(None, ge=0, le=100, description="Percent.")
    gpu_memory_bytes: int | None = Field(None, ge=0, le=2**62)


class TrainingSample(BaseModel):
    """One training epoch's metrics (losses, mAP, accuracy...), as
    `Reporter.report_training` takes them."""

    model_config = ConfigDict(extra="forbid")

    epoch: int = Field(ge=1, le=1_000_000)
    at: dt.datetime | None = None
    metrics: dict[str, float | None] = Field(default_factory=dict, max_length=64)

    @field_validator("metrics")
    @classmethod
    def _finite(cls, value: dict[str, float | None]) -> dict[str, float | None]:
        """Names up to 64 characters; NaN and infinities (a diverged loss) become null,
        which JSON (and PostgreSQL's json type) can hold."""
        for name in value:
            if not 0 < len(name) <= 64:
                raise ValueError("metric names are 1 to 64 characters")
        return {k: v if v is None or math.isfinite(v) else None for k, v in value.items()}


class MetricsAccepted(_Wire):
    samples: int
    epochs: int
    dropped: int = 0


class JobOutcome(_Wire):
    """The job after a result, a failure or a release."""

    job_id: str
    status: str
    result_cid: str | None = None


class V1Ok(BaseModel, Generic[T]):
    """The canonical `/v1` success envelope."""

    success: Literal[True] = True
    data: T


def heartbeat_seconds(ttl_seconds: float) -> float:
    """Seconds between heartbeats for a lease of `ttl_seconds`: a third of it, so two
    heartbeats can fail (or answer slowly) before the lease runs out."""
    return max(0.5, ttl_seconds / 3)


def lease_too_short(ttl_seconds: float) -> bool:
    return ttl_seconds < MIN_RELIABLE_LEASE_SECONDS
