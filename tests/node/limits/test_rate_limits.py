"""Rate limits per client address and per account: 429 RATE_LIMIT_EXCEEDED with Retry-After
in the envelope of the dialect that was called (node.limits.rates)."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account import Account
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError

from marketplace.errors import RateLimited
from node.config import NodeSettings, RateLimits
from node.errors import install_error_handlers
from node.limits.rates import RateLimiter
from tests.fixtures.app import create_app
from tests.fixtures.factories import auth_headers, login, make_user

OTHER_CLIENT = ("10.1.2.3", 40000)


def other_client(node: TestClient) -> TestClient:
    """A second client address on the same (started) app."""
    return TestClient(node.app, client=OTHER_CLIENT)


def assert_rate_limited(resp: Any, code_path: tuple[str, ...] = ("code",)) -> None:
    assert resp.status_code == 429, resp.text
    assert int(resp.headers["retry-after"]) >= 1
    body = resp.json()
    for key in code_path:
        body = body[key]
    assert body == "RATE_LIMIT_EXCEEDED"


def bad_login(client: TestClient, username: str = "alice") -> Any:
    return client.post("/auth/login", json={"username": username, "password": "wrong-password"})


def test_logins_past_the_per_client_limit_get_429(settings: NodeSettings) -> None:
    settings.rate_limits.login_per_client = "3/minute"
    with TestClient(create_app(settings)) as node:
        statuses = [bad_login(node, f"user{i}").status_code for i in range(3)]
        assert statuses == [401, 401, 401]
        assert_rate_limited(bad_login(node, "user9"))
        assert bad_login(other_client(node), "user9").status_code == 401  # another address


def test_failed_logins_are_limited_per_account_from_any_address(settings: NodeSettings) -> None:
    settings.rate_limits.login_failures_per_account = "2/minute"
    with TestClient(create_app(settings)) as node:
        make_user(node.app, username="alice")
        make_user(node.app, username="bob")
        assert [bad_login(node).status_code for _ in range(2)] == [401, 401]
        elsewhere = other_client(node)
        assert_rate_limited(bad_login(elsewhere, "ALICE"))  # usernames compare case-blind
        good = {"username": "alice", "password": "s3cret-pass"}
        assert_rate_limited(elsewhere.post("/auth/login", json=good))
        assert bad_login(elsewhere, "bob").status_code == 401


def test_successful_logins_do_not_spend_the_failure_budget(settings: NodeSettings) -> None:
    settings.rate_limits.login_failures_per_account = "2/minute"
    with TestClient(create_app(settings)) as node:
        make_user(node.app, username="alice")
        for _ in range(5):
            login(node, "alice")


def test_nonce_requests_past_the_limit_get_429(settings: NodeSettings) -> None:
    settings.rate_limits.nonce_per_client = "2/minute"
    with TestClient(create_app(settings)) as node:
        assert [node.get("/auth/nonce").status_code for _ in range(2)] == [200, 200]
        assert_rate_limited(node.get("/auth/nonce"))


def test_wallet_sign_ins_past_the_limit_get_429(settings: NodeSettings) -> None:
    settings.rate_limits.siwe_per_client = "2/minute"
    with TestClient(create_app(settings)) as node:
        body = {"message": "not a sign-in message", "signature": "0x" + "11" * 65}
        assert [node.post("/auth/siwe", json=body).status_code for _ in range(2)] == [422, 422]
        assert_rate_limited(node.post("/auth/siwe", json=body))


def test_refreshes_past_the_per_account_limit_get_429(settings: NodeSettings) -> None:
    settings.rate_limits.refresh_per_account = "2/minute"
    with TestClient(create_app(settings)) as node:
        make_user(node.app, username="alice")
        token = login(node, "alice")["refresh_token"]
        for _ in range(2):
            resp = node.post("/auth/refresh", json={"refresh_token": token})
            assert resp.status_code == 200, resp.text
            token = resp.json()["refresh_token"]
        assert_rate_limited(other_client(node).post("/auth/refresh", json={"refresh_token": token}))


def test_faucet_is_limited_per_client_and_per_receiving_address(settings: NodeSettings) -> None:
    settings.rate_limits.faucet_per_client = "3/minute"
    settings.rate_limits.faucet_per_address = "2/minute"
    with TestClient(create_app(settings)) as node:
        target = Account.create().address
        body = {"address": target, "amount": "0.1"}
        assert [node.post("/chain/faucet", json=body).status_code for _ in range(2)] == [200, 200]
        assert_rate_limited(other_client(node).post("/chain/faucet", json=body))
        fresh = {"address": Account.create().address, "amount": "0.1"}
        assert node.post("/chain/faucet", json=fresh).status_code == 200
        assert_rate_limited(node.post("/chain/faucet", json=fresh))  # 4th from this client


def test_rejected_credentials_are_limited_per_client(settings: NodeSettings) -> None:
    settings.rate_limits.auth_failures_per_client = "3/minute"
    with TestClient(create_app(settings)) as node:
        make_user(node.app, username="alice")
        headers = auth_headers(other_client(node), "alice")
        bad = {"Authorization": "Bearer dcm_" + "x" * 43}
        statuses = [node.get("/v1/jobs?limit=1", headers=bad).status_code for _ in range(3)]
        assert statuses == [401, 401, 401]
        assert_rate_limited(node.get("/v1/jobs?limit=1", headers=bad), ("error", "code"))
        assert other_client(node).get("/v1/jobs?limit=1", headers=headers).status_code == 200


def test_uploads_past_the_limit_get_429(settings: NodeSettings) -> None:
    settings.rate_limits.upload_per_client = "2/minute"
    with TestClient(create_app(settings)) as node:
        for _ in range(2):
            resp = node.post("/jobs/image_processing/upload", data={"model": "x"})
            assert resp.status_code != 429
        assert_rate_limited(node.post("/jobs/image_processing/upload", data={"model": "x"}))


def test_limits_can_be_turned_off(settings: NodeSettings) -> None:
    settings.rate_limits.enabled = False
    settings.rate_limits.login_per_client = "1/minute"
    with TestClient(create_app(settings)) as node:
        assert {bad_login(node).status_code for _ in range(5)} == {401}


def test_a_bucket_refills_evenly_over_its_period() -> None:
    now = [1000.0]
    limiter = RateLimiter(RateLimits(login_per_client="2/minute"), clock=lambda: now[0])
    limiter.hit("login_per_client", "a")
    limiter.hit("login_per_client", "a")
    with pytest.raises(RateLimited) as refused:
        limiter.hit("login_per_client", "a")
    assert refused.value.headers == {"Retry-After": "30"}
    now[0] += 30
    limiter.hit("login_per_client", "a")
    with pytest.raises(RateLimited):
        limiter.hit("login_per_client", "a")


def test_the_stalest_buckets_are_dropped_past_the_key_cap() -> None:
    limiter = RateLimiter(RateLimits(nonce_per_client="1/hour", max_tracked_keys=100))
    for i in range(250):
        limiter.hit("nonce_per_client", f"10.0.0.{i}")
    limiter.hit("nonce_per_client", "10.0.0.0")  # dropped, so full again
    with pytest.raises(RateLimited):
        limiter.hit("nonce_per_client", "10.0.0.249")


def test_a_malformed_rate_is_refused_at_start() -> None:
    with pytest.raises(ValidationError, match="N/second, N/minute or N/hour"):
        RateLimits(login_per_client="20 per minute")


@pytest.mark.parametrize(
    ("path", "code_path"),
    [
        ("/api/plugin-core/jobs", ("error", "code")),  # seed 003
        ("/api/jobs", ("error", "code")),  # seed 004
        ("/v1/jobs", ("error", "code")),  # seed 002
        ("/workspace/1/jobs", ("code",)),  # seed 001
        ("/chain/rpc", ("error", "data", "code")),  # JSON-RPC
    ],
)
def test_429_is_rendered_in_each_dialects_envelope(path: str, code_path: tuple[str, ...]) -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get(path)
    def limited() -> None:
        raise RateLimited("Too many requests; retry later", retry_after_seconds=2.5)

    resp = TestClient(app).get(path)
    assert_rate_limited(resp, code_path)
    assert resp.headers["retry-after"] == "3"
