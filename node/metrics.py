"""Prometheus metrics of the node (`GET /metrics`, text format, `prometheus-client`).

Two kinds:
- counters and histograms updated where things happen (HTTP requests by route template
  and status, claim waits, lease expiries, chain transactions sent, webhook deliveries):
  process-wide, on the client's default registry (the per-request ones are plain
  counters on the event loop, made into families at scrape time: under a microsecond);
- gauges read from the database at scrape time (`RuntimeCollector`: jobs by status and
  type, outbox depth and age of its oldest open row, chain watcher lag in blocks, pins,
  whether this replica leads), so that a request never pays for them. With several
  replicas every one reports the same database-wide gauges: aggregate them with `max`,
  and the counters with `sum`.

`/metrics` is not public in production: it answers 404 unless `metrics_public` is true
or the scraper presents `metrics_token` as a bearer token (`node.app`).
"""

from __future__ import annotations

import logging
import time
from bisect import bisect_left
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.utils import floatToGoString
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from node.models.content import Pin
from node.models.escrow import ChainCursor, ChainOutbox
from node.models.jobs import Job

log = logging.getLogger("dcm.metrics")

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

CLAIM_WAIT = Histogram(
    "dcm_claim_wait_seconds",
    "How long a provider's claim request waited, by outcome (claimed, empty)",
    ["outcome"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
)
LEASE_EXPIRIES = Counter("dcm_lease_expiries", "Leases taken back by the reaper")
CHAIN_TRANSACTIONS = Counter(
    "dcm_chain_transactions",
    "Escrow transactions the node sent (settlements, bindings...), by action and outcome",
    ["action", "status"],
)
WEBHOOK_DELIVERIES = Counter(
    "dcm_webhook_deliveries", "Webhook delivery tries, by outcome", ["outcome"]
)

# HTTP requests: plain counters updated on the event loop (the ASGI middleware runs
# there only, so no lock is needed), turned into Prometheus families at scrape time.
# About 0.5 us per request, against several for a labelled Counter plus Histogram.
_requests: dict[tuple[str, str, int], list[Any]] = {}  # key -> [count, sum, buckets]


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    key = (method, route, status)
    entry = _requests.get(key)
    if entry is None:
        if len(_requests) > 5000:  # bounded: routes are templates, but be safe
            return
        entry = _requests[key] = [0, 0.0, [0] * (len(LATENCY_BUCKETS) + 1)]
    entry[0] += 1
    entry[1] += seconds
    entry[2][bisect_left(LATENCY_BUCKETS, seconds)] += 1


class _RequestCollector:
    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        counts = CounterMetricFamily(
            "dcm_http_requests", "HTTP requests answered", labels=["method", "route", "status"]
        )
        latency = HistogramMetricFamily(
            "dcm_http_request_duration_seconds",
            "HTTP request latency by route template (long-polls and streams included)",
            labels=["method", "route"],
        )
        merged: dict[tuple[str, str], list[Any]] = {}
        for (method, route, status), (count, total, buckets) in list(_requests.items()):
            counts.add_metric([method, route, str(status)], count)
            into = merged.setdefault((method, route), [0.0, [0] * len(buckets)])
            into[0] += total
            into[1] = [x + y for x, y in zip(into[1], buckets, strict=True)]
        for (method, route), (total, buckets) in merged.items():
            cumulative, running = [], 0
            for bound, n in zip((*LATENCY_BUCKETS, float("inf")), buckets, strict=True):
                running += n
                cumulative.append((floatToGoString(bound), running))
            latency.add_metric([method, route], cumulative, total)
        yield counts
        yield latency


REGISTRY.register(_RequestCollector())


def route_of(scope: dict[str, Any]) -> str:
    """The route template (`/v1/jobs/{jobId}`), never the raw path: bounded labels."""
    route = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


class RuntimeCollector:
    """Gauges read at scrape time from the node's database (and chain head)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        chain_head: Callable[[], int | None],
        is_leader: Callable[[], bool],
        content_stat: Callable[[], Any] | None = None,
    ) -> None:
        self.sessions = sessions
        self.chain_head = chain_head
        self.is_leader = is_leader
        self.content_stat = content_stat

    def describe(self) -> list[Any]:
        return []  # collected lazily (no describe-time database access)

    def collect(self) -> Iterator[Any]:
        leader = GaugeMetricFamily(
            "dcm_replica_leader", "1 when this replica runs the singleton loop services"
        )
        leader.add_metric([], 1.0 if self.is_leader() else 0.0)
        yield leader
        try:
            yield from self._from_database()
        except Exception as exc:  # a scrape reports what it can
            log.warning("metrics: database gauges unavailable: %s", str(exc)[:200])
        if self.content_stat is not None:
            try:
                stat = self.content_stat()
            except Exception as exc:
                log.warning("metrics: content store unavailable: %s", str(exc)[:200])
            else:
                size = GaugeMetricFamily("dcm_content_bytes", "Bytes the content store holds")
                size.add_metric([], float(stat.repo_size))
                yield size

    def _from_database(self) -> Iterator[Any]:
        jobs = GaugeMetricFamily("dcm_jobs", "Jobs by status and type", labels=["status", "type"])
        outbox = GaugeMetricFamily("dcm_outbox_open", "Escrow outbox rows not sent yet")
        age = GaugeMetricFamily(
            "dcm_outbox_oldest_age_seconds", "Age of the oldest open outbox row (0: none)"
        )
        lag = GaugeMetricFamily(
            "dcm_chain_watcher_lag_blocks", "Chain head minus the watcher's cursor"
        )
        pins = GaugeMetricFamily("dcm_content_pins", "Pins the node's content store holds")
        with self.sessions() as session:
            rows = session.execute(
                select(Job.status, Job.job_type, func.count()).group_by(Job.status, Job.job_type)
            ).all()
            for status, job_type, count in rows:
                jobs.add_metric([status, job_type], float(count))
            open_rows = session.execute(
                select(func.count(), func.min(ChainOutbox.created_at)).where(
                    ChainOutbox.status.in_(("pending", "signed"))
                )
            ).one()
            outbox.add_metric([], float(open_rows[0]))
            oldest = open_rows[1]
            age.add_metric([], max(0.0, time.time() - oldest.timestamp()) if oldest else 0.0)
            cursor = session.execute(select(func.max(ChainCursor.block_number))).scalar()
            pins.add_metric([], float(session.execute(select(func.count(Pin.cid))).scalar() or 0))
        yield jobs
        yield outbox
        yield age
        yield pins
        head = self.chain_head()
        if head is not None and cursor is not None:
            lag.add_metric([], float(max(0, head - cursor)))
            yield lag


def render(registry: CollectorRegistry) -> tuple[bytes, str]:
    """The process-wide metrics followed by this app's gauges."""
    return generate_latest(REGISTRY) + generate_latest(registry), CONTENT_TYPE_LATEST
