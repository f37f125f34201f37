"""Prometheus metrics of the node (`GET /metrics`, `node.metrics`)."""

from __future__ import annotations

from fastapi.testclient import TestClient
from pydantic import SecretStr

from node.config import NodeSettings
from tests.fixtures.app import create_app
from tests.fixtures.factories import signed_in
from tests.fixtures.metrics import metric_value


def test_metrics_count_requests_by_route_template_and_jobs_by_status(
    client: TestClient,
) -> None:
    headers = signed_in(client.app, client)
    created = client.post("/v1/jobs", headers=headers, json={"type": "bench", "payload": {}})
    assert created.status_code == 201
    job_id = created.json()["data"]["id"]
    before = client.get("/metrics").text
    route = "/v1/jobs/{jobId}"
    seen = metric_value(before, "dcm_http_requests_total", route=route, status="200") or 0.0
    for _ in range(3):
        assert client.get(f"/v1/jobs/{job_id}", headers=headers).status_code == 200
    assert client.get("/v1/jobs/job_999999", headers=headers).status_code == 404

    resp = client.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    text = resp.text
    assert metric_value(text, "dcm_http_requests_total", route=route, status="200") == seen + 3
    assert metric_value(text, "dcm_http_requests_total", route=route, status="404") is not None
    assert f'route="/v1/jobs/{job_id}"' not in text  # templates, never raw paths
    assert metric_value(text, "dcm_http_request_duration_seconds_count", route=route) is not None
    assert metric_value(text, "dcm_jobs", status="pending", type="bench") == 1.0
    assert metric_value(text, "dcm_outbox_open") == 0.0
    assert metric_value(text, "dcm_replica_leader") == 1.0
    assert metric_value(text, "dcm_content_pins") is not None


def test_metrics_are_not_public_in_production_unless_configured(settings: NodeSettings) -> None:
    prod = settings.model_copy(update={"environment": "production"})
    with TestClient(create_app(prod)) as client:
        assert client.get("/metrics").status_code == 404
    token = prod.model_copy(update={"metrics_token": SecretStr("scrape-me-0123456789")})
    with TestClient(create_app(token)) as client:
        assert client.get("/metrics").status_code == 404
        wrong = {"Authorization": "Bearer nope"}
        assert client.get("/metrics", headers=wrong).status_code == 404
        right = {"Authorization": "Bearer scrape-me-0123456789"}
        assert client.get("/metrics", headers=right).status_code == 200
    public = settings.model_copy(update={"environment": "production", "metrics_public": True})
    with TestClient(create_app(public)) as client:
        assert client.get("/metrics").status_code == 200
