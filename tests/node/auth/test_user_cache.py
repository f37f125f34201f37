"""The access-token user cache (`node.auth.cache`): bounded in time and size, dropped on
`forget`, and never a way around the token's own checks (signature, expiry, type)."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from node.auth.cache import CachedUser, UserCache
from node.auth.tokens import encode_token
from node.config import NodeSettings
from node.db import session_scope
from node.models.auth import User
from tests.fixtures.factories import login, make_user


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_entry_lives_ttl_seconds() -> None:
    clock = Clock()
    cache = UserCache(5.0, clock=clock)
    cache.put(CachedUser(user_id=1, address="0xabc"))
    clock.now += 4.9
    assert cache.get(1) == CachedUser(user_id=1, address="0xabc")
    clock.now += 0.1
    assert cache.get(1) is None
    assert len(cache) == 0


def test_the_least_recently_used_entry_goes_past_max_entries() -> None:
    cache = UserCache(60.0, max_entries=2, clock=Clock())
    for uid in (1, 2):
        cache.put(CachedUser(user_id=uid, address=None))
    assert cache.get(1) is not None  # used: 2 is now the least recently used
    cache.put(CachedUser(user_id=3, address=None))
    assert cache.get(2) is None
    assert cache.get(1) is not None and cache.get(3) is not None


def test_forget_and_a_zero_ttl() -> None:
    cache = UserCache(60.0, clock=Clock())
    cache.put(CachedUser(user_id=1, address=None))
    cache.forget(1)
    assert cache.get(1) is None
    off = UserCache(0)
    off.put(CachedUser(user_id=1, address=None))
    assert off.get(1) is None and len(off) == 0


def _me(client: TestClient, token: str) -> int:
    return client.get("/auth/me", headers={"Authorization": f"Bearer {token}"}).status_code


def _deactivate(app: FastAPI, user_id: int) -> None:
    with session_scope(app.state.runtime.sessionmaker) as session:
        session.get(User, user_id).is_active = False  # type: ignore[union-attr]


def test_a_deactivated_user_is_refused_once_forgotten(app: FastAPI, client: TestClient) -> None:
    user = make_user(app, username="alice")
    token = login(client, "alice")["access_token"]
    assert _me(client, token) == 200
    users = app.state.runtime.users
    assert users.get(user.id) is not None  # the lookup was kept
    _deactivate(app, user.id)
    users.forget(user.id)
    assert _me(client, token) == 401
    assert users.get(user.id) is None  # refusals are never cached


def test_without_the_cache_every_request_looks_the_user_up(
    app: FastAPI, client: TestClient, settings: NodeSettings
) -> None:
    assert app.state.runtime.users.ttl_seconds == settings.auth_user_cache_seconds > 0
    app.state.runtime.users = UserCache(0)  # what `auth_user_cache_seconds=0` builds
    user = make_user(app, username="bob")
    token = login(client, "bob")["access_token"]
    assert _me(client, token) == 200
    _deactivate(app, user.id)
    assert _me(client, token) == 401


@pytest.mark.parametrize("problem", ["expired", "forged", "refresh"])
def test_a_cached_user_does_not_make_a_bad_token_good(
    app: FastAPI, client: TestClient, settings: NodeSettings, problem: str
) -> None:
    user = make_user(app, username="carol")
    assert _me(client, login(client, "carol")["access_token"]) == 200
    assert app.state.runtime.users.get(user.id) is not None
    secret = settings.secret_key.get_secret_value()
    kind, ttl = ("refresh", 60) if problem == "refresh" else ("access", 60)
    if problem == "expired":
        ttl = -60
    if problem == "forged":
        secret = "not-the-node-secret-" + "x" * 32
    token, _ = encode_token(
        secret, user_id=user.id, subject="carol", token_type=kind, ttl_seconds=ttl
    )
    assert _me(client, token) == 401
