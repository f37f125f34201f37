"""The claim's fast path (`node.providers.router.claim_at_once`, in `node.app.FAST_PATHS`):
a JSON body that is a valid claim is answered in front of routing, anything else is left
to the route, and both answer alike: the same lease, the same errors, the same 204."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from node import app as node_app
from tests.node.providers.test_leases import _get, _job, _provider, _wallet_headers

CLAIM = ("POST", "/v1/providers/claim")
# a JSON media type FastAPI reads as JSON and the fast path leaves to the route
ROUTE_JSON = "application/merge-patch+json"


@pytest.fixture
def answered(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """One entry per claim request the fast path saw: True if it answered (a response or
    an error), False if it declined (the route answered). Set before the app routes its
    first request."""
    seen: list[bool] = []
    fast = node_app.FAST_PATHS[CLAIM]

    async def watched(request: Any) -> Any:
        try:
            response = await fast(request)
        except Exception:  # answered, with an error the app's handlers render
            seen.append(True)
            raise
        seen.append(response is not None)
        return response

    monkeypatch.setitem(node_app.FAST_PATHS, CLAIM, watched)
    return seen


def _by_route(client: TestClient, body: bytes, headers: dict[str, str]) -> Any:
    return client.post(
        "/v1/providers/claim", content=body, headers={**headers, "Content-Type": ROUTE_JSON}
    )


def _shape(value: Any) -> Any:
    """`value` with what differs between two leases (ids, lease ids, times) left out."""
    varies = {"id", "job_id", "lease_id", "expires_at", "ttl_seconds", "deadline_at"}
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items() if k not in varies}
    if isinstance(value, list):
        return [_shape(v) for v in value]
    return value


def test_the_claim_fast_path_and_the_route_answer_alike(
    answered: list[bool], app: FastAPI, client: TestClient
) -> None:
    headers = _provider(app, client, max_concurrent=4)
    first, second = _job(app, spec={"n": 1}), _job(app, spec={"n": 1})
    fast = client.post("/v1/providers/claim", json={}, headers=headers)
    by_route = _by_route(client, b"{}", headers)
    assert answered == [True, False]
    assert fast.status_code == by_route.status_code == 200, by_route.text
    assert fast.headers["content-type"] == by_route.headers["content-type"]
    leased = {fast.json()["data"]["lease"]["job_id"], by_route.json()["data"]["lease"]["job_id"]}
    assert leased == {f"job_{first}", f"job_{second}"}  # each job once
    assert _shape(fast.json()) == _shape(by_route.json())
    assert fast.json()["data"]["lease"]["attempt"] == 1
    assert _get(app, first).status == _get(app, second).status == "claimed"
    # nothing left: both answer 204, without a body
    empty_fast = client.post("/v1/providers/claim", json={}, headers=headers)
    empty_route = _by_route(client, b"{}", headers)
    assert empty_fast.status_code == empty_route.status_code == 204
    assert empty_fast.content == empty_route.content == b""
    assert answered == [True, False, True, False]


def test_what_the_claim_fast_path_declines_the_route_decides(
    answered: list[bool], app: FastAPI, client: TestClient
) -> None:
    headers = _provider(app, client)
    bad_bodies = [
        {"wait_seconds": "soon"},
        {"wait_seconds": 301},
        {"job_types": "image_processing"},
        {"surprise": 1},
        [{}],
    ]
    for body in bad_bodies:
        resp = client.post("/v1/providers/claim", json=body, headers=headers)
        assert resp.status_code == 400, resp.text
        assert resp.json()["error"]["code"] == "INVALID_BODY"
    not_json = client.post("/v1/providers/claim", content=b"{", headers=headers)
    assert not_json.status_code == 400
    assert answered == [False] * (len(bad_bodies) + 1)
    job_id = _job(app)
    # the route reads the body the fast path read first: its job types are honoured
    other_type = _by_route(client, b'{"job_types": ["yolo_training"]}', headers)
    assert other_type.status_code == 204
    assert _get(app, job_id).status == "pending"


@pytest.mark.parametrize("route", [False, True], ids=["fast", "route"])
def test_claim_refusals_are_the_same_on_both_paths(
    answered: list[bool], app: FastAPI, client: TestClient, route: bool
) -> None:
    job_id = _job(app)
    unregistered = _wallet_headers(app, client, "stranger")
    cases = [
        ({}, 401, "UNAUTHORIZED"),
        ({"Authorization": "Bearer nope"}, 401, "INVALID_TOKEN"),
        (unregistered, 403, "PROVIDER_NOT_REGISTERED"),
    ]
    for headers, status, code in cases:
        if route:
            resp = _by_route(client, b"{}", headers)
        else:
            resp = client.post("/v1/providers/claim", json={}, headers=headers)
        assert resp.status_code == status, resp.text
        assert resp.json()["error"]["code"] == code
    assert answered == [not route] * len(cases)
    assert _get(app, job_id).status == "pending"
