"""Container jobs end to end through the provider daemon: a node served over real HTTP, the
daemon with the container executor, a real Docker engine. What the requester sees: status,
logs with their stream, the exit code, outputs served by the node's gateway."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from fastapi import FastAPI

from marketplace.sdk.http import siwe_payload
from tests.fixtures.docker import IMAGE
from tests.fixtures.live import served_in_thread
from tests.worker.executors.container.conftest import containers_of
from worker.daemon import DaemonConfig, ProviderDaemon
from worker.executors.container import ContainerExecutor, ContainerSettings
from worker.executors.container.engine import LABEL_PROVIDER


class Pool:
    """A requester's personal workspace on a served node, with a provider key for it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=30)
        account = Account.create()
        nonce = self.http.get("/auth/nonce").json()
        tokens = self.http.post("/auth/siwe", json=siwe_payload(nonce, account, "t")).json()
        self.headers = {"Authorization": f"Bearer {tokens['access_token']}"}
        self.workspace: int | None = None
        self.key: str | None = None

    def submit(self, **spec: Any) -> str:
        body = {"type": "container", "payload": {"image": IMAGE, **spec}}
        job = self.http.post("/v1/jobs", json=body, headers=self.headers).json()["data"]
        if self.key is None:
            self.workspace = job["workspaceId"]
            self.key = self.http.post(
                f"/workspaces/{self.workspace}/api-keys",
                json={"name": "docker box", "role": "provider"},
                headers=self.headers,
            ).json()["key"]
        return job["id"]

    def job(self, job_id: str) -> dict[str, Any]:
        return self.http.get(f"/v1/jobs/{job_id}", headers=self.headers).json()["data"]

    def logs(self, job_id: str) -> list[dict[str, Any]]:
        return self.http.get(f"/v1/jobs/{job_id}/logs", headers=self.headers).json()["data"]


@pytest.fixture
def pool(app: FastAPI) -> Iterator[Pool]:
    with served_in_thread(app) as url:
        yield Pool(url)


class Provider:
    """The daemon in a thread of its own (its event loop), stopping after one job."""

    def __init__(self, pool: Pool, workdir: Path, account: Any = None) -> None:
        self.account = account or Account.create()
        self.config = DaemonConfig(
            node_url=pool.url,
            workdir=workdir,
            job_types=["container"],
            run_once=True,
            claim_wait_seconds=2,
            api_keys=[pool.key or ""],
        )
        self.executor = ContainerExecutor(ContainerSettings(stop_grace_seconds=1))
        self.completed: list[dict[str, Any]] = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        async def main() -> None:
            async with ProviderDaemon(
                self.config, self.account, {"container": self.executor}
            ) as daemon:
                await daemon.run()
                self.completed = daemon.completed

        try:
            asyncio.run(main())
        except BaseException as exc:  # noqa: BLE001 - reported by join()
            self.error = exc

    def start(self) -> Provider:
        self.thread.start()
        return self

    def join(self, timeout: float = 120) -> None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the daemon did not finish its job"
        if self.error is not None:
            raise self.error


def test_a_container_job_completes_with_logs_exit_code_and_served_outputs(
    pool: Pool, tmp_path: Path, docker_client: Any, busybox_image: str
) -> None:
    job_id = pool.submit(
        command=["sh", "-c", "echo hello; echo warn >&2; echo 42 > /outputs/result.txt"]
    )
    provider = Provider(pool, tmp_path / "provider").start()
    provider.join()

    job = pool.job(job_id)
    assert job["status"] == "completed", job
    assert job["result"]["exit_code"] == 0 and job["result"]["oom"] is False
    cid = job["result"]["result_cid"]
    assert pool.http.get(f"/ipfs/{cid}/result.txt").text == "42\n"
    lines = {(e["stream"], e["message"]) for e in pool.logs(job_id)}
    assert ("stdout", "hello") in lines and ("stderr", "warn") in lines
    assert containers_of(docker_client, provider.account.address) == []
    providers = pool.http.get("/v1/providers", headers=pool.headers).json()["data"]
    me = next(p for p in providers if p["address"] == provider.account.address)
    assert me["job_types"] == ["container"]
    engine = me["capabilities"]["docker"]
    assert engine["version"] == docker_client.version()["Version"]
    assert {"runtimes", "gpu_support", "disk_free_bytes", "port_publishing"} <= set(engine)


def test_a_container_that_exits_3_fails_with_exit_code_3_and_its_outputs(
    pool: Pool, tmp_path: Path, busybox_image: str
) -> None:
    job_id = pool.submit(command=["sh", "-c", "echo partial > /outputs/part.txt; exit 3"])
    Provider(pool, tmp_path / "provider").start().join()

    job = pool.job(job_id)
    assert job["status"] == "failed", job
    assert "exited with code 3" in (job.get("error") or "")
    assert job["result"]["exit_code"] == 3
    assert pool.http.get(f"/ipfs/{job['result']['result_cid']}/part.txt").text == "partial\n"


@pytest.mark.parametrize(
    ("spec", "error", "flag"),
    [
        ({"command": ["sleep", "60"], "duration_seconds": 1}, "timed out", "timed_out"),
        (
            {
                "command": ["sh", "-c", "x=$(head -c 200000000 /dev/zero | tr '\\0' a)"],
                "memory_bytes": 16 * 2**20,
            },
            "out of memory",
            "oom",
        ),
    ],
    ids=["duration", "memory"],
)
def test_a_container_past_its_limits_fails_and_says_which(
    pool: Pool, tmp_path: Path, busybox_image: str, spec: dict, error: str, flag: str
) -> None:
    job_id = pool.submit(**spec)
    Provider(pool, tmp_path / "provider").start().join()

    job = pool.job(job_id)
    assert job["status"] == "failed", job
    assert error in (job.get("error") or "")
    assert job["result"][flag] is True
    assert job["result"]["exit_code"] == 137 or flag == "timed_out"


def test_cancel_of_a_running_container_job_leaves_no_container(
    pool: Pool, tmp_path: Path, docker_client: Any, busybox_image: str
) -> None:
    job_id = pool.submit(command=["sh", "-c", "echo ready; sleep 600"])
    provider = Provider(pool, tmp_path / "provider").start()
    deadline = time.monotonic() + 60
    while not any(e["message"] == "ready" for e in pool.logs(job_id)):
        assert time.monotonic() < deadline, pool.job(job_id)
        time.sleep(0.2)
    assert containers_of(docker_client, provider.account.address) != []

    cancelled = pool.http.post(f"/v1/jobs/{job_id}/cancel", headers=pool.headers)
    assert cancelled.status_code == 200, cancelled.text
    provider.join()

    assert pool.job(job_id)["status"] == "cancelled"
    assert containers_of(docker_client, provider.account.address) == []


def test_an_image_pinned_on_the_node_runs_by_its_cid(
    pool: Pool, tmp_path: Path, docker_client: Any, busybox_image: str
) -> None:
    docker_client.images.get(IMAGE).tag("localhost/dcm-test-pinned", tag="v1")
    archive = tmp_path / "image.tar"
    with open(archive, "wb") as fh:
        for chunk in docker_client.images.get("localhost/dcm-test-pinned:v1").save(named=True):
            fh.write(chunk)
    docker_client.images.remove("localhost/dcm-test-pinned:v1")
    with open(archive, "rb") as fh:
        added = pool.http.post(
            "/api/v0/add",
            params={"pin": "true"},
            files={"file": ("image.tar", fh)},
            headers=pool.headers,
        )
    assert added.status_code == 200, added.text
    cid = added.json()["Hash"]
    with contextlib.suppress(Exception):  # by name: the test image itself shares the id
        docker_client.images.remove(f"localhost/dcm-ipfs:{cid}")

    job_id = pool.submit(image=f"ipfs://{cid}", command=["sh", "-c", "echo ran > /outputs/r"])
    Provider(pool, tmp_path / "provider").start().join()

    job = pool.job(job_id)
    assert job["status"] == "completed", job
    assert pool.http.get(f"/ipfs/{job['result']['result_cid']}/r").text == "ran\n"


def test_a_restarted_provider_removes_the_containers_it_left(
    pool: Pool, tmp_path: Path, docker_client: Any, busybox_image: str
) -> None:
    account = Account.create()
    left = docker_client.containers.run(
        IMAGE,
        ["sleep", "600"],
        detach=True,
        network_mode="none",
        labels={LABEL_PROVIDER: account.address},
    )
    try:
        job_id = pool.submit(command=["true"])
        Provider(pool, tmp_path / "provider", account).start().join()
        assert pool.job(job_id)["status"] == "completed"
        assert containers_of(docker_client, account.address) == []
    finally:
        with contextlib.suppress(Exception):
            left.remove(force=True)
