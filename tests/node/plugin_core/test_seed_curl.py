# ruff: noqa: E501  (the seed's examples are quoted verbatim)
"""Every curl example of seed 003, as written (host, key and the example's job id
substituted), run with real `curl` against a real `dcm serve` process; a fake provider
daemon (plain HTTP) claims and starts the job so that it is `running`, as in the seed."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account import Account

from node.config import NodeSettings
from node.db import make_engine, make_sessionmaker, session_scope
from node.schema import upgrade_schema
from tests.fixtures import web
from tests.fixtures.engines import require_engine
from tests.fixtures.served import Served

HOST = "https://your-cortex-instance.com"
EXAMPLE_ID = "job_1a2b3c4d5e6f"

# The seed's examples, verbatim.
LIST = """curl -X GET "https://your-cortex-instance.com/api/plugin-core/jobs?status=running&provider=akash" \\
  -H "Authorization: Bearer YOUR_API_KEY\""""
GET = """curl -X GET "https://your-cortex-instance.com/api/plugin-core/jobs/job_1a2b3c4d5e6f" \\
  -H "Authorization: Bearer YOUR_API_KEY\""""
CREATE = """curl -X POST "https://your-cortex-instance.com/api/plugin-core/jobs" \\
  -H "Authorization: Bearer YOUR_API_KEY" \\
  -H "Content-Type: application/json" \\
  -d '{
    "provider": "akash",
    "image": "nginx:alpine",
    "cpu": 1000,
    "memory": "512Mi",
    "storage": "1Gi",
    "duration": 3600,
    "env": {
      "DEBUG": "true"
    },
    "ports": [
      {
        "port": 80,
        "expose": true
      }
    ]
  }'"""
CANCEL = """curl -X POST "https://your-cortex-instance.com/api/plugin-core/jobs/job_1a2b3c4d5e6f/cancel" \\
  -H "Authorization: Bearer YOUR_API_KEY\""""
LOGS = """curl -X GET "https://your-cortex-instance.com/api/plugin-core/jobs/job_1a2b3c4d5e6f/logs?tail=100" \\
  -H "Authorization: Bearer YOUR_API_KEY\""""
METRICS = """curl -X GET "https://your-cortex-instance.com/api/plugin-core/jobs/job_1a2b3c4d5e6f/metrics?period=1h&resolution=1m" \\
  -H "Authorization: Bearer YOUR_API_KEY\""""

JOB_KEYS = {
    "id", "provider", "status", "image", "cpu", "memory", "storage", "duration",
    "createdAt", "startedAt", "endedAt", "cost", "statusMessage",
}  # fmt: skip


@dataclass
class Node:
    url: str
    key: str  # a workspace API key: YOUR_API_KEY
    provider_headers: dict[str, str]


def _login(url: str, username: str) -> dict[str, str]:
    resp = web.post(f"{url}/auth/login", json={"username": username, "password": "pw-123456"})
    resp.raise_for_status()
    return {"Authorization": f"Bearer {resp.json()['access_token']}"}


@pytest.fixture
def node(tmp_path: Path, database_url: str) -> Iterator[Node]:
    settings = NodeSettings(data_dir=tmp_path / "data", database_url=database_url)
    engine = make_engine(settings.sqlalchemy_url)
    upgrade_schema(engine)
    from node.auth.principal import Principal
    from node.auth.service import create_user
    from node.workspaces.service import create_workspace

    with session_scope(make_sessionmaker(engine)) as session:
        owner = create_user(session, "owner", "pw-123456")
        owner.address = Account.create().address
        create_workspace(session, Principal(owner.id, "owner"), "Team")
        provider = create_user(session, "provider", "pw-123456")
        provider.address = Account.create().address
    engine.dispose()
    served = Served(tmp_path / "data", database_url)
    try:
        owner_headers = _login(served.url, "owner")
        keys = {}
        for role in ("member", "provider"):
            resp = web.post(
                f"{served.url}/workspaces/1/api-keys",
                json={"name": role, "role": role},
                headers=owner_headers,
            )
            resp.raise_for_status()
            keys[role] = resp.json()["key"]
        provider_headers = _login(served.url, "provider")
        body = {"job_types": ["container"], "networks": ["akash"], "api_keys": [keys["provider"]]}
        web.post(
            f"{served.url}/v1/providers", json=body, headers=provider_headers
        ).raise_for_status()
        yield Node(served.url, keys["member"], provider_headers)
    finally:
        served.stop()


def _curl(node: Node, example: str, job_id: str | None = None) -> tuple[int, dict]:
    command = example.replace(HOST, node.url).replace("YOUR_API_KEY", node.key)
    if job_id is not None:
        command = command.replace(EXAMPLE_ID, job_id)
    command += " -s -w '\\n%{http_code}'"
    done = subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, check=True, timeout=30
    )
    text, _, code = done.stdout.rpartition("\n")
    return int(code), json.loads(text)


def test_every_seed_curl_example_runs_as_written(node: Node) -> None:
    require_engine(shutil.which("curl") is not None, "curl is not installed")

    code, created = _curl(node, CREATE)
    assert code == 201 and created["success"] is True
    job = created["data"]
    assert set(job) == JOB_KEYS and job["status"] == "pending"
    assert (job["provider"], job["image"], job["cpu"], job["memory"], job["storage"]) == (
        "akash", "nginx:alpine", 1000, "512Mi", "1Gi",
    )  # fmt: skip
    assert job["cost"] == {"current": 0, "projected": 0, "currency": "ETH"}
    job_id = job["id"]

    # a provider of the akash network claims and starts it
    claim = web.post(f"{node.url}/v1/providers/claim", json={}, headers=node.provider_headers)
    assert claim.status_code == 200 and claim.json()["data"]["job"]["id"] == job_id
    attempt = claim.json()["data"]["lease"]["attempt"]
    web.post(
        f"{node.url}/v1/jobs/{job_id}/start",
        json={"attempt": attempt},
        headers=node.provider_headers,
    ).raise_for_status()
    web.post(
        f"{node.url}/v1/jobs/{job_id}/logs",
        json={"attempt": attempt, "lines": [{"line": "Starting nginx..."}]},
        headers=node.provider_headers,
    ).raise_for_status()

    code, listed = _curl(node, LIST)
    assert code == 200 and [j["id"] for j in listed["data"]] == [job_id]
    assert listed["data"][0]["status"] == "running"
    assert listed["meta"] == {"pagination": {"total": 1, "page": 1, "limit": 20, "pages": 1}}

    code, got = _curl(node, GET, job_id)
    assert code == 200 and got["data"]["status"] == "running"
    assert got["data"]["config"] == {
        "env": {"DEBUG": "true"},
        "ports": [{"port": 80, "expose": True}],
    }
    assert got["data"]["results"]["exitCode"] is None
    assert [e["type"] for e in got["data"]["events"]] == ["created", "scheduled", "started"]

    code, logs = _curl(node, LOGS, job_id)
    assert code == 200 and [x["line"] for x in logs["data"]["logs"]] == ["Starting nginx..."]

    code, metrics = _curl(node, METRICS, job_id)
    assert code == 200 and {"cpu", "memory", "network"} <= set(metrics["data"])
    assert set(metrics["data"]["network"]) == {"rx", "tx"}

    code, cancelled = _curl(node, CANCEL, job_id)
    assert code == 200
    assert cancelled == {"success": True, "data": {"id": job_id, "status": "cancelling"}}

    # the example's own id names no job here: the seed's 404
    code, missing = _curl(node, GET)
    assert code == 404 and missing["error"]["code"] == "JOB_NOT_FOUND"
