"""Provider claims, leases, fencing and the reaper, through the HTTP API.

The jobs here carry no reward unless a test says so, so they are private jobs of one
workspace (`_pool`), and the providers join its pool with its provider key."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from eth_account import Account
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from marketplace.jobs.states import JobStatus
from node.auth.api_keys import hash_key
from node.auth.principal import Principal
from node.db import session_scope, utcnow
from node.jobs.service import create_job
from node.models.auth import ApiKey
from node.models.jobs import Job
from node.models.providers import ProviderAdmission
from node.models.workspaces import Role
from node.providers import service
from node.workspaces.api_keys import create_api_key
from tests.fixtures.factories import auth_headers, make_user, make_workspace


def _pool(app: FastAPI) -> tuple[int, str]:
    """The workspace the tests' private jobs belong to, and its `provider` key (one per
    app, made on first use)."""
    if not hasattr(app.state, "test_pool"):
        owner = make_user(app)
        workspace_id = make_workspace(app, owner, name="pool")
        with session_scope(app.state.runtime.sessionmaker) as session:
            principal = Principal(user_id=owner.id, subject=owner.username or "")
            _, key = create_api_key(session, principal, workspace_id, "pool", Role.PROVIDER)
        app.state.test_pool = (workspace_id, key)
    return app.state.test_pool


def _admit(app: FastAPI, provider_id: int) -> None:
    """Admit a provider made without registering to the pool (as its key would)."""
    workspace_id, key = _pool(app)
    with session_scope(app.state.runtime.sessionmaker) as session:
        key_id = session.scalars(select(ApiKey.id).where(ApiKey.key_hash == hash_key(key))).one()
        session.add(
            ProviderAdmission(provider_id=provider_id, api_key_id=key_id, workspace_id=workspace_id)
        )


def _wallet_headers(app: FastAPI, client: TestClient, name: str) -> dict[str, str]:
    address = Account.create().address
    make_user(app, username=name, address=address)
    return auth_headers(client, name)


def _provider(app: FastAPI, client: TestClient, name: str = "prov", **body) -> dict[str, str]:
    headers = _wallet_headers(app, client, name)
    payload = {"name": name, "job_types": ["image_processing"], "api_keys": [_pool(app)[1]]}
    payload.update(body)
    resp = client.post("/v1/providers", json=payload, headers=headers)
    assert resp.status_code == 201, resp.text
    return headers


def _job(app: FastAPI, **kw) -> int:
    kw.setdefault("job_type", "image_processing")
    if not kw.get("reward_wei"):
        kw.setdefault("workspace_id", _pool(app)[0])
    with session_scope(app.state.runtime.sessionmaker) as session:
        return create_job(session, **kw).id


def _get(app: FastAPI, job_id: int) -> Job:
    with session_scope(app.state.runtime.sessionmaker) as session:
        return session.get(Job, job_id)


def _expire_lease(app: FastAPI, job_id: int) -> None:
    with session_scope(app.state.runtime.sessionmaker) as session:
        session.get(Job, job_id).lease_expires_at = utcnow() - dt.timedelta(seconds=1)


def _reap(app: FastAPI) -> list[int]:
    with session_scope(app.state.runtime.sessionmaker) as session:
        return service.reap_expired(session)


def test_password_account_cannot_register_as_provider(app, client):
    make_user(app, username="alice")
    resp = client.post("/v1/providers", json={}, headers=auth_headers(client, "alice"))
    assert resp.status_code == 403


def test_unregistered_wallet_cannot_claim(app, client):
    headers = _wallet_headers(app, client, "w")
    resp = client.post("/v1/providers/claim", json={}, headers=headers)
    assert resp.status_code == 403
    assert resp.json()["error"]["code"] == "PROVIDER_NOT_REGISTERED"


def test_claim_hands_out_a_lease_once(app, client):
    job_id = _job(app)
    p1 = _provider(app, client, "p1")
    p2 = _provider(app, client, "p2")
    first = client.post("/v1/providers/claim", json={}, headers=p1)
    assert first.status_code == 200, first.text
    lease = first.json()["data"]["lease"]
    assert lease["job_id"] == f"job_{job_id}" and lease["attempt"] == 1 and lease["lease_id"]
    assert client.post("/v1/providers/claim", json={}, headers=p2).status_code == 204
    assert _get(app, job_id).status == "claimed"


def test_long_poll_claim_wakes_when_a_job_opens(app, client):
    p1 = _provider(app, client, "p1")
    opener = threading.Timer(0.3, lambda: _job(app))
    opener.start()
    started = time.monotonic()
    resp = client.post("/v1/providers/claim", json={"wait_seconds": 10}, headers=p1)
    opener.join()
    assert resp.status_code == 200
    assert time.monotonic() - started < 9  # woke on the job, not on the wait running out


def test_claim_waits_at_most_wait_seconds(app, client):
    p1 = _provider(app, client, "p1")
    resp = client.post("/v1/providers/claim", json={"wait_seconds": 0.2}, headers=p1)
    assert resp.status_code == 204


def test_stale_attempt_cannot_submit(app, client):
    job_id = _job(app)
    dead = _provider(app, client, "dead")
    successor = _provider(app, client, "succ")
    assert client.post("/v1/providers/claim", json={}, headers=dead).status_code == 200
    _expire_lease(app, job_id)
    assert _reap(app) == [job_id]
    claim2 = client.post("/v1/providers/claim", json={}, headers=successor).json()["data"]
    assert claim2["lease"]["attempt"] == 2
    late = client.post(
        f"/v1/jobs/job_{job_id}/result",
        headers=dead,
        json={"attempt": 1, "result_cid": "Qm" + "a" * 44},
    )
    assert late.status_code == 409
    assert late.json()["error"]["code"] == "STALE_ATTEMPT"
    progress = client.post(
        f"/v1/jobs/job_{job_id}/progress", headers=dead, json={"attempt": 1, "percent": 50}
    )
    assert progress.status_code == 409
    ok = client.post(
        f"/v1/jobs/job_{job_id}/result",
        headers=successor,
        json={"attempt": 2, "result_cid": "Qm" + "b" * 44},
    )
    assert ok.status_code == 200 and ok.json()["data"]["status"] == "completed"
    assert _get(app, job_id).result_cid == "Qm" + "b" * 44


def test_another_provider_cannot_write_with_the_current_attempt(app, client):
    job_id = _job(app)
    holder = _provider(app, client, "holder")
    other = _provider(app, client, "other")
    client.post("/v1/providers/claim", json={}, headers=holder)
    resp = client.post(f"/v1/jobs/{job_id}/heartbeat", json={"attempt": 1}, headers=other)
    assert resp.status_code == 409
    assert resp.json()["error"]["code"] == "NOT_LEASE_HOLDER"


def test_expired_lease_refuses_heartbeat(app, client):
    job_id = _job(app)
    holder = _provider(app, client, "holder")
    client.post("/v1/providers/claim", json={}, headers=holder)
    _expire_lease(app, job_id)
    resp = client.post(f"/v1/jobs/{job_id}/heartbeat", json={"attempt": 1}, headers=holder)
    assert resp.status_code == 409
    assert resp.json()["error"]["code"] == "LEASE_EXPIRED"


def test_heartbeat_extends_the_lease(app, client):
    job_id = _job(app)
    holder = _provider(app, client, "holder")
    before = client.post("/v1/providers/claim", json={}, headers=holder).json()["data"]["lease"]
    time.sleep(1.1)
    after = client.post(f"/v1/jobs/{job_id}/heartbeat", json={"attempt": 1}, headers=holder)
    assert after.status_code == 200
    assert after.json()["data"]["expires_at"] > before["expires_at"]


def test_reaper_fails_job_after_max_retries(app, client):
    job_id = _job(app, max_retries=1)
    p = _provider(app, client, "p")
    for attempt in (1, 2):
        claim = client.post("/v1/providers/claim", json={}, headers=p).json()["data"]
        assert claim["lease"]["attempt"] == attempt
        _expire_lease(app, job_id)
        _reap(app)
    job = _get(app, job_id)
    assert job.status == "failed"
    assert [e.type for e in job.events].count("lease_expired") == 1


def test_progress_logs_and_reward_job_waits_in_submitted(app, client):
    job_id = _job(app, reward_wei=10**16)
    p = _provider(app, client, "p")
    client.post("/v1/providers/claim", json={}, headers=p)
    resp = client.post(
        f"/v1/jobs/{job_id}/progress",
        headers=p,
        json={"attempt": 1, "percent": 40, "message": "Epoch 2/5", "metrics": {"box_loss": 1.2}},
    )
    assert resp.status_code == 200 and resp.json()["data"]["status"] == "running"
    logs = client.post(
        f"/v1/jobs/{job_id}/logs",
        headers=p,
        json={"attempt": 1, "lines": [{"line": "hello"}, {"line": "x", "level": "error"}]},
    )
    assert logs.json()["data"] == {"accepted": 2}
    done = client.post(
        f"/v1/jobs/{job_id}/result", headers=p, json={"attempt": 1, "result_cid": "Qm" + "c" * 44}
    )
    assert done.json()["data"]["status"] == "submitted"
    job = _get(app, job_id)
    assert job.progress_percent == 100
    assert [e.type for e in job.events] == [
        "created",
        "claimed",
        "started",
        "progress",
        "log",
        "log",
        "submitted",
    ]


def test_release_returns_job_to_queue(app, client):
    job_id = _job(app)
    p = _provider(app, client, "p")
    client.post("/v1/providers/claim", json={}, headers=p)
    resp = client.post(f"/v1/jobs/{job_id}/release", json={"attempt": 1}, headers=p)
    assert resp.json()["data"]["status"] == "pending"
    again = client.post("/v1/providers/claim", json={}, headers=p).json()["data"]
    assert again["lease"]["attempt"] == 2


def test_non_retryable_failure_fails_the_job(app, client):
    job_id = _job(app)
    p = _provider(app, client, "p")
    client.post("/v1/providers/claim", json={}, headers=p)
    resp = client.post(
        f"/v1/jobs/{job_id}/fail",
        headers=p,
        json={"attempt": 1, "error": "dataset CID mismatch", "retryable": False},
    )
    assert resp.json()["data"]["status"] == "failed"
    assert _get(app, job_id).error == "dataset CID mismatch"


def test_scheduled_job_is_not_claimable_until_due(app, client):
    _job(app, scheduled_at=utcnow() + dt.timedelta(hours=1))
    p = _provider(app, client, "p")
    assert client.post("/v1/providers/claim", json={}, headers=p).status_code == 204


def test_claim_order_is_priority_then_age(app, client):
    old_normal = _job(app, priority="normal")
    urgent = _job(app, priority="urgent")
    p = _provider(app, client, "p", max_concurrent=2)
    first = client.post("/v1/providers/claim", json={}, headers=p).json()["data"]
    second = client.post("/v1/providers/claim", json={}, headers=p).json()["data"]
    assert [first["lease"]["job_id"], second["lease"]["job_id"]] == [
        f"job_{urgent}",
        f"job_{old_normal}",
    ]


def test_jobs_are_matched_on_gpu_memory_and_type(app, client):
    big = _job(app, spec={"requirements": {"min_gpu_memory_mb": 40000}})
    _job(app, job_type="container")
    small = _provider(
        app, client, "small", capabilities={"gpus": [{"name": "T4", "memory_mb": 16000}]}
    )
    assert client.post("/v1/providers/claim", json={}, headers=small).status_code == 204
    large = _provider(
        app, client, "large", capabilities={"gpus": [{"name": "H100", "memory_mb": 81559}]}
    )
    resp = client.post("/v1/providers/claim", json={}, headers=large)
    assert resp.json()["data"]["lease"]["job_id"] == f"job_{big}"


def test_provider_at_capacity_gets_nothing(app, client):
    _job(app)
    _job(app)
    p = _provider(app, client, "p", max_concurrent=1)
    assert client.post("/v1/providers/claim", json={}, headers=p).status_code == 200
    assert client.post("/v1/providers/claim", json={}, headers=p).status_code == 204


def test_registry_lists_online_providers(app, client):
    p = _provider(
        app,
        client,
        "p",
        capabilities={"gpus": [{"name": "A100", "memory_mb": 40000}], "cpu_cores": 16},
    )
    resp = client.get("/v1/providers", headers=p)
    [entry] = resp.json()["data"]
    assert entry["online"] is True and entry["capabilities"]["cpu_cores"] == 16


@pytest.mark.parametrize("bad", [{"attempt": 0}, {"attempt": "x"}, {}, {"attempt": 1, "z": 1}])
def test_malformed_provider_writes_are_422(app, client, bad):
    job_id = _job(app)
    p = _provider(app, client, "p")
    client.post("/v1/providers/claim", json={}, headers=p)
    assert client.post(f"/v1/jobs/{job_id}/heartbeat", json=bad, headers=p).status_code in (
        400,
        422,
    )


def test_concurrent_claims_never_hand_a_job_twice(app):
    """32 providers claim 64 jobs at once through the service (one session each)."""
    jobs = [_job(app) for _ in range(64)]
    providers = []
    for i in range(32):
        with session_scope(app.state.runtime.sessionmaker) as session:
            from node.models.providers import Provider

            user = make_user(app, username=f"c{i}", address=Account.create().address)
            prov = Provider(
                user_id=user.id,
                address=user.address,
                name=f"c{i}",
                job_types=["image_processing"],
                max_concurrent=64,
                capabilities={},
            )
            session.add(prov)
            session.flush()
            providers.append(prov.id)
        _admit(app, prov.id)
    claimed: list[int] = []
    lock = threading.Lock()
    settings = app.state.runtime.settings

    def worker(provider_id: int) -> None:
        from node.models.providers import Provider

        while True:
            with session_scope(app.state.runtime.sessionmaker) as session:
                prov = session.get(Provider, provider_id)
                got = service.claim(session, settings, prov)
            if got is None:
                return
            with lock:
                claimed.append(got.job.id)

    threads = [threading.Thread(target=worker, args=(pid,)) for pid in providers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == sorted(jobs)
    for job_id in jobs:
        assert _get(app, job_id).status == JobStatus.CLAIMED.value


def test_a_claim_in_flight_leaves_the_other_pending_jobs_to_other_claimants(app):
    """While one claim's transaction is open, another provider is handed one of the jobs
    it did not take (a claim locks the job it takes, not the whole head of the queue)."""
    if app.state.runtime.engine.dialect.name != "postgresql":
        pytest.skip("row locks: SQLite has one writer, so claims cannot overlap there")
    from node.models.providers import Provider

    jobs = [_job(app) for _ in range(3)]
    ids = []
    for name in ("first", "second"):
        user = make_user(app, username=name, address=Account.create().address)
        with session_scope(app.state.runtime.sessionmaker) as session:
            prov = Provider(
                user_id=user.id,
                address=user.address,
                name=name,
                job_types=["image_processing"],
                max_concurrent=4,
                capabilities={},
            )
            session.add(prov)
            session.flush()
            ids.append(prov.id)
        _admit(app, ids[-1])
    settings = app.state.runtime.settings
    with session_scope(app.state.runtime.sessionmaker) as first:
        got_first = service.claim(first, settings, first.get(Provider, ids[0]))
        assert got_first is not None
        with session_scope(app.state.runtime.sessionmaker) as second:
            got_second = service.claim(second, settings, second.get(Provider, ids[1]))
            assert got_second is not None
            assert got_second.job.id != got_first.job.id
    assert {got_first.job.id, got_second.job.id} <= set(jobs)
