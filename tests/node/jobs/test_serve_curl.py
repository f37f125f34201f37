"""Seed 001's main flow with real `curl` against a real `dcm serve` process (uvicorn on
127.0.0.1, a random port, a temp DCM_DATA_DIR, and the test's database)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.config import NodeSettings
from node.db import make_engine, make_sessionmaker, session_scope
from node.schema import upgrade_schema
from tests.fixtures.engines import require_engine
from tests.fixtures.served import Served, dcm_env, run_dcm
from tests.node.jobs.test_seed001_examples import CREATE_BODY, JOB_KEYS, LOGIN_BODY, PATCH_BODY

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def served(tmp_path: Path, database_url: str) -> Iterator[str]:
    """A `dcm serve` process with the seed's user and its workspace 1; yields its URL."""
    env = dcm_env(tmp_path / "data", database_url)
    run_dcm(["user", "create", "your_username", "--password-stdin"], env, "your_password\n")
    settings = NodeSettings(data_dir=tmp_path / "data", database_url=database_url)
    engine = make_engine(settings.sqlalchemy_url)
    upgrade_schema(engine)
    from node.auth.principal import Principal
    from node.auth.repository import user_by_username
    from node.workspaces.service import create_workspace

    with session_scope(make_sessionmaker(engine)) as session:
        user = user_by_username(session, "your_username")
        assert user is not None
        assert create_workspace(session, Principal(user.id, "your_username"), "Team").id == 1
    engine.dispose()

    node = Served(tmp_path / "data", database_url)
    try:
        yield node.url
    finally:
        node.stop()


def test_seed001_flow_with_curl_against_dcm_serve(served: str) -> None:
    require_engine(shutil.which("curl") is not None, "curl is not installed")

    def curl(method: str, path: str, body: str | None = None, token: str | None = None):
        cmd = ["curl", "-s", "-w", "\n%{http_code}", "-X", method, served + path]
        if token:
            cmd += ["-H", f"Authorization: Bearer {token}"]
        if body is not None:
            cmd += ["-H", "Content-Type: application/json", "-d", body]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=30).stdout
        text, _, code = out.rpartition("\n")
        return int(code), json.loads(text) if text else None

    code, tokens = curl("POST", "/auth/login", LOGIN_BODY)
    assert code == 200 and tokens["token_type"] == "bearer"
    token = tokens["access_token"]

    code, job = curl("POST", "/workspace/1/jobs", CREATE_BODY, token)
    assert code == 201 and set(job) == JOB_KEYS and job["status"] == "pending"
    job_id = job["job_id"]

    code, page = curl("GET", "/workspace/1/jobs?status=pending&page=1&limit=10", token=token)
    assert code == 200 and [j["job_id"] for j in page["data"]] == [job_id]
    assert page["pagination"] == {"page": 1, "limit": 10, "total": 1, "total_pages": 1}

    code, job = curl("PATCH", f"/workspace/1/jobs/{job_id}", PATCH_BODY, token)
    assert code == 200 and job["status"] == "running"
    assert job["result"]["rows_processed"] == 25000

    code, status = curl("GET", f"/workspace/1/jobs/{job_id}/status", token=token)
    assert code == 200 and status["progress_percent"] == 50

    code, result = curl("GET", f"/workspace/1/jobs/{job_id}/result", token=token)
    assert code == 200 and result["result"]["intermediate_data"] == "temp_results.json"

    code, job = curl("POST", f"/workspace/1/jobs/{job_id}/cancel", token=token)
    assert code == 200 and job["status"] == "cancelled"
    code, job = curl("POST", f"/workspace/1/jobs/{job_id}/retry", token=token)
    assert code == 200 and job["status"] == "pending" and job["retry_count"] == 1

    code, legacy = curl("GET", "/jobs?workspace_id=1", token=token)
    assert code == 200 and legacy["pagination"]["total"] == 1

    code, err = curl("GET", "/workspace/2/jobs/" + job_id, token=token)
    assert code == 404
    code, err = curl("GET", "/workspace/1/jobs", token="bad")
    assert code == 401 and "detail" in err
