"""What the daemon's reporter sends for a container: log lines with their stream, and
`docker stats` samples, of which the node keeps the fields it takes."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

from tests.fixtures.jobflow import leased_job
from tests.fixtures.live import served_in_thread
from worker.api import NodeAPI
from worker.daemon import _Reporter


def test_log_streams_and_container_samples_reach_the_node(app: FastAPI) -> None:
    with served_in_thread(app) as url:
        job = leased_job(url)

        async def report() -> None:
            api = NodeAPI(url)
            api._token = job.provider["Authorization"].removeprefix("Bearer ")
            reporter = _Reporter(asyncio.get_running_loop(), api, job.job_id, job.attempt)
            reporter.log("to stdout", stream="stdout")
            # a `docker stats` sample carries fields the node does not keep (pids, percent)
            sample = {"cpu_percent": 150.0, "cpu_millicores": 1500, "pids": 3}
            reporter.report_metrics({**sample, "memory_bytes": 1024})
            reporter.log("to stderr", stream="stderr")
            reporter.report_metrics({**sample, "memory_bytes": 3072})
            await reporter.close()
            await api.aclose()

        asyncio.run(report())
        logs = job.http.get(f"/v1/jobs/{job.job_id}/logs", headers=job.requester).json()["data"]
        assert [(e["stream"], e["message"]) for e in logs] == [
            ("stdout", "to stdout"),
            ("stderr", "to stderr"),
        ]
        got = job.http.get(
            f"/v1/jobs/{job.job_id}/metrics?period=1h&resolution=1h", headers=job.requester
        ).json()["data"]
        assert [p["value"] for p in got["memory"]] == [2048]  # the mean of the two samples
        assert [p["value"] for p in got["cpu"]] == [1500]
