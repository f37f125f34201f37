"""Workspace routes: create, list, read; auth failures and bad inputs."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.fixtures.factories import auth_headers, make_user, make_workspace


def test_creator_becomes_owner(app: FastAPI, client: TestClient) -> None:
    make_user(app, username="alice")
    headers = auth_headers(client, "alice")
    resp = client.post("/workspaces", json={"name": "  Vision team "}, headers=headers)
    assert resp.status_code == 201
    ws = resp.json()
    assert (ws["name"], ws["role"]) == ("Vision team", "owner")
    assert ws["created_at"].endswith("Z")
    members = client.get(f"/workspaces/{ws['id']}/members", headers=headers).json()
    assert [(m["username"], m["role"]) for m in members] == [("alice", "owner")]


def test_list_shows_only_the_callers_workspaces_with_their_role(
    app: FastAPI, client: TestClient
) -> None:
    alice = make_user(app, username="alice")
    bob = make_user(app, username="bob")
    shared = make_workspace(app, alice, name="Shared", members={bob.id: "viewer"})
    make_workspace(app, alice, name="Private")
    listed = client.get("/workspaces", headers=auth_headers(client, "bob")).json()
    assert [(w["id"], w["name"], w["role"]) for w in listed] == [(shared, "Shared", "viewer")]


def test_get_by_a_member(app: FastAPI, client: TestClient) -> None:
    alice = make_user(app, username="alice")
    ws = make_workspace(app, alice, name="Team")
    resp = client.get(f"/workspaces/{ws}", headers=auth_headers(client, "alice"))
    assert resp.status_code == 200
    assert resp.json()["created_by"] == alice.id


def test_non_member_gets_403(app: FastAPI, client: TestClient) -> None:
    ws = make_workspace(app, make_user(app, username="alice"))
    make_user(app, username="mallory")
    resp = client.get(f"/workspaces/{ws}", headers=auth_headers(client, "mallory"))
    assert resp.status_code == 403
    assert resp.json()["code"] == "FORBIDDEN"


def test_unknown_workspace_is_404(app: FastAPI, client: TestClient) -> None:
    make_user(app, username="alice")
    resp = client.get("/workspaces/999", headers=auth_headers(client, "alice"))
    assert resp.status_code == 404
    assert resp.json()["code"] == "WORKSPACE_NOT_FOUND"


def test_without_credentials_is_401(client: TestClient) -> None:
    for method, path in [("GET", "/workspaces"), ("POST", "/workspaces"), ("GET", "/workspaces/1")]:
        resp = client.request(method, path, json={"name": "x"} if method == "POST" else None)
        assert resp.status_code == 401, path
        assert resp.headers["www-authenticate"] == "Bearer"


def test_out_of_range_workspace_id_is_422_not_500(app: FastAPI, client: TestClient) -> None:
    make_user(app, username="alice")
    headers = auth_headers(client, "alice")
    for raw in ["99999999999999999999999", "0", "-1", "abc"]:
        resp = client.get(f"/workspaces/{raw}", headers=headers)
        assert resp.status_code == 422, raw
        assert resp.json()["detail"][0]["loc"] == ["path", "workspace_id"]


def test_empty_name_is_422_with_the_field_path(app: FastAPI, client: TestClient) -> None:
    make_user(app, username="alice")
    resp = client.post("/workspaces", json={"name": "   "}, headers=auth_headers(client, "alice"))
    assert resp.status_code == 422
    assert resp.json()["code"] == "VALIDATION_ERROR"
    assert resp.json()["detail"][0]["loc"] == ["body", "name"]


def test_huge_name_is_422(app: FastAPI, client: TestClient) -> None:
    make_user(app, username="alice")
    headers = auth_headers(client, "alice")
    resp = client.post("/workspaces", json={"name": "w" * 100_000}, headers=headers)
    assert resp.status_code == 422


def test_wrong_type_is_422(app: FastAPI, client: TestClient) -> None:
    make_user(app, username="alice")
    resp = client.post("/workspaces", json={"name": ["x"]}, headers=auth_headers(client, "alice"))
    assert resp.status_code == 422


def test_unknown_field_is_422(app: FastAPI, client: TestClient) -> None:
    make_user(app, username="alice")
    resp = client.post(
        "/workspaces", json={"name": "x", "owner_id": 1}, headers=auth_headers(client, "alice")
    )
    assert resp.status_code == 422
    assert resp.json()["detail"][0]["loc"] == ["body", "owner_id"]


def test_malformed_json_is_422(app: FastAPI, client: TestClient) -> None:
    make_user(app, username="alice")
    headers = {**auth_headers(client, "alice"), "Content-Type": "application/json"}
    resp = client.post("/workspaces", content=b'{"name": ', headers=headers)
    assert resp.status_code == 422
    assert resp.json()["code"] == "VALIDATION_ERROR"


def test_body_over_the_json_limit_is_413(app: FastAPI, client: TestClient) -> None:
    make_user(app, username="alice")
    headers = {**auth_headers(client, "alice"), "Content-Type": "application/json"}
    body = b'{"name": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    assert client.post("/workspaces", content=body, headers=headers).status_code == 413


def test_failed_create_writes_nothing(app: FastAPI, client: TestClient) -> None:
    make_user(app, username="alice")
    headers = auth_headers(client, "alice")
    client.post("/workspaces", json={"name": ""}, headers=headers)
    assert client.get("/workspaces", headers=headers).json() == []
