"""Ids past what any id column holds (2**80), in a signed token or in any path parameter of
any route, are a 4xx: never a 500, never a dropped connection."""

from __future__ import annotations

import re
import time

import jwt
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.fixtures.factories import auth_headers, make_user, make_workspace

HUGE = 2**80


def _token(app: FastAPI, **claims: object) -> str:
    payload = {
        "sub": "someone",
        "uid": 1,
        "typ": "access",
        "jti": "a" * 32,
        "iat": int(time.time()),
        "exp": int(time.time()) + 600,
        **claims,
    }
    secret = app.state.runtime.settings.secret_key.get_secret_value()
    return jwt.encode(payload, secret, algorithm="HS256")


@pytest.mark.parametrize(
    "claims",
    [
        {"uid": HUGE},
        {"uid": -1},
        {"uid": 0},
        {"uid": True},
        {"uid": 1.5},
        {"uid": "1"},
        {"exp": HUGE},
        {"jti": "j" * 65},
        {"jti": 7},
        {"sub": {"nested": ["x"]}},
    ],
)
def test_a_signed_token_with_an_absurd_claim_is_401(
    app: FastAPI, client: TestClient, claims: dict[str, object]
) -> None:
    make_user(app, username="alice")
    headers = {"Authorization": f"Bearer {_token(app, **claims)}"}
    resp = client.get("/auth/me", headers=headers)
    assert resp.status_code == 401, resp.text
    assert resp.json()["code"] == "INVALID_TOKEN"
    assert client.get("/healthz").status_code == 200


def test_a_refresh_token_for_uid_2_pow_80_is_401(app: FastAPI, client: TestClient) -> None:
    token = _token(app, uid=HUGE, typ="refresh")
    resp = client.post("/auth/refresh", json={"refresh_token": token})
    assert resp.status_code == 401
    assert resp.json()["code"] == "INVALID_TOKEN"


def test_an_oversized_or_deeply_nested_token_is_401_before_parsing(client: TestClient) -> None:
    import base64

    deep_header = base64.urlsafe_b64encode(b"[" * 3000 + b"]" * 3000).rstrip(b"=").decode()
    for token in (deep_header + ".e30.sig", "x" * 5000):
        resp = client.get("/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert resp.status_code == 401


def _paths(app: FastAPI) -> list[tuple[str, str]]:
    """Every (method, path template) with a path parameter, as the OpenAPI document lists."""
    out = []
    for template, operations in app.openapi()["paths"].items():
        if "{" in template:
            out.extend((method.upper(), template) for method in operations if method != "head")
    return out


@pytest.mark.parametrize(
    "spelling", [str(HUGE), f"job_{HUGE}", str(-HUGE), "9" * 5000, "job_" + "9" * 5000]
)
def test_every_path_id_past_the_columns_is_a_4xx(
    app: FastAPI, client: TestClient, spelling: str
) -> None:
    owner = make_user(app, username="owner")
    make_workspace(app, owner)
    headers = auth_headers(client, "owner")
    paths = _paths(app)
    assert len(paths) > 20  # the scan covers the dialects, not a handful of routes
    for method, template in paths:
        path = re.sub(r"\{[^}/]+(:path)?\}", spelling, template)
        resp = client.request(method, path, json={}, headers=headers)
        assert 400 <= resp.status_code < 500, (method, path, resp.status_code, resp.text[:200])


def _integer_query_params(app: FastAPI) -> list[tuple[str, str, str]]:
    out = []
    for template, operations in app.openapi()["paths"].items():
        for method, op in operations.items():
            for param in op.get("parameters", []):
                schema = param.get("schema", {})
                types = {schema.get("type")} | {s.get("type") for s in schema.get("anyOf", [])}
                if param["in"] == "query" and "integer" in types:
                    out.append((method.upper(), template, param["name"]))
    return out


@pytest.mark.parametrize("value", [str(HUGE), "9" * 5000, str(-HUGE)])
def test_every_integer_query_parameter_past_any_range_is_a_4xx(
    app: FastAPI, client: TestClient, value: str
) -> None:
    owner = make_user(app, username="owner")
    make_workspace(app, owner)
    headers = auth_headers(client, "owner")
    params = _integer_query_params(app)
    assert len(params) > 5
    for method, template, name in params:
        path = re.sub(r"\{[^}/]+(:path)?\}", "1", template)
        resp = client.request(method, path, params={name: value}, json={}, headers=headers)
        assert resp.status_code < 500, (method, path, name, resp.status_code, resp.text[:200])


def test_a_range_header_with_absurd_numbers_is_answered_not_crashed(client: TestClient) -> None:
    make_user(client.app, username="ranger")
    headers = auth_headers(client, "ranger")
    files = {"f": ("a.txt", b"x" * 1000, "text/plain")}
    cid = client.post("/api/v0/add", files=files, headers=headers).json()
    url = f"/ipfs/{cid['Hash']}"
    assert client.get(url, headers={"range": "bytes=" + "9" * 5000 + "-"}).status_code == 416
    clamped = client.get(url, headers={"range": f"bytes=0-{HUGE}"})
    assert clamped.status_code == 206 and len(clamped.content) == 1000
    assert client.get(url, headers={"range": "bytes=-" + "9" * 5000}).status_code == 206
