"""The liveness probe and the embedded chain's JSON-RPC are answered straight from the
middleware stack (`node.app.DirectRoutes`), ahead of routing, and still as their routes:
the same bytes, a request id, a log line, their own metrics labels, and errors rendered
by the app's handlers. Every other method and path goes through routing as before."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.fixtures.metrics import metric_value


def _requests_count(client: TestClient, route: str, status: str) -> float:
    text = client.get("/metrics").text
    return metric_value(text, "dcm_http_requests_total", route=route, status=status) or 0.0


def _healthz_count(client: TestClient, status: str) -> float:
    return _requests_count(client, "/healthz", status)


@contextlib.contextmanager
def no_routing(app: FastAPI) -> Iterator[None]:
    """Routing raises while the block runs: what answers did not go through it."""
    routed = app.router.middleware_stack

    async def refuse(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        raise AssertionError(f"routed: {scope['method']} {scope['path']}")

    app.router.middleware_stack = refuse
    try:
        yield
    finally:
        app.router.middleware_stack = routed


def test_the_probe_answers_without_routing(app: FastAPI, client: TestClient) -> None:
    with no_routing(app):
        resp = client.get("/healthz")
        assert resp.status_code == 200
        assert resp.content == b'{"status":"ok"}'
        assert resp.headers["content-type"] == "application/json"
        assert resp.headers["content-length"] == "15"
        with pytest.raises(AssertionError, match="routed: GET /readyz"):
            client.get("/readyz")


def test_json_rpc_answers_without_routing(app: FastAPI, client: TestClient) -> None:
    call = {"jsonrpc": "2.0", "id": 7, "method": "eth_chainId", "params": []}
    before = _requests_count(client, "/chain/rpc", "200")
    with no_routing(app):
        resp = client.post("/chain/rpc", json=call, headers={"X-Request-ID": "rpc-1"})
        assert resp.status_code == 200 and resp.headers["x-request-id"] == "rpc-1"
        assert resp.json() == {
            "jsonrpc": "2.0",
            "id": 7,
            "result": hex(app.state.runtime.chain.chain_id),
        }
        broken = client.post("/chain/rpc", content=b"{not json")
        assert broken.json()["error"]["code"] == -32700
        with pytest.raises(AssertionError, match="routed: OPTIONS /chain/rpc"):
            client.options("/chain/rpc")  # the CORS preflight is routed as before
    assert _requests_count(client, "/chain/rpc", "200") == before + 2


def test_an_error_of_a_direct_route_is_rendered_by_the_app(
    app: FastAPI, client: TestClient
) -> None:
    runtime = app.state.runtime
    chain, runtime.chain = runtime.chain, None  # what a node whose chain is not up sees
    try:
        with no_routing(app):
            resp = client.post(
                "/chain/rpc", json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}
            )
    finally:
        runtime.chain = chain
    assert resp.status_code == 503
    body = resp.json()
    assert body["jsonrpc"] == "2.0" and body["id"] is None
    assert body["error"]["data"]["code"] == "UPSTREAM_UNAVAILABLE"
    assert resp.headers["x-request-id"]


def test_the_probe_keeps_its_request_id_log_line_and_metrics(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    """Its log line is DEBUG (load balancers ask many times a second): absent at INFO,
    where other requests keep theirs; the metrics count every probe."""
    before = _healthz_count(client, "200")
    with caplog.at_level(logging.INFO, logger="dcm.access"):
        client.get("/healthz", headers={"X-Request-ID": "probe-quiet"})
        client.get("/no-such-route", headers={"X-Request-ID": "not-a-probe"})
    access = [r for r in caplog.records if r.name == "dcm.access"]
    quiet = [json.loads(r.getMessage())["request_id"] for r in access]
    assert "probe-quiet" not in quiet and "not-a-probe" in quiet
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="dcm.access"):
        resp = client.get("/healthz", headers={"X-Request-ID": "probe-1"})
        made = client.get("/healthz")
    assert resp.headers["x-request-id"] == "probe-1"
    assert len(made.headers["x-request-id"]) == 32  # made by the node when not given
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "dcm.access"]
    entry = next(line for line in lines if line["request_id"] == "probe-1")
    assert (entry["method"], entry["path"], entry["status"]) == ("GET", "/healthz", 200)
    assert _healthz_count(client, "200") == before + 3


@pytest.mark.parametrize("method", ["HEAD", "POST", "DELETE"])
def test_other_methods_on_the_probe_are_routed_as_before(client: TestClient, method: str) -> None:
    resp = client.request(method, "/healthz")
    assert resp.status_code == 405
    assert resp.headers["allow"] == "GET"


@pytest.mark.parametrize("path", ["/healthz/", "/healthz/x", "/HEALTHZ"])
def test_neighbouring_paths_are_routed_as_before(client: TestClient, path: str) -> None:
    assert client.get(path, follow_redirects=False).status_code in (307, 404)
