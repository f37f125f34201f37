"""The provider daemon's Prometheus endpoint (`dcm provider run --metrics-port`)."""

from __future__ import annotations

import time

import httpx

from tests.fixtures import web
from tests.fixtures.ports import free_port
from worker.metrics import EXECUTOR_SECONDS, RUNNING_JOBS, serve_metrics


def test_provider_metrics_are_served() -> None:
    port = free_port()
    serve_metrics(port, host="127.0.0.1")
    RUNNING_JOBS.inc()
    EXECUTOR_SECONDS.labels("pdf", "ok").observe(3.0)
    try:
        for _ in range(50):
            try:
                text = web.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        assert "dcm_provider_running_jobs 1.0" in text
        assert 'dcm_provider_executor_seconds_count{job_type="pdf",outcome="ok"}' in text
    finally:
        RUNNING_JOBS.dec()
