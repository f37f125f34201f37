"""Membership: add by username or address, roles, the last owner, who may do what."""

from __future__ import annotations

from eth_account import Account
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.fixtures.factories import auth_headers, make_user, make_workspace


def _team(app: FastAPI, client: TestClient) -> tuple[int, dict[str, str]]:
    owner = make_user(app, username="owner")
    return make_workspace(app, owner), auth_headers(client, "owner")


def test_add_by_username(app: FastAPI, client: TestClient) -> None:
    ws, owner = _team(app, client)
    bob = make_user(app, username="bob")
    resp = client.post(
        f"/workspaces/{ws}/members", json={"username": "bob", "role": "member"}, headers=owner
    )
    assert resp.status_code == 201
    assert resp.json()["user_id"] == bob.id
    listed = client.get(f"/workspaces/{ws}/members", headers=auth_headers(client, "bob")).json()
    assert {(m["username"], m["role"]) for m in listed} == {("owner", "owner"), ("bob", "member")}


def test_role_defaults_to_member(app: FastAPI, client: TestClient) -> None:
    ws, owner = _team(app, client)
    make_user(app, username="bob")
    resp = client.post(f"/workspaces/{ws}/members", json={"username": "bob"}, headers=owner)
    assert resp.json()["role"] == "member"


def test_unknown_username_is_404(app: FastAPI, client: TestClient) -> None:
    ws, owner = _team(app, client)
    resp = client.post(f"/workspaces/{ws}/members", json={"username": "ghost"}, headers=owner)
    assert resp.status_code == 404
    assert resp.json()["code"] == "USER_NOT_FOUND"


def test_adding_an_existing_member_is_409(app: FastAPI, client: TestClient) -> None:
    ws, owner = _team(app, client)
    make_user(app, username="bob")
    body = {"username": "bob", "role": "viewer"}
    assert client.post(f"/workspaces/{ws}/members", json=body, headers=owner).status_code == 201
    again = client.post(f"/workspaces/{ws}/members", json={**body, "role": "owner"}, headers=owner)
    assert again.status_code == 409
    assert again.json()["code"] == "ALREADY_MEMBER"
    roles = {
        m["username"]: m["role"]
        for m in client.get(f"/workspaces/{ws}/members", headers=owner).json()
    }
    assert roles["bob"] == "viewer"


def test_add_by_address_creates_the_wallet_user(app: FastAPI, client: TestClient) -> None:
    ws, owner = _team(app, client)
    address = Account.create().address
    resp = client.post(
        f"/workspaces/{ws}/members", json={"address": address.lower()}, headers=owner
    )
    assert resp.status_code == 201
    assert resp.json()["address"] == address  # stored checksummed
    assert resp.json()["username"] is None


def test_address_with_a_bad_checksum_is_422(app: FastAPI, client: TestClient) -> None:
    ws, owner = _team(app, client)
    good = "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"
    broken = "0x" + good[2:].swapcase()  # mixed case, wrong EIP-55 checksum
    resp = client.post(f"/workspaces/{ws}/members", json={"address": broken}, headers=owner)
    assert resp.status_code == 422
    assert resp.json()["detail"][0]["loc"] == ["body", "address"]


def test_username_and_address_together_are_422(app: FastAPI, client: TestClient) -> None:
    ws, owner = _team(app, client)
    make_user(app, username="bob")
    body = {"username": "bob", "address": Account.create().address}
    assert client.post(f"/workspaces/{ws}/members", json=body, headers=owner).status_code == 422


def test_neither_username_nor_address_is_422(app: FastAPI, client: TestClient) -> None:
    ws, owner = _team(app, client)
    resp = client.post(f"/workspaces/{ws}/members", json={"role": "viewer"}, headers=owner)
    assert resp.status_code == 422


def test_unknown_role_is_422(app: FastAPI, client: TestClient) -> None:
    ws, owner = _team(app, client)
    make_user(app, username="bob")
    body = {"username": "bob", "role": "superuser"}
    resp = client.post(f"/workspaces/{ws}/members", json=body, headers=owner)
    assert resp.status_code == 422
    assert resp.json()["detail"][0]["loc"] == ["body", "role"]


def test_member_cannot_add_members(app: FastAPI, client: TestClient) -> None:
    owner = make_user(app, username="owner")
    member = make_user(app, username="member")
    make_user(app, username="carol")
    ws = make_workspace(app, owner, members={member.id: "member"})
    resp = client.post(
        f"/workspaces/{ws}/members",
        json={"username": "carol", "role": "viewer"},
        headers=auth_headers(client, "member"),
    )
    assert resp.status_code == 403


def test_viewer_cannot_promote_itself(app: FastAPI, client: TestClient) -> None:
    owner = make_user(app, username="owner")
    viewer = make_user(app, username="viewer")
    ws = make_workspace(app, owner, members={viewer.id: "viewer"})
    resp = client.patch(
        f"/workspaces/{ws}/members/{viewer.id}",
        json={"role": "owner"},
        headers=auth_headers(client, "viewer"),
    )
    assert resp.status_code == 403


def test_owner_changes_a_role(app: FastAPI, client: TestClient) -> None:
    ws, owner = _team(app, client)
    bob = make_user(app, username="bob")
    client.post(f"/workspaces/{ws}/members", json={"username": "bob"}, headers=owner)
    resp = client.patch(
        f"/workspaces/{ws}/members/{bob.id}", json={"role": "viewer"}, headers=owner
    )
    assert resp.status_code == 200
    assert resp.json()["role"] == "viewer"


def test_last_owner_cannot_be_removed(app: FastAPI, client: TestClient) -> None:
    owner = make_user(app, username="owner")
    ws = make_workspace(app, owner)
    resp = client.delete(
        f"/workspaces/{ws}/members/{owner.id}", headers=auth_headers(client, "owner")
    )
    assert resp.status_code == 409
    assert resp.json()["code"] == "LAST_OWNER"


def test_last_owner_cannot_be_demoted(app: FastAPI, client: TestClient) -> None:
    owner = make_user(app, username="owner")
    ws = make_workspace(app, owner)
    resp = client.patch(
        f"/workspaces/{ws}/members/{owner.id}",
        json={"role": "member"},
        headers=auth_headers(client, "owner"),
    )
    assert resp.status_code == 409


def test_one_of_two_owners_can_leave(app: FastAPI, client: TestClient) -> None:
    first = make_user(app, username="first")
    second = make_user(app, username="second")
    ws = make_workspace(app, first, members={second.id: "owner"})
    resp = client.delete(
        f"/workspaces/{ws}/members/{first.id}", headers=auth_headers(client, "first")
    )
    assert resp.status_code == 204


def test_removed_member_loses_access(app: FastAPI, client: TestClient) -> None:
    owner = make_user(app, username="owner")
    bob = make_user(app, username="bob")
    ws = make_workspace(app, owner, members={bob.id: "member"})
    bob_headers = auth_headers(client, "bob")
    resp = client.delete(
        f"/workspaces/{ws}/members/{bob.id}", headers=auth_headers(client, "owner")
    )
    assert resp.status_code == 204
    assert client.get(f"/workspaces/{ws}", headers=bob_headers).status_code == 403


def test_member_may_leave_but_not_remove_others(app: FastAPI, client: TestClient) -> None:
    owner = make_user(app, username="owner")
    bob = make_user(app, username="bob")
    ws = make_workspace(app, owner, members={bob.id: "member"})
    bob_headers = auth_headers(client, "bob")
    assert (
        client.delete(f"/workspaces/{ws}/members/{owner.id}", headers=bob_headers).status_code
        == 403
    )
    assert (
        client.delete(f"/workspaces/{ws}/members/{bob.id}", headers=bob_headers).status_code == 204
    )


def test_removing_a_non_member_is_404(app: FastAPI, client: TestClient) -> None:
    ws, owner = _team(app, client)
    stranger = make_user(app, username="stranger")
    resp = client.delete(f"/workspaces/{ws}/members/{stranger.id}", headers=owner)
    assert resp.status_code == 404
    assert resp.json()["code"] == "MEMBER_NOT_FOUND"
