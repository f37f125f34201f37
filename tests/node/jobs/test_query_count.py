"""List views cost the same number of SQL statements for 2 jobs as for 40: no per-row
loads (the event log is never loaded for lists). A create writes its two rows and reads
nothing back."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from node.auth.cache import UserCache
from node.db import Base
from tests.fixtures.factories import auth_headers, make_user
from tests.fixtures.metrics import metric_value
from tests.fixtures.statements import count_statements
from tests.node.jobs.conftest import Seed


@pytest.fixture
def quiet(app: FastAPI, client: TestClient) -> None:
    """Stop the app's loop services (reaper, chain tick, webhook sender...): their passes
    share the engine, and one landing inside a counted request would be counted with it."""
    runtime = app.state.runtime
    for service in reversed(runtime._running_services()):
        client.portal.call(service.stop)


@pytest.fixture
def users_kept(app: FastAPI) -> None:
    """Token users kept for the whole test (node.auth.cache): whether a request looks its
    user up must not depend on how long the test took."""
    app.state.runtime.users = UserCache(3600)


def _statements_for(app: FastAPI, client: TestClient, seed: Seed, url: str) -> int:
    with count_statements(app) as statements:
        resp = client.get(url, headers=seed.headers)
    assert resp.status_code == 200, resp.text
    return len(statements)


def test_list_queries_do_not_grow_with_rows(
    app: FastAPI, client: TestClient, users_kept: None, seed: Seed, quiet: None
) -> None:
    def add(n: int) -> None:
        for _ in range(n):
            client.post(
                "/workspace/1/jobs", json={"job_type": "t", "workspace_id": 1}, headers=seed.headers
            )

    urls = ["/workspace/1/jobs?limit=100", "/jobs?limit=100", "/v1/jobs?limit=100"]
    add(2)
    small = [_statements_for(app, client, seed, u) for u in urls]
    add(38)
    large = [_statements_for(app, client, seed, u) for u in urls]
    assert small == large
    # Page-numbered lists: one COUNT and one SELECT of jobs; keyset: one SELECT of jobs.
    # (A page not asked for since the last commit: an answer again is no statement.)
    with count_statements(app) as statements:
        client.get("/v1/jobs?limit=99", headers=seed.headers)
    assert sum("FROM jobs" in s for s in statements) == 1
    assert not any("job_events" in s for s in statements)


def test_a_job_by_id_reads_in_four_statements(
    app: FastAPI, client: TestClient, users_kept: None, seed: Seed, quiet: None
) -> None:
    """`GET /v1/jobs/{id}` with a token whose user was just looked up (node.auth.cache):
    the job, its event log, the caller's role in its workspace (one statement with the
    workspace's existence), its escrow. No user lookup, no separate workspace read."""
    job = client.post("/v1/jobs", json={"type": "t", "payload": {}}, headers=seed.headers)
    assert job.status_code == 201, job.text
    url = f"/v1/jobs/{job.json()['data']['id']}"
    with count_statements(app) as statements:
        resp = client.get(url, headers=seed.headers)
    assert resp.status_code == 200, resp.text
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 4, statements
    assert not any("FROM users" in s for s in selects)
    assert sum("FROM workspaces" in s for s in selects) == 1


def test_create_writes_job_and_event_without_reading_back(
    app: FastAPI, client: TestClient, seed: Seed, quiet: None
) -> None:
    """A create inserts the job and its `created` event; it takes the event's number
    without the row-locking UPDATE (no one else sees the job yet) and answers with the
    event log it wrote, never reading it back."""
    body = {"type": "t", "payload": {}, "workspaceId": seed.workspace_id}
    with count_statements(app) as statements:
        resp = client.post("/v1/jobs", json=body, headers=seed.headers)
    assert resp.status_code == 201, resp.text
    assert [(e["seq"], e["type"]) for e in resp.json()["data"]["events"]] == [(1, "created")]
    assert _writes(statements) == ["INSERT INTO jobs", "INSERT INTO job_events"], statements
    assert "job_events" not in _tables_read(statements)


def test_a_create_in_the_personal_workspace_reads_only_the_webhooks(
    app: FastAPI, client: TestClient, seed: Seed, quiet: None
) -> None:
    """Without `workspaceId` a job lands in the caller's personal workspace: once its id
    is known (`node.workspaces.service.KNOWN_PERSONAL`), neither the workspace nor the
    caller's role in it (owner, for good) is read again. The one read left is which
    webhooks want the `created` event."""
    body = {"type": "t", "payload": {}}
    assert client.post("/v1/jobs", json=body, headers=seed.headers).status_code == 201
    assert client.post("/v1/jobs", json=body, headers=seed.headers).status_code == 201
    with count_statements(app) as statements:
        resp = client.post("/v1/jobs", json=body, headers=seed.headers)
    assert resp.status_code == 201, resp.text
    assert _writes(statements) == ["INSERT INTO jobs", "INSERT INTO job_events"], statements
    assert _tables_read(statements) == {"webhooks"}, statements


def _writes(statements: list[str]) -> list[str]:
    """The writes of `statements`, in order (PostgreSQL writes a create's two rows in one
    statement: `node.jobs.creates._insert_recordsets`)."""
    return [m for s in statements for m in re.findall(r"(?:INSERT INTO|UPDATE|DELETE FROM) \w+", s)]


def _tables_read(statements: list[str]) -> set[str]:
    """The node's tables that `statements` read (not those they write, nor the set-returning
    functions PostgreSQL's create reads its keys and rows from)."""
    named = {t for s in statements for t in re.findall(r"\b(?:FROM|JOIN) (\w+)", s)}
    return named & set(Base.metadata.tables)


def test_a_polled_job_is_read_again_only_after_a_commit(
    app: FastAPI,
    client: TestClient,
    users_kept: None,
    seed: Seed,
    quiet: None,
    set_job: Callable[..., None],
) -> None:
    """`GET /v1/jobs/{id}` again with nothing committed since: the answer of the last
    read, byte for byte, without a statement (`node.readcache`); any commit, even one
    made around the node, is seen by the next read; each caller has answers of its own;
    a job awaiting its deposit (its funding call comes from the chain) is read every time.
    (On PostgreSQL any write on the server counts, other tests' included: the read is
    repeated until none landed in between.)"""
    assert app.state.runtime.reads.enabled
    job_id = client.post("/v1/jobs", json={"type": "t", "payload": {}}, headers=seed.headers)
    url = f"/v1/jobs/{job_id.json()['data']['id']}"
    first = client.get(url, headers=seed.headers)
    route = "/v1/jobs/{jobId}"
    for _ in range(100):
        seen = metric_value(client.get("/metrics").text, "dcm_http_requests_total", route=route)
        with count_statements(app) as statements:
            again = client.get(url, headers=seed.headers)
        assert again.status_code == 200 and again.content == first.content
        if not statements:
            break
    assert statements == []
    assert again.headers["content-type"] == first.headers["content-type"] == "application/json"
    # still its own request: its own id, counted under its route
    assert again.headers["x-request-id"] != first.headers["x-request-id"]
    counted = metric_value(client.get("/metrics").text, "dcm_http_requests_total", route=route)
    assert counted == (seen or 0) + 1

    set_job(url.rsplit("/", 1)[1], progress_percent=42)  # a session of its own, not a request
    assert client.get(url, headers=seed.headers).json()["data"]["progress"] == 42
    other = auth_headers(client, make_user(app).username)
    assert client.get(url, headers=other).status_code == 404
    assert client.get(url, headers=seed.headers).json()["data"]["progress"] == 42

    set_job(url.rsplit("/", 1)[1], status="awaiting_funding")
    client.get(url, headers=seed.headers)
    with count_statements(app) as statements:
        assert client.get(url, headers=seed.headers).json()["data"]["status"] == "awaiting_funding"
    assert len(statements) == 4, statements


def test_a_polled_read_verifies_its_token_once(
    app: FastAPI,
    client: TestClient,
    users_kept: None,
    seed: Seed,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A caller the read cache recognised in front of routing (`known_principal`) is the
    route's principal as it is: the token's signature is checked once per request, hit
    or miss. A refused token is still the route's to refuse."""
    import node.auth.deps as deps

    job = client.post("/v1/jobs", json={"type": "t", "payload": {}}, headers=seed.headers)
    url = f"/v1/jobs/{job.json()['data']['id']}"
    assert client.get(url, headers=seed.headers).status_code == 200  # its user is now kept
    checks: list[str] = []
    real = deps.access_claims

    def counted(settings, token):  # noqa: ANN001, ANN202
        checks.append(token)
        return real(settings, token)

    monkeypatch.setattr(deps, "access_claims", counted)
    client.post("/v1/jobs", json={"type": "t", "payload": {}}, headers=seed.headers)  # a commit
    checks.clear()
    assert client.get(url, headers=seed.headers).status_code == 200  # a miss: the route ran
    assert len(checks) == 1
    forged = {"Authorization": seed.headers["Authorization"][:-4] + "AAAA"}
    assert client.get(url, headers=forged).json()["error"]["code"] == "INVALID_TOKEN"
