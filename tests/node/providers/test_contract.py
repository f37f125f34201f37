"""The node's provider routes answer the shared wire models (`marketplace.leases`), a
manual retry gives a job fresh attempts, and a job a provider just failed goes to another
provider while one is available (issues 10 and 19)."""

from __future__ import annotations

from marketplace.codes import from_code
from marketplace.errors import Conflict
from marketplace.leases import Claim, JobOutcome, Lease, heartbeat_seconds
from node.db import session_scope
from node.jobs.service import retry_job
from node.models.jobs import Job

from .test_leases import _expire_lease, _get, _job, _provider, _reap


def _claim(client, headers, **body):
    return client.post("/v1/providers/claim", json=body, headers=headers)


def _fail(client, headers, job_id: int, attempt: int):
    resp = client.post(
        f"/v1/jobs/job_{job_id}/fail",
        json={"attempt": attempt, "error": "worker broke", "retryable": True},
        headers=headers,
    )
    assert resp.status_code == 200, resp.text
    return JobOutcome.model_validate(resp.json()["data"])


def test_claim_and_heartbeat_answer_the_shared_models(app, client, settings):
    job_id = _job(app)
    p = _provider(app, client, "p")
    claim = Claim.model_validate(_claim(client, p).json()["data"])
    assert claim.job.id == f"job_{job_id}" and claim.lease.attempt == claim.job.attempt == 1
    lease_seconds = settings.leases.lease_seconds
    assert lease_seconds - 2 < claim.lease.ttl_seconds <= lease_seconds
    assert heartbeat_seconds(claim.lease.ttl_seconds) <= lease_seconds / 3
    beat = client.post(f"/v1/jobs/job_{job_id}/heartbeat", json={"attempt": 1}, headers=p)
    lease = Lease.model_validate(beat.json()["data"])
    assert lease.status == "claimed" and lease.expires_at >= claim.lease.expires_at


def test_the_openapi_document_declares_the_claim_model(client):
    paths = client.get("/openapi.json").json()["paths"]
    schema = paths["/v1/providers/claim"]["post"]["responses"]["200"]["content"]
    assert "Claim" in str(schema)


def test_a_lease_lost_answer_rebuilds_as_a_conflict(app, client):
    job_id = _job(app)
    holder = _provider(app, client, "holder")
    other = _provider(app, client, "other")
    _claim(client, holder)
    resp = client.post(f"/v1/jobs/job_{job_id}/heartbeat", json={"attempt": 1}, headers=other)
    error = resp.json()["error"]
    assert isinstance(from_code(error["code"], error["message"], resp.status_code), Conflict)


def test_a_manual_retry_gives_the_job_fresh_attempts(app, client):
    job_id = _job(app, max_retries=1)
    p = _provider(app, client, "p")
    for attempt in (1, 2):
        assert Claim.model_validate(_claim(client, p).json()["data"]).lease.attempt == attempt
        _fail(client, p, job_id, attempt)
    assert _get(app, job_id).status == "failed"
    with session_scope(app.state.runtime.sessionmaker) as session:
        retry_job(session, session.get(Job, job_id))
    claim = Claim.model_validate(_claim(client, p).json()["data"])
    assert claim.lease.attempt == 3
    # one provider failure after the retry: the job goes back to the queue (a round of
    # max_retries + 1 attempts), it does not fail at once
    assert _fail(client, p, job_id, 3).status == "pending"
    _claim(client, p)
    assert _fail(client, p, job_id, 4).status == "failed"


def test_a_job_just_failed_goes_to_another_provider(app, client):
    job_id = _job(app)
    broken = _provider(app, client, "broken")
    healthy = _provider(app, client, "healthy")
    _claim(client, broken)
    _fail(client, broken, job_id, 1)
    assert _claim(client, broken).status_code == 204  # another provider is online
    claim = Claim.model_validate(_claim(client, healthy).json()["data"])
    assert claim.job.id == f"job_{job_id}" and claim.lease.attempt == 2


def test_a_job_whose_lease_lapsed_goes_to_another_provider(app, client):
    job_id = _job(app)
    dead = _provider(app, client, "dead")
    other = _provider(app, client, "other")
    _claim(client, dead)
    _expire_lease(app, job_id)
    assert _reap(app) == [job_id]
    assert _claim(client, dead).status_code == 204
    assert _claim(client, other).status_code == 200


def test_a_lone_provider_gets_the_job_it_failed_back(app, client):
    job_id = _job(app)
    p = _provider(app, client, "alone")
    _claim(client, p)
    _fail(client, p, job_id, 1)
    claim = Claim.model_validate(_claim(client, p).json()["data"])
    assert claim.lease.attempt == 2


def test_a_provider_can_ask_not_to_be_given_a_job(app, client):
    skipped, wanted = _job(app), _job(app)
    p = _provider(app, client, "p", max_concurrent=2)
    claim = Claim.model_validate(
        _claim(client, p, exclude_job_ids=[f"job_{skipped}", "nonsense"]).json()["data"]
    )
    assert claim.job.id == f"job_{wanted}"
    assert _claim(client, p, exclude_job_ids=[f"job_{skipped}"]).status_code == 204
    assert Claim.model_validate(_claim(client, p).json()["data"]).job.id == f"job_{skipped}"


def test_a_node_restart_gives_running_leases_a_full_lease(app, client, settings):
    """Issue 19 item 4: no provider could renew while the node was down; a lease that ran
    out meanwhile is extended at start instead of reaped."""
    from node.providers.service import extend_leases_at_start

    job_id = _job(app)
    p = _provider(app, client, "p")
    _claim(client, p)
    _expire_lease(app, job_id)
    with session_scope(app.state.runtime.sessionmaker) as session:
        assert extend_leases_at_start(session, settings) == 1
    assert _reap(app) == []
    beat = client.post(f"/v1/jobs/job_{job_id}/heartbeat", json={"attempt": 1}, headers=p)
    assert beat.status_code == 200
