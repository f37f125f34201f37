"""The auth side of operations: the Bearer scheme in OpenAPI, and request logs naming
the authenticated caller (never the credential)."""

from __future__ import annotations

import json
import logging

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.fixtures.factories import login, make_user


def test_openapi_declares_the_bearer_scheme_on_protected_routes(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert doc["paths"]["/auth/me"]["get"]["security"] == [{"bearer": []}]
    assert doc["paths"]["/workspaces"]["post"]["security"] == [{"bearer": []}]
    assert "security" not in doc["paths"]["/auth/login"]["post"]
    assert client.get("/docs").status_code == 200


def test_request_log_names_the_user_and_not_the_token(
    app: FastAPI, client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    user = make_user(app, username="alice")
    token = login(client, "alice")["access_token"]
    with caplog.at_level(logging.INFO, logger="dcm.access"):
        client.get("/auth/me", headers={"Authorization": f"Bearer {token}", "X-Request-ID": "r-1"})
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "dcm.access"]
    entry = next(line for line in lines if line["request_id"] == "r-1")
    assert (entry["path"], entry["status"], entry["user_id"]) == ("/auth/me", 200, user.id)
    assert token not in caplog.text
