"""The liveness probe is answered straight from the middleware stack (`node.app.DirectRoute`),
ahead of routing, and still as its route: the same bytes, a request id, a log line and
its own metrics label. Every other method and path goes through routing as before."""

from __future__ import annotations

import json
import logging

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.fixtures.metrics import metric_value


def _healthz_count(client: TestClient, status: str) -> float:
    text = client.get("/metrics").text
    return metric_value(text, "dcm_http_requests_total", route="/healthz", status=status) or 0.0


def test_the_probe_answers_without_routing(app: FastAPI, client: TestClient) -> None:
    routed = app.router.middleware_stack

    async def no_routing(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        raise AssertionError(f"routed: {scope['method']} {scope['path']}")

    app.router.middleware_stack = no_routing
    try:
        resp = client.get("/healthz")
        assert resp.status_code == 200
        assert resp.content == b'{"status":"ok"}'
        assert resp.headers["content-type"] == "application/json"
        assert resp.headers["content-length"] == "15"
        with pytest.raises(AssertionError, match="routed: GET /readyz"):
            client.get("/readyz")
    finally:
        app.router.middleware_stack = routed


def test_the_probe_keeps_its_request_id_log_line_and_metrics(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    before = _healthz_count(client, "200")
    with caplog.at_level(logging.INFO, logger="dcm.access"):
        resp = client.get("/healthz", headers={"X-Request-ID": "probe-1"})
        made = client.get("/healthz")
    assert resp.headers["x-request-id"] == "probe-1"
    assert len(made.headers["x-request-id"]) == 32  # made by the node when not given
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "dcm.access"]
    entry = next(line for line in lines if line["request_id"] == "probe-1")
    assert (entry["method"], entry["path"], entry["status"]) == ("GET", "/healthz", 200)
    assert _healthz_count(client, "200") == before + 2


@pytest.mark.parametrize("method", ["HEAD", "POST", "DELETE"])
def test_other_methods_on_the_probe_are_routed_as_before(client: TestClient, method: str) -> None:
    resp = client.request(method, "/healthz")
    assert resp.status_code == 405
    assert resp.headers["allow"] == "GET"


@pytest.mark.parametrize("path", ["/healthz/", "/healthz/x", "/HEALTHZ"])
def test_neighbouring_paths_are_routed_as_before(client: TestClient, path: str) -> None:
    assert client.get(path, follow_redirects=False).status_code in (307, 404)
