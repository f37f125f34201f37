"""Job metrics (issue 13, scope 3): samples a provider posts under its lease are stored
and read back downsampled (`GET /v1/jobs/{id}/metrics`), fenced by the attempt, readable
only by who may read the job, bounded per job and pruned after the retention period."""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from node.config import EventSettings, NodeSettings
from node.db import session_scope, utcnow
from node.jobs.metrics import prune_metrics, series
from node.models.auth import User
from node.models.jobs import Job
from node.models.metrics import JobMetric
from node.models.workspaces import Workspace
from tests.fixtures.app import create_app
from tests.fixtures.factories import auth_headers, make_user
from tests.node.providers.test_leases import _expire_lease, _job, _pool, _provider, _reap

# A window in the past, on whole minutes: the samples below fall in three buckets.
T0 = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.UTC)


def _at(seconds: float) -> str:
    return (T0 + dt.timedelta(seconds=seconds)).isoformat()


def _owner_headers(app: FastAPI, client: TestClient) -> dict[str, str]:
    """The pool workspace's owner (the user `_pool` made), signed in."""
    with session_scope(app.state.runtime.sessionmaker) as session:
        owner_id = session.get(Workspace, _pool(app)[0]).created_by
        username = session.get(User, owner_id).username
    return auth_headers(client, username or "")


def _running(app: FastAPI, client: TestClient, name: str = "prov") -> tuple[int, dict[str, str]]:
    """A job leased to a new provider and started, its start moved before T0."""
    job_id = _job(app)
    provider = _provider(app, client, name)
    assert client.post("/v1/providers/claim", json={}, headers=provider).status_code == 200
    started = client.post(f"/v1/jobs/job_{job_id}/start", json={"attempt": 1}, headers=provider)
    assert started.status_code == 200, started.text
    with session_scope(app.state.runtime.sessionmaker) as session:
        job = session.get(Job, job_id)
        job.created_at = job.started_at = T0 - dt.timedelta(hours=1)
    return job_id, provider


def _post(client: TestClient, job_id: int, headers: dict[str, str], **body: object):
    return client.post(f"/v1/jobs/job_{job_id}/metrics", json=body, headers=headers)


SAMPLES = [
    # bucket 12:00
    {"at": _at(5), "cpu_millicores": 100, "memory_bytes": 1000, "network_rx_bytes": 500,
     "network_tx_bytes": 50},
    {"at": _at(35), "cpu_millicores": 300, "memory_bytes": 3000, "network_rx_bytes": 1500,
     "network_tx_bytes": 150},
    # bucket 12:01
    {"at": _at(65), "cpu_millicores": 600, "memory_bytes": 2000, "network_rx_bytes": 4000,
     "network_tx_bytes": 400, "gpu_utilization": 50, "gpu_memory_bytes": 10},
    {"at": _at(95), "cpu_millicores": 200, "memory_bytes": 4000, "network_rx_bytes": 4100,
     "network_tx_bytes": 410, "gpu_utilization": 70, "gpu_memory_bytes": 30},
    {"at": _at(115), "cpu_millicores": 400, "memory_bytes": 6000, "network_rx_bytes": 4200,
     "network_tx_bytes": 420, "gpu_utilization": 90, "gpu_memory_bytes": 50},
    # bucket 12:03 (none in 12:02)
    {"at": _at(185), "cpu_millicores": 50, "memory_bytes": 500},
]  # fmt: skip


def test_posted_samples_come_back_as_bucket_averages(app: FastAPI, client: TestClient) -> None:
    job_id, provider = _running(app, client)
    training = [
        {"epoch": 1, "at": _at(60), "metrics": {"box_loss": 1.5, "mAP50": 0.1}},
        {"epoch": 2, "at": _at(120), "metrics": {"box_loss": 1.1, "mAP50": 0.3}},
    ]
    resp = _post(client, job_id, provider, attempt=1, samples=SAMPLES, training=training)
    assert resp.status_code == 200, resp.text
    assert resp.json()["data"] == {"samples": 6, "epochs": 2, "dropped": 0}
    # a retried request (its answer lost) stores samples again: they count once
    assert _post(client, job_id, provider, attempt=1, samples=SAMPLES[1:4]).status_code == 200

    now = T0 + dt.timedelta(minutes=5)
    with session_scope(app.state.runtime.sessionmaker) as session:
        data = series(session, session.get(Job, job_id), "1h", "1m", now=now)
    got = data.model_dump(mode="json")
    assert got["cpu"] == [
        {"timestamp": "2026-03-01T12:00:00Z", "value": 200},
        {"timestamp": "2026-03-01T12:01:00Z", "value": 400},
        {"timestamp": "2026-03-01T12:03:00Z", "value": 50},
    ]
    assert [p["value"] for p in got["memory"]] == [2000, 4000, 500]
    # bytes moved in each bucket, from the cumulative counters
    assert got["network"]["rx"] == [
        {"timestamp": "2026-03-01T12:00:00Z", "value": 1500},
        {"timestamp": "2026-03-01T12:01:00Z", "value": 2700},
    ]
    assert [p["value"] for p in got["network"]["tx"]] == [150, 270]
    assert got["gpu"]["utilization"] == [{"timestamp": "2026-03-01T12:01:00Z", "value": 70.0}]
    assert [p["value"] for p in got["gpu"]["memory"]] == [30]
    assert [(e["epoch"], e["metrics"]["mAP50"]) for e in got["training"]] == [(1, 0.1), (2, 0.3)]

    # five-minute buckets: one point holding every sample
    with session_scope(app.state.runtime.sessionmaker) as session:
        coarse = series(session, session.get(Job, job_id), "1h", "5m", now=now)
    assert [(p.timestamp, p.value) for p in coarse.cpu] == [("2026-03-01T12:00:00Z", 275)]
    assert [p.value for p in coarse.network.rx] == [4200]
    # a window that ends before the last bucket leaves it out
    with session_scope(app.state.runtime.sessionmaker) as session:
        early = series(
            session, session.get(Job, job_id), "2m", "1m", now=T0 + dt.timedelta(seconds=150)
        )
    assert [p.timestamp[11:16] for p in early.cpu] == ["12:00", "12:01"]


def test_the_route_answers_in_the_seed_shape_for_the_jobs_reader(
    app: FastAPI, client: TestClient
) -> None:
    job_id, provider = _running(app, client)
    # samples taken now (no `at`): within the default window
    body = {"attempt": 1, "samples": [{"cpu_millicores": 250, "memory_bytes": 1 << 20}]}
    assert _post(client, job_id, provider, **body).status_code == 200
    owner = _owner_headers(app, client)
    resp = client.get(
        f"/v1/jobs/job_{job_id}/metrics",
        params={"period": "1h", "resolution": "1m"},
        headers=owner,
    )
    assert resp.status_code == 200, resp.text
    data = resp.json()["data"]
    assert resp.json()["success"] is True
    assert [p["value"] for p in data["cpu"]] == [250]
    assert [p["value"] for p in data["memory"]] == [1 << 20]
    assert data["network"] == {"rx": [], "tx": []}
    assert data["gpu"] == {"utilization": [], "memory": []} and data["training"] == []
    assert data["cpu"][0]["timestamp"].endswith(":00Z")


def test_a_stale_attempts_samples_are_refused(app: FastAPI, client: TestClient) -> None:
    job_id = _job(app)
    dead = _provider(app, client, "dead")
    successor = _provider(app, client, "succ")
    assert client.post("/v1/providers/claim", json={}, headers=dead).status_code == 200
    _expire_lease(app, job_id)
    assert _reap(app) == [job_id]
    assert client.post("/v1/providers/claim", json={}, headers=successor).status_code == 200
    sample = {"samples": [{"cpu_millicores": 1}], "training": [{"epoch": 1, "metrics": {}}]}
    late = _post(client, job_id, dead, attempt=1, **sample)
    assert late.status_code == 409 and late.json()["error"]["code"] == "STALE_ATTEMPT"
    # the successor with the stale number is refused too; with its own it is stored
    assert _post(client, job_id, successor, attempt=1, **sample).status_code == 409
    assert _post(client, job_id, dead, attempt=2, **sample).status_code == 409
    assert _post(client, job_id, successor, attempt=2, **sample).status_code == 200
    with session_scope(app.state.runtime.sessionmaker) as session:
        attempts = session.scalars(select(JobMetric.attempt).where(JobMetric.job_id == job_id))
        assert sorted(attempts) == [2, 2]


def test_another_workspace_cannot_read_them(app: FastAPI, client: TestClient) -> None:
    job_id, provider = _running(app, client)
    assert _post(client, job_id, provider, attempt=1, samples=SAMPLES).status_code == 200
    stranger = make_user(app)
    resp = client.get(
        f"/v1/jobs/job_{job_id}/metrics", headers=auth_headers(client, stranger.username or "")
    )
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "JOB_NOT_FOUND"
    assert client.get(f"/v1/jobs/job_{job_id}/metrics").status_code == 401
    # nor can the provider's wallet (it writes them; it is no reader of the job)
    assert client.get(f"/v1/jobs/job_{job_id}/metrics", headers=provider).status_code == 404


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"period": "an hour"}, "period"),
        ({"period": "1y"}, "period"),
        ({"period": "0h"}, "period"),
        ({"period": "31d"}, "period"),
        ({"resolution": "1s"}, "resolution"),
        ({"period": "1h", "resolution": "2h"}, "resolution"),
        ({"period": "30d", "resolution": "10s"}, "resolution"),
    ],
)
def test_a_bad_period_or_resolution_is_400(
    app: FastAPI, client: TestClient, params: dict[str, str], field: str
) -> None:
    job_id = _job(app)
    resp = client.get(
        f"/v1/jobs/job_{job_id}/metrics", params=params, headers=_owner_headers(app, client)
    )
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["code"] == "INVALID_QUERY" and field in error["message"]


def test_malformed_samples_are_400_invalid_body(app: FastAPI, client: TestClient) -> None:
    job_id, provider = _running(app, client)
    for bad in (
        {"samples": [{"cpu_millicores": -1}]},
        {"samples": [{"gpu_utilization": 101}]},
        {"samples": [{"disk": 1}]},
        {"training": [{"epoch": 0}]},
    ):
        resp = _post(client, job_id, provider, attempt=1, **bad)
        assert resp.status_code == 400, bad  # /v1 answers 400 for a bad body (seed 002)
        assert resp.json()["error"]["code"] == "INVALID_BODY"


def test_per_job_bounds_keep_the_newest_samples_and_the_first_epochs(
    settings: NodeSettings,
) -> None:
    limits = EventSettings(max_metric_samples_per_job=10, max_training_epochs_per_job=2)
    app = create_app(settings.model_copy(update={"events": limits}))
    with TestClient(app) as client:
        job_id, provider = _running(app, client)
        for batch in range(3):
            samples = [{"at": _at(batch * 60 + i), "cpu_millicores": batch} for i in range(6)]
            assert _post(client, job_id, provider, attempt=1, samples=samples).status_code == 200
        training = [{"epoch": n, "metrics": {"loss": 1 / n}} for n in (1, 2, 3)]
        got = _post(client, job_id, provider, attempt=1, training=training).json()["data"]
        assert got == {"samples": 0, "epochs": 2, "dropped": 1}
        # epoch 2 again (a retried request) replaces its entry
        again = [{"epoch": 2, "metrics": {"loss": 0.25}}]
        assert _post(client, job_id, provider, attempt=1, training=again).status_code == 200
        with session_scope(app.state.runtime.sessionmaker) as session:
            kept = session.scalars(
                select(JobMetric.cpu_millicores)
                .where(JobMetric.job_id == job_id, JobMetric.epoch.is_(None))
                .order_by(JobMetric.at)
            ).all()
            epochs = session.execute(
                select(JobMetric.epoch, JobMetric.metrics)
                .where(JobMetric.epoch.is_not(None))
                .order_by(JobMetric.epoch)
            ).all()
    assert kept == [1] * 4 + [2] * 6  # the 8 oldest went
    assert [(e, m["loss"]) for e, m in epochs] == [(1, 1.0), (2, 0.25)]


def test_samples_past_the_retention_period_are_pruned(app: FastAPI, client: TestClient) -> None:
    job_id, provider = _running(app, client)
    now = utcnow()
    fresh = {"at": now.isoformat(), "cpu_millicores": 1}
    assert _post(client, job_id, provider, attempt=1, samples=[fresh] * 2).status_code == 200
    with session_scope(app.state.runtime.sessionmaker) as session:
        row = session.scalars(select(JobMetric).where(JobMetric.job_id == job_id)).first()
        row.at = now - dt.timedelta(days=31)
    with session_scope(app.state.runtime.sessionmaker) as session:
        assert prune_metrics(session, EventSettings()) == 1
        assert prune_metrics(session, EventSettings(metrics_retention_days=0)) == 0
        left = session.scalar(select(func.count()).select_from(JobMetric))
    assert left == 1


def test_a_finished_jobs_window_ends_at_its_last_sample(app: FastAPI, client: TestClient) -> None:
    job_id, provider = _running(app, client)
    assert _post(client, job_id, provider, attempt=1, samples=SAMPLES).status_code == 200
    done = client.post(
        f"/v1/jobs/job_{job_id}/result",
        json={"attempt": 1, "result_cid": "Qm" + "a" * 44},
        headers=provider,
    )
    assert done.status_code == 200, done.text
    resp = client.get(
        f"/v1/jobs/job_{job_id}/metrics",
        params={"period": "1h", "resolution": "1m"},
        headers=_owner_headers(app, client),
    )
    assert resp.status_code == 200, resp.text
    data = resp.json()["data"]
    assert data["end"] == "2026-03-01T12:03:05Z"
    assert [p["value"] for p in data["cpu"]] == [200, 400, 50]
