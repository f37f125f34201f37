"""A TrainChain apply and the daemon's polled claim are one claim path: whichever comes
first leases the job, the other gets nothing, and the lease's attempt fences the loser's
writes (on SQLite and, with DCM_TEST_DATABASE_URL, PostgreSQL's row locks)."""

from __future__ import annotations

from typing import Any

import pytest
from web3 import Web3

from tests.node.chain.conftest import RpcViaTestClient, hand_driven_node
from tests.node.chain.scenario import send_call
from tests.node.chain.test_settle import provider_headers, upload, wallet
from tests.node.chain.test_trainchain_requester import tick


@pytest.fixture
def node(settings) -> Any:
    with hand_driven_node(settings) as client:  # the test drives every tick itself
        yield client


def open_job(node, tmp_path, seed: int = 1) -> int:
    requester = wallet(node)
    job = upload(node, tmp_path, requester.address, seed=seed)
    send_call(Web3(RpcViaTestClient(node)), requester, job["funding"])
    tick(node)
    return job["id"]


def test_a_polled_claim_does_not_get_a_job_a_contributor_applied_for(node, tmp_path):
    job_id = open_job(node, tmp_path)
    a, b = wallet(node), wallet(node)
    a_headers, b_headers = provider_headers(node, a, "a"), provider_headers(node, b, "b")
    body = {"jobId": job_id, "contributorAddress": a.address}
    assert node.post("/jobs/contributor/apply", json=body, headers=a_headers).status_code == 200
    polled = node.post("/v1/providers/claim", json={"wait_seconds": 0}, headers=b_headers)
    assert polled.status_code == 204


def test_a_contributor_cannot_apply_for_a_job_the_daemon_claimed(node, tmp_path):
    job_id = open_job(node, tmp_path)
    a, b = wallet(node), wallet(node)
    a_headers, b_headers = provider_headers(node, a, "a"), provider_headers(node, b, "b")
    polled = node.post("/v1/providers/claim", json={"wait_seconds": 0}, headers=a_headers)
    assert polled.status_code == 200 and polled.json()["data"]["lease"]["attempt"] == 1
    body = {"jobId": job_id, "contributorAddress": b.address}
    refused = node.post("/jobs/contributor/apply", json=body, headers=b_headers)
    assert refused.status_code == 409 and refused.json()["code"] == "JOB_NOT_CLAIMABLE"
    # the daemon hands it back; the contributor takes it at attempt 2, and the daemon's
    # attempt-1 writes are fenced off
    release = {"attempt": 1, "reason": "stopping"}
    assert (
        node.post(f"/v1/jobs/{job_id}/release", json=release, headers=a_headers).status_code == 200
    )
    applied = node.post("/jobs/contributor/apply", json=body, headers=b_headers)
    assert applied.status_code == 200 and applied.json()["lease"]["attempt"] == 2
    stale = node.post(f"/v1/jobs/{job_id}/start", json={"attempt": 1}, headers=a_headers)
    assert stale.status_code == 409
    confirm = {"jobId": job_id, "contributorAddress": a.address}
    not_holder = node.post("/jobs/contributor/apply/confirm", json=confirm, headers=a_headers)
    assert not_holder.status_code == 409 and not_holder.json()["code"] == "NOT_LEASE_HOLDER"
