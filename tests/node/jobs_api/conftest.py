"""Fixtures of seed 004's dialect tests: a user owning a workspace, that workspace's API key
(the seed's `YOUR_API_KEY`) and the user's own token."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.fixtures.factories import auth_headers, make_user, make_workspace


@dataclass
class Caller:
    workspace_id: int
    key: dict[str, str]  # Authorization: Bearer YOUR_API_KEY (a workspace API key)
    user: dict[str, str]  # the owner's own token


@pytest.fixture
def caller(app: FastAPI, client: TestClient) -> Caller:
    owner = make_user(app)
    assert owner.username is not None
    ws = make_workspace(app, owner, name="Documents")
    user = auth_headers(client, owner.username)
    resp = client.post(
        f"/workspaces/{ws}/api-keys", json={"name": "docs", "role": "member"}, headers=user
    )
    assert resp.status_code == 201, resp.text
    key = resp.json()["key"]
    return Caller(ws, {"Authorization": f"Bearer {key}"}, user)
