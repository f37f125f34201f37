"""Seed 001 rules beyond the examples: filters, sorting, page pagination, roles,
isolation, PATCH semantics, cancel/retry rules and clean 4xx for bad input."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.fixtures.factories import auth_headers, make_user, make_workspace
from tests.node.jobs.conftest import Seed


def create(client: TestClient, seed: Seed, ws: int | None = None, **body: Any) -> dict[str, Any]:
    ws = ws or seed.workspace_id
    payload = {"job_type": "data_analysis", "workspace_id": ws, **body}
    resp = client.post(f"/workspace/{ws}/jobs", json=payload, headers=seed.headers)
    assert resp.status_code == 201, resp.text
    return resp.json()


def ids(resp: Any) -> list[str]:
    assert resp.status_code == 200, resp.text
    return [j["job_id"] for j in resp.json()["data"]]


def listing(client: TestClient, seed: Seed, query: str) -> Any:
    return client.get(f"/workspace/{seed.workspace_id}/jobs?{query}", headers=seed.headers)


def test_status_filter_accepts_seed_and_canonical_words(
    client: TestClient, seed: Seed, set_job: Callable[..., None]
) -> None:
    states = ["pending", "claimed", "running", "submitted", "completed", "failed", "expired"]
    made = {}
    for state in states:
        job = create(client, seed)
        set_job(job["job_id"], status=state)
        made[state] = job["job_id"]

    assert set(ids(listing(client, seed, "status=pending"))) == {made["pending"], made["claimed"]}
    assert set(ids(listing(client, seed, "status=running"))) == {
        made["running"],
        made["submitted"],
    }
    assert ids(listing(client, seed, "status=success")) == [made["completed"]]
    assert ids(listing(client, seed, "status=completed")) == [made["completed"]]
    assert set(ids(listing(client, seed, "status=failed"))) == {made["failed"], made["expired"]}
    assert ids(listing(client, seed, "status=claimed")) == [made["claimed"]]
    assert set(ids(listing(client, seed, "status=success&status=claimed"))) == {
        made["completed"],
        made["claimed"],
    }
    shown = {j["job_id"]: j["status"] for j in listing(client, seed, "").json()["data"]}
    assert shown == {
        made["pending"]: "pending",
        made["claimed"]: "pending",
        made["running"]: "running",
        made["submitted"]: "running",
        made["completed"]: "success",
        made["failed"]: "failed",
        made["expired"]: "failed",
    }


def test_type_and_priority_filters_or_repeated_values(client: TestClient, seed: Seed) -> None:
    a = create(client, seed, job_type="a", priority="low")["job_id"]
    b = create(client, seed, job_type="b", priority="high")["job_id"]
    c = create(client, seed, job_type="c", priority="urgent")["job_id"]
    assert set(ids(listing(client, seed, "job_type=a&job_type=c"))) == {a, c}
    assert set(ids(listing(client, seed, "priority=high&priority=urgent"))) == {b, c}
    assert ids(listing(client, seed, "priority=high&job_type=c")) == []
    assert ids(listing(client, seed, "priority=low&job_type=a")) == [a]


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_sort_by_priority_uses_rank_not_alphabet(
    client: TestClient, seed: Seed, order: str
) -> None:
    made = {
        p: create(client, seed, priority=p)["job_id"] for p in ("normal", "urgent", "low", "high")
    }
    rank = ["low", "normal", "high", "urgent"]
    expected = [made[p] for p in (rank if order == "asc" else reversed(rank))]
    assert ids(listing(client, seed, f"sort=priority&order={order}")) == expected


def test_sort_by_created_updated_and_status(
    client: TestClient, seed: Seed, set_job: Callable[..., None]
) -> None:
    first = create(client, seed)["job_id"]
    second = create(client, seed)["job_id"]
    third = create(client, seed)["job_id"]
    assert ids(listing(client, seed, "")) == [third, second, first]  # default created_at desc
    assert ids(listing(client, seed, "sort=created_at&order=asc")) == [first, second, third]

    client.patch(f"/workspace/1/jobs/{first}", json={"progress_percent": 5}, headers=seed.headers)
    assert ids(listing(client, seed, "sort=updated_at"))[0] == first
    assert ids(listing(client, seed, "sort=updated_at&order=asc"))[-1] == first

    set_job(second, status="running")
    set_job(third, status="completed")
    # canonical words alphabetically: completed < pending < running
    assert ids(listing(client, seed, "sort=status&order=asc")) == [third, first, second]


def test_page_pagination(client: TestClient, seed: Seed) -> None:
    made = [create(client, seed)["job_id"] for _ in range(7)]
    newest_first = list(reversed(made))
    pages = [listing(client, seed, f"limit=3&page={p}").json() for p in (1, 2, 3, 4)]
    assert [[j["job_id"] for j in p["data"]] for p in pages] == [
        newest_first[:3],
        newest_first[3:6],
        newest_first[6:],
        [],
    ]
    assert pages[0]["pagination"] == {"page": 1, "limit": 3, "total": 7, "total_pages": 3}
    assert pages[3]["pagination"] == {"page": 4, "limit": 3, "total": 7, "total_pages": 3}


BAD_QUERIES = [
    ("limit=0", "limit"),
    ("limit=101", "limit"),
    ("limit=ten", "limit"),
    ("page=0", "page"),
    ("sort=name", "sort"),
    ("sort=created_at;drop", "sort"),
    ("order=up", "order"),
    ("status=done", "status"),
    ("priority=critical", "priority"),
]


def test_bad_list_queries_are_422_with_field_path(client: TestClient, seed: Seed) -> None:
    for query, field in BAD_QUERIES:
        resp = listing(client, seed, query)
        assert resp.status_code == 422, query
        body = resp.json()
        assert body["code"] == "VALIDATION_ERROR"
        assert ["query", field] in [d["loc"][:2] for d in body["detail"]], query


def test_viewer_reads_but_cannot_change(app: FastAPI, client: TestClient, seed: Seed) -> None:
    viewer = make_user(app)
    other = make_user(app)
    ws = make_workspace(app, other, members={viewer.id: "viewer", seed.user_id: "member"})
    job_id = create(client, seed, ws=ws)["job_id"]
    headers = auth_headers(client, viewer.username)

    base = f"/workspace/{ws}/jobs"
    assert client.get(base, headers=headers).status_code == 200
    assert client.get(f"{base}/{job_id}", headers=headers).status_code == 200
    assert client.get(f"{base}/{job_id}/status", headers=headers).status_code == 200
    assert client.get(f"{base}/{job_id}/result", headers=headers).status_code == 200

    body = {"job_type": "x", "workspace_id": ws}
    for resp in (
        client.post(base, json=body, headers=headers),
        client.patch(f"{base}/{job_id}", json={"progress_percent": 1}, headers=headers),
        client.post(f"{base}/{job_id}/cancel", headers=headers),
        client.post(f"{base}/{job_id}/retry", headers=headers),
        # The role is checked before the body: an invalid body still answers 403.
        client.post(base, json={"bad": True}, headers=headers),
    ):
        assert resp.status_code == 403, resp.text
        assert resp.json()["code"] == "FORBIDDEN"
    assert client.get(f"{base}/{job_id}", headers=headers).json()["status"] == "pending"


def test_workspaces_are_isolated(app: FastAPI, client: TestClient, seed: Seed) -> None:
    mine = create(client, seed)["job_id"]
    other = make_user(app)
    other_ws = make_workspace(app, other)
    other_headers = auth_headers(client, other.username)
    theirs = client.post(
        f"/workspace/{other_ws}/jobs",
        json={"job_type": "t", "workspace_id": other_ws},
        headers=other_headers,
    ).json()["job_id"]

    # Not a member: 403 on their workspace, whatever the job id.
    for path in (f"/workspace/{other_ws}/jobs", f"/workspace/{other_ws}/jobs/{theirs}"):
        assert client.get(path, headers=seed.headers).status_code == 403
    # Their job through my workspace: 404, same as a job that does not exist.
    resp = client.get(f"/workspace/1/jobs/{theirs}", headers=seed.headers)
    assert resp.status_code == 404
    assert resp.json() == {
        "detail": "Job not found in specified workspace",
        "code": "JOB_NOT_FOUND",
    }
    for action in ("cancel", "retry"):
        assert (
            client.post(f"/workspace/1/jobs/{theirs}/{action}", headers=seed.headers).status_code
            == 404
        )
    # Legacy list: each sees only their own workspaces.
    assert ids(client.get("/jobs", headers=seed.headers)) == [mine]
    assert ids(client.get("/jobs", headers=other_headers)) == [theirs]
    assert client.get(f"/jobs?workspace_id={other_ws}", headers=seed.headers).status_code == 403


def test_legacy_list_spans_workspaces_and_filters(
    app: FastAPI, client: TestClient, seed: Seed
) -> None:
    owner = make_user(app)
    ws2 = make_workspace(app, owner, members={seed.user_id: "viewer"})
    a = create(client, seed, job_type="a")["job_id"]
    b = client.post(
        f"/workspace/{ws2}/jobs",
        json={"job_type": "b", "workspace_id": ws2},
        headers=auth_headers(client, owner.username),
    ).json()["job_id"]
    resp = client.get("/jobs", headers=seed.headers)
    assert resp.headers["Deprecation"] == "true"
    assert resp.headers["Link"] == '</docs>; rel="deprecation"'
    assert ids(resp) == [b, a]
    assert ids(client.get(f"/jobs?workspace_id={ws2}", headers=seed.headers)) == [b]
    assert ids(client.get("/jobs?job_type=a", headers=seed.headers)) == [a]
    assert client.get("/jobs?workspace_id=0", headers=seed.headers).status_code == 422
    assert client.get("/jobs", headers={}).status_code == 401


def test_create_workspace_mismatch_and_missing_fields(client: TestClient, seed: Seed) -> None:
    resp = client.post(
        "/workspace/1/jobs", json={"job_type": "x", "workspace_id": 2}, headers=seed.headers
    )
    assert resp.status_code == 400
    assert resp.json()["code"] == "WORKSPACE_MISMATCH"
    assert "does not match" in resp.json()["detail"]

    resp = client.post("/workspace/1/jobs", json={"job_type": "x"}, headers=seed.headers)
    assert resp.status_code == 422
    assert resp.json()["detail"][0]["loc"] == ["body", "workspace_id"]

    resp = client.post(
        "/workspace/1/jobs",
        json={"job_type": "x", "workspace_id": 1, "surprise": 1},
        headers=seed.headers,
    )
    assert resp.status_code == 422
    assert resp.json()["detail"][0]["loc"] == ["body", "surprise"]

    for bad in ("not json", "[1, 2]", ""):
        resp = client.post(
            "/workspace/1/jobs",
            content=bad,
            headers={**seed.headers, "Content-Type": "application/json"},
        )
        assert resp.status_code == 422, bad
    assert listing(client, seed, "").json()["pagination"]["total"] == 0


def test_naive_scheduled_at_is_read_as_utc(client: TestClient, seed: Seed) -> None:
    job = create(client, seed, scheduled_at="2030-01-15T15:00:00")
    assert job["scheduled_at"] == "2030-01-15T15:00:00Z"
    job = create(client, seed, scheduled_at="2030-01-15T17:00:00+02:00")
    assert job["scheduled_at"] == "2030-01-15T15:00:00Z"


MALFORMED_PATHS = [
    ("/workspace/1/jobs/abc", 404),
    ("/workspace/1/jobs/job_", 404),
    ("/workspace/1/jobs/job_0", 404),
    ("/workspace/1/jobs/job_-1", 404),
    ("/workspace/1/jobs/job_99999999999999999", 404),
    ("/workspace/1/jobs/99999999999999999999999", 404),
    ("/workspace/1/jobs/" + "9" * 70, 404),
    ("/workspace/1/jobs/abc/status", 404),
    ("/workspace/1/jobs/abc/result", 404),
    ("/workspace/abc/jobs", 422),
    ("/workspace/0/jobs", 422),
    ("/workspace/99999999999999999999/jobs", 422),
    ("/workspace/2147483647/jobs", 404),
]


def test_malformed_ids_are_clean_4xx(client: TestClient, seed: Seed) -> None:
    for path, status in MALFORMED_PATHS:
        resp = client.get(path, headers=seed.headers)
        assert resp.status_code == status, (path, resp.text)
        assert "detail" in resp.json()


def test_malformed_ids_on_actions(client: TestClient, seed: Seed) -> None:
    for method, path in (
        ("PATCH", "/workspace/1/jobs/abc"),
        ("POST", "/workspace/1/jobs/abc/cancel"),
        ("POST", "/workspace/1/jobs/job_x/retry"),
    ):
        resp = client.request(
            method, path, json={} if method == "PATCH" else None, headers=seed.headers
        )
        assert resp.status_code == 404
        assert resp.json()["detail"] == "Job not found in specified workspace"


def test_oversized_body_is_413(app: FastAPI, client: TestClient, seed: Seed) -> None:
    limit = app.state.runtime.settings.upload.max_json_bytes
    big = {"job_type": "x", "workspace_id": 1, "metadata": {"blob": "a" * (limit + 1)}}
    resp = client.post("/workspace/1/jobs", json=big, headers=seed.headers)
    assert resp.status_code == 413
    assert resp.json()["code"] == "PAYLOAD_TOO_LARGE"
    assert listing(client, seed, "").json()["pagination"]["total"] == 0


def test_patch_tells_absent_from_null(client: TestClient, seed: Seed) -> None:
    job_id = create(client, seed)["job_id"]
    url = f"/workspace/1/jobs/{job_id}"
    client.patch(
        url,
        json={"progress_percent": 10, "progress_message": "m", "result": {"a": 1, "b": 2}},
        headers=seed.headers,
    )
    # Absent fields stay; sent keys of result replace, others stay.
    job = client.patch(url, json={"result": {"b": 3}}, headers=seed.headers).json()
    assert job["result"] == {"progress_percent": 10, "progress_message": "m", "a": 1, "b": 3}
    # null clears that field only.
    job = client.patch(url, json={"progress_message": None}, headers=seed.headers).json()
    assert job["result"] == {"progress_percent": 10, "a": 1, "b": 3}
    job = client.patch(url, json={"result": None}, headers=seed.headers).json()
    assert job["result"] == {"progress_percent": 10}
    status = client.get(f"{url}/status", headers=seed.headers).json()
    assert status["progress_percent"] == 10 and status["progress_message"] is None

    resp = client.patch(url, json={"status": None}, headers=seed.headers)
    assert resp.status_code == 422 and resp.json()["detail"][0]["loc"] == ["body", "status"]
    for bad in ({"progress_percent": 101}, {"progress_percent": -1}, {"status": "done"}, {"x": 1}):
        assert client.patch(url, json=bad, headers=seed.headers).status_code == 422, bad


def test_illegal_patch_is_409_and_changes_nothing(client: TestClient, seed: Seed) -> None:
    job_id = create(client, seed)["job_id"]
    url = f"/workspace/1/jobs/{job_id}"
    resp = client.patch(
        url, json={"status": "success", "progress_percent": 99}, headers=seed.headers
    )
    assert resp.status_code == 409
    assert resp.json()["code"] == "INVALID_TRANSITION"
    job = client.get(url, headers=seed.headers).json()
    assert job["status"] == "pending" and job["result"] is None  # rolled back as a whole


def test_patch_to_current_word_is_not_a_transition(
    client: TestClient, seed: Seed, set_job: Callable[..., None]
) -> None:
    job_id = create(client, seed)["job_id"]
    set_job(job_id, status="claimed")
    url = f"/workspace/1/jobs/{job_id}"
    job = client.patch(url, json={"status": "pending", "progress_percent": 1}, headers=seed.headers)
    assert job.status_code == 200 and job.json()["status"] == "pending"
    events = client.get(f"/v1/jobs/{job_id}", headers=seed.headers).json()["data"]["events"]
    assert [e["type"] for e in events] == ["created"]  # still claimed: no un-claim


def test_cancel_rules(client: TestClient, seed: Seed) -> None:
    job_id = create(client, seed)["job_id"]
    url = f"/workspace/1/jobs/{job_id}"
    assert client.post(f"{url}/cancel", headers=seed.headers).status_code == 200
    resp = client.post(f"{url}/cancel", headers=seed.headers)
    assert resp.status_code == 409 and resp.json()["code"] == "INVALID_TRANSITION"

    done = create(client, seed)["job_id"]
    client.patch(f"/workspace/1/jobs/{done}", json={"status": "running"}, headers=seed.headers)
    client.patch(f"/workspace/1/jobs/{done}", json={"status": "success"}, headers=seed.headers)
    resp = client.post(f"/workspace/1/jobs/{done}/cancel", headers=seed.headers)
    assert resp.status_code == 409
    assert (
        client.get(f"/workspace/1/jobs/{done}", headers=seed.headers).json()["status"] == "success"
    )


def test_retry_counts_and_stops_at_max_retries(client: TestClient, seed: Seed) -> None:
    job_id = create(client, seed, max_retries=2)["job_id"]
    url = f"/workspace/1/jobs/{job_id}"

    resp = client.post(f"{url}/retry", headers=seed.headers)  # pending: nothing to retry
    assert resp.status_code == 409 and resp.json()["code"] == "INVALID_TRANSITION"

    for expected in (1, 2):
        client.patch(url, json={"status": "running"}, headers=seed.headers)
        client.patch(url, json={"status": "failed"}, headers=seed.headers)
        job = client.post(f"{url}/retry", headers=seed.headers).json()
        assert job["retry_count"] == expected and job["status"] == "pending"
        assert job["result"] == {"retry_reason": "Retried via API", "previous_attempts": expected}

    client.post(f"{url}/cancel", headers=seed.headers)
    resp = client.post(f"{url}/retry", headers=seed.headers)
    assert resp.status_code == 409
    assert resp.json()["code"] == "RETRY_LIMIT_REACHED"
    job = client.get(url, headers=seed.headers).json()
    assert job["status"] == "cancelled" and job["retry_count"] == 2


def test_every_change_is_in_the_event_log(client: TestClient, seed: Seed) -> None:
    job_id = create(client, seed)["job_id"]
    url = f"/workspace/1/jobs/{job_id}"
    client.patch(url, json={"status": "running"}, headers=seed.headers)
    client.patch(url, json={"status": "failed"}, headers=seed.headers)
    client.post(f"{url}/retry", headers=seed.headers)
    client.post(f"{url}/cancel", headers=seed.headers)
    events = client.get(f"/v1/jobs/{job_id}", headers=seed.headers).json()["data"]["events"]
    assert [(e["type"], e["fromStatus"], e["toStatus"]) for e in events] == [
        ("created", None, "pending"),
        ("running", "pending", "running"),
        ("failed", "running", "failed"),
        ("retried", "failed", "pending"),
        ("cancelled", "pending", "cancelled"),
    ]
    assert events[3]["data"]["retry_count"] == 1


def test_timestamps_are_utc_iso(client: TestClient, seed: Seed) -> None:
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    job = create(client, seed)
    created = dt.datetime.strptime(job["created_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    assert before - dt.timedelta(seconds=1) <= created <= before + dt.timedelta(seconds=5)
