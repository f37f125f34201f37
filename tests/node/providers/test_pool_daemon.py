"""The provider daemon joins a workspace's private pool with the key it is given, and runs
a private job end to end over real HTTP: claim, results uploaded with its wallet token,
result submitted."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, ClassVar

import pytest
from click.testing import CliRunner
from eth_account import Account
from fastapi import FastAPI

from dcm.cli import _pool_keys, main
from marketplace.content.importer import import_path
from marketplace.errors import NotAdmitted
from marketplace.sdk.http import siwe_payload
from tests.fixtures import web
from tests.fixtures.keystores import keystore_json
from tests.fixtures.live import served_in_thread
from worker.daemon import DaemonConfig, ProviderDaemon
from worker.executors.base import ExecutionResult, JobSpec, Reporter


class EchoExecutor:
    """Writes the job's payload to a file: a job type that needs no dataset or GPU."""

    job_types: ClassVar[frozenset[str]] = frozenset({"echo"})

    def run(self, job: JobSpec, workdir: Path, report: Reporter) -> ExecutionResult:
        out = workdir / "out"
        out.mkdir()
        (out / "echo.txt").write_text(repr(dict(job.spec)))
        report.progress(100, "echoed")
        return ExecutionResult(out, {"echoed": True}, "echo", ("echo.txt",))


def _wallet(url: str) -> tuple[Any, dict[str, str]]:
    account = Account.create()
    nonce = web.get(f"{url}/auth/nonce", timeout=30).json()
    tokens = web.post(
        f"{url}/auth/siwe", json=siwe_payload(nonce, account, "test"), timeout=30
    ).json()
    return account, {"Authorization": f"Bearer {tokens['access_token']}"}


def _run(url: str, account: Any, workdir: Path, keys: list[str]) -> list[dict[str, Any]]:
    config = DaemonConfig(
        node_url=url,
        workdir=workdir,
        job_types=["echo"],
        run_once=True,
        claim_wait_seconds=2,
        api_keys=keys,
    )

    async def main() -> list[dict[str, Any]]:
        async with ProviderDaemon(config, account, {"echo": EchoExecutor()}) as daemon:
            await daemon.run()
            return daemon.completed

    return asyncio.run(main())


def test_daemon_with_a_pool_key_runs_the_workspaces_private_job(
    app: FastAPI, tmp_path: Path
) -> None:
    with served_in_thread(app) as url:
        _requester, headers = _wallet(url)
        created = web.post(
            f"{url}/v1/jobs",
            json={"type": "echo", "payload": {"n": 7}},
            headers=headers,
            timeout=30,
        ).json()["data"]
        personal = created["workspaceId"]  # no workspace named: the requester's personal one
        key = web.post(
            f"{url}/workspaces/{personal}/api-keys",
            json={"name": "my gpu box", "role": "provider"},
            headers=headers,
            timeout=30,
        ).json()["key"]

        done = _run(url, Account.create(), tmp_path / "provider", [key])

        assert [d["job_id"] for d in done] == [created["id"]]
        job = web.get(f"{url}/v1/jobs/{created['id']}", headers=headers, timeout=30).json()["data"]
        assert job["status"] == "completed"
        cid = done[0]["result_cid"]
        out = tmp_path / "expected"
        out.mkdir()
        (out / "echo.txt").write_text(repr({"n": 7}))
        assert cid == str(import_path(out).cid)
        assert app.state.runtime.content.is_pinned(cid)


def test_daemon_with_a_key_that_does_not_admit_fails_at_start(app: FastAPI, tmp_path: Path) -> None:
    with served_in_thread(app) as url, pytest.raises(NotAdmitted):
        _run(url, Account.create(), tmp_path / "provider", ["dcm_" + "n" * 43])


def test_pool_keys_come_from_options_and_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("DCM_PROVIDER_API_KEYS", " dcm_b, dcm_c ,,dcm_a")
    assert _pool_keys(("dcm_a",)) == ["dcm_a", "dcm_b", "dcm_c"]
    monkeypatch.delenv("DCM_PROVIDER_API_KEYS")
    assert _pool_keys(()) == []


def test_provider_run_with_a_key_that_does_not_admit_exits_with_the_reason(
    app: FastAPI, tmp_path: Path
) -> None:
    account = Account.create()
    keyfile = tmp_path / "provider.json"
    keyfile.write_text(keystore_json(account.key, "pw"))
    with served_in_thread(app) as url:
        result = CliRunner().invoke(
            main,
            ["provider", "run", "--node", url, "--keyfile", str(keyfile), "--once"],
            env={"DCM_WALLET_PASSWORD": "pw", "DCM_PROVIDER_API_KEYS": "dcm_" + "n" * 43},
        )
    assert result.exit_code == 1
    assert "NOT_ADMITTED" in result.output and "api_keys[0]" in result.output
