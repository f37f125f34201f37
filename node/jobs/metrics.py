"""A job's resource and training metrics: stored as providers report them, read back as
series downsampled to a resolution (`GET /v1/jobs/{id}/metrics`; seed 003's
`/api/plugin-core/jobs/:id/metrics` reads the same `series`).

Writes (`record`, behind the provider's fenced `POST /v1/jobs/{id}/metrics`): one row per
sample (`node.models.metrics.JobMetric`). A sample's time is the provider's, clamped to
the job's life on the node's clock (not before it started, not in the future), so a batch
sent late after an outage keeps its times. A job keeps at most
`events.max_metric_samples_per_job` resource samples (past it the oldest go: the recent
ones are what a window shows) and `events.max_training_epochs_per_job` training entries
(later ones dropped); an epoch reported twice by the same attempt (a retried request)
replaces its entry. `prune_metrics` deletes samples past `events.metrics_retention_days`.

Reads (`series`), decisions where seed 003 is silent:
- `period` and `resolution` are `<n><unit>` with unit s, m, h or d (seed 003 lists 1h,
  6h, 24h, 7d and 1m, 5m, 1h; any such span works): a period of at most 30 days, a
  resolution of at least 10 s, no coarser than the period, and at most 10 080 buckets.
  Anything else is 400 `INVALID_QUERY`.
- The window ends now while the job is active; once it reached a final state it ends at
  its last sample, so a finished job's last hour is still there to read.
- Buckets are aligned on multiples of the resolution since the Unix epoch (UTC); a
  point's `timestamp` is its bucket's start. Only buckets holding samples appear.
- `cpu` (millicores), `memory` (bytes), `gpu.utilization` (percent) and `gpu.memory`
  (bytes) are the mean of the bucket's samples; `network.rx`/`tx` are the bytes moved
  during the bucket, from the cumulative counters the samples carry (a counter that goes
  back, as a new attempt's does, counts from zero).
- A sample stored twice (same attempt, same time: a provider retried a request whose
  answer it lost) counts once.
- `training` holds every epoch of the latest attempt that reported any (not limited to
  the window: a training curve is read whole), in epoch order.

The rows of one window are at most the per-job cap, so downsampling runs here rather
than in dialect-specific SQL.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from marketplace.errors import BadQuery
from marketplace.leases import ResourceSample, TrainingSample
from node.config import EventSettings
from node.db import utcnow
from node.jobs.events import FINAL
from node.jobs.schemas import (
    GpuSeries,
    JobMetrics,
    MetricPoint,
    NetworkSeries,
    TrainingEpoch,
)
from node.models.jobs import Job
from node.models.metrics import JobMetric

_SPAN = re.compile(r"^([1-9][0-9]{0,6})([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_PERIOD_SECONDS = 30 * 86400
MIN_RESOLUTION_SECONDS = 10
MAX_BUCKETS = 10_080  # 7 days at one minute
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Window:
    period: str
    resolution: str
    period_seconds: int
    resolution_seconds: int


def parse_span(text: str, name: str) -> int:
    """Seconds in a span such as `1h` (400 INVALID_QUERY naming `name` otherwise)."""
    match = _SPAN.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise BadQuery(
            f"`{name}` must be a number and a unit (s, m, h, d), e.g. 1h or 5m",
            details={name: text},
        )
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def window(period: str, resolution: str) -> Window:
    """Check a period and a resolution (see the module's docstring for the bounds)."""
    period_s = parse_span(period, "period")
    resolution_s = parse_span(resolution, "resolution")
    details = {"period": period, "resolution": resolution}
    if period_s > MAX_PERIOD_SECONDS:
        raise BadQuery("`period` is at most 30d", details=details)
    if resolution_s < MIN_RESOLUTION_SECONDS:
        raise BadQuery(f"`resolution` is at least {MIN_RESOLUTION_SECONDS}s", details=details)
    if resolution_s > period_s:
        raise BadQuery("`resolution` must not be coarser than `period`", details=details)
    if period_s // resolution_s > MAX_BUCKETS:
        raise BadQuery(
            f"`period`/`resolution` is at most {MAX_BUCKETS} buckets; pick a coarser resolution",
            details=details,
        )
    return Window(period.strip(), resolution.strip(), period_s, resolution_s)


# --------------------------------------------------------------------------- writes


@dataclass(frozen=True)
class Recorded:
    samples: int
    epochs: int
    dropped: int


def _clamp(at: dt.datetime | None, floor: dt.datetime, now: dt.datetime) -> dt.datetime:
    if at is None:
        return now
    if at.tzinfo is None:
        at = at.replace(tzinfo=dt.UTC)
    return min(max(at, floor), now)


_RESOURCE_FIELDS = (
    "cpu_millicores",
    "memory_bytes",
    "network_rx_bytes",
    "network_tx_bytes",
    "gpu_utilization",
    "gpu_memory_bytes",
)


def record(
    session: Session,
    job: Job,
    attempt: int,
    samples: Sequence[ResourceSample],
    training: Sequence[TrainingSample],
    limits: EventSettings,
) -> Recorded:
    """Store a provider's samples for `job` (whose lease at `attempt` the caller checked)."""
    now = utcnow()
    floor = min(job.started_at or job.created_at, now)
    stored = 0
    for sample in samples:
        values = {f: getattr(sample, f) for f in _RESOURCE_FIELDS}
        if all(v is None for v in values.values()):
            continue
        session.add(
            JobMetric(job_id=job.id, attempt=attempt, at=_clamp(sample.at, floor, now), **values)
        )
        stored += 1
    dropped = 0
    epochs = 0
    if training:
        existing = {
            row.epoch: row
            for row in session.scalars(
                select(JobMetric).where(
                    JobMetric.job_id == job.id,
                    JobMetric.attempt == attempt,
                    JobMetric.epoch.in_([t.epoch for t in training]),
                )
            )
        }
        room = limits.max_training_epochs_per_job - _count(session, job.id, training=True)
        for entry in training:
            row = existing.get(entry.epoch)
            if row is not None:
                row.metrics, row.at = dict(entry.metrics), _clamp(entry.at, floor, now)
            elif room <= 0:
                dropped += 1
                continue
            else:
                row = JobMetric(
                    job_id=job.id,
                    attempt=attempt,
                    at=_clamp(entry.at, floor, now),
                    epoch=entry.epoch,
                    metrics=dict(entry.metrics),
                )
                session.add(row)
                existing[entry.epoch] = row
                room -= 1
            epochs += 1
    session.flush()
    if stored:
        _trim(session, job.id, limits.max_metric_samples_per_job)
    return Recorded(stored, epochs, dropped)


def _count(session: Session, job_id: int, *, training: bool) -> int:
    kind = JobMetric.epoch.is_not(None) if training else JobMetric.epoch.is_(None)
    return int(session.scalar(select(func.count()).where(JobMetric.job_id == job_id, kind)) or 0)


def _trim(session: Session, job_id: int, keep: int) -> None:
    """Delete the job's oldest resource samples past `keep`."""
    excess = _count(session, job_id, training=False) - keep
    if excess <= 0:
        return
    oldest = (
        select(JobMetric.id)
        .where(JobMetric.job_id == job_id, JobMetric.epoch.is_(None))
        .order_by(JobMetric.at, JobMetric.id)
        .limit(excess)
    )
    # materialised first: MySQL-style engines refuse a LIMIT subquery in IN, and the
    # list is at most one batch
    ids = list(session.scalars(oldest))
    session.execute(
        delete(JobMetric).where(JobMetric.id.in_(ids)).execution_options(synchronize_session=False)
    )


def prune_metrics(session: Session, limits: EventSettings) -> int:
    """Delete samples older than the retention period; return how many."""
    if limits.metrics_retention_days <= 0:
        return 0
    cutoff = utcnow() - dt.timedelta(days=limits.metrics_retention_days)
    result = session.execute(delete(JobMetric).where(JobMetric.at < cutoff))
    return int(result.rowcount or 0)


# --------------------------------------------------------------------------- reads


def _stamp(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _bucket(at: dt.datetime, resolution_s: int) -> dt.datetime:
    seconds = int((at - _EPOCH).total_seconds())
    return _EPOCH + dt.timedelta(seconds=seconds - seconds % resolution_s)


class _Mean:
    def __init__(self) -> None:
        self.sums: dict[dt.datetime, float] = {}
        self.counts: dict[dt.datetime, int] = {}

    def add(self, bucket: dt.datetime, value: float | None) -> None:
        if value is None:
            return
        self.sums[bucket] = self.sums.get(bucket, 0.0) + value
        self.counts[bucket] = self.counts.get(bucket, 0) + 1

    def points(self, digits: int) -> list[MetricPoint]:
        out = []
        for bucket in sorted(self.sums):
            mean = self.sums[bucket] / self.counts[bucket]
            value = round(mean) if digits == 0 else round(mean, digits)
            out.append(MetricPoint(timestamp=_stamp(bucket), value=value))
        return out


class _Delta:
    """Bytes moved per bucket from cumulative counters (per attempt)."""

    def __init__(self, previous: tuple[int, int] | None) -> None:
        self.last = previous  # (attempt, counter)
        self.sums: dict[dt.datetime, int] = {}

    def add(self, bucket: dt.datetime, attempt: int, counter: int | None) -> None:
        if counter is None:
            return
        if self.last is not None and self.last[0] == attempt and counter >= self.last[1]:
            moved = counter - self.last[1]
        else:
            moved = counter  # the attempt's first sample, or its counter restarted
        self.last = (attempt, counter)
        self.sums[bucket] = self.sums.get(bucket, 0) + moved

    def points(self) -> list[MetricPoint]:
        return [MetricPoint(timestamp=_stamp(b), value=self.sums[b]) for b in sorted(self.sums)]


def _before(
    session: Session, job_id: int, column: Any, start: dt.datetime
) -> tuple[int, int] | None:
    """(attempt, counter) of the last sample at or before `start` that has `column`."""
    row = session.execute(
        select(JobMetric.attempt, column)
        .where(
            JobMetric.job_id == job_id,
            JobMetric.epoch.is_(None),
            column.is_not(None),
            JobMetric.at <= start,
        )
        .order_by(JobMetric.at.desc(), JobMetric.id.desc())
        .limit(1)
    ).first()
    return (int(row[0]), int(row[1])) if row is not None else None


def series(
    session: Session,
    job: Job,
    period: str = "1h",
    resolution: str = "1m",
    *,
    now: dt.datetime | None = None,
) -> JobMetrics:
    """The job's metrics over the window (see the module's docstring); the caller checked
    that its principal may read `job`. `.model_dump(mode="json")` is seed 003's `data`.

    Raises:
        BadQuery: a malformed or out-of-bounds period or resolution (400 INVALID_QUERY).
    """
    win = window(period, resolution)
    end = now or utcnow()
    if job.status in FINAL:
        last = session.scalar(
            select(func.max(JobMetric.at)).where(
                JobMetric.job_id == job.id, JobMetric.epoch.is_(None)
            )
        )
        if last is not None and last < end:
            end = last
    start = end - dt.timedelta(seconds=win.period_seconds)
    rows = session.execute(
        select(
            JobMetric.attempt,
            JobMetric.at,
            JobMetric.cpu_millicores,
            JobMetric.memory_bytes,
            JobMetric.network_rx_bytes,
            JobMetric.network_tx_bytes,
            JobMetric.gpu_utilization,
            JobMetric.gpu_memory_bytes,
        )
        .where(
            JobMetric.job_id == job.id,
            JobMetric.epoch.is_(None),
            JobMetric.at > start,
            JobMetric.at <= end,
        )
        .order_by(JobMetric.at, JobMetric.id)
    ).all()
    cpu, memory, gpu_util, gpu_mem = _Mean(), _Mean(), _Mean(), _Mean()
    rx = _Delta(_before(session, job.id, JobMetric.network_rx_bytes, start))
    tx = _Delta(_before(session, job.id, JobMetric.network_tx_bytes, start))
    previous = None
    for attempt, at, c, m, r, t, gu, gm in rows:
        if (attempt, at) == previous:
            continue  # the same sample again (a request retried after a lost answer)
        previous = (attempt, at)
        bucket = _bucket(at, win.resolution_seconds)
        cpu.add(bucket, c)
        memory.add(bucket, m)
        gpu_util.add(bucket, gu)
        gpu_mem.add(bucket, gm)
        rx.add(bucket, attempt, r)
        tx.add(bucket, attempt, t)
    return JobMetrics(
        cpu=cpu.points(0),
        memory=memory.points(0),
        network=NetworkSeries(rx=rx.points(), tx=tx.points()),
        gpu=GpuSeries(utilization=gpu_util.points(1), memory=gpu_mem.points(0)),
        training=_training(session, job.id),
        period=win.period,
        resolution=win.resolution,
        start=_stamp(start),
        end=_stamp(end),
    )


def _training(session: Session, job_id: int) -> list[TrainingEpoch]:
    latest = session.scalar(
        select(func.max(JobMetric.attempt)).where(
            JobMetric.job_id == job_id, JobMetric.epoch.is_not(None)
        )
    )
    if latest is None:
        return []
    rows = session.scalars(
        select(JobMetric)
        .where(
            JobMetric.job_id == job_id,
            JobMetric.attempt == latest,
            JobMetric.epoch.is_not(None),
        )
        .order_by(JobMetric.epoch)
    )
    return [
        TrainingEpoch(
            epoch=int(r.epoch or 0),
            attempt=r.attempt,
            timestamp=_stamp(r.at),
            metrics=r.metrics or {},
        )
        for r in rows
    ]
