"""Seed 003's job routes over the one job model: create, list (filters, pagination,
sort), get (config, results, events), cancel, logs, metrics; envelopes and error codes."""

from __future__ import annotations

import datetime as dt
import json

from fastapi import FastAPI

from node.db import session_scope
from node.jobs.service import create_job as create_canonical_job
from tests.node.plugin_core.conftest import (
    BASE,
    CREATE,
    FakeProvider,
    create,
    job_row,
    make_team,
)

CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"


def _set(app: FastAPI, job_id: str, **columns) -> None:
    from node.models.jobs import Job

    with session_scope(app.state.runtime.sessionmaker) as session:
        job = session.get(Job, int(job_id.removeprefix("job_")))
        assert job is not None
        for key, value in columns.items():
            setattr(job, key, value)


def test_create_lands_in_the_keys_workspace_with_the_executor_spec(app, client, team):
    job = create(client, team.headers, command=["sh", "-c"], args=["echo hi"], gpus=0)
    assert job["status"] == "pending" and job["provider"] == "akash"
    assert (job["memory"], job["storage"], job["cpu"], job["duration"]) == (
        "512Mi",
        "1Gi",
        1000,
        3600,
    )
    assert job["cost"] == {"current": 0, "projected": 0, "currency": "ETH"}
    row = job_row(app, job["id"])
    assert row.workspace_id == team.workspace_id and row.job_type == "container"
    assert row.status == "pending" and row.pool == "akash" and row.reward_wei == 0
    assert row.spec == {
        "image": "nginx:alpine",
        "command": ["sh", "-c"],
        "args": ["echo hi"],
        "env": {"DEBUG": "true"},
        "cpu_millicores": 1000,
        "memory_bytes": 512 * 1024**2,
        "storage_bytes": 1024**3,
        "duration_seconds": 3600,
        "ports": [{"port": 80, "expose": True}],
        "volumes": [],
        "gpus": 0,
        "inputs": [],
        "pool": "akash",
    }


def test_volumes_and_inputs_are_normalized(app, client, team):
    job = create(
        client,
        team.headers,
        volumes=[{"name": "cache", "mountPath": "/cache", "size": "2Gi"}],
        inputs=[{"cid": CID, "path": "/data"}],
        image=f"ipfs://{CID}",
    )
    spec = job_row(app, job["id"]).spec
    assert spec["volumes"] == [{"name": "cache", "mount_path": "/cache", "size_bytes": 2 * 1024**3}]
    assert spec["inputs"] == [{"cid": CID, "path": "/data"}]
    assert spec["image"] == f"ipfs://{CID}"


def test_a_user_token_creates_in_the_personal_workspace(app, client, team):
    job = create(client, team.owner)
    row = job_row(app, job["id"])
    assert row.workspace_id != team.workspace_id
    assert client.get(f"{BASE}/jobs/{job['id']}", headers=team.owner).status_code == 200
    # the team's key does not reach the owner's personal workspace
    resp = client.get(f"{BASE}/jobs/{job['id']}", headers=team.headers)
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "JOB_NOT_FOUND"


def test_list_filters_by_status_and_provider_network(app, client, team):
    akash = create(client, team.headers)
    render = create(client, team.headers, provider="render")
    provider = FakeProvider(app, client, "p1", networks=["akash"], keys=[team.provider_key])
    provider.run(provider.claim())

    def ids(query: str) -> list[str]:
        resp = client.get(f"{BASE}/jobs{query}", headers=team.headers)
        assert resp.status_code == 200, resp.text
        return [j["id"] for j in resp.json()["data"]]

    assert ids("?status=running&provider=akash") == [akash["id"]]
    assert ids("?status=pending") == [render["id"]]
    assert ids("?provider=render") == [render["id"]]
    assert ids("?status=completed") == []
    assert ids("") == [render["id"], akash["id"]]  # createdAt:desc


def test_list_filters_by_creation_dates(app, client, team):
    old, new = create(client, team.headers), create(client, team.headers)
    _set(app, old["id"], created_at=dt.datetime(2025, 7, 10, 12, 34, 56, tzinfo=dt.UTC))

    def ids(query: str) -> list[str]:
        resp = client.get(f"{BASE}/jobs{query}", headers=team.headers)
        assert resp.status_code == 200, resp.text
        return [j["id"] for j in resp.json()["data"]]

    assert ids("?from=2025-07-10&to=2025-07-10") == [old["id"]]
    assert ids("?to=2025-07-10T12:34:56Z") == [old["id"]]
    assert ids("?from=2025-07-10T12:34:57Z") == [new["id"]]
    assert ids("?from=2025-07-11") == [new["id"]]


def test_bad_list_parameters_are_400_naming_the_field(client, team):
    for query, field in [
        ("?from=yesterday", "from"),
        ("?to=2025-13-01", "to"),
        ("?from=2025-07-11&to=2025-07-10", "from"),
        ("?limit=101", "limit"),
        ("?limit=0", "limit"),
        ("?page=0", "page"),
        ("?sort=image:desc", "sort"),
        ("?status=sleeping", "status"),
    ]:
        resp = client.get(f"{BASE}/jobs{query}", headers=team.headers)
        assert resp.status_code == 400, (query, resp.text)
        err = resp.json()["error"]
        assert resp.json()["success"] is False
        assert err["code"] == "VALIDATION_ERROR" and err["message"].startswith(field), err


def test_pagination_defaults_to_20_and_counts_pages(app, client, team):
    made = [create(client, team.headers)["id"] for _ in range(23)]
    resp = client.get(f"{BASE}/jobs", headers=team.headers)
    body = resp.json()
    assert body["meta"] == {"pagination": {"total": 23, "page": 1, "limit": 20, "pages": 2}}
    assert [j["id"] for j in body["data"]] == made[::-1][:20]
    page2 = client.get(f"{BASE}/jobs?page=2", headers=team.headers).json()
    assert [j["id"] for j in page2["data"]] == made[::-1][20:]
    asc = client.get(f"{BASE}/jobs?sort=createdAt:asc&limit=5&page=2", headers=team.headers)
    assert [j["id"] for j in asc.json()["data"]] == made[5:10]
    assert asc.json()["meta"]["pagination"] == {"total": 23, "page": 2, "limit": 5, "pages": 5}
    full = client.get(f"{BASE}/jobs?limit=100", headers=team.headers).json()
    assert len(full["data"]) == 23 and full["meta"]["pagination"]["pages"] == 1


def test_list_shows_only_the_callers_container_jobs(app, client, team):
    mine = create(client, team.headers)
    other = make_team(app, client, "other")
    create(client, other.headers)
    with session_scope(app.state.runtime.sessionmaker) as session:  # a training job, same ws
        create_canonical_job(session, job_type="yolo_training", workspace_id=team.workspace_id)
    resp = client.get(f"{BASE}/jobs", headers=team.headers)
    assert [j["id"] for j in resp.json()["data"]] == [mine["id"]]


def test_completed_job_shows_results_events_and_output_url(app, client, team):
    create(client, team.headers)
    provider = FakeProvider(app, client, "p1", networks=["akash"], keys=[team.provider_key])
    job_id, attempt = provider.run(provider.claim())
    provider.finish(job_id, attempt, CID, exit_code=0)
    data = client.get(f"{BASE}/jobs/{job_id}", headers=team.headers).json()["data"]
    assert data["status"] == "completed" and data["endedAt"] is not None
    assert data["results"]["exitCode"] == 0
    assert data["results"]["outputUrl"] == f"http://testserver/ipfs/{CID}"
    assert data["config"] == {"env": {"DEBUG": "true"}, "ports": [{"port": 80, "expose": True}]}
    assert [e["type"] for e in data["events"]] == ["created", "scheduled", "started", "completed"]
    assert all(e["timestamp"].endswith("Z") for e in data["events"])


def test_failed_job_keeps_its_exit_code(app, client, team):
    create(client, team.headers)
    provider = FakeProvider(app, client, "p1", networks=["akash"], keys=[team.provider_key])
    job_id, attempt = provider.run(provider.claim())
    provider.write(job_id, "progress", attempt, message="exit", percent=100)
    _set(app, job_id, result={"exit_code": 3, "output_cid": None, "oom": False})
    resp = provider.write(job_id, "fail", attempt, error="container exited with 3", retryable=False)
    assert resp.status_code == 200, resp.text
    data = client.get(f"{BASE}/jobs/{job_id}", headers=team.headers).json()["data"]
    assert data["status"] == "failed" and data["results"]["exitCode"] == 3
    assert data["statusMessage"] == "container exited with 3"


def test_cancel_of_a_running_job_is_cancelling_then_cancelled(app, client, team):
    create(client, team.headers)
    provider = FakeProvider(app, client, "p1", networks=["akash"], keys=[team.provider_key])
    job_id, attempt = provider.run(provider.claim())
    resp = client.post(f"{BASE}/jobs/{job_id}/cancel", headers=team.headers)
    assert resp.status_code == 200
    assert resp.json() == {"success": True, "data": {"id": job_id, "status": "cancelling"}}
    assert (
        client.get(f"{BASE}/jobs/{job_id}", headers=team.headers).json()["data"]["status"]
        == "cancelling"
    )
    # the provider learns at its next heartbeat (refused) and stops; its lease then ends
    assert provider.write(job_id, "heartbeat", attempt).status_code == 409
    _set(app, job_id, lease_expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
    data = client.get(f"{BASE}/jobs/{job_id}", headers=team.headers).json()["data"]
    assert data["status"] == "cancelled" and data["events"][-1]["type"] == "cancelled"


def test_a_cancelled_job_is_cancelled_once_its_provider_says_it_stopped(app, client, team):
    """The provider stopped the container (its heartbeat refused) and releases its lease:
    the job is `cancelled` at once, not `cancelling` until the lease would have run out.
    Only the lease holder, at its attempt, ends it."""
    create(client, team.headers)
    provider = FakeProvider(app, client, "p1", networks=["akash"], keys=[team.provider_key])
    other = FakeProvider(app, client, "p2", networks=["akash"], keys=[team.provider_key])
    job_id, attempt = provider.run(provider.claim())
    client.post(f"{BASE}/jobs/{job_id}/cancel", headers=team.headers)
    assert provider.write(job_id, "heartbeat", attempt).status_code == 409
    for who, at in ((other, attempt), (provider, attempt + 1)):
        assert who.write(job_id, "release", at, reason="stopped").status_code == 409
    view = client.get(f"{BASE}/jobs/{job_id}", headers=team.headers).json()["data"]
    assert view["status"] == "cancelling"

    resp = provider.write(job_id, "release", attempt, reason="lease lost: cancelled")
    assert resp.status_code == 200, resp.text
    assert resp.json()["data"]["status"] == "cancelled"
    view = client.get(f"{BASE}/jobs/{job_id}", headers=team.headers).json()["data"]
    assert view["status"] == "cancelled" and view["events"][-1]["type"] == "cancelled"
    row = job_row(app, job_id)
    assert row.lease_expires_at is None and row.lease_holder is not None  # who ran it
    assert provider.write(job_id, "release", attempt, reason="again").status_code == 409


def test_cancel_of_a_pending_job_is_cancelled_and_again_is_409(app, client, team):
    job = create(client, team.headers)
    resp = client.post(f"{BASE}/jobs/{job['id']}/cancel", headers=team.headers)
    assert resp.json()["data"] == {"id": job["id"], "status": "cancelled"}
    again = client.post(f"{BASE}/jobs/{job['id']}/cancel", headers=team.headers)
    assert again.status_code == 409
    assert again.json()["success"] is False
    assert again.json()["error"]["code"] == "PROVIDER_CONFLICT"
    assert again.json()["error"]["details"]["reason"] == "INVALID_TRANSITION"


def test_unknown_bad_and_foreign_ids_are_404_job_not_found(app, client, team):
    other = make_team(app, client, "other")
    foreign = create(client, other.headers)
    with session_scope(app.state.runtime.sessionmaker) as session:
        training = create_canonical_job(
            session, job_type="yolo_training", workspace_id=team.workspace_id
        ).id
    for raw in [
        foreign["id"],
        "job_999999",
        "job_1a2b3c4d5e6f",
        "nope",
        "job_-1",
        f"job_{training}",
    ]:
        for method, path in [
            ("GET", f"/jobs/{raw}"),
            ("POST", f"/jobs/{raw}/cancel"),
            ("GET", f"/jobs/{raw}/logs"),
            ("GET", f"/jobs/{raw}/metrics"),
        ]:
            resp = client.request(method, BASE + path, headers=team.headers)
            assert resp.status_code == 404, (raw, path, resp.text)
            assert resp.json() == {
                "success": False,
                "error": {"code": "JOB_NOT_FOUND", "message": "Job not found", "details": None},
            }
    assert job_row(app, foreign["id"]).status == "pending"


def test_missing_or_invalid_credentials_are_401_unauthorized(client):
    for headers in [{}, {"Authorization": "Bearer dcm_not-a-key"}, {"Authorization": "Bearer x"}]:
        resp = client.get(f"{BASE}/jobs", headers=headers)
        assert resp.status_code == 401
        assert resp.json()["success"] is False
        assert resp.json()["error"]["code"] == "UNAUTHORIZED"


def test_a_viewer_key_reads_but_may_not_create_or_cancel(app, client, team):
    job = create(client, team.headers)
    resp = client.post(
        f"/workspaces/{team.workspace_id}/api-keys",
        json={"name": "ro", "role": "viewer"},
        headers=team.owner,
    )
    viewer = {"Authorization": f"Bearer {resp.json()['key']}"}
    assert client.get(f"{BASE}/jobs/{job['id']}", headers=viewer).status_code == 200
    for resp in [
        client.post(f"{BASE}/jobs", json=CREATE, headers=viewer),
        client.post(f"{BASE}/jobs/{job['id']}/cancel", headers=viewer),
    ]:
        assert resp.status_code == 403, resp.text
        assert resp.json()["error"]["code"] == "FORBIDDEN"


def test_logs_tail_since_and_follow(app, client, team):
    create(client, team.headers)
    provider = FakeProvider(app, client, "p1", networks=["akash"], keys=[team.provider_key])
    job_id, attempt = provider.run(provider.claim())
    lines = [{"line": f"line {i}", "stream": "stdout"} for i in range(5)]
    assert provider.write(job_id, "logs", attempt, lines=lines).status_code == 200
    logs = client.get(f"{BASE}/jobs/{job_id}/logs?tail=2", headers=team.headers).json()
    assert [entry["line"] for entry in logs["data"]["logs"]] == ["line 3", "line 4"]
    assert logs["data"]["logs"][0]["timestamp"].endswith("Z")
    everything = client.get(f"{BASE}/jobs/{job_id}/logs", headers=team.headers).json()
    assert len(everything["data"]["logs"]) == 5
    later = client.get(f"{BASE}/jobs/{job_id}/logs?since=2999-01-01", headers=team.headers)
    assert later.json()["data"]["logs"] == []
    bad = client.get(f"{BASE}/jobs/{job_id}/logs?since=soon", headers=team.headers)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "VALIDATION_ERROR"

    provider.finish(job_id, attempt, CID)
    with client.stream(
        "GET", f"{BASE}/jobs/{job_id}/logs?follow=true", headers=team.headers
    ) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        text = "".join(stream.iter_text())
    frames = [f for f in text.split("\n\n") if f.strip()]
    messages = [f for f in frames if f.startswith("id:")]
    # no `event:` line: EventSource's onmessage gets each one, as the seed's client expects
    entries = [json.loads(f.split("data: ", 1)[1]) for f in messages]
    assert [e["line"] for e in entries] == [f"line {i}" for i in range(5)]
    assert all("event:" not in f for f in messages)
    assert frames[-1].startswith("event: end")


def test_metrics_answer_the_seed_shape_and_check_period(app, client, team):
    job = create(client, team.headers)
    resp = client.get(
        f"{BASE}/jobs/{job['id']}/metrics?period=1h&resolution=1m", headers=team.headers
    )
    assert resp.status_code == 200
    body = resp.json()
    assert body["success"] is True
    # the seed's series (none yet: nothing ran), and ours beside them
    data = body["data"]
    assert (data["cpu"], data["memory"], data["network"]) == ([], [], {"rx": [], "tx": []})
    assert (data["period"], data["resolution"], data["training"]) == ("1h", "1m", [])
    for query in ["?period=2h", "?resolution=10s"]:
        resp = client.get(f"{BASE}/jobs/{job['id']}/metrics{query}", headers=team.headers)
        assert resp.status_code == 400 and resp.json()["error"]["code"] == "VALIDATION_ERROR"


def test_webhooks_take_the_seed_body(client, team):
    body = {
        "url": "https://your-server.com/webhook",
        "events": ["job.created", "job.started", "job.completed", "job.failed"],
        "secret": "your-webhook-secret",
    }
    resp = client.post(f"{BASE}/webhooks", json=body, headers=team.headers)
    assert resp.status_code == 201, resp.text
    data = resp.json()["data"]
    assert resp.json()["success"] is True and data["events"] == body["events"]
    assert data["workspaceId"] == team.workspace_id and "secret" not in data
    listed = client.get(f"{BASE}/webhooks", headers=team.headers).json()["data"]
    assert [h["id"] for h in listed] == [data["id"]]
    # the same subscription through /v1
    assert [h["id"] for h in client.get("/v1/webhooks", headers=team.headers).json()["data"]] == [
        data["id"]
    ]
    bad = client.post(
        f"{BASE}/webhooks", json={**body, "events": ["job.exploded"]}, headers=team.headers
    )
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "VALIDATION_ERROR"


def test_one_job_through_every_dialect(app, client, team):
    """The plugin-core job is the canonical job: /v1 reads the same row."""
    job = create(client, team.headers)
    v1 = client.get(f"/v1/jobs/{job['id']}", headers=team.headers)
    assert v1.status_code == 200 and v1.json()["data"]["type"] == "container"
