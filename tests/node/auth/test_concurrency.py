"""Single-use credentials stay single-use under concurrent requests (two sessions racing
on one nonce or one refresh token; on PostgreSQL the conditional UPDATE's row lock
decides, on SQLite the write lock)."""

from __future__ import annotations

import threading
from collections.abc import Callable

from fastapi import FastAPI
from fastapi.testclient import TestClient

from marketplace.errors import MarketplaceError
from node.auth import service, siwe
from node.db import session_scope
from tests.fixtures.factories import login, make_user
from tests.node.auth.conftest import new_account, sign, siwe_message


def _race(app: FastAPI, attempt: Callable[..., object], n: int = 2) -> list[str]:
    barrier = threading.Barrier(n)
    outcomes: list[str] = []

    def run() -> None:
        barrier.wait()
        try:
            with session_scope(app.state.runtime.sessionmaker) as session:
                attempt(session)
            outcomes.append("ok")
        except MarketplaceError as exc:
            outcomes.append(exc.code)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return sorted(outcomes)


def test_concurrent_sign_ins_with_one_nonce_let_one_through(
    app: FastAPI, client: TestClient
) -> None:
    account = new_account()
    message = siwe_message(client, account)
    signature = sign(account, message)
    settings = app.state.runtime.settings
    chain_id = app.state.runtime.chain.chain_id
    outcomes = _race(
        app, lambda s: siwe.sign_in(s, settings, message, signature, chain_id=chain_id)
    )
    assert outcomes == ["NONCE_INVALID", "ok"]


def test_concurrent_refreshes_of_one_token_let_one_through(
    app: FastAPI, client: TestClient
) -> None:
    make_user(app, username="alice")
    token = login(client, "alice")["refresh_token"]
    settings = app.state.runtime.settings
    outcomes = _race(app, lambda s: service.refresh(s, settings, token))
    assert outcomes.count("ok") == 1
    assert len(outcomes) == 2
