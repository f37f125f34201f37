"""Workspace-scoped API keys: shown once, stored hashed, scoped, capped, revocable."""

from __future__ import annotations

import hashlib

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from node.db import session_scope
from node.models.auth import ApiKey
from tests.fixtures.factories import auth_headers, make_user, make_workspace


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _setup(app: FastAPI, client: TestClient) -> tuple[int, dict[str, str]]:
    owner = make_user(app, username="owner")
    return make_workspace(app, owner), auth_headers(client, "owner")


def _create(client: TestClient, ws: int, headers: dict[str, str], **body: object) -> dict:
    resp = client.post(f"/workspaces/{ws}/api-keys", json={"name": "ci", **body}, headers=headers)
    assert resp.status_code == 201, resp.text
    return resp.json()


def test_create_shows_the_secret_once(app: FastAPI, client: TestClient) -> None:
    ws, owner = _setup(app, client)
    created = _create(client, ws, owner)
    assert set(created) == {"id", "name", "key", "prefix", "role", "workspace_id", "created_at"}
    assert created["key"].startswith("dcm_") and len(created["key"]) > 40
    assert created["key"].startswith(created["prefix"])
    assert (created["role"], created["workspace_id"]) == ("member", ws)
    listed = client.get(f"/workspaces/{ws}/api-keys", headers=owner).json()
    assert [k["id"] for k in listed] == [created["id"]]
    assert "key" not in listed[0]
    assert created["key"] not in str(listed)


def test_key_is_stored_only_as_its_sha256(app: FastAPI, client: TestClient) -> None:
    ws, owner = _setup(app, client)
    key = _create(client, ws, owner)["key"]
    with session_scope(app.state.runtime.sessionmaker) as session:
        row = session.scalars(select(ApiKey)).one()
        assert row.key_hash == hashlib.sha256(key.encode()).hexdigest()
        assert key not in (row.name, row.prefix, row.key_hash)


def test_key_authenticates_as_its_creator_in_its_workspace(
    app: FastAPI, client: TestClient
) -> None:
    ws, owner = _setup(app, client)
    created = _create(client, ws, owner, role="viewer")
    me = client.get("/auth/me", headers=_bearer(created["key"])).json()
    assert me["username"] == "owner"
    assert me["api_key"] == {"id": created["id"], "workspace_id": ws}
    got = client.get(f"/workspaces/{ws}", headers=_bearer(created["key"]))
    assert got.status_code == 200
    assert got.json()["role"] == "viewer"  # the key's role, not the owner's


def test_key_for_one_workspace_is_403_on_another(app: FastAPI, client: TestClient) -> None:
    ws, owner = _setup(app, client)
    other = client.post("/workspaces", json={"name": "Other"}, headers=owner).json()["id"]
    key = _create(client, ws, owner, role="owner")["key"]
    resp = client.get(f"/workspaces/{other}", headers=_bearer(key))
    assert resp.status_code == 403
    assert [w["id"] for w in client.get("/workspaces", headers=_bearer(key)).json()] == [ws]


def test_revoked_key_is_401(app: FastAPI, client: TestClient) -> None:
    ws, owner = _setup(app, client)
    created = _create(client, ws, owner)
    assert client.get(f"/workspaces/{ws}", headers=_bearer(created["key"])).status_code == 200
    resp = client.delete(f"/workspaces/{ws}/api-keys/{created['id']}", headers=owner)
    assert resp.status_code == 204
    denied = client.get(f"/workspaces/{ws}", headers=_bearer(created["key"]))
    assert denied.status_code == 401
    assert denied.json()["code"] == "INVALID_API_KEY"
    listed = client.get(f"/workspaces/{ws}/api-keys", headers=owner).json()
    assert listed[0]["revoked_at"] is not None


def test_unknown_key_is_401(client: TestClient) -> None:
    resp = client.get("/auth/me", headers=_bearer("dcm_" + "x" * 43))
    assert resp.status_code == 401
    assert resp.headers["www-authenticate"] == "Bearer"


def test_use_records_last_used_at(app: FastAPI, client: TestClient) -> None:
    ws, owner = _setup(app, client)
    created = _create(client, ws, owner)
    assert client.get(f"/workspaces/{ws}/api-keys", headers=owner).json()[0]["last_used_at"] is None
    client.get(f"/workspaces/{ws}", headers=_bearer(created["key"]))
    used = client.get(f"/workspaces/{ws}/api-keys", headers=owner).json()[0]["last_used_at"]
    assert used is not None


def test_member_cannot_create_keys(app: FastAPI, client: TestClient) -> None:
    owner = make_user(app, username="owner")
    member = make_user(app, username="member")
    ws = make_workspace(app, owner, members={member.id: "member"})
    resp = client.post(
        f"/workspaces/{ws}/api-keys", json={"name": "x"}, headers=auth_headers(client, "member")
    )
    assert resp.status_code == 403


def test_non_member_cannot_list_keys(app: FastAPI, client: TestClient) -> None:
    ws, _ = _setup(app, client)
    make_user(app, username="stranger")
    resp = client.get(f"/workspaces/{ws}/api-keys", headers=auth_headers(client, "stranger"))
    assert resp.status_code == 403


def test_key_cannot_mint_keys(app: FastAPI, client: TestClient) -> None:
    ws, owner = _setup(app, client)
    key = _create(client, ws, owner, role="owner")["key"]
    resp = client.post(f"/workspaces/{ws}/api-keys", json={"name": "x"}, headers=_bearer(key))
    assert resp.status_code == 403


def test_key_cannot_create_workspaces(app: FastAPI, client: TestClient) -> None:
    ws, owner = _setup(app, client)
    key = _create(client, ws, owner, role="owner")["key"]
    assert client.post("/workspaces", json={"name": "x"}, headers=_bearer(key)).status_code == 403


def test_key_role_is_capped_by_the_creators_current_role(app: FastAPI, client: TestClient) -> None:
    first = make_user(app, username="first")
    second = make_user(app, username="second")
    ws = make_workspace(app, first, members={second.id: "owner"})
    key = _create(client, ws, auth_headers(client, "first"), role="owner")["key"]
    demote = client.patch(
        f"/workspaces/{ws}/members/{first.id}",
        json={"role": "viewer"},
        headers=auth_headers(client, "second"),
    )
    assert demote.status_code == 200
    assert client.get(f"/workspaces/{ws}", headers=_bearer(key)).json()["role"] == "viewer"


def test_removing_a_member_revokes_their_keys(app: FastAPI, client: TestClient) -> None:
    first = make_user(app, username="first")
    second = make_user(app, username="second")
    ws = make_workspace(app, first, members={second.id: "owner"})
    key = _create(client, ws, auth_headers(client, "second"))["key"]
    removed = client.delete(
        f"/workspaces/{ws}/members/{second.id}", headers=auth_headers(client, "first")
    )
    assert removed.status_code == 204
    assert client.get(f"/workspaces/{ws}", headers=_bearer(key)).status_code == 401


def test_revoking_a_key_of_another_workspace_is_404(app: FastAPI, client: TestClient) -> None:
    ws, owner = _setup(app, client)
    other = client.post("/workspaces", json={"name": "Other"}, headers=owner).json()["id"]
    key_id = _create(client, ws, owner)["id"]
    resp = client.delete(f"/workspaces/{other}/api-keys/{key_id}", headers=owner)
    assert resp.status_code == 404
    assert resp.json()["code"] == "API_KEY_NOT_FOUND"


def test_unknown_role_is_422(app: FastAPI, client: TestClient) -> None:
    ws, owner = _setup(app, client)
    resp = client.post(
        f"/workspaces/{ws}/api-keys", json={"name": "x", "role": "admin"}, headers=owner
    )
    assert resp.status_code == 422
    assert resp.json()["detail"][0]["loc"] == ["body", "role"]


def test_overlong_name_is_422(app: FastAPI, client: TestClient) -> None:
    ws, owner = _setup(app, client)
    resp = client.post(f"/workspaces/{ws}/api-keys", json={"name": "n" * 101}, headers=owner)
    assert resp.status_code == 422
