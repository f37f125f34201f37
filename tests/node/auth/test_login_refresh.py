"""Password login (seed 001's shape), refresh-token rotation and reuse detection, and
what bearer tokens are accepted where."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from node.auth.tokens import encode_token
from node.config import NodeSettings
from tests.fixtures.factories import login, make_user


def _me(client: TestClient, token: str) -> object:
    return client.get("/auth/me", headers={"Authorization": f"Bearer {token}"})


def _refresh(client: TestClient, token: str) -> object:
    return client.post("/auth/refresh", json={"refresh_token": token})


def test_login_returns_seed_001_token_pair(app: FastAPI, client: TestClient) -> None:
    make_user(app, username="alice")
    resp = client.post("/auth/login", json={"username": "alice", "password": "s3cret-pass"})
    assert resp.status_code == 200
    body = resp.json()
    assert set(body) == {"access_token", "refresh_token", "token_type"}
    assert body["token_type"] == "bearer"
    assert _me(client, body["access_token"]).json()["username"] == "alice"


def test_wrong_password_is_401_with_bearer_challenge(app: FastAPI, client: TestClient) -> None:
    make_user(app, username="alice")
    resp = client.post("/auth/login", json={"username": "alice", "password": "wrong-pass"})
    assert resp.status_code == 401
    assert resp.headers["www-authenticate"] == "Bearer"
    assert resp.json()["code"] == "INVALID_CREDENTIALS"


def test_unknown_user_gets_the_same_answer_as_a_wrong_password(client: TestClient) -> None:
    resp = client.post("/auth/login", json={"username": "nobody", "password": "whatever1"})
    assert resp.status_code == 401
    assert resp.json()["detail"] == "Incorrect username or password"


def test_wallet_only_user_cannot_log_in_with_a_password(app: FastAPI, client: TestClient) -> None:
    # A wallet user has no password hash: no password may match it.
    from node.db import session_scope
    from node.models.auth import User

    with session_scope(app.state.runtime.sessionmaker) as session:
        session.add(User(username="walletish", address="0x" + "ab" * 20))
    resp = client.post("/auth/login", json={"username": "walletish", "password": "anything1"})
    assert resp.status_code == 401


def test_refresh_returns_a_working_new_pair(app: FastAPI, client: TestClient) -> None:
    make_user(app, username="alice")
    pair = login(client, "alice")
    resp = _refresh(client, pair["refresh_token"])
    assert resp.status_code == 200
    new = resp.json()
    assert new["refresh_token"] != pair["refresh_token"]
    assert new["token_type"] == "bearer"
    assert _me(client, new["access_token"]).status_code == 200
    assert _refresh(client, new["refresh_token"]).status_code == 200


def test_a_rotated_refresh_token_is_refused(app: FastAPI, client: TestClient) -> None:
    make_user(app, username="alice")
    pair = login(client, "alice")
    assert _refresh(client, pair["refresh_token"]).status_code == 200
    resp = _refresh(client, pair["refresh_token"])
    assert resp.status_code == 401
    assert resp.json()["code"] == "REFRESH_TOKEN_REUSED"


def test_reuse_of_a_rotated_token_revokes_every_session_of_the_user(
    app: FastAPI, client: TestClient
) -> None:
    make_user(app, username="alice")
    make_user(app, username="bob")
    laptop = login(client, "alice")
    phone = login(client, "alice")
    bob = login(client, "bob")
    rotated = _refresh(client, laptop["refresh_token"]).json()
    assert _refresh(client, laptop["refresh_token"]).status_code == 401  # the theft signal
    assert _refresh(client, rotated["refresh_token"]).status_code == 401
    assert _refresh(client, phone["refresh_token"]).status_code == 401
    assert _refresh(client, bob["refresh_token"]).status_code == 200  # other users unaffected


def test_access_token_is_not_a_refresh_token(app: FastAPI, client: TestClient) -> None:
    make_user(app, username="alice")
    resp = _refresh(client, login(client, "alice")["access_token"])
    assert resp.status_code == 401
    assert resp.json()["code"] == "INVALID_TOKEN"


def test_refresh_token_is_not_an_access_token(app: FastAPI, client: TestClient) -> None:
    make_user(app, username="alice")
    resp = _me(client, login(client, "alice")["refresh_token"])
    assert resp.status_code == 401
    assert resp.json()["code"] == "INVALID_TOKEN"


def test_expired_access_token_is_401(
    app: FastAPI, client: TestClient, settings: NodeSettings
) -> None:
    user = make_user(app, username="alice")
    token, _ = encode_token(
        settings.secret_key.get_secret_value(),
        user_id=user.id,
        subject="alice",
        token_type="access",
        ttl_seconds=-5,
    )
    resp = _me(client, token)
    assert resp.status_code == 401
    assert resp.json()["code"] == "TOKEN_EXPIRED"


def test_expired_refresh_token_is_refused(
    app: FastAPI, client: TestClient, settings: NodeSettings
) -> None:
    short = settings.model_copy(update={"refresh_token_seconds": -5})
    app.state.runtime.settings = short
    make_user(app, username="alice")
    pair = login(client, "alice")
    resp = _refresh(client, pair["refresh_token"])
    assert resp.status_code == 401
    assert resp.json()["code"] == "TOKEN_EXPIRED"


def test_token_signed_with_another_secret_is_401(app: FastAPI, client: TestClient) -> None:
    user = make_user(app, username="alice")
    forged, _ = encode_token(
        "not-the-node-secret-but-32-chars-long",
        user_id=user.id,
        subject="alice",
        token_type="access",
        ttl_seconds=60,
    )
    assert _me(client, forged).status_code == 401


def test_garbage_bearer_is_401(client: TestClient) -> None:
    resp = _me(client, "not.a.jwt")
    assert resp.status_code == 401
    assert resp.headers["www-authenticate"] == "Bearer"


def test_missing_bearer_is_401_with_challenge(client: TestClient) -> None:
    resp = client.get("/auth/me")
    assert resp.status_code == 401
    assert resp.headers["www-authenticate"] == "Bearer"


def test_token_of_a_disabled_user_is_refused(app: FastAPI, client: TestClient) -> None:
    from node.db import session_scope
    from node.models.auth import User

    user = make_user(app, username="alice")
    pair = login(client, "alice")
    with session_scope(app.state.runtime.sessionmaker) as session:
        session.get(User, user.id).is_active = False  # type: ignore[union-attr]
    assert _me(client, pair["access_token"]).status_code == 401
    assert _refresh(client, pair["refresh_token"]).status_code == 401


def test_login_body_errors_are_422_with_the_field_path(client: TestClient) -> None:
    cases = [
        ({"username": "alice", "password": "p" * 100_000}, ["body", "password"]),
        ({"username": "u" * 65, "password": "whatever1"}, ["body", "username"]),
        ({"username": 123, "password": "whatever1"}, ["body", "username"]),
        ({"username": "alice"}, ["body", "password"]),
        ({"username": "alice", "password": "whatever1", "admin": True}, ["body", "admin"]),
    ]
    for body, loc in cases:
        resp = client.post("/auth/login", json=body)
        assert resp.status_code == 422, body
        assert resp.json()["code"] == "VALIDATION_ERROR"
        assert loc in [d["loc"] for d in resp.json()["detail"]], body


def test_malformed_json_login_is_422(client: TestClient) -> None:
    resp = client.post(
        "/auth/login", content=b'{"username": "a",', headers={"Content-Type": "application/json"}
    )
    assert resp.status_code == 422


def test_refresh_with_a_huge_token_is_422(client: TestClient) -> None:
    resp = client.post("/auth/refresh", json={"refresh_token": "x" * 10_000})
    assert resp.status_code == 422
