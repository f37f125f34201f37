"""The provider daemon's `--pool` (`DaemonConfig.networks`) over real HTTP: it registers
the networks it serves and runs a container job of its network end to end; the job's
plugin-core view then shows the exit code and the gateway URL of its output."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, ClassVar

import click
import pytest
from eth_account import Account
from fastapi import FastAPI
from fastapi.testclient import TestClient

from dcm.cli import _networks
from tests.fixtures import web
from tests.fixtures.live import served_in_thread
from tests.node.plugin_core.conftest import BASE, CREATE, Team
from worker.daemon import DaemonConfig, ProviderDaemon
from worker.executors.base import ExecutionResult, JobSpec, Reporter


class FakeContainer:
    """Stands in for the Docker executor (another module): writes what it was asked."""

    job_types: ClassVar[frozenset[str]] = frozenset({"container"})

    def run(self, job: JobSpec, workdir: Path, report: Reporter) -> ExecutionResult:
        out = workdir / "out"
        out.mkdir()
        (out / "result.txt").write_text(job.spec["image"])
        result = {"exit_code": 0, "oom": False, "timed_out": False, "endpoints": []}
        return ExecutionResult(out, result, "container", ("result.txt",))


def _run(url: str, workdir: Path, keys: list[str], networks: list[str]) -> list[dict[str, Any]]:
    config = DaemonConfig(
        node_url=url,
        workdir=workdir,
        job_types=["container"],
        run_once=True,
        claim_wait_seconds=2,
        api_keys=keys,
        networks=networks,
    )

    async def main() -> list[dict[str, Any]]:
        async with ProviderDaemon(config, Account.create(), {"container": FakeContainer()}) as d:
            await d.run()
            return d.completed

    return asyncio.run(main())


@pytest.fixture
def client(app: FastAPI) -> TestClient:
    """The team is made through a client that does not start the app: the test serves it
    (`served_in_thread`), and one node's runtime runs once on its data dir."""
    return TestClient(app)


def test_daemon_of_the_akash_network_runs_an_akash_job(
    app: FastAPI, client: TestClient, team: Team, tmp_path: Path
) -> None:
    with served_in_thread(app) as url:
        job = web.post(f"{url}{BASE}/jobs", json=CREATE, headers=team.headers, timeout=30)
        assert job.status_code == 201, job.text
        job_id = job.json()["data"]["id"]
        done = _run(url, tmp_path / "provider", [team.provider_key], ["akash"])
        assert [d["job_id"] for d in done] == [job_id]
        providers = web.get(f"{url}/v1/providers", headers=team.owner, timeout=30).json()["data"]
        assert providers[0]["networks"] == ["akash"]
        view = web.get(f"{url}{BASE}/jobs/{job_id}", headers=team.headers, timeout=30).json()[
            "data"
        ]
    assert view["status"] == "completed" and view["results"]["exitCode"] == 0
    assert view["results"]["outputUrl"].endswith(f"/ipfs/{done[0]['result_cid']}")


def test_pool_option_names_are_checked() -> None:
    assert _networks(("Akash", "default", "akash")) == ["akash", "default"]
    with pytest.raises(click.BadParameter):
        _networks(("not a network",))
