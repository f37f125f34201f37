"""Seed 003's error table on `/api/plugin-core`: its code for each status, in its
envelope, the domain's own code kept in `details.reason`."""

from __future__ import annotations

from fastapi.testclient import TestClient

from node.config import NodeSettings
from node.errors import plugin_core_error
from tests.fixtures.app import create_app
from tests.node.plugin_core.conftest import BASE


def test_each_status_answers_the_seeds_code():
    assert plugin_core_error(422, "INVALID_FIELD", None) == (
        400,
        "VALIDATION_ERROR",
        {"reason": "INVALID_FIELD"},
    )
    assert plugin_core_error(401, "INVALID_API_KEY", None)[1] == "UNAUTHORIZED"
    assert plugin_core_error(403, "NOT_ADMITTED", {"x": 1}) == (
        403,
        "FORBIDDEN",
        {"x": 1, "reason": "NOT_ADMITTED"},
    )
    assert plugin_core_error(404, "NOT_FOUND", None)[1] == "JOB_NOT_FOUND"
    assert plugin_core_error(404, "TEMPLATE_NOT_FOUND", None)[1] == "TEMPLATE_NOT_FOUND"
    assert plugin_core_error(409, "INVALID_TRANSITION", None)[1] == "PROVIDER_CONFLICT"
    assert plugin_core_error(429, "RATE_LIMIT_EXCEEDED", None) == (429, "RATE_LIMIT_EXCEEDED", None)
    assert plugin_core_error(503, "UPSTREAM_UNAVAILABLE", None)[1] == "PROVIDER_UNAVAILABLE"
    assert plugin_core_error(500, "INTERNAL_ERROR", None) == (500, "INTERNAL_ERROR", None)
    assert plugin_core_error(413, "PAYLOAD_TOO_LARGE", None) == (413, "PAYLOAD_TOO_LARGE", None)


def test_too_many_rejected_keys_are_429_rate_limit_exceeded(settings: NodeSettings):
    settings.rate_limits.auth_failures_per_client = "2/minute"
    with TestClient(create_app(settings)) as node:
        bad = {"Authorization": "Bearer dcm_" + "x" * 43}
        assert [node.get(f"{BASE}/jobs", headers=bad).status_code for _ in range(2)] == [401, 401]
        resp = node.get(f"{BASE}/jobs", headers=bad)
        assert resp.status_code == 429
        assert resp.json()["success"] is False
        assert resp.json()["error"]["code"] == "RATE_LIMIT_EXCEEDED"
        assert "Retry-After" in resp.headers
