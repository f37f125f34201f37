"""Prometheus metrics of the provider daemon (`dcm provider run --metrics-port N`): jobs
running, executor durations by job type and outcome, claims, and (where `nvidia-smi`
answers) GPU utilization and memory, read at scrape time."""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily

log = logging.getLogger("dcm.provider.metrics")

RUNNING_JOBS = Gauge("dcm_provider_running_jobs", "Jobs this provider runs now")
EXECUTOR_SECONDS = Histogram(
    "dcm_provider_executor_seconds",
    "Executor run time by job type and outcome (ok, failed, cancelled)",
    ["job_type", "outcome"],
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200),
)
CLAIMS = Counter("dcm_provider_claims", "Jobs this provider was handed")


class GpuCollector:
    """GPU utilization and memory per device from `nvidia-smi` (nothing without it)."""

    QUERY = "index,utilization.gpu,memory.used,memory.total"

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        binary = shutil.which("nvidia-smi")
        if binary is None:
            return
        try:
            out = subprocess.run(
                [binary, f"--query-gpu={self.QUERY}", "--format=csv,noheader,nounits"],
                capture_output=True,
                text=True,
                timeout=3,
                check=True,
            ).stdout
        except (OSError, subprocess.SubprocessError) as exc:
            log.warning("nvidia-smi failed: %s", str(exc)[:200])
            return
        util = GaugeMetricFamily("dcm_provider_gpu_utilization_percent", "GPU use", labels=["gpu"])
        used = GaugeMetricFamily(
            "dcm_provider_gpu_memory_used_bytes", "GPU memory in use", labels=["gpu"]
        )
        total = GaugeMetricFamily(
            "dcm_provider_gpu_memory_total_bytes", "GPU memory", labels=["gpu"]
        )
        for line in out.strip().splitlines():
            parts = [p.strip() for p in line.split(",")]
            if len(parts) != 4:
                continue
            try:
                index, u, m_used, m_total = (
                    parts[0],
                    float(parts[1]),
                    float(parts[2]),
                    float(parts[3]),
                )
            except ValueError:
                continue
            util.add_metric([index], u)
            used.add_metric([index], m_used * 1024 * 1024)
            total.add_metric([index], m_total * 1024 * 1024)
        yield util
        yield used
        yield total


_gpu_registered = False


def serve_metrics(port: int, host: str = "0.0.0.0") -> None:
    """Serve /metrics on `port` from a background thread."""
    global _gpu_registered
    if not _gpu_registered:
        REGISTRY.register(GpuCollector())
        _gpu_registered = True
    start_http_server(port, addr=host)
