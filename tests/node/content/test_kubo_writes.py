"""Who may write through the Kubo RPC dialect: reads are public, writes need credentials,
and nobody removes the pins a live job needs."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from eth_account import Account
from fastapi import FastAPI
from fastapi.testclient import TestClient

from marketplace.content.importer import import_path
from marketplace.errors import Unauthorized
from marketplace.jobs.states import JobStatus
from node.db import session_scope
from node.jobs.service import create_job
from node.models.jobs import Job
from tests.fixtures.factories import auth_headers, make_user, make_workspace
from worker.api import NodeAPI

# The dialect's read commands, public as on a gateway; every other /api/v0 route writes.
READS = {
    "cat",
    "get",
    "ls",
    "pin/ls",
    "version",
    "dag/export",
    "block/get",
    "files/stat",
    "id",
    "block/stat",
    "dag/get",
    "refs",
    "repo/stat",
}
WRITES_AT_LEAST = {"add", "pin/add", "pin/rm", "block/put", "dag/import", "files/write"}


def _kubo_commands(app: FastAPI) -> set[str]:
    paths = app.openapi()["paths"]
    return {p.removeprefix("/api/v0/") for p in paths if p.startswith("/api/v0/")}


def _add(client: TestClient, data: bytes, **params: str) -> str:
    resp = client.post("/api/v0/add", params=params, files={"file": ("f", data)})
    assert resp.status_code == 200, resp.text
    return resp.json()["Hash"]


@pytest.fixture
def anonymous(app: FastAPI) -> TestClient:
    return TestClient(app)


def test_every_write_command_refuses_a_caller_without_credentials(
    app: FastAPI, client: TestClient, anonymous: TestClient
) -> None:
    writes = _kubo_commands(app) - READS
    assert writes >= WRITES_AT_LEAST
    cid = _add(client, b"already here\n")
    for command in sorted(writes):
        resp = anonymous.post(f"/api/v0/{command}", params={"arg": cid})
        assert resp.status_code == 401, command
        assert resp.json()["ErrorCode"] == "UNAUTHORIZED"
        assert resp.headers["www-authenticate"] == "Bearer"
    assert anonymous.post("/api/v0/pin/ls", params={"arg": cid}).status_code == 200  # still pinned


def test_unauthenticated_add_stores_nothing(app: FastAPI, anonymous: TestClient) -> None:
    resp = anonymous.post("/api/v0/add", files={"file": ("f", b"not stored\n")})
    assert resp.status_code == 401
    assert app.state.runtime.content.pins() == []


def test_reads_stay_public(client: TestClient, anonymous: TestClient, tmp_path: Path) -> None:
    cid = _add(client, b"public bytes\n")
    assert anonymous.post("/api/v0/cat", params={"arg": cid}).content == b"public bytes\n"
    assert anonymous.post("/api/v0/files/stat", params={"arg": cid}).json()["Hash"] == cid
    assert anonymous.post("/api/v0/files/stat", params={"arg": f"/ipfs/{cid}"}).status_code == 200
    # an MFS path is the caller's own tree: it needs a credential
    assert anonymous.post("/api/v0/files/stat", params={"arg": "/"}).status_code == 401
    assert cid in anonymous.post("/api/v0/pin/ls").json()["Keys"]
    assert anonymous.get(f"/ipfs/{cid}").content == b"public bytes\n"


def test_viewer_key_cannot_write_but_a_member_key_can(app: FastAPI, client: TestClient) -> None:
    owner = make_user(app, username="owner")
    ws = make_workspace(app, owner)
    headers = auth_headers(client, "owner")

    def key(role: str) -> dict[str, str]:
        body = {"name": role, "role": role}
        made = client.post(f"/workspaces/{ws}/api-keys", json=body, headers=headers).json()
        return {"Authorization": f"Bearer {made['key']}"}

    refused = client.post("/api/v0/add", files={"file": ("f", b"viewer\n")}, headers=key("viewer"))
    assert refused.status_code == 403 and refused.json()["ErrorCode"] == "FORBIDDEN"
    ok = client.post("/api/v0/add", files={"file": ("f", b"member\n")}, headers=key("member"))
    assert ok.status_code == 200


def _job_with(app: FastAPI, status: JobStatus, **cids: str) -> int:
    with session_scope(app.state.runtime.sessionmaker) as session:
        job = create_job(session, job_type="image_processing", reward_wei=10**15)
        for column, cid in cids.items():
            setattr(job, column, cid)
        job.status = status.value
        return job.id


def _set_status(app: FastAPI, job_id: int, status: JobStatus) -> None:
    with session_scope(app.state.runtime.sessionmaker) as session:
        job = session.get(Job, job_id)
        assert job is not None
        job.status = status.value


@pytest.mark.parametrize("status", [JobStatus.AWAITING_FUNDING, JobStatus.RUNNING])
def test_pins_of_a_live_jobs_dataset_cannot_be_removed(
    app: FastAPI, client: TestClient, status: JobStatus
) -> None:
    folder, metadata = _add(client, b"dataset\n"), _add(client, b'{"meta": 1}\n')
    _job_with(app, status, folder_cid=folder, metadata_cid=metadata)
    for cid in (folder, metadata):
        resp = client.post("/api/v0/pin/rm", params={"arg": cid})
        assert resp.status_code == 409, resp.text
        assert resp.json()["ErrorCode"] == "PIN_IN_USE"
        assert app.state.runtime.content.is_pinned(cid)


def test_pin_of_a_result_awaiting_settlement_cannot_be_removed(
    app: FastAPI, client: TestClient
) -> None:
    result = _add(client, b"weights\n")
    job_id = _job_with(app, JobStatus.SUBMITTED, result_cid=result)
    assert client.post("/api/v0/pin/rm", params={"arg": result}).status_code == 409
    _set_status(app, job_id, JobStatus.COMPLETED)  # the job no longer needs it
    assert client.post("/api/v0/pin/rm", params={"arg": result}).json() == {"Pins": [result]}
    assert not app.state.runtime.content.is_pinned(result)


def test_worker_uploads_results_with_its_wallet_token(
    live_node: str, tmp_path: Path, app: FastAPI
) -> None:
    out = tmp_path / "weights"
    out.mkdir()
    (out / "best.pt").write_bytes(b"model bytes")
    (out / "metrics.json").write_text('{"map50": 0.5}')

    async def upload(sign_in: bool) -> str:
        api = NodeAPI(live_node)
        try:
            if sign_in:
                await api.sign_in(Account.create())
            return await api.add_directory(out)
        finally:
            await api.aclose()

    with pytest.raises(Unauthorized):
        asyncio.run(upload(sign_in=False))
    cid = asyncio.run(upload(sign_in=True))
    assert cid == str(import_path(out).cid)
    assert app.state.runtime.content.is_pinned(cid)
