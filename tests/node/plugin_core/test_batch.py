"""Batches: `{jobs, concurrency}` creates all jobs or none, and the claim never hands out
more than `concurrency` of one batch at once, whoever claims."""

from __future__ import annotations

import threading

from fastapi import FastAPI
from sqlalchemy import func, select

from marketplace.jobs.states import ACTIVE
from node.db import session_scope
from node.models.jobs import Job
from node.models.providers import Provider
from node.providers import service as providers
from tests.node.plugin_core.conftest import BASE, CREATE, FakeProvider

SEED_BATCH = {
    "jobs": [
        {
            "provider": "akash",
            "image": "image1:latest",
            "cpu": 1000,
            "memory": "512Mi",
            "storage": "1Gi",
            "duration": 3600,
        },
        {
            "provider": "render",
            "image": "image2:latest",
            "cpu": 2000,
            "memory": "1Gi",
            "storage": "2Gi",
            "duration": 7200,
        },
    ],
    "concurrency": 2,
}


def _active_in_batch(app: FastAPI, batch_id: str) -> int:
    with session_scope(app.state.runtime.sessionmaker) as session:
        return session.scalar(
            select(func.count()).where(
                Job.batch_id == batch_id, Job.status.in_([s.value for s in ACTIVE])
            )
        )


def test_seed_batch_body_creates_both_jobs(app, client, team):
    resp = client.post(f"{BASE}/jobs/batch", json=SEED_BATCH, headers=team.headers)
    assert resp.status_code == 201, resp.text
    data = resp.json()["data"]
    assert data["status"] == "submitted" and len(data["jobIds"]) == 2
    listed = client.get(f"{BASE}/jobs?sort=createdAt:asc", headers=team.headers).json()["data"]
    assert [j["id"] for j in listed] == data["jobIds"]
    assert [(j["provider"], j["image"]) for j in listed] == [
        ("akash", "image1:latest"),
        ("render", "image2:latest"),
    ]


def test_a_bad_entry_creates_nothing_and_is_named(client, team):
    body = {"jobs": [CREATE, {**CREATE, "memory": "lots"}], "concurrency": 1}
    resp = client.post(f"{BASE}/jobs/batch", json=body, headers=team.headers)
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "VALIDATION_ERROR"
    assert resp.json()["error"]["message"].startswith("jobs.1.memory")
    assert client.get(f"{BASE}/jobs", headers=team.headers).json()["data"] == []
    for bad in [{"jobs": [], "concurrency": 1}, {"jobs": [CREATE], "concurrency": 0}]:
        resp = client.post(f"{BASE}/jobs/batch", json=bad, headers=team.headers)
        assert resp.status_code == 400, resp.text


def test_claims_never_exceed_the_batch_concurrency(app, client, team):
    body = {"jobs": [CREATE] * 6, "concurrency": 2}
    data = client.post(f"{BASE}/jobs/batch", json=body, headers=team.headers).json()["data"]
    batch = data["batchId"]
    outside = client.post(f"{BASE}/jobs", json=CREATE, headers=team.headers).json()["data"]
    fleet = [
        FakeProvider(app, client, f"p{i}", networks=["akash"], keys=[team.provider_key])
        for i in range(3)
    ]
    running: list[tuple[FakeProvider, str, int]] = []
    claimed_ids: list[str] = []
    finished = 0
    while finished < 6:
        for provider in fleet:
            got = provider.claim()
            if got is not None:
                job_id, attempt = provider.run(got)
                claimed_ids.append(job_id)
                if job_id != outside["id"]:
                    running.append((provider, job_id, attempt))
            assert _active_in_batch(app, batch) <= 2
        assert len(running) == 2  # the batch's 2 slots are full; nobody got a third
        provider, job_id, attempt = running.pop(0)
        provider.finish(
            job_id, attempt, "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
        )
        finished += 1
        if finished == 5:
            break
    assert outside["id"] in claimed_ids  # a job outside the batch is not held back
    assert sorted(claimed_ids) == sorted([*data["jobIds"], outside["id"]])


def test_concurrent_claimers_never_exceed_the_batch_concurrency(app, client, team):
    """Eight claimers at once, each in its own transaction, through the claim service (on
    PostgreSQL: row locks, SKIP LOCKED and the batch lock; on SQLite: the compare-and-set)."""
    body = {"jobs": [CREATE] * 8, "concurrency": 3}
    batch = client.post(f"{BASE}/jobs/batch", json=body, headers=team.headers).json()["data"]
    fleet = [
        FakeProvider(app, client, f"c{i}", networks=["akash"], keys=[team.provider_key])
        for i in range(8)
    ]
    factory = app.state.runtime.sessionmaker
    settings = app.state.runtime.settings
    addresses = [p.registered["address"] for p in fleet]
    start = threading.Barrier(len(addresses))
    got: list[int] = []
    errors: list[BaseException] = []

    def claim(address: str) -> None:
        try:
            start.wait(timeout=30)
            with session_scope(factory) as session:
                provider = session.scalars(
                    select(Provider).where(Provider.address == address)
                ).one()
                lease = providers.claim(session, settings, provider)
                if lease is not None:
                    got.append(lease.job.id)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=claim, args=(a,)) for a in addresses]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    # SQLite may answer a claimant "database is locked" under this contention: that
    # claimant got nothing, which is allowed; nothing else is
    assert all("locked" in str(e) for e in errors), errors
    assert len(got) <= 3 and len(set(got)) == len(got)
    assert _active_in_batch(app, batch["batchId"]) == len(got) <= 3
    # whoever lost the race gets a job once a slot frees, never a fourth
    assert len(got) >= 1
