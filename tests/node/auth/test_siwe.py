"""Sign-In with Ethereum: real eth-account keys sign real EIP-4361 messages."""

from __future__ import annotations

import datetime as dt

import jwt
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import update

from node.db import session_scope
from node.models.auth import SiweNonce
from node.models.workspaces import Role
from tests.fixtures.factories import auth_headers, make_user, make_workspace
from tests.node.auth.conftest import new_account, sign, siwe_login, siwe_message


def _code(resp: object) -> str:
    return resp.json()["code"]  # type: ignore[attr-defined]


def test_nonce_names_what_the_message_must_contain(client: TestClient) -> None:
    first = client.get("/auth/nonce").json()
    second = client.get("/auth/nonce").json()
    assert first["nonce"] != second["nonce"]
    assert len(first["nonce"]) >= 8 and first["nonce"].isalnum()
    assert first["domain"] == "testserver"  # host of public_url in the test settings
    assert first["chain_id"] == client.get("/chain/info").json()["chain_id"]
    assert first["expires_at"].endswith("Z")


def test_sign_in_returns_a_token_pair_for_the_checksummed_address(client: TestClient) -> None:
    account = new_account()
    resp = siwe_login(client, account)
    assert resp.status_code == 200, resp.text
    pair = resp.json()
    assert set(pair) == {"access_token", "refresh_token", "token_type"}
    claims = jwt.decode(pair["access_token"], options={"verify_signature": False})
    assert claims["sub"] == account.address
    me = client.get("/auth/me", headers={"Authorization": f"Bearer {pair['access_token']}"})
    assert me.json()["address"] == account.address
    assert me.json()["username"] is None


def test_second_sign_in_of_a_wallet_is_the_same_user(client: TestClient) -> None:
    account = new_account()
    ids = []
    for _ in range(2):
        token = siwe_login(client, account).json()["access_token"]
        ids.append(client.get("/auth/me", headers={"Authorization": f"Bearer {token}"}).json())
    assert ids[0]["id"] == ids[1]["id"]


def test_wallet_refresh_token_rotates_like_a_password_one(client: TestClient) -> None:
    pair = siwe_login(client, new_account()).json()
    resp = client.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert resp.status_code == 200


def test_replayed_message_is_refused(client: TestClient) -> None:
    account = new_account()
    message = siwe_message(client, account)
    body = {"message": message, "signature": sign(account, message)}
    assert client.post("/auth/siwe", json=body).status_code == 200
    replay = client.post("/auth/siwe", json=body)
    assert replay.status_code == 401
    assert _code(replay) == "NONCE_INVALID"
    assert replay.headers["www-authenticate"] == "Bearer"


def test_nonce_the_node_never_issued_is_refused(client: TestClient) -> None:
    resp = siwe_login(client, new_account(), nonce="madeup12345678")
    assert resp.status_code == 401
    assert _code(resp) == "NONCE_INVALID"


def test_expired_nonce_is_refused(app: FastAPI, client: TestClient) -> None:
    account = new_account()
    message = siwe_message(client, account)
    with session_scope(app.state.runtime.sessionmaker) as session:
        past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
        session.execute(update(SiweNonce).values(expires_at=past))
    resp = client.post("/auth/siwe", json={"message": message, "signature": sign(account, message)})
    assert resp.status_code == 401
    assert _code(resp) == "NONCE_INVALID"


def test_nonce_lifetime_follows_settings(app: FastAPI, client: TestClient) -> None:
    app.state.runtime.settings = app.state.runtime.settings.model_copy(
        update={"siwe_nonce_seconds": 30}
    )
    expires = dt.datetime.fromisoformat(client.get("/auth/nonce").json()["expires_at"])
    left = (expires - dt.datetime.now(dt.UTC)).total_seconds()
    assert 25 < left <= 30


def test_wrong_domain_is_refused(client: TestClient) -> None:
    resp = siwe_login(client, new_account(), domain="evil.example")
    assert resp.status_code == 401
    assert _code(resp) == "SIWE_DOMAIN_MISMATCH"


def test_wrong_scheme_is_refused(client: TestClient) -> None:
    resp = siwe_login(client, new_account(), scheme="https")  # the test node is http://
    assert resp.status_code == 401
    assert _code(resp) == "SIWE_DOMAIN_MISMATCH"


def test_configured_siwe_domain_replaces_the_public_url_host(
    app: FastAPI, client: TestClient
) -> None:
    app.state.runtime.settings = app.state.runtime.settings.model_copy(
        update={"siwe_domain": "dcm.example:8443"}
    )
    account = new_account()
    assert siwe_login(client, account, domain="testserver").status_code == 401
    assert siwe_login(client, account).status_code == 200  # the nonce answer names the domain


def test_wrong_chain_id_is_refused(client: TestClient) -> None:
    resp = siwe_login(client, new_account(), chain_id=1)
    assert resp.status_code == 401
    assert _code(resp) == "SIWE_CHAIN_MISMATCH"


def test_expired_message_is_refused(client: TestClient) -> None:
    now = dt.datetime.now(dt.UTC)
    resp = siwe_login(
        client,
        new_account(),
        issued_at=now - dt.timedelta(minutes=10),
        expiration_time=now - dt.timedelta(seconds=1),
    )
    assert resp.status_code == 401
    assert _code(resp) == "SIWE_EXPIRED"


def test_message_not_valid_yet_is_refused(client: TestClient) -> None:
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
    resp = siwe_login(client, new_account(), not_before=later)
    assert resp.status_code == 401
    assert _code(resp) == "SIWE_NOT_YET_VALID"


def test_message_issued_in_the_future_is_refused(client: TestClient) -> None:
    resp = siwe_login(client, new_account(), issued_at=dt.datetime(2099, 1, 1, tzinfo=dt.UTC))
    assert resp.status_code == 401
    assert _code(resp) == "SIWE_NOT_YET_VALID"


def test_a_wallet_clock_a_little_ahead_is_tolerated(client: TestClient) -> None:
    ahead = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=20)  # under the 60 s skew
    resp = siwe_login(client, new_account(), issued_at=ahead, not_before=ahead)
    assert resp.status_code == 200, resp.text


def test_message_issued_before_its_nonce_could_exist_is_refused(client: TestClient) -> None:
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)  # nonces live 10 minutes
    resp = siwe_login(client, new_account(), issued_at=long_ago)
    assert resp.status_code == 401
    assert _code(resp) == "SIWE_EXPIRED"


def test_unexpired_message_with_a_window_is_accepted(client: TestClient) -> None:
    now = dt.datetime.now(dt.UTC)
    resp = siwe_login(
        client,
        new_account(),
        not_before=now - dt.timedelta(seconds=5),
        expiration_time=now + dt.timedelta(minutes=5),
    )
    assert resp.status_code == 200


def test_signature_from_another_key_is_refused(client: TestClient) -> None:
    victim, attacker = new_account(), new_account()
    message = siwe_message(client, victim)
    resp = client.post(
        "/auth/siwe", json={"message": message, "signature": sign(attacker, message)}
    )
    assert resp.status_code == 401
    assert _code(resp) == "INVALID_SIGNATURE"


def test_signature_over_another_message_is_refused(client: TestClient) -> None:
    account = new_account()
    message = siwe_message(client, account)
    other = siwe_message(client, account)
    resp = client.post("/auth/siwe", json={"message": message, "signature": sign(account, other)})
    assert _code(resp) == "INVALID_SIGNATURE"


def test_unrecoverable_signature_is_401(client: TestClient) -> None:
    message = siwe_message(client, new_account())
    resp = client.post("/auth/siwe", json={"message": message, "signature": "0x" + "00" * 65})
    assert resp.status_code == 401
    assert _code(resp) == "INVALID_SIGNATURE"


def test_failed_attempt_does_not_burn_the_nonce(client: TestClient) -> None:
    account, attacker = new_account(), new_account()
    message = siwe_message(client, account)
    bad = client.post("/auth/siwe", json={"message": message, "signature": sign(attacker, message)})
    assert bad.status_code == 401
    good = client.post("/auth/siwe", json={"message": message, "signature": sign(account, message)})
    assert good.status_code == 200


def test_malformed_message_is_422_with_the_field_path(client: TestClient) -> None:
    account = new_account()
    message = siwe_message(client, account).replace("Version: 1", "Version: 9")
    resp = client.post("/auth/siwe", json={"message": message, "signature": sign(account, message)})
    assert resp.status_code == 422
    body = resp.json()
    assert body["code"] == "VALIDATION_ERROR"
    assert body["detail"][0]["loc"] == ["body", "message"]


def test_malformed_signature_is_422(client: TestClient) -> None:
    message = siwe_message(client, new_account())
    resp = client.post("/auth/siwe", json={"message": message, "signature": "0x1234"})
    assert resp.status_code == 422
    assert resp.json()["detail"][0]["loc"] == ["body", "signature"]


def test_unknown_field_in_the_sign_in_body_is_422(client: TestClient) -> None:
    account = new_account()
    message = siwe_message(client, account)
    body = {"message": message, "signature": sign(account, message), "admin": True}
    assert client.post("/auth/siwe", json=body).status_code == 422


def test_wallet_added_by_address_finds_its_workspace_after_sign_in(
    app: FastAPI, client: TestClient
) -> None:
    owner = make_user(app, username="owner")
    ws = make_workspace(app, owner)
    account = new_account()
    added = client.post(
        f"/workspaces/{ws}/members",
        json={"address": account.address.lower(), "role": "viewer"},
        headers=auth_headers(client, "owner"),
    )
    assert added.status_code == 201
    token = siwe_login(client, account).json()["access_token"]
    me = client.get("/auth/me", headers={"Authorization": f"Bearer {token}"}).json()
    assert me["id"] == added.json()["user_id"]
    assert me["workspaces"] == [{"id": ws, "name": "Team", "role": Role.VIEWER.value}]
