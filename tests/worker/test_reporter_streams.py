"""What the daemon's reporter sends for a container: log lines with their stream, and
resource samples, which a node without a samples route turns off without losing a line."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

from tests.fixtures.jobflow import leased_job
from tests.fixtures.live import served_in_thread
from worker.api import NodeAPI
from worker.daemon import _Reporter


def test_samples_to_a_node_without_the_route_stop_and_log_streams_arrive(app: FastAPI) -> None:
    with served_in_thread(app) as url:
        job = leased_job(url)

        async def report() -> NodeAPI:
            api = NodeAPI(url)
            api._token = job.provider["Authorization"].removeprefix("Bearer ")
            reporter = _Reporter(asyncio.get_running_loop(), api, job.job_id, job.attempt)
            reporter.log("to stdout", stream="stdout")
            reporter.report_metrics({"cpu_percent": 1.5, "memory_bytes": 1024})
            reporter.log("to stderr", stream="stderr")
            reporter.report_metrics({"cpu_percent": 2.5, "memory_bytes": 2048})
            await reporter.close()
            await api.aclose()
            return api

        api = asyncio.run(report())
        logs = job.http.get(f"/v1/jobs/{job.job_id}/logs", headers=job.requester).json()["data"]
        assert [(e["stream"], e["message"]) for e in logs] == [
            ("stdout", "to stdout"),
            ("stderr", "to stderr"),
        ]
        routes = {getattr(r, "path", "") for r in app.routes}
        if "/v1/jobs/{jobId}/metrics" not in routes and "/v1/jobs/{job_id}/metrics" not in routes:
            assert api.metrics_route is False
