"""The provider daemon reports metrics end to end over real HTTP: resource samples of the
process running the job (its sampler) and the executor's training epochs reach the node,
and the job's owner reads them from `GET /v1/jobs/{id}/metrics`; an executor that
reports its own samples (a container's) turns the sampler off."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any, ClassVar

import pytest
from eth_account import Account
from fastapi import FastAPI

from tests.fixtures import web
from tests.fixtures.live import served_in_thread
from tests.node.providers.test_pool_daemon import _wallet
from worker.daemon import DaemonConfig, ProviderDaemon
from worker.executors.base import ExecutionResult, JobSpec, Reporter


def _result(workdir: Path) -> ExecutionResult:
    out = workdir / "out"
    out.mkdir()
    (out / "done.txt").write_text("ok")
    return ExecutionResult(out, {}, "test", ("done.txt",))


class EpochsExecutor:
    """Spins the CPU for a moment per "epoch" and reports each epoch's loss."""

    job_types: ClassVar[frozenset[str]] = frozenset({"epochs"})

    def run(self, job: JobSpec, workdir: Path, report: Reporter) -> ExecutionResult:
        for epoch in (1, 2, 3):
            sum(range(300_000))
            report.report_training(epoch, {"loss": 1.0 / epoch, "accuracy": epoch / 4})
        return _result(workdir)


class OwnSamplesExecutor:
    """Measures its work itself (as a container executor reads `docker stats`)."""

    job_types: ClassVar[frozenset[str]] = frozenset({"epochs"})
    reports_own_metrics = True

    def run(self, job: JobSpec, workdir: Path, report: Reporter) -> ExecutionResult:
        now = dt.datetime.now(dt.UTC)
        for cpu, rx in ((200, 1000), (300, 1500)):
            # a key the node does not know (block I/O) is left out, not the sample
            report.report_metrics(
                {"at": now, "cpu_millicores": cpu, "network_rx_bytes": rx, "block_io": 9}
            )
            now += dt.timedelta(milliseconds=1)
        return _result(workdir)


def _daemon_run(app: FastAPI, tmp_path: Path, executor: Any) -> dict[str, Any]:
    """Run one job of type `epochs` through the daemon; the job's metrics, as its owner
    reads them."""
    with served_in_thread(app) as url:
        _requester, headers = _wallet(url)
        created = web.post(
            f"{url}/v1/jobs", json={"type": "epochs", "payload": {}}, headers=headers, timeout=30
        ).json()["data"]
        key = web.post(
            f"{url}/workspaces/{created['workspaceId']}/api-keys",
            json={"name": "box", "role": "provider"},
            headers=headers,
            timeout=30,
        ).json()["key"]
        config = DaemonConfig(
            node_url=url,
            workdir=tmp_path / "provider",
            job_types=["epochs"],
            run_once=True,
            claim_wait_seconds=2,
            api_keys=[key],
            metrics_interval_seconds=0.05,
        )

        async def main() -> list[dict[str, Any]]:
            async with ProviderDaemon(config, Account.create(), {"epochs": executor}) as d:
                await d.run()
                return d.completed

        assert [d["job_id"] for d in asyncio.run(main())] == [created["id"]]
        resp = web.get(
            f"{url}/v1/jobs/{created['id']}/metrics",
            params={"period": "1h", "resolution": "1m"},
            headers=headers,
            timeout=30,
        )
    assert resp.status_code == 200, resp.text
    return resp.json()["data"]


def test_the_daemons_samples_and_epochs_reach_the_jobs_metrics(
    app: FastAPI, tmp_path: Path
) -> None:
    data = _daemon_run(app, tmp_path, EpochsExecutor())
    # at least the sampler's last sample: this process's memory, and its CPU use
    assert data["memory"] and all(p["value"] > 10 * 1024 * 1024 for p in data["memory"])
    assert data["cpu"] and all(p["value"] >= 0 for p in data["cpu"])
    assert [e["epoch"] for e in data["training"]] == [1, 2, 3]
    losses = [e["metrics"]["loss"] for e in data["training"]]
    assert losses == pytest.approx([1.0, 0.5, 1 / 3])
    assert [e["metrics"]["accuracy"] for e in data["training"]] == [0.25, 0.5, 0.75]


def test_an_executor_with_its_own_samples_is_not_sampled(app: FastAPI, tmp_path: Path) -> None:
    data = _daemon_run(app, tmp_path, OwnSamplesExecutor())
    # only its two samples (the sampler would have added this process's memory)
    assert [p["value"] for p in data["cpu"]] in ([250], [200, 300])  # one bucket, or two
    assert sum(p["value"] for p in data["network"]["rx"]) == 1500
    assert data["memory"] == [] and data["training"] == []
