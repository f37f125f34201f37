"""Seed 002 (`/v1/jobs`, the canonical API): create, get, ownership, filters, keyset
pagination (including jobs inserted while a client walks the pages) and 400s."""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.fixtures.factories import auth_headers, make_user, make_workspace
from tests.node.jobs.conftest import Seed

JOB_KEYS = {
    "id",
    "type",
    "status",
    "payload",
    "result",
    "resultType",
    "resultCid",
    "error",
    "progress",
    "progressMessage",
    "priority",
    "workspaceId",
    "createdBy",
    "requesterAddress",
    "reward",
    "attempt",
    "retryCount",
    "maxRetries",
    "estimatedDuration",
    "createdAt",
    "updatedAt",
    "startedAt",
    "completedAt",
    "scheduledAt",
    "deadlineAt",
}
EVENT_KEYS = {
    "id",
    "seq",
    "stream",
    "type",
    "fromStatus",
    "toStatus",
    "level",
    "message",
    "data",
    "attempt",
    "createdAt",
}
ADDRESS = "0x5B38Da6a701c568545dCfcB03FcB875f56beddC4"


def post(client: TestClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    resp = client.post("/v1/jobs", json={"type": "render", "payload": {}, **body}, headers=headers)
    assert resp.status_code == 201, resp.text
    return resp.json()["data"]


def walk(client: TestClient, headers: dict[str, str], query: str, between=None) -> list[str]:
    """Follow `nextCursor` to the end; `between(page_no)` runs between pages."""
    seen: list[str] = []
    cursor = None
    for page_no in range(1000):
        url = f"/v1/jobs?{query}" + (f"&cursor={cursor}" if cursor else "")
        resp = client.get(url, headers=headers)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        seen += [j["id"] for j in body["data"]]
        pagination = body["pagination"]
        assert pagination["hasMore"] == (pagination["nextCursor"] is not None)
        if not pagination["hasMore"]:
            return seen
        cursor = pagination["nextCursor"]
        if between:
            between(page_no)
    raise AssertionError("cursor walk did not end")


def test_create_and_get_envelopes(client: TestClient, seed: Seed) -> None:
    resp = client.post(
        "/v1/jobs",
        json={"type": "image_classification", "payload": {"image": "ipfs://x", "topK": 5}},
        headers=seed.headers,
    )
    assert resp.status_code == 201
    body = resp.json()
    assert set(body) == {"success", "data", "message"}
    assert body["success"] is True
    job = body["data"]
    assert set(job) == JOB_KEYS | {"events", "funding", "escrow"}
    assert job["funding"] is None  # no reward: nothing to fund
    assert job["type"] == "image_classification"
    assert job["payload"] == {"image": "ipfs://x", "topK": 5}
    assert job["status"] == "pending" and job["reward"] == "0" and job["priority"] == "normal"
    # Created without a workspace: it lands in the caller's personal workspace (issue 9).
    personal = [
        w for w in client.get("/workspaces", headers=seed.headers).json() if w["is_personal"]
    ]
    assert job["createdBy"] == seed.user_id and job["workspaceId"] == personal[0]["id"]
    assert job["createdAt"].endswith("Z") and len(job["createdAt"]) == 24  # ms precision
    assert [set(e) for e in job["events"]] == [EVENT_KEYS]
    assert job["events"][0]["type"] == "created"

    got = client.get(f"/v1/jobs/{job['id']}", headers=seed.headers)
    assert got.status_code == 200
    assert set(got.json()) == {"success", "data", "message"}
    assert got.json()["data"] == job
    # The integer spelling reaches the same job (seed 000 addresses jobs by integer).
    assert client.get(f"/v1/jobs/{job['id'][4:]}", headers=seed.headers).json()["data"] == job


def test_job_is_reachable_through_both_dialects(client: TestClient, seed: Seed) -> None:
    created = client.post(
        "/workspace/1/jobs",
        json={"job_type": "t", "workspace_id": 1, "metadata": {"k": "v"}, "priority": "urgent"},
        headers=seed.headers,
    ).json()
    job = client.get(f"/v1/jobs/{created['job_id']}", headers=seed.headers).json()["data"]
    assert job["id"] == created["job_id"] and job["payload"] == {"k": "v"}
    assert job["workspaceId"] == 1 and job["priority"] == "urgent"
    v1 = post(client, seed.headers, workspaceId=1, payload={"n": 1})
    assert client.get(f"/workspace/1/jobs/{v1['id']}", headers=seed.headers).status_code == 200


def test_jobs_of_others_are_404(app: FastAPI, client: TestClient, seed: Seed) -> None:
    mine = post(client, seed.headers)["id"]
    other = make_user(app)
    other_headers = auth_headers(client, other.username)
    resp = client.get(f"/v1/jobs/{mine}", headers=other_headers)
    assert resp.status_code == 404
    assert resp.json() == {"error": {"code": "JOB_NOT_FOUND", "message": "Job not found"}}
    assert client.get("/v1/jobs?limit=10", headers=other_headers).json()["data"] == []
    for bad in ("abc", "job_0", "job_x", "9" * 40):
        assert client.get(f"/v1/jobs/{bad}", headers=seed.headers).status_code == 404
    assert client.get(f"/v1/jobs/{mine}").status_code == 401
    assert client.get("/v1/jobs?limit=1").json()["error"]["code"] == "UNAUTHORIZED"


def test_ownership_by_workspace_and_wallet(app: FastAPI, client: TestClient, seed: Seed) -> None:
    teammate = make_user(app)
    wallet_user = make_user(app, address=ADDRESS)
    make_workspace(app, make_user(app), members={seed.user_id: "member", teammate.id: "viewer"})
    in_ws = post(client, seed.headers, workspaceId=2)["id"]
    private = post(client, seed.headers)["id"]
    wallet_job = post(client, auth_headers(client, wallet_user.username))
    assert wallet_job["requesterAddress"] == ADDRESS

    mate = auth_headers(client, teammate.username)
    assert client.get(f"/v1/jobs/{in_ws}", headers=mate).status_code == 200
    assert client.get(f"/v1/jobs/{private}", headers=mate).status_code == 404
    listed = [j["id"] for j in client.get("/v1/jobs?limit=50", headers=mate).json()["data"]]
    assert listed == [in_ws]
    # Creating in a workspace needs the member role.
    resp = client.post(
        "/v1/jobs", json={"type": "t", "payload": {}, "workspaceId": 2}, headers=mate
    )
    assert resp.status_code == 403 and resp.json()["error"]["code"] == "FORBIDDEN"


def test_filters(client: TestClient, seed: Seed, set_job: Callable[..., None]) -> None:
    a = post(client, seed.headers, type="a")["id"]
    b = post(client, seed.headers, type="b")["id"]
    c = post(client, seed.headers, type="c")["id"]
    set_job(b, status="completed", result_type="model")
    set_job(c, status="failed", result_type="log")
    t0 = dt.datetime(2024, 1, 15, 10, 0, tzinfo=dt.UTC)
    for i, job_id in enumerate((a, b, c)):
        set_job(job_id, created_at=t0 + dt.timedelta(hours=i))
    ms = int(t0.timestamp() * 1000)

    def q(query: str) -> list[str]:
        resp = client.get(f"/v1/jobs?limit=100&{query}", headers=seed.headers)
        assert resp.status_code == 200, resp.text
        return [j["id"] for j in resp.json()["data"]]

    assert q("type=a&type=c") == [c, a]
    assert q("status=completed") == [b]
    assert q("status=completed&status=pending") == [b, a]
    assert q("resultType=log") == [c]
    assert q(f"from={ms + 1}") == [c, b]
    assert q(f"to={ms + 3_600_000}") == [b, a]  # inclusive
    assert q(f"from={ms}&to={ms}") == [a]
    assert q("sort=createdAt&order=asc") == [a, b, c]
    assert q("sort=type&order=desc") == [c, b, a]


def test_cursor_walk_returns_every_job_once_while_jobs_are_inserted(
    client: TestClient, seed: Seed
) -> None:
    existing = [post(client, seed.headers)["id"] for _ in range(23)]
    inserted: list[str] = []

    def insert(_page: int) -> None:
        inserted.append(post(client, seed.headers)["id"])

    newest_first = walk(client, seed.headers, "limit=5", between=insert)
    assert newest_first == list(reversed(existing))  # new jobs sort before the cursor
    assert len(inserted) == 4

    before = existing + inserted
    inserted.clear()
    oldest_first = walk(client, seed.headers, "limit=5&order=asc", between=insert)
    # Every job that existed is served once, in order; jobs inserted meanwhile sort after
    # the cursor and are served once, at the end.
    assert oldest_first == before + inserted
    assert len(inserted) >= 5  # pages kept coming while the table grew


def test_cursor_walk_with_ties_on_every_sort_field(
    client: TestClient, seed: Seed, set_job: Callable[..., None]
) -> None:
    same = dt.datetime(2024, 1, 15, 10, 0, tzinfo=dt.UTC)
    made = []
    for i in range(13):
        job = post(client, seed.headers, type=f"t{i % 3}", priority=["low", "high"][i % 2])["id"]
        set_job(
            job,
            created_at=same,
            updated_at=same + dt.timedelta(seconds=i % 4),
            status=["pending", "running", "completed"][i % 3],
        )
        made.append(job)
    for sort in ("createdAt", "updatedAt", "priority", "status", "type", "created_at"):
        for order in ("asc", "desc"):
            seen = walk(client, seed.headers, f"limit=4&sort={sort}&order={order}")
            assert sorted(seen) == sorted(made), (sort, order)


def test_cursor_walk_merges_every_branch_of_the_callers_scope(
    app: FastAPI, client: TestClient, set_job: Callable[..., None]
) -> None:
    """A list reads each branch of the caller's scope (each workspace it reads; its jobs
    without a workspace, by creator and by wallet) as its own ordered seek and merges
    them: every job comes back once, in (key, id) order, across pages, also where two
    branches hold the same job and where sort keys tie across branches."""
    me = make_user(app, address=ADDRESS)
    other = make_user(app)
    mine = make_workspace(app, me, name="mine")
    theirs = make_workspace(app, other, name="theirs", members={me.id: "viewer"})
    headers = auth_headers(client, me.username)
    their_headers = auth_headers(client, other.username)
    made = [post(client, headers, workspaceId=mine)["id"] for _ in range(4)]
    made += [post(client, their_headers, workspaceId=theirs)["id"] for _ in range(4)]
    for _ in range(4):  # without a workspace, created by me (so my wallet's too)
        job = post(client, headers)["id"]
        set_job(job, workspace_id=None)
        made.append(job)
    for _ in range(3):  # without a workspace, my wallet's, created by someone else
        job = post(client, their_headers)["id"]
        set_job(job, workspace_id=None, requester_address=ADDRESS)
        made.append(job)
    post(client, their_headers)  # not mine in any way
    t0 = dt.datetime(2024, 1, 15, 10, 0, tzinfo=dt.UTC)
    at = {}
    for i, job in enumerate(made):
        at[job] = t0 + dt.timedelta(minutes=(i * 7) % 5)  # interleaved, with ties
        set_job(job, created_at=at[job])

    def number(job: str) -> int:
        return int(job.removeprefix("job_"))

    expected = sorted(made, key=lambda j: (at[j], number(j)))
    for limit in (1, 3, 50):
        assert walk(client, headers, f"limit={limit}&order=asc") == expected
        assert walk(client, headers, f"limit={limit}") == expected[::-1]


def test_missing_limit_and_bad_queries_are_400(client: TestClient, seed: Seed) -> None:
    post(client, seed.headers)
    cases = {
        "": "INVALID_QUERY",  # limit is required, as the seed says
        "limit=0": "INVALID_QUERY",
        "limit=101": "INVALID_QUERY",
        "limit=x": "INVALID_QUERY",
        "limit=10&sort=name": "INVALID_QUERY",
        "limit=10&order=sideways": "INVALID_QUERY",
        "limit=10&status=done": "INVALID_QUERY",
        "limit=10&from=-1": "INVALID_QUERY",
        "limit=10&from=abc": "INVALID_QUERY",
        "limit=10&from=20&to=10": "INVALID_QUERY",
        "limit=10&cursor=!!!": "INVALID_CURSOR",
        "limit=10&cursor=bm90IGpzb24": "INVALID_CURSOR",  # base64 of "not json"
        "limit=10&cursor=" + "A" * 600: "INVALID_QUERY",
    }
    for query, code in cases.items():
        resp = client.get(f"/v1/jobs?{query}", headers=seed.headers)
        assert resp.status_code == 400, (query, resp.text)
        assert resp.json()["error"]["code"] == code, query
    resp = client.get("/v1/jobs", headers=seed.headers)
    assert resp.json()["error"]["message"] == "query.limit: Field required"


def test_forged_or_mismatched_cursors_are_400(client: TestClient, seed: Seed) -> None:
    for _ in range(3):
        post(client, seed.headers)
    cursor = client.get("/v1/jobs?limit=1", headers=seed.headers).json()["pagination"]["nextCursor"]
    # Issued for createdAt/desc: not valid for another sort or order.
    for query in ("sort=priority", "order=asc"):
        resp = client.get(f"/v1/jobs?limit=1&{query}&cursor={cursor}", headers=seed.headers)
        assert resp.status_code == 400 and resp.json()["error"]["code"] == "INVALID_CURSOR"

    def forge(obj: Any) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    for obj in (
        [1, 2],
        {"s": "created_at", "o": "desc", "v": "yesterday", "i": 1},
        {"s": "created_at", "o": "desc", "v": "2024-01-15T10:00:00", "i": 1},  # naive
        {"s": "created_at", "o": "desc", "v": "2024-01-15T10:00:00+00:00", "i": "1"},
        {"s": "created_at", "o": "desc", "v": "2024-01-15T10:00:00+00:00", "i": 2**70},
        {"s": "created_at", "o": "desc", "v": "2024-01-15T10:00:00+00:00", "i": 2**40},
        {"s": "priority", "o": "desc", "v": 7, "i": 1},
        {"s": "created_at", "o": "desc", "v": "0001-01-01T00:00:00+00:00", "i": 0},
        {"s": "created_at", "o": "desc", "v": "2024-01-15T10:00:00+00:00", "i": 1, "x": 0},
    ):
        resp = client.get(f"/v1/jobs?limit=1&cursor={forge(obj)}", headers=seed.headers)
        assert resp.status_code == 400, obj
        assert resp.json()["error"]["code"] == "INVALID_CURSOR"
    # Standard-alphabet base64 with padding is accepted too.
    padded = cursor.replace("-", "+").replace("_", "/") + "=" * (-len(cursor) % 4)
    resp = client.get("/v1/jobs", params={"limit": 1, "cursor": padded}, headers=seed.headers)
    assert resp.status_code == 200


def test_bad_create_bodies_are_400(client: TestClient, seed: Seed) -> None:
    for body in (
        {"payload": {}},
        {"type": "x"},
        {"type": "", "payload": {}},
        {"type": "x", "payload": "not an object"},
        {"type": "x", "payload": {}, "extra": 1},
        {"type": "x", "payload": {}, "priority": "asap"},
    ):
        resp = client.post("/v1/jobs", json=body, headers=seed.headers)
        assert resp.status_code == 400, body
        assert resp.json()["error"]["code"] == "INVALID_BODY"
    resp = client.post(
        "/v1/jobs",
        content="{not json",
        headers={**seed.headers, "Content-Type": "application/json"},
    )
    assert resp.status_code == 400
    assert client.get("/v1/jobs?limit=10", headers=seed.headers).json()["data"] == []


def test_oversized_body_is_413(app: FastAPI, client: TestClient, seed: Seed) -> None:
    blob = "a" * (app.state.runtime.settings.upload.max_json_bytes + 1)
    resp = client.post("/v1/jobs", json={"type": "x", "payload": {"b": blob}}, headers=seed.headers)
    assert resp.status_code == 413
    assert resp.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"


def test_reward_is_an_exact_eth_string(client: TestClient, seed: Seed, set_job) -> None:
    job_id = post(client, seed.headers)["id"]
    set_job(job_id, reward_wei=1_500_000_000_000_000_001)
    got = client.get(f"/v1/jobs/{job_id}", headers=seed.headers).json()["data"]
    assert got["reward"] == "1.500000000000000001"
