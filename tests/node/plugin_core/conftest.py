"""Fixtures of the seed 003 (plugin-core) tests: a team workspace, its `member` API key
(the seed's YOUR_API_KEY) and `provider` key, and provider daemons that register and
claim through the real `/v1/providers` API."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from eth_account import Account
from fastapi import FastAPI
from fastapi.testclient import TestClient

from node.db import session_scope
from node.models.jobs import Job
from tests.fixtures.factories import auth_headers, make_user, make_workspace

BASE = "/api/plugin-core"
CLAIM = "/v1/providers/claim"


@dataclass
class Team:
    workspace_id: int
    owner: dict[str, str]  # the owner's user-token headers
    key: str  # a `member` API key: YOUR_API_KEY
    provider_key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


def make_team(app: FastAPI, client: TestClient, name: str = "team") -> Team:
    owner = make_user(app, username=f"{name}-owner", address=Account.create().address)
    ws = make_workspace(app, owner, name=name)
    headers = auth_headers(client, f"{name}-owner")
    keys = {}
    for role in ("member", "provider"):
        resp = client.post(
            f"/workspaces/{ws}/api-keys", json={"name": role, "role": role}, headers=headers
        )
        assert resp.status_code == 201, resp.text
        keys[role] = resp.json()["key"]
    return Team(ws, headers, keys["member"], keys["provider"])


@pytest.fixture
def team(app: FastAPI, client: TestClient) -> Team:
    return make_team(app, client)


class FakeProvider:
    """A provider daemon reduced to its HTTP calls: register, claim, start, finish."""

    def __init__(
        self,
        app: FastAPI,
        client: TestClient,
        name: str,
        *,
        networks: list[str] | None = None,
        keys: list[str] | None = None,
        job_types: list[str] | None = None,
        max_concurrent: int = 16,
        capabilities: dict[str, Any] | None = None,
    ) -> None:
        self.client = client
        make_user(app, username=name, address=Account.create().address)
        self.headers = auth_headers(client, name)
        body: dict[str, Any] = {
            "name": name,
            "job_types": job_types or ["container"],
            "api_keys": keys or [],
            "max_concurrent": max_concurrent,
            "capabilities": capabilities or {},
        }
        if networks is not None:
            body["networks"] = networks
        resp = client.post("/v1/providers", json=body, headers=self.headers)
        assert resp.status_code == 201, resp.text
        self.registered = resp.json()["data"]

    def claim(self) -> dict[str, Any] | None:
        resp = self.client.post(CLAIM, json={}, headers=self.headers)
        if resp.status_code == 204:
            return None
        assert resp.status_code == 200, resp.text
        return resp.json()["data"]

    def write(self, job_id: str, what: str, attempt: int, **body: Any) -> Any:
        resp = self.client.post(
            f"/v1/jobs/{job_id}/{what}", json={"attempt": attempt, **body}, headers=self.headers
        )
        return resp

    def run(self, claim: dict[str, Any]) -> tuple[str, int]:
        job_id, attempt = claim["job"]["id"], claim["lease"]["attempt"]
        assert self.write(job_id, "start", attempt).status_code == 200
        return job_id, attempt

    def finish(self, job_id: str, attempt: int, cid: str, exit_code: int = 0) -> None:
        resp = self.write(
            job_id,
            "result",
            attempt,
            result_cid=cid,
            result={"exit_code": exit_code, "output_cid": cid, "oom": False, "timed_out": False},
            result_type="container",
        )
        assert resp.status_code == 200, resp.text


def job_row(app: FastAPI, job_id: str) -> Job:
    with session_scope(app.state.runtime.sessionmaker) as session:
        job = session.get(Job, int(job_id.removeprefix("job_")))
        assert job is not None
        session.expunge(job)
        return job


CREATE = {
    "provider": "akash",
    "image": "nginx:alpine",
    "cpu": 1000,
    "memory": "512Mi",
    "storage": "1Gi",
    "duration": 3600,
    "env": {"DEBUG": "true"},
    "ports": [{"port": 80, "expose": True}],
}


def create(client: TestClient, headers: dict[str, str], **changes: Any) -> dict[str, Any]:
    resp = client.post(f"{BASE}/jobs", json={**CREATE, **changes}, headers=headers)
    assert resp.status_code == 201, resp.text
    return resp.json()["data"]
