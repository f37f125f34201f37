"""Container jobs across real processes: `dcm serve`, `dcm provider run --job-type container`,
a real Docker engine. A provider killed with SIGKILL mid-run leaves its container behind; at
its restart it removes it, and the job, its lease lapsed, is retried by another provider."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account

from marketplace.sdk.http import siwe_payload
from tests.fixtures import web
from tests.fixtures.docker import IMAGE, busybox_image, docker_client  # noqa: F401 - fixtures
from tests.fixtures.keystores import keystore_json
from tests.fixtures.served import REPO, Served, dcm_env

pytestmark = [pytest.mark.engine, pytest.mark.slow]


def _signed_in(url: str) -> dict[str, str]:
    nonce = web.get(f"{url}/auth/nonce").json()
    tokens = web.post(f"{url}/auth/siwe", json=siwe_payload(nonce, Account.create(), "t"))
    return {"Authorization": f"Bearer {tokens.json()['access_token']}"}


class ProviderProcess:
    """`dcm provider run --job-type container` with a keystore wallet of its own, which a
    restart reuses (the same provider)."""

    def __init__(self, node: Served, tmp_path: Path, name: str, key: str) -> None:
        self.account = Account.create()
        self.keyfile = tmp_path / f"{name}.json"
        self.keyfile.write_text(keystore_json(self.account.key, "pw"))
        self.node, self.tmp_path, self.name, self.key = node, tmp_path, name, key
        self.runs = 0
        self.proc: subprocess.Popen | None = None

    @property
    def log_path(self) -> Path:
        return self.tmp_path / f"{self.name}-{self.runs}.log"

    def start(self) -> ProviderProcess:
        self.runs += 1
        env = dcm_env(
            self.tmp_path / "unused",
            None,
            DCM_WALLET_PASSWORD="pw",
            DCM_CONTAINER_STOP_GRACE_SECONDS="1",
        )
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "dcm.cli", "provider", "run", "--node", self.node.url]
                + ["--keyfile", str(self.keyfile), "--workdir", str(self.tmp_path / self.name)]
                + ["--job-type", "container", "--api-key", self.key],
                env=env,
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def stop(self, sig: int = 15) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


def _until(what: str, check: Callable[[], Any], timeout: float = 90, tail: Any = None) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < deadline, f"{what}\n{tail() if tail else ''}"
        time.sleep(0.3)


def test_a_provider_killed_mid_run_removes_its_container_at_restart_and_the_job_is_retried(
    node: Served,
    tmp_path: Path,
    docker_client: Any,  # noqa: F811
    busybox_image: str,  # noqa: F811
) -> None:
    http = httpx.Client(base_url=node.url, timeout=30)
    headers = _signed_in(node.url)
    script = "echo ready; sleep 4; echo done > /outputs/r"
    body = {"type": "container", "payload": {"image": IMAGE, "command": ["sh", "-c", script]}}
    job = http.post("/v1/jobs", json=body, headers=headers).json()["data"]
    key = http.post(
        f"/workspaces/{job['workspaceId']}/api-keys",
        json={"name": "docker boxes", "role": "provider"},
        headers=headers,
    ).json()["key"]

    def logs() -> list[str]:
        events = http.get(f"/v1/jobs/{job['id']}/logs", headers=headers).json()["data"]
        return [e["message"] for e in events]

    def containers(provider: ProviderProcess) -> list[Any]:
        label = f"dcm.provider={provider.account.address}"
        return docker_client.containers.list(all=True, filters={"label": label}, sparse=True)

    first = ProviderProcess(node, tmp_path, "first", key).start()
    second = ProviderProcess(node, tmp_path, "second", key)
    try:
        _until(
            "the first provider's container never said ready",
            lambda: "ready" in logs(),
            tail=first.log,
        )
        first.stop(9)  # SIGKILL: no cleanup of its own
        assert len(containers(first)) == 1, "the container outlives its killed provider"

        second.start()
        first.start()  # the same wallet: the same provider, restarted
        _until(
            "the restarted provider left its old container",
            lambda: not containers(first),
            tail=first.log,
        )

        def finished() -> dict[str, Any] | None:
            detail = http.get(f"/v1/jobs/{job['id']}", headers=headers).json()["data"]
            return detail if detail["status"] in ("completed", "failed") else None

        done = _until("the job was not retried to the end", finished, timeout=120, tail=second.log)
        assert done["status"] == "completed", done
        assert done["attempt"] >= 2
        assert http.get(f"/ipfs/{done['result']['result_cid']}/r").text == "done\n"
        assert f"job {job['id']} attempt {done['attempt']} submitted" in second.log()
        assert "removed 1 container(s) left behind" in first.log()
        assert not containers(first) and not containers(second)
    finally:
        first.stop()
        second.stop()
