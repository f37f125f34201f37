"""Private pools: a job without escrow goes only to providers its workspace admitted (a
`provider` key presented at registration); escrowed jobs are the open market. Every
claim here is a real `POST /v1/providers/claim`."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from eth_account import Account
from fastapi import FastAPI
from fastapi.testclient import TestClient

from node.db import session_scope
from node.jobs.service import create_job
from node.models.jobs import Job
from tests.fixtures.factories import auth_headers, make_user, make_workspace

CLAIM = "/v1/providers/claim"


@dataclass
class Team:
    workspace_id: int
    owner: dict[str, str]
    key_id: int
    key: str


def _team(app: FastAPI, client: TestClient, name: str = "team") -> Team:
    owner = make_user(app, username=f"{name}-owner")
    ws = make_workspace(app, owner, name=name)
    headers = auth_headers(client, f"{name}-owner")
    resp = client.post(
        f"/workspaces/{ws}/api-keys", json={"name": "gpu box", "role": "provider"}, headers=headers
    )
    assert resp.status_code == 201, resp.text
    return Team(ws, headers, resp.json()["id"], resp.json()["key"])


def _provider(
    app: FastAPI, client: TestClient, name: str, keys: list[str] | None = None
) -> dict[str, str]:
    make_user(app, username=name, address=Account.create().address)
    headers = auth_headers(client, name)
    body = {"name": name, "job_types": ["image_processing"], "api_keys": keys or []}
    resp = client.post("/v1/providers", json=body, headers=headers)
    assert resp.status_code == 201, resp.text
    return headers


def _job(app: FastAPI, **kw) -> int:
    with session_scope(app.state.runtime.sessionmaker) as session:
        return create_job(session, job_type="image_processing", **kw).id


def _status(app: FastAPI, job_id: int) -> str:
    with session_scope(app.state.runtime.sessionmaker) as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job.status


def test_private_job_is_never_offered_to_a_provider_outside_its_pool(app, client):
    team = _team(app, client)
    job_id = _job(app, workspace_id=team.workspace_id)
    stranger = _provider(app, client, "stranger")
    other_team = _team(app, client, "other")
    elsewhere = _provider(app, client, "elsewhere", [other_team.key])
    for headers in (stranger, elsewhere):
        assert client.post(CLAIM, json={}, headers=headers).status_code == 204
    assert _status(app, job_id) == "pending"


def test_private_job_is_offered_to_a_provider_its_workspace_admitted(app, client):
    team = _team(app, client)
    job_id = _job(app, workspace_id=team.workspace_id)
    _provider(app, client, "stranger")  # registered first: it still gets nothing
    admitted = _provider(app, client, "admitted", [team.key])
    resp = client.post(CLAIM, json={}, headers=admitted)
    assert resp.status_code == 200, resp.text
    assert resp.json()["data"]["job"]["id"] == f"job_{job_id}"
    assert _status(app, job_id) == "claimed"


def test_registration_names_the_pools_a_key_admitted(app, client):
    team = _team(app, client)
    make_user(app, username="p", address=Account.create().address)
    headers = auth_headers(client, "p")
    body = {"name": "p", "api_keys": [team.key, team.key]}  # a repeat admits once
    resp = client.post("/v1/providers", json=body, headers=headers)
    assert resp.status_code == 201, resp.text
    [pool] = resp.json()["data"]["pools"]
    assert pool == {
        "workspace_id": team.workspace_id,
        "api_key_id": team.key_id,
        "key_prefix": team.key[:12],
    }
    assert team.key not in resp.text.replace(team.key[:12], "")


def test_open_market_job_is_offered_to_every_provider(app, client):
    team = _team(app, client)
    private = _job(app, workspace_id=team.workspace_id)
    escrowed = _job(app, reward_wei=10**16, requester_address=Account.create().address)
    stranger = _provider(app, client, "stranger")
    resp = client.post(CLAIM, json={}, headers=stranger)
    assert resp.json()["data"]["job"]["id"] == f"job_{escrowed}"
    assert client.post(CLAIM, json={}, headers=stranger).status_code == 204
    assert _status(app, private) == "pending"


def test_revoked_key_stops_admitting_at_once(app, client):
    team = _team(app, client)
    leased = _job(app, workspace_id=team.workspace_id)
    admitted = _provider(app, client, "admitted", [team.key])
    lease = client.post(CLAIM, json={}, headers=admitted).json()["data"]["lease"]
    waiting = _job(app, workspace_id=team.workspace_id)

    revoke = client.delete(
        f"/workspaces/{team.workspace_id}/api-keys/{team.key_id}", headers=team.owner
    )
    assert revoke.status_code == 204
    assert client.post(CLAIM, json={}, headers=admitted).status_code == 204
    assert _status(app, waiting) == "pending"
    # Its lease on the job it already holds is no longer honoured either.
    beat = client.post(
        f"/v1/jobs/job_{leased}/heartbeat", json={"attempt": lease["attempt"]}, headers=admitted
    )
    assert beat.status_code == 403 and beat.json()["error"]["code"] == "NOT_ADMITTED"
    result = client.post(
        f"/v1/jobs/job_{leased}/result",
        json={"attempt": lease["attempt"], "result_cid": "Qm" + "r" * 44},
        headers=admitted,
    )
    assert result.status_code == 403
    assert _status(app, leased) == "claimed"


def test_provider_key_stops_admitting_when_its_creator_may_no_longer_write(app, client):
    team = _team(app, client)
    second = make_user(app, username="second-owner")
    client.post(
        f"/workspaces/{team.workspace_id}/members",
        json={"username": "second-owner", "role": "owner"},
        headers=team.owner,
    )
    admitted = _provider(app, client, "admitted", [team.key])
    creator_id = client.get("/auth/me", headers=team.owner).json()["id"]
    demote = client.patch(
        f"/workspaces/{team.workspace_id}/members/{creator_id}",
        json={"role": "viewer"},
        headers=auth_headers(client, second.username or ""),
    )
    assert demote.status_code == 200, demote.text
    job_id = _job(app, workspace_id=team.workspace_id)
    assert client.post(CLAIM, json={}, headers=admitted).status_code == 204
    assert _status(app, job_id) == "pending"


@pytest.mark.parametrize("which", ["member key", "revoked key", "unknown key"])
def test_registration_refuses_a_key_that_does_not_admit(app, client, which):
    team = _team(app, client)
    if which == "member key":
        key = client.post(
            f"/workspaces/{team.workspace_id}/api-keys",
            json={"name": "m", "role": "member"},
            headers=team.owner,
        ).json()["key"]
    elif which == "revoked key":
        client.delete(f"/workspaces/{team.workspace_id}/api-keys/{team.key_id}", headers=team.owner)
        key = team.key
    else:
        key = "dcm_" + "x" * 43
    make_user(app, username="p", address=Account.create().address)
    headers = auth_headers(client, "p")
    resp = client.post("/v1/providers", json={"name": "p", "api_keys": [key]}, headers=headers)
    assert resp.status_code == 403
    assert resp.json()["error"]["code"] == "NOT_ADMITTED"
    assert resp.json()["error"]["details"]["index"] == 0


def test_reregistering_without_keys_leaves_the_pool(app, client):
    team = _team(app, client)
    admitted = _provider(app, client, "admitted", [team.key])
    again = client.post("/v1/providers", json={"name": "admitted"}, headers=admitted)
    assert again.status_code == 201 and again.json()["data"]["pools"] == []
    job_id = _job(app, workspace_id=team.workspace_id)
    assert client.post(CLAIM, json={}, headers=admitted).status_code == 204
    assert _status(app, job_id) == "pending"


def test_provider_key_is_not_a_provider_identity(app, client):
    team = _team(app, client)
    _job(app, workspace_id=team.workspace_id)
    as_key = {"Authorization": f"Bearer {team.key}"}
    for path, body in (("/v1/providers", {"name": "k"}), (CLAIM, {})):
        resp = client.post(path, json=body, headers=as_key)
        assert resp.status_code == 403, path


def test_private_dataset_goes_to_readers_and_the_lease_holder_only(app, client, tmp_path):
    team = _team(app, client)
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "a.txt").write_bytes(b"private rows\n")
    folder_cid = app.state.runtime.content.add_path(folder)
    job_id = _job(app, workspace_id=team.workspace_id, folder_cid=folder_cid)
    url = f"/jobs/get-dataset/{job_id}"
    stranger = _provider(app, client, "stranger")
    admitted = _provider(app, client, "admitted", [team.key])
    waiting = _provider(app, client, "waiting", [team.key])

    assert client.get(url).status_code == 404
    assert client.get(url, headers=admitted).status_code == 404  # admitted, but no lease yet
    assert client.get(url, headers=team.owner).status_code == 200  # a reader of the job
    assert client.post(CLAIM, json={}, headers=admitted).status_code == 200
    assert client.get(url, headers=admitted).status_code == 200
    for headers in (stranger, waiting):
        assert client.get(url, headers=headers).status_code == 404
