"""Seed 001's curl examples, sent as written (same URLs, query strings, headers and
bodies, byte for byte), checked field for field against the seed's responses.

The seed's placeholder ids (`job_abc123`, `job_xyz789`) cannot exist in this node's id
scheme (`job_<n>`); where an example acts on an existing job, the id the create example
returned is substituted, exactly as a reader of the guide would do. `job_abc123` itself
gets the seed's 404 "Job not found in specified workspace".
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.fixtures.factories import make_user, make_workspace
from tests.node.jobs.conftest import SEED_PASSWORD, SEED_USER, Seed

BASE = "http://localhost:8000"
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
JOB_KEYS = {
    "job_id",
    "job_type",
    "status",
    "priority",
    "workspace_id",
    "created_by",
    "result",
    "estimated_duration",
    "actual_duration",
    "retry_count",
    "max_retries",
    "created_at",
    "updated_at",
    "started_at",
    "completed_at",
    "scheduled_at",
}
STATUS_KEYS = {"job_id", "status", "progress_percent", "progress_message", "updated_at"}
RESULT_KEYS = {"job_id", "result", "status", "completed_at"}
PAGINATION_KEYS = {"page", "limit", "total", "total_pages"}

# Request bodies exactly as the seed's `-d '...'` arguments spell them.
LOGIN_BODY = """{
    "username": "your_username",
    "password": "your_password"
  }"""
CREATE_BODY = """{
    "job_type": "data_processing",
    "workspace_id": 1,
    "priority": "high",
    "metadata": {
      "source_file": "dataset.csv",
      "output_format": "parquet",
      "filters": {"column": "value"}
    },
    "estimated_duration": 600,
    "scheduled_at": "2024-01-15T15:00:00Z"
  }"""
PIPELINE_BODY = """{
    "job_type": "data_processing",
    "workspace_id": 1,
    "priority": "high",
    "metadata": {
      "input_file": "raw_data.csv",
      "operations": ["clean", "transform", "aggregate"],
      "output_format": "parquet"
    },
    "estimated_duration": 1800
  }"""
PATCH_BODY = """{
    "status": "running",
    "progress_percent": 50,
    "progress_message": "Halfway complete",
    "result": {
      "intermediate_data": "temp_results.json",
      "rows_processed": 25000
    }
  }"""


def batch_body(i: int) -> str:
    """The body bash builds from the seed's `-d "{ ... \\"batch_id\\": $i ... }"`."""
    return f"""{{
      "job_type": "batch_analysis",
      "workspace_id": 1,
      "priority": "normal",
      "metadata": {{
        "batch_id": {i},
        "data_slice": "slice_{i}.csv"
      }}
    }}"""


class Curl:
    """`curl -X METHOD URL -H "Authorization: Bearer $TOKEN" [-H json -d BODY]`."""

    def __init__(self, client: TestClient, token: str | None = None) -> None:
        self.client, self.token = client, token

    def __call__(self, method: str, url: str, body: str | None = None) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        if body is not None:
            headers["Content-Type"] = "application/json"
        path = url.removeprefix(BASE)
        return self.client.request(method, path, headers=headers, content=body)


@pytest.fixture
def curl(client: TestClient, seed: Seed) -> Curl:
    """Logs in with the seed's login example and exports TOKEN."""
    resp = Curl(client)("POST", f"{BASE}/auth/login", LOGIN_BODY)
    assert resp.status_code == 200
    body = resp.json()
    assert set(body) == {"access_token", "refresh_token", "token_type"}
    assert body["token_type"] == "bearer"
    return Curl(client, body["access_token"])


def assert_job_shape(job: dict[str, Any]) -> None:
    assert set(job) == JOB_KEYS
    assert re.fullmatch(r"job_[1-9][0-9]*", job["job_id"])
    assert job["status"] in {"pending", "running", "success", "failed", "cancelled"}
    assert job["priority"] in {"low", "normal", "high", "urgent"}
    for key in ("created_at", "updated_at"):
        assert ISO.match(job[key]), job[key]
    for key in ("started_at", "completed_at", "scheduled_at"):
        assert job[key] is None or ISO.match(job[key]), job[key]


def test_create_job_example(curl: Curl, seed: Seed) -> None:
    resp = curl("POST", f"{BASE}/workspace/1/jobs", CREATE_BODY)
    assert resp.status_code == 201
    job = resp.json()
    assert_job_shape(job)
    assert job | {"job_id": "-", "created_at": "-", "updated_at": "-"} == {
        "job_id": "-",
        "job_type": "data_processing",
        "status": "pending",
        "priority": "high",
        "workspace_id": 1,
        "created_by": seed.user_id,
        "result": None,
        "estimated_duration": 600,
        "actual_duration": None,
        "retry_count": 0,
        "max_retries": 3,
        "created_at": "-",
        "updated_at": "-",
        "started_at": None,
        "completed_at": None,
        "scheduled_at": "2024-01-15T15:00:00Z",
    }


def test_list_and_filter_examples(curl: Curl) -> None:
    created = curl("POST", f"{BASE}/workspace/1/jobs", CREATE_BODY).json()

    resp = curl("GET", f"{BASE}/workspace/1/jobs")
    assert resp.status_code == 200
    page = resp.json()
    assert set(page) == {"data", "pagination"}
    assert page["pagination"] == {"page": 1, "limit": 50, "total": 1, "total_pages": 1}
    assert_job_shape(page["data"][0])
    assert page["data"][0]["job_id"] == created["job_id"]

    for url, expected_ids, pagination in [
        ("/workspace/1/jobs?status=running&job_type=data_analysis", [], (1, 50, 0, 0)),
        ("/workspace/1/jobs?status=pending&page=1&limit=10", [created["job_id"]], (1, 10, 1, 1)),
        ("/workspace/1/jobs?sort=created_at&order=desc", [created["job_id"]], (1, 50, 1, 1)),
        (
            "/workspace/1/jobs?priority=high&sort=updated_at&order=desc&page=1&limit=20",
            [created["job_id"]],
            (1, 20, 1, 1),
        ),
    ]:
        resp = curl("GET", BASE + url)
        assert resp.status_code == 200, (url, resp.text)
        body = resp.json()
        assert [j["job_id"] for j in body["data"]] == expected_ids, url
        assert set(body["pagination"]) == PAGINATION_KEYS
        assert tuple(body["pagination"].values()) == pagination, url


def test_single_job_examples(curl: Curl, seed: Seed) -> None:
    job_id = curl("POST", f"{BASE}/workspace/1/jobs", PIPELINE_BODY).json()["job_id"]

    got = curl("GET", f"{BASE}/workspace/1/jobs/{job_id}").json()
    assert_job_shape(got)
    assert got["job_id"] == job_id and got["estimated_duration"] == 1800

    resp = curl("PATCH", f"{BASE}/workspace/1/jobs/{job_id}", PATCH_BODY)
    assert resp.status_code == 200
    patched = resp.json()
    assert_job_shape(patched)
    assert patched["status"] == "running"
    assert patched["result"] == {
        "progress_percent": 50,
        "progress_message": "Halfway complete",
        "intermediate_data": "temp_results.json",
        "rows_processed": 25000,
    }
    assert patched["started_at"] is not None and patched["completed_at"] is None
    assert patched["actual_duration"] is None

    status = curl("GET", f"{BASE}/workspace/1/jobs/{job_id}/status").json()
    assert set(status) == STATUS_KEYS
    assert status | {"updated_at": "-"} == {
        "job_id": job_id,
        "status": "running",
        "progress_percent": 50,
        "progress_message": "Halfway complete",
        "updated_at": "-",
    }
    assert ISO.match(status["updated_at"])

    result = curl("GET", f"{BASE}/workspace/1/jobs/{job_id}/result").json()
    assert set(result) == RESULT_KEYS
    assert result["status"] == "running" and result["completed_at"] is None

    # Finish it the way the seed's update example would, then read the result again.
    done = curl(
        "PATCH",
        f"{BASE}/workspace/1/jobs/{job_id}",
        '{"status": "success", "result": {"output_file": "analysis_results.csv"}}',
    ).json()
    assert done["status"] == "success" and done["completed_at"] is not None
    assert isinstance(done["actual_duration"], int)
    result = curl("GET", f"{BASE}/workspace/1/jobs/{job_id}/result").json()
    assert result["status"] == "success"
    assert result["result"]["output_file"] == "analysis_results.csv"
    assert result["result"]["rows_processed"] == 25000  # merged, not replaced
    assert ISO.match(result["completed_at"])

    # The seed's placeholder id is a job that does not exist here.
    resp = curl("GET", f"{BASE}/workspace/1/jobs/job_abc123")
    assert resp.status_code == 404
    assert resp.json()["detail"] == "Job not found in specified workspace"


def test_cancel_and_retry_examples(curl: Curl) -> None:
    job_id = curl("POST", f"{BASE}/workspace/1/jobs", PIPELINE_BODY).json()["job_id"]
    curl(
        "PATCH",
        f"{BASE}/workspace/1/jobs/{job_id}",
        '{"status": "running", "result": {"partial_results": "temp_data.json"}}',
    )

    resp = curl("POST", f"{BASE}/workspace/1/jobs/{job_id}/cancel")
    assert resp.status_code == 200
    cancelled = resp.json()
    assert_job_shape(cancelled)
    assert cancelled["status"] == "cancelled"
    assert cancelled["result"] == {
        "cancelled_reason": "Cancelled via API",
        "partial_results": "temp_data.json",
    }
    assert cancelled["completed_at"] is not None
    assert isinstance(cancelled["actual_duration"], int)

    resp = curl("POST", f"{BASE}/workspace/1/jobs/{job_id}/retry")
    assert resp.status_code == 200
    retried = resp.json()
    assert_job_shape(retried)
    assert retried | {"job_id": "-", "created_at": "-", "updated_at": "-"} == {
        "job_id": "-",
        "job_type": "data_processing",
        "status": "pending",
        "priority": "high",
        "workspace_id": 1,
        "created_by": retried["created_by"],
        "result": {"retry_reason": "Retried via API", "previous_attempts": 1},
        "estimated_duration": 1800,
        "actual_duration": None,
        "retry_count": 1,
        "max_retries": 3,
        "created_at": "-",
        "updated_at": "-",
        "started_at": None,
        "completed_at": None,
        "scheduled_at": None,
    }


def test_legacy_examples(curl: Curl) -> None:
    job_id = curl("POST", f"{BASE}/workspace/1/jobs", PIPELINE_BODY).json()["job_id"]
    for url in (f"{BASE}/jobs", f"{BASE}/jobs?workspace_id=1"):
        resp = curl("GET", url)
        assert resp.status_code == 200
        assert resp.headers["Deprecation"] == "true"
        assert "Link" in resp.headers
        body = resp.json()
        assert set(body) == {"data", "pagination"}
        assert [j["job_id"] for j in body["data"]] == [job_id]
    resp = curl("GET", f"{BASE}/jobs?workspace_id=1")
    assert resp.headers["Link"] == '</workspace/1/jobs>; rel="successor-version"'


def test_data_processing_pipeline_scenario(curl: Curl) -> None:
    resp = curl("POST", f"{BASE}/workspace/1/jobs", PIPELINE_BODY)
    assert resp.status_code == 201
    job_id = resp.json()["job_id"]
    assert resp.json()["status"] == "pending"
    status = curl("GET", f"{BASE}/workspace/1/jobs/{job_id}/status")
    assert status.status_code == 200 and status.json()["status"] == "pending"
    result = curl("GET", f"{BASE}/workspace/1/jobs/{job_id}/result")
    assert result.status_code == 200 and result.json()["result"] is None


def test_job_management_dashboard_scenario(curl: Curl) -> None:
    ids = {}
    for prio in ("low", "normal", "high", "urgent"):
        body = PIPELINE_BODY.replace('"priority": "high"', f'"priority": "{prio}"')
        ids[prio] = curl("POST", f"{BASE}/workspace/1/jobs", body).json()["job_id"]
    curl("PATCH", f"{BASE}/workspace/1/jobs/{ids['normal']}", '{"status": "running"}')

    running = curl("GET", f"{BASE}/workspace/1/jobs?status=running").json()["data"]
    assert [j["job_id"] for j in running] == [ids["normal"]]

    recent = curl("GET", f"{BASE}/workspace/1/jobs?sort=updated_at&order=desc&limit=10").json()
    assert recent["data"][0]["job_id"] == ids["normal"]  # the one just updated
    assert recent["pagination"]["limit"] == 10

    urgent = curl("GET", f"{BASE}/workspace/1/jobs?priority=high&priority=urgent").json()
    assert sorted(j["job_id"] for j in urgent["data"]) == sorted([ids["high"], ids["urgent"]])

    resp = curl("POST", f"{BASE}/workspace/1/jobs/{ids['normal']}/cancel")
    assert resp.status_code == 200 and resp.json()["status"] == "cancelled"


def test_batch_job_processing_scenario(curl: Curl) -> None:
    for i in range(1, 6):
        resp = curl("POST", f"{BASE}/workspace/1/jobs", batch_body(i))
        assert resp.status_code == 201, resp.text

    batch = curl("GET", f"{BASE}/workspace/1/jobs?job_type=batch_analysis&sort=created_at").json()
    assert batch["pagination"]["total"] == 5
    ids = [j["job_id"] for j in batch["data"]]
    assert ids == sorted(ids, key=lambda s: int(s[4:]), reverse=True)  # default order desc

    for job_id in ids[:2]:
        curl("PATCH", f"{BASE}/workspace/1/jobs/{job_id}", '{"status": "running"}')
        curl("PATCH", f"{BASE}/workspace/1/jobs/{job_id}", '{"status": "failed"}')

    # `jq -r '.data[].job_id' | while read job_id; do curl -X POST .../retry; done`
    failed = curl("GET", f"{BASE}/workspace/1/jobs?status=failed").json()
    failed_ids = [j["job_id"] for j in failed["data"]]
    assert sorted(failed_ids) == sorted(ids[:2])
    for job_id in failed_ids:
        resp = curl("POST", f"{BASE}/workspace/1/jobs/{job_id}/retry")
        assert resp.status_code == 200
        assert resp.json()["status"] == "pending" and resp.json()["retry_count"] == 1
    assert curl("GET", f"{BASE}/workspace/1/jobs?status=failed").json()["data"] == []


def test_error_handling_examples(app: FastAPI, client: TestClient, curl: Curl, seed: Seed) -> None:
    # "Check Response Status": 200 with the list.
    assert curl("GET", f"{BASE}/workspace/1/jobs").status_code == 200
    # 401: no or bad token.
    assert Curl(client)("GET", f"{BASE}/workspace/1/jobs").status_code == 401
    assert Curl(client, "not-a-token")("GET", f"{BASE}/workspace/1/jobs").status_code == 401
    # 403: a workspace the caller has no access to.
    stranger = make_user(app)
    other_ws = make_workspace(app, stranger)
    resp = curl("GET", f"{BASE}/workspace/{other_ws}/jobs")
    assert resp.status_code == 403 and "detail" in resp.json()
    # 404: a workspace that does not exist.
    assert curl("GET", f"{BASE}/workspace/999/jobs").status_code == 404
    # 422: invalid data, `jq '.detail'` names the field.
    resp = curl("POST", f"{BASE}/workspace/1/jobs", '{"workspace_id": 1, "priority": "asap"}')
    assert resp.status_code == 422
    locs = {tuple(d["loc"]) for d in resp.json()["detail"]}
    assert ("body", "job_type") in locs and ("body", "priority") in locs


def test_workspace_security_example(app: FastAPI, curl: Curl, seed: Seed) -> None:
    from node.auth.repository import user_by_username
    from node.db import session_scope

    with session_scope(app.state.runtime.sessionmaker) as session:
        owner = user_by_username(session, SEED_USER)
    ws2 = make_workspace(app, owner, name="Second")  # the caller is a member of both
    assert ws2 == 2
    job_id = curl("POST", f"{BASE}/workspace/1/jobs", PIPELINE_BODY).json()["job_id"]

    assert curl("GET", f"{BASE}/workspace/1/jobs/{job_id}").status_code == 200
    resp = curl("GET", f"{BASE}/workspace/2/jobs/{job_id}")
    assert resp.status_code == 404
    assert resp.json()["detail"] == "Job not found in specified workspace"
    assert SEED_PASSWORD  # the fixture logged in with the seed's credentials
