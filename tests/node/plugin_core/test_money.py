"""A container job with a `reward` (ETH) goes through the escrow funding path like a
training job and then to the open market; without one it stays in its workspace's
private pool. `cost` is in ETH: projected = the reward, current pro rata to run time."""

from __future__ import annotations

import datetime as dt

from node.db import session_scope
from node.models.jobs import Job
from tests.fixtures.factories import auth_headers, make_user, make_workspace
from tests.node.plugin_core.conftest import BASE, FakeProvider, create, job_row


def _set(app, job_id: str, **columns) -> None:
    with session_scope(app.state.runtime.sessionmaker) as session:
        job = session.get(Job, int(job_id.removeprefix("job_")))
        for key, value in columns.items():
            setattr(job, key, value)


def test_a_rewarded_job_awaits_funding_then_goes_to_the_open_market(app, client, team):
    job = create(client, team.headers, reward="0.1")
    assert job["status"] == "pending"
    assert job["cost"] == {"current": 0, "projected": 0.1, "currency": "ETH"}
    row = job_row(app, job["id"])
    assert row.status == "awaiting_funding" and row.reward_wei == 10**17
    assert row.requester_address is not None  # the escrow key names the funding wallet
    # the funding call is the one training jobs get (GET /v1/jobs/{id}: `funding`)
    v1 = client.get(f"/v1/jobs/{job['id']}", headers=team.headers).json()["data"]
    assert v1["status"] == "awaiting_funding" and v1["reward"] == "0.1"
    view = client.get(f"{BASE}/jobs/{job['id']}", headers=team.headers).json()["data"]
    assert view["funding"] == v1["funding"]
    assert view["funding"] is not None and int(view["funding"]["value"]) == 10**17
    stranger = FakeProvider(app, client, "stranger", networks=["akash"])
    assert stranger.claim() is None  # not before the deposit
    _set(app, job["id"], status="pending")  # what the escrow watcher does on the deposit
    got = stranger.claim()  # open market: no workspace key needed
    assert got is not None and got["job"]["reward_wei"] == str(10**17)


def test_a_job_awaiting_funding_reads_alike_with_a_key_and_a_known_token(app, client, team):
    """Its funding call writes the deposit's escrow row on first ask: the by-id read, which
    runs outside a transaction on PostgreSQL, begins one for it (500 before, for a caller
    whose token was verified from the cache, so the read's session held no transaction)."""
    job = create(client, team.headers, reward="0.1")
    client.get("/v1/jobs?limit=1", headers=team.owner)  # the owner is known to the cache now
    by_owner = client.get(f"/v1/jobs/{job['id']}", headers=team.owner)
    assert by_owner.status_code == 200, by_owner.text
    by_key = client.get(f"/v1/jobs/{job['id']}", headers=team.headers)
    assert by_key.status_code == 200, by_key.text
    funding = by_owner.json()["data"]["funding"]
    assert funding is not None and funding == by_key.json()["data"]["funding"]


def test_a_job_without_reward_stays_in_the_private_pool(app, client, team):
    job = create(client, team.headers)
    assert job_row(app, job["id"]).status == "pending"
    assert FakeProvider(app, client, "stranger", networks=["akash"]).claim() is None


def test_cost_accrues_pro_rata_to_run_time(app, client, team):
    job = create(client, team.headers, reward="0.1", duration=3600)
    half_an_hour_ago = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1800)
    _set(app, job["id"], status="running", started_at=half_an_hour_ago)
    cost = client.get(f"{BASE}/jobs/{job['id']}", headers=team.headers).json()["data"]["cost"]
    assert cost["projected"] == 0.1 and 0.0499 < cost["current"] < 0.0502
    _set(app, job["id"], started_at=half_an_hour_ago - dt.timedelta(hours=5))
    cost = client.get(f"{BASE}/jobs/{job['id']}", headers=team.headers).json()["data"]["cost"]
    assert cost["current"] == 0.1  # never past the reward
    _set(app, job["id"], status="completed")
    cost = client.get(f"{BASE}/jobs/{job['id']}", headers=team.headers).json()["data"]["cost"]
    assert cost == {"current": 0.1, "projected": 0.1, "currency": "ETH"}


def test_a_reward_needs_a_wallet_to_fund_it(app, client):
    user = make_user(app, username="nowallet")
    ws = make_workspace(app, user, name="w")
    headers = auth_headers(client, "nowallet")
    key = client.post(
        f"/workspaces/{ws}/api-keys", json={"name": "k", "role": "member"}, headers=headers
    ).json()["key"]
    from tests.node.plugin_core.conftest import CREATE

    resp = client.post(
        f"{BASE}/jobs", json={**CREATE, "reward": "0.1"}, headers={"Authorization": f"Bearer {key}"}
    )
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "VALIDATION_ERROR"
    assert resp.json()["error"]["message"].startswith("reward")
