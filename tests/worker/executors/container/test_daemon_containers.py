"""Container jobs end to end through the provider daemon: a node served over real HTTP, the
daemon with the container executor, a real Docker engine. What the requester sees: status,
logs with their stream, the exit code, `docker stats` metrics, outputs served by the node's
gateway; and through seed 003's plugin-core routes: cancel (`cancelling`, then `cancelled`),
a batch's concurrency held on the engine, a job with a reward funded, run and paid on the
node's embedded chain."""

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
from web3 import Web3

from marketplace.escrow.client import JobEscrow
from marketplace.sdk.http import siwe_payload
from tests.fixtures.docker import IMAGE
from tests.fixtures.live import served_in_thread
from tests.worker.executors.container.conftest import containers_of
from worker.daemon import DaemonConfig, ProviderDaemon
from worker.executors.container import ContainerExecutor, ContainerSettings
from worker.executors.container.engine import LABEL_PROVIDER

BASE = "/api/plugin-core/jobs"
# seed 003's create body, sized for the busybox test image (`provider` is the pool)
SEED = {
    "provider": "default",
    "image": IMAGE,
    "cpu": 500,
    "memory": "64Mi",
    "storage": "64Mi",
    "duration": 600,
}


class Pool:
    """A requester (a wallet user) and its personal workspace on a served node, with a
    provider key for it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=30)
        self.account = account = Account.create()
        nonce = self.http.get("/auth/nonce").json()
        tokens = self.http.post("/auth/siwe", json=siwe_payload(nonce, account, "t")).json()
        self.headers = {"Authorization": f"Bearer {tokens['access_token']}"}
        self.workspace: int | None = None
        self.key: str | None = None

    def submit(self, **spec: Any) -> str:
        body = {"type": "container", "payload": {"image": IMAGE, **spec}}
        job = self.http.post("/v1/jobs", json=body, headers=self.headers).json()["data"]
        self.provider_key_for(job["id"])
        return job["id"]

    def create(self, **changes: Any) -> dict[str, Any]:
        """A job through seed 003's `POST /api/plugin-core/jobs` (the seed's body)."""
        resp = self.http.post(BASE, json={**SEED, **changes}, headers=self.headers)
        assert resp.status_code == 201, resp.text
        job = resp.json()["data"]
        self.provider_key_for(job["id"])
        return job

    def provider_key_for(self, job_id: str) -> None:
        """A `provider` key of the job's workspace (its private pool), made once."""
        if self.key is None:
            self.workspace = self.job(job_id)["workspaceId"]
            self.key = self.http.post(
                f"/workspaces/{self.workspace}/api-keys",
                json={"name": "docker box", "role": "provider"},
                headers=self.headers,
            ).json()["key"]

    def view(self, job_id: str, what: str = "") -> Any:
        """`GET /api/plugin-core/jobs/{id}[/what]`'s `data`."""
        resp = self.http.get(f"{BASE}/{job_id}{what}", headers=self.headers)
        assert resp.status_code == 200, resp.text
        return resp.json()["data"]

    def job(self, job_id: str) -> dict[str, Any]:
        return self.http.get(f"/v1/jobs/{job_id}", headers=self.headers).json()["data"]

    def logs(self, job_id: str) -> list[dict[str, Any]]:
        return self.http.get(f"/v1/jobs/{job_id}/logs", headers=self.headers).json()["data"]


@pytest.fixture
def pool(app: FastAPI) -> Iterator[Pool]:
    with served_in_thread(app) as url:
        yield Pool(url)


class Provider:
    """The daemon in a thread of its own (its event loop), stopping after one job (or, with
    `run_once=False`, when `stop()` asks). `keys=[]`: the open market only."""

    def __init__(
        self,
        pool: Pool,
        workdir: Path,
        account: Any = None,
        *,
        keys: list[str] | None = None,
        run_once: bool = True,
        max_concurrent: int = 1,
    ) -> None:
        self.account = account or Account.create()
        self.config = DaemonConfig(
            node_url=pool.url,
            workdir=workdir,
            job_types=["container"],
            run_once=run_once,
            max_concurrent=max_concurrent,
            claim_wait_seconds=2,
            api_keys=[pool.key or ""] if keys is None else keys,
        )
        self.executor = ContainerExecutor(ContainerSettings(stop_grace_seconds=1))
        self.completed: list[dict[str, Any]] = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._main, daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._daemon: ProviderDaemon | None = None
        self._stop = threading.Event()

    def _main(self) -> None:
        async def main() -> None:
            async with ProviderDaemon(
                self.config, self.account, {"container": self.executor}
            ) as daemon:
                self._loop, self._daemon = asyncio.get_running_loop(), daemon
                if self._stop.is_set():  # asked before it was up
                    daemon.request_stop()
                await daemon.run()
                self.completed = daemon.completed

        try:
            asyncio.run(main())
        except BaseException as exc:  # noqa: BLE001 - reported by join()
            self.error = exc

    def start(self) -> Provider:
        self.thread.start()
        return self

    def stop(self) -> None:
        """Drain (the daemon's first stop signal): no new claims, running jobs finish."""
        self._stop.set()
        if self._loop is not None and self._daemon is not None:
            self._loop.call_soon_threadsafe(self._daemon.request_stop)

    def join(self, timeout: float = 120) -> None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the daemon did not finish its job"
        if self.error is not None:
            raise self.error


def test_a_container_job_completes_with_logs_metrics_exit_code_and_served_outputs(
    pool: Pool, tmp_path: Path, docker_client: Any, busybox_image: str
) -> None:
    # `sleep 2`: long enough for `docker stats` to sample it (about one a second)
    script = "echo hello; echo warn >&2; echo 42 > /outputs/result.txt; sleep 2"
    job_id = pool.submit(command=["sh", "-c", script])
    provider = Provider(pool, tmp_path / "provider").start()
    provider.join()

    job = pool.job(job_id)
    assert job["status"] == "completed", job
    assert job["result"]["exit_code"] == 0 and job["result"]["oom"] is False
    cid = job["result"]["result_cid"]
    assert pool.http.get(f"/ipfs/{cid}/result.txt").text == "42\n"
    lines = {(e["stream"], e["message"]) for e in pool.logs(job_id)}
    assert ("stdout", "hello") in lines and ("stderr", "warn") in lines
    # the engine's `docker stats` samples, as seed 003's metrics route reads them back
    assert job["result"]["stats_samples"] >= 1
    metrics = pool.view(job_id, "/metrics?period=1h&resolution=1m")
    assert metrics["cpu"] and metrics["memory"], metrics
    assert all(isinstance(p["value"], int | float) and p["value"] >= 0 for p in metrics["cpu"])
    limit = ContainerSettings().default_memory_bytes  # the job asked none
    assert all(0 < p["value"] <= limit for p in metrics["memory"]), metrics["memory"]
    view = pool.view(job_id)
    assert view["status"] == "completed" and view["results"]["exitCode"] == 0
    served = httpx.URL(view["results"]["outputUrl"])  # the gateway URL serves the file
    assert served.path == f"/ipfs/{cid}"
    assert pool.http.get(f"{served.path}/result.txt").text == "42\n"
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
    job_id = pool.create(command=["sh", "-c", "echo ready; sleep 600"])["id"]
    provider = Provider(pool, tmp_path / "provider").start()
    deadline = time.monotonic() + 60
    while not any(e["message"] == "ready" for e in pool.logs(job_id)):
        assert time.monotonic() < deadline, pool.job(job_id)
        time.sleep(0.2)
    assert pool.view(job_id)["status"] == "running"
    assert containers_of(docker_client, provider.account.address) != []

    cancelled = pool.http.post(f"{BASE}/{job_id}/cancel", headers=pool.headers)
    assert cancelled.status_code == 200, cancelled.text
    # the provider still holds the lease: it stops the container at its next heartbeat
    assert cancelled.json() == {"success": True, "data": {"id": job_id, "status": "cancelling"}}
    provider.join()

    assert pool.view(job_id)["status"] == "cancelled"
    assert pool.job(job_id)["status"] == "cancelled"
    assert containers_of(docker_client, provider.account.address) == []
    again = pool.http.post(f"{BASE}/{job_id}/cancel", headers=pool.headers)
    assert again.status_code == 409 and again.json()["error"]["code"] == "PROVIDER_CONFLICT"


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


def test_a_batch_of_6_with_concurrency_2_never_runs_more_than_2_on_the_engine(
    pool: Pool, tmp_path: Path, docker_client: Any, busybox_image: str
) -> None:
    script = "echo started; sleep 2; echo done > /outputs/r"
    body = {"jobs": [{**SEED, "command": ["sh", "-c", script]}] * 6, "concurrency": 2}
    batch = pool.http.post(f"{BASE}/batch", json=body, headers=pool.headers)
    assert batch.status_code == 201, batch.text
    ids = batch.json()["data"]["jobIds"]
    assert len(ids) == 6 and batch.json()["data"]["concurrency"] == 2
    pool.provider_key_for(ids[0])
    # four slots in all: two daemons of two each, so the limit seen is the batch's
    providers = [
        Provider(pool, tmp_path / f"p{i}", run_once=False, max_concurrent=2).start()
        for i in range(2)
    ]
    addresses = {p.account.address for p in providers}

    def containers() -> int:  # of this batch, whatever their state (created to exited)
        return sum(len(containers_of(docker_client, a)) for a in addresses)

    def states() -> tuple[int, int, set[str]]:
        """(claimed or running canonically, `running` in seed 003's words, final words)."""
        v1 = pool.http.get("/v1/jobs", params={"limit": 100}, headers=pool.headers)
        canonical = {j["id"]: j["status"] for j in v1.json()["data"]}
        seed = pool.http.get(BASE, params={"limit": 100}, headers=pool.headers).json()["data"]
        words = {j["id"]: j["status"] for j in seed}
        active = sum(canonical[i] in ("claimed", "running") for i in ids)
        return active, sum(words[i] == "running" for i in ids), {words[i] for i in ids}

    most = {"active": 0, "running": 0, "containers": 0}
    deadline = time.monotonic() + 120
    try:
        while True:
            active, running, words = states()
            seen = {"active": active, "running": running, "containers": containers()}
            assert max(seen.values()) <= 2, seen
            most = {k: max(most[k], v) for k, v in seen.items()}
            if words == {"completed"}:
                break
            assert words <= {"pending", "running", "completed"}, words
            assert time.monotonic() < deadline, words
            time.sleep(0.1)
    finally:
        for provider in providers:
            provider.stop()
        for provider in providers:
            provider.join()

    assert most["active"] == 2 and most["running"] == 2, most  # the batch did use its two
    assert most["containers"] >= 1, most
    done = sorted(d["job_id"] for p in providers for d in p.completed)
    assert done == sorted(ids)
    for job_id in ids:
        assert pool.view(job_id)["results"]["exitCode"] == 0
    assert containers() == 0


def test_a_job_with_a_reward_is_funded_run_and_paid_on_chain(
    pool: Pool, tmp_path: Path, docker_client: Any, busybox_image: str
) -> None:
    reward = 10**16  # 0.01 ETH
    w3 = Web3(Web3.HTTPProvider(f"{pool.url}/chain/rpc"))
    info = pool.http.get("/chain/info").json()
    escrow = JobEscrow(w3, info["escrow_address"])
    provider_account = Account.create()
    for address, eth in ((pool.account.address, "1"), (provider_account.address, "0.2")):
        paid = pool.http.post("/chain/faucet", json={"address": address, "amount": eth})
        assert paid.status_code == 200, paid.text

    job = pool.create(reward="0.01", command=["sh", "-c", "echo paid > /outputs/r; sleep 1"])
    job_id = job["id"]
    assert job["status"] == "pending"
    assert job["cost"] == {"current": 0, "projected": 0.01, "currency": "ETH"}
    assert pool.job(job_id)["status"] == "awaiting_funding"
    call = pool.view(job_id)["funding"]
    assert int(call["value"]) == reward
    tx = {
        "to": call["to"],
        "data": call["data"],
        "value": int(call["value"]),
        "chainId": int(call["chain_id"]),
        "nonce": w3.eth.get_transaction_count(pool.account.address),
        "gas": 200_000,
        "gasPrice": w3.eth.gas_price,
    }
    sent = w3.eth.send_raw_transaction(pool.account.sign_transaction(tx).raw_transaction)
    assert w3.eth.wait_for_transaction_receipt(sent, timeout=30)["status"] == 1
    deadline = time.monotonic() + 30
    while pool.job(job_id)["status"] != "pending":  # the escrow watcher saw the deposit
        assert time.monotonic() < deadline, pool.job(job_id)
        time.sleep(0.2)

    # the open market: a provider of no workspace, bound and paid through the escrow
    provider = Provider(pool, tmp_path / "provider", provider_account, keys=[]).start()
    provider.join()
    assert [d["job_id"] for d in provider.completed] == [job_id]
    key = pool.http.get(f"/v1/jobs/{job_id}/escrow").json()["data"]["job_key"]
    record = escrow.get_job(key)
    assert record.provider == provider_account.address and record.status.name == "SUBMITTED"
    view = pool.view(job_id)
    assert view["status"] == "submitted" and view["results"]["exitCode"] == 0
    served = httpx.URL(view["results"]["outputUrl"]).path  # the app's public URL is not this
    assert pool.http.get(f"{served}/r").text == "paid\n"
    assert containers_of(docker_client, provider_account.address) == []

    before = w3.eth.get_balance(provider_account.address)
    escrow.accept(pool.account, key)
    assert w3.eth.get_balance(provider_account.address) - before == reward
    settled = [e for e in escrow.events("JobSettled") if e["args"]["provider"] == record.provider]
    assert [e["args"]["providerAmount"] for e in settled] == [reward]
    deadline = time.monotonic() + 30
    while (view := pool.view(job_id))["status"] != "completed":
        assert time.monotonic() < deadline, view
        time.sleep(0.2)
    assert view["cost"] == {"current": 0.01, "projected": 0.01, "currency": "ETH"}
