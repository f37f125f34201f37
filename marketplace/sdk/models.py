"""What the SDK returns: pydantic models with snake_case attributes, whatever dialect the
node answered in (seed 000's snake_case `/jobs/...`, the canonical camelCase `/v1`, Kubo's
PascalCase `/api/v0`, Ethereum's JSON-RPC receipts).

Every model reads its source the same way: top-level keys are turned to snake_case
(`resultCid` -> `result_cid`, `Hash` -> `hash`) before validation, and fields a newer node
adds are kept (`extra="allow"`, reachable as attributes under their snake_case name)
rather than refused, so an SDK never breaks on a node that says more. User data inside
(`payload`, `result`, an event's `data`) is left as the node sent it.

Dict access (`job["status"]`, `job.get("resultCid")`) still works for code written
against the dicts the SDK used to return: it answers the value the node sent under that
key, as before, and warns (DeprecationWarning) with the attribute to use instead.
"""

from __future__ import annotations

import datetime as dt
import warnings
from decimal import Decimal
from typing import Annotated, Any, ClassVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    model_validator,
)
from pydantic.alias_generators import to_snake

_MISSING = object()


def _hex_int(value: Any) -> Any:
    """JSON-RPC quantities (`"0x1a"`) and decimal strings (`"1000"`, wei) as ints."""
    if isinstance(value, str):
        return int(value, 16) if value.startswith(("0x", "0X")) else int(value)
    return value


Int = Annotated[int, BeforeValidator(_hex_int)]


def _eth(value: Any) -> Any:
    """An ETH amount as a Decimal without trailing zeros (`"0.010000"` -> `0.01`)."""
    if value is None:
        return Decimal(0)
    amount = Decimal(str(value))
    return amount.quantize(Decimal(1)) if amount == amount.to_integral() else amount.normalize()


Eth = Annotated[Decimal, BeforeValidator(_eth)]


class WireModel(BaseModel):
    """The base of every SDK result (see the module docstring)."""

    model_config = ConfigDict(extra="allow")
    _wire: dict[str, Any] = PrivateAttr(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _from_wire(cls, data: Any, handler: Any) -> Any:
        if not isinstance(data, dict):
            return handler(data)
        model = handler(cls._normalize({to_snake(str(k)): v for k, v in data.items()}))
        model._wire = dict(data)
        return model

    @classmethod
    def _normalize(cls, data: dict[str, Any]) -> dict[str, Any]:
        """A hook for a source whose fields differ by more than their case."""
        return data

    # -- the dict access of SDK versions that returned dicts (deprecated) ---------------

    def __getitem__(self, key: str) -> Any:
        value = self._lookup(key)
        if value is _MISSING:
            raise KeyError(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        value = self._lookup(key)
        return default if value is _MISSING else value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._lookup(key, warn=False) is not _MISSING

    def _lookup(self, key: str, *, warn: bool = True) -> Any:
        name = to_snake(key)
        if warn:
            warnings.warn(
                f"{type(self).__name__}[{key!r}] is deprecated: use .{name}",
                DeprecationWarning,
                stacklevel=3,
            )
        if key in self._wire:
            return self._wire[key]
        if name in type(self).model_fields or name in (self.model_extra or {}):
            return getattr(self, name)
        return _MISSING

    def __str__(self) -> str:
        return repr(self)


class ChainCall(WireModel):
    """An escrow call for a wallet to sign: `value` in wei."""

    chain_id: Int
    to: str
    data: str
    value: Int = 0

    def __repr__(self) -> str:
        return f"<ChainCall chain {self.chain_id} to {self.to} value={self.value} wei>"


class Receipt(WireModel):
    """A mined transaction's receipt (quantities as ints)."""

    transaction_hash: str
    block_number: Int
    block_hash: str | None = None
    status: Int
    gas_used: Int | None = None
    effective_gas_price: Int | None = None
    sender: str | None = None
    to: str | None = None
    contract_address: str | None = None
    logs: list[dict[str, Any]] = Field(default_factory=list)

    @classmethod
    def _normalize(cls, data: dict[str, Any]) -> dict[str, Any]:
        if "from" in data:  # a keyword in Python
            data["sender"] = data.pop("from")
        return data

    @property
    def succeeded(self) -> bool:
        return self.status == 1

    def __repr__(self) -> str:
        outcome = "ok" if self.succeeded else "reverted"
        return f"<Receipt {self.transaction_hash} block {self.block_number} {outcome}>"


class Event(WireModel):
    """One entry of a job's history: a state change (`from_status` -> `to_status`),
    progress, a log line..."""

    id: int | None = None
    seq: int | None = None
    type: str
    from_status: str | None = None
    to_status: str | None = None
    level: str = "info"
    stream: str | None = None
    message: str | None = None
    data: dict[str, Any] | None = None
    attempt: int | None = None
    created_at: dt.datetime | None = None

    _kind: ClassVar[str] = "Event"

    def __repr__(self) -> str:
        parts = [str(self.seq) if self.seq is not None else "", self.type]
        if self.to_status:
            parts.append(f"{self.from_status or ''}->{self.to_status}")
        if self.message:
            parts.append(repr(self.message[:60]))
        return f"<{self._kind} {' '.join(p for p in parts if p)}>"


class LogLine(Event):
    """One line of a job's log (`message`, `level`, `stream`: stdout or stderr)."""

    type: str = "log"
    _kind: ClassVar[str] = "LogLine"


class EscrowResult(WireModel):
    """A result as the escrow holds it: its digest, the CIDv0 it names, who submitted it
    and what the node made of it (`verdict`, `reason`)."""

    digest: str
    cid: str | None = None
    submitted_by: str | None = None
    attempt: int | None = None
    verdict: str | None = None
    reason: str | None = None


class Escrow(WireModel):
    """A job's escrow as the node last saw it on chain (amounts in wei)."""

    job_key: str
    generation: int | None = None
    requester: str | None = None
    status: str | None = None
    accepted: bool | None = None
    refusal: str | None = None
    amount_wei: Int | None = None
    deadline: int | None = None
    challenge_window: int | None = None
    phase_end: int | None = None
    provider: str | None = None
    attempt: int | None = None
    result: EscrowResult | None = None
    disputed_by: str | None = None
    outcome: str | None = None

    def __repr__(self) -> str:
        amount = f" {self.amount_wei} wei" if self.amount_wei is not None else ""
        bound = f" bound to {self.provider}" if self.provider else ""
        return f"<Escrow {self.job_key[:10]}… {self.status}{amount}{bound}>"


class Settlement(WireModel):
    """How an escrow was settled (amounts in wei): who received it (`recipient`: the
    provider when paid, else the refunded requester), the fee, the transaction."""

    job_id: str | None = None
    job_key: str | None = None
    outcome: str
    recipient: str | None = None
    amount_wei: Int = 0
    provider: str | None = None
    provider_amount_wei: Int = 0
    requester: str | None = None
    requester_refund_wei: Int = 0
    fee_wei: Int = 0
    deferred: list[dict[str, Any]] = Field(default_factory=list)
    refused_deposit: bool = False
    tx_hash: str | None = None
    block_number: int | None = None
    timestamp: int | None = None

    def __repr__(self) -> str:
        job = f"{self.job_id} " if self.job_id else ""
        return (
            f"<Settlement {job}{self.outcome} {self.amount_wei} wei to {self.recipient}"
            f" fee={self.fee_wei} wei tx={self.tx_hash}>"
        )


class Link(WireModel):
    """An entry of a UnixFS directory (Kubo's `ls`): `type` 1 is a directory, 2 a file."""

    name: str
    hash: str
    size: int = 0
    type: int | None = None
    target: str | None = None

    def __repr__(self) -> str:
        return f"<Link {self.name} {self.hash} {self.size} bytes>"


# seed 000's flat training parameters, gathered into `payload` as /v1 shows them
_SEED000_PAYLOAD = ("model", "epochs", "imgsz", "export_format", "num_classes", "classes")


class Job(WireModel):
    """A job, from any dialect: `/v1` (camelCase) or seed 000's `/jobs/...` (snake_case,
    integer ids, TrainChain status words, flat training parameters), read into one shape:
    the canonical `/v1` job in snake_case. `id` is always `job_<n>` (`number` is n),
    `status` the canonical state, `reward` ETH as a Decimal.

    A detail read also has `events`; an unfunded job the `funding` call to sign; a job
    with an escrow key its `escrow`. Seed 000's dataset CIDs are `folder_cid` and
    `metadata_cid`, its status word `trainchain_status`."""

    id: str
    type: str
    status: str
    payload: dict[str, Any] = Field(default_factory=dict)
    result: dict[str, Any] | None = None
    result_type: str | None = None
    result_cid: str | None = None
    error: str | None = None
    progress: int | None = None
    progress_message: str | None = None
    priority: str | None = None
    workspace_id: int | None = None
    created_by: int | None = None
    requester_address: str | None = None
    reward: Eth = Decimal(0)
    attempt: int = 0
    retry_count: int = 0
    max_retries: int | None = None
    estimated_duration: int | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    started_at: dt.datetime | None = None
    completed_at: dt.datetime | None = None
    scheduled_at: dt.datetime | None = None
    deadline_at: dt.datetime | None = None
    folder_cid: str | None = None
    metadata_cid: str | None = None
    events: list[Event] = Field(default_factory=list)
    funding: ChainCall | None = None
    escrow: Escrow | None = None

    @classmethod
    def _normalize(cls, data: dict[str, Any]) -> dict[str, Any]:
        if "job_type" in data and "type" not in data:  # seed 000 (or seed 001)
            data["type"] = data.pop("job_type")
            if "dcm_status" in data:
                data["trainchain_status"] = data.get("status")
                data["status"] = data.pop("dcm_status")
            if "model_cid" in data:
                data.setdefault("result_cid", data.pop("model_cid"))
            if data.get("job_id") == data.get("id"):
                data.pop("job_id", None)
            elif "job_id" in data and "id" not in data:  # seed 001
                data["id"] = data.pop("job_id")
            payload = {k: data.pop(k) for k in _SEED000_PAYLOAD if k in data}
            if isinstance(payload.get("classes"), str):
                payload["classes"] = [c for c in payload["classes"].split(", ") if c]
            if payload:
                data.setdefault("payload", payload)
        ident = data.get("id")
        if isinstance(ident, int) or (isinstance(ident, str) and ident.isdigit()):
            data["id"] = f"job_{ident}"
        return data

    @property
    def number(self) -> int:
        """The job's number: 5 for `job_5` (what seed 000's routes take)."""
        return int(self.id.removeprefix("job_"))

    def __repr__(self) -> str:
        parts = [self.id, self.type, self.status]
        if self.reward:
            parts.append(f"reward={self.reward} ETH")
        if self.result_cid:
            parts.append(f"result={self.result_cid}")
        if self.error:
            parts.append(f"error={self.error[:60]!r}")
        return f"<Job {' '.join(parts)}>"


class MetricPoint(WireModel):
    """One bucket of a series: its start and its value."""

    timestamp: dt.datetime
    value: float

    def __repr__(self) -> str:
        return f"<MetricPoint {self.timestamp.isoformat()} {self.value:g}>"


class NetworkSeries(WireModel):
    """Bytes received and sent during each bucket."""

    rx: list[MetricPoint] = Field(default_factory=list)
    tx: list[MetricPoint] = Field(default_factory=list)


class GpuSeries(WireModel):
    """Mean GPU utilization (percent) and memory in use (bytes) per bucket."""

    utilization: list[MetricPoint] = Field(default_factory=list)
    memory: list[MetricPoint] = Field(default_factory=list)


class TrainingEpoch(WireModel):
    """One finished epoch's metrics (losses, mAP, accuracy) of one attempt."""

    epoch: int
    attempt: int | None = None
    timestamp: dt.datetime | None = None
    metrics: dict[str, float | None] = Field(default_factory=dict)

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v:g}" for k, v in sorted(self.metrics.items()) if v is not None)
        return f"<TrainingEpoch {self.epoch} {shown}>"


class JobMetrics(WireModel):
    """A job's resource series over a window (`cpu` in millicores, `memory` in bytes,
    `network`, `gpu`) and its per-epoch training metrics (`Client.metrics`)."""

    cpu: list[MetricPoint] = Field(default_factory=list)
    memory: list[MetricPoint] = Field(default_factory=list)
    network: NetworkSeries = Field(default_factory=NetworkSeries)
    gpu: GpuSeries = Field(default_factory=GpuSeries)
    training: list[TrainingEpoch] = Field(default_factory=list)
    period: str | None = None
    resolution: str | None = None
    start: dt.datetime | None = None
    end: dt.datetime | None = None

    def __repr__(self) -> str:
        return (
            f"<JobMetrics {self.period}/{self.resolution}: {len(self.cpu)} cpu, "
            f"{len(self.memory)} memory points, {len(self.training)} epochs>"
        )
