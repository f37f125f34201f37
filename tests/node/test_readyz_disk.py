"""`/readyz` reports the free disk under the data directory and answers 503 when it is low,
before uploads start failing with 507 (issue 19 item 5)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.fixtures.app import create_app


def test_readyz_shows_the_free_disk(client):
    body = client.get("/readyz").json()
    assert body["status"] == "ready" and body["disk"]["free_bytes"] > 0
    assert body["disk"]["low"] is False


def test_readyz_is_unavailable_when_the_disk_is_low(settings):
    settings.upload.min_free_disk_bytes = 2**62  # more than any disk has
    with TestClient(create_app(settings)) as client:
        resp = client.get("/readyz")
    assert resp.status_code == 503
    assert resp.json()["disk"]["low"] is True and resp.json()["database"] == "ok"
