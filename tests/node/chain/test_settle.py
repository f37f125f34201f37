"""Funding gate, settlement policy and payouts through the node's real routes and its
embedded EVM: seed 000 upload -> funding call -> wallet deposit through /chain/rpc ->
watcher -> provider lease, the node's own on-chain assignment (or the provider's voucher)
-> the provider's on-chain submit -> time travel ->
policy finalizes through the outbox -> completed -> /v1/payouts; refunds on expiry and on
the requester's cancel; unfunded jobs expire and release their pins."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from fastapi.testclient import TestClient
from sqlalchemy import select
from web3 import Web3

from marketplace.datasets.synthetic import write_detection_dataset
from marketplace.escrow.client import JobEscrow
from marketplace.jobs.states import JobStatus
from marketplace.sdk.client import NodeClient
from node.db import session_scope
from node.jobs.service import create_job
from node.models.escrow import ChainOutbox
from node.models.jobs import Job
from tests.fixtures.datasets import files_of, form
from tests.fixtures.factories import auth_headers, make_user, make_workspace
from tests.node.chain.conftest import RpcViaTestClient, hand_driven_node
from tests.node.chain.scenario import call_key, send_call

UPLOAD = "/jobs/image_processing/upload"
REWARD = 5 * 10**17  # form()'s reward of 0.5 ETH
RESULT_CID = "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"
WINDOW = 24 * 3600  # the node's default challenge window


@pytest.fixture
def node(settings) -> Any:
    with hand_driven_node(settings) as client:  # the test drives every tick itself
        yield client


def tick(node: TestClient) -> Any:
    """One background pass, draining: send, watch, the whole policy, send, watch."""
    return node.app.state.runtime.chain_tick.run_once(drain=True)


def wallet(node: TestClient, eth: str = "5") -> Any:
    acct = Account.create()
    resp = node.post("/chain/faucet", json={"address": acct.address, "amount": eth})
    assert resp.status_code == 200, resp.text
    return acct


def upload(node: TestClient, tmp_path: Path, requester: str, seed: int = 1) -> dict[str, Any]:
    root = write_detection_dataset(tmp_path / f"ds{seed}", train=3, val=2, seed=seed)
    resp = node.post(UPLOAD, data=form(requesterAddress=requester), files=files_of(root))
    assert resp.status_code == 200, resp.text
    job = resp.json()["job"]
    assert job["dcm_status"] == "awaiting_funding" and job["funding"]["value"] == str(REWARD)
    return job


def status_of(node: TestClient, job_id: int) -> str:
    return node.get(f"/jobs/image_processing/get-job/{job_id}").json()["dcm_status"]


def events_of(node: TestClient, job_id: int, headers: dict[str, str]) -> list[dict[str, Any]]:
    resp = node.get(f"/v1/jobs/job_{job_id}", headers=headers)
    assert resp.status_code == 200, resp.text
    return resp.json()["data"]["events"]


def rpc(node: TestClient, method: str, *params: Any) -> Any:
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
    reply = node.post("/chain/rpc", json=body).json()
    assert "error" not in reply, reply
    return reply["result"]


def time_travel(node: TestClient, seconds: int) -> None:
    rpc(node, "evm_increaseTime", seconds)


def balance(w3: Web3, address: str) -> int:
    return w3.eth.get_balance(Web3.to_checksum_address(address))


def provider_headers(node: TestClient, acct: Any, name: str) -> dict[str, str]:
    make_user(node.app, username=name, address=acct.address)
    headers = auth_headers(node, name)
    body = {"name": name, "job_types": ["image_processing"]}
    resp = node.post("/v1/providers", json=body, headers=headers)
    assert resp.status_code == 201, resp.text
    return headers


def lease_and_report(node: TestClient, headers: dict[str, str], job_id: int) -> int:
    resp = node.post("/v1/providers/claim", json={}, headers=headers)
    assert resp.status_code == 200, resp.text
    data = resp.json()["data"]
    assert data["job"]["id"] in (job_id, f"job_{job_id}")
    attempt = data["lease"]["attempt"]
    body = {"attempt": attempt, "result_cid": RESULT_CID}
    resp = node.post(f"/v1/jobs/job_{job_id}/result", json=body, headers=headers)
    assert resp.status_code == 200, resp.text
    assert resp.json()["data"]["status"] == "submitted"
    return attempt


def test_underfunding_and_wrong_sender_keep_the_job_closed_with_the_reason(node, tmp_path):
    w3 = Web3(RpcViaTestClient(node))
    requester, stranger = wallet(node), wallet(node)
    make_user(node.app, username="req", address=requester.address)
    headers = auth_headers(node, "req")
    short = upload(node, tmp_path, requester.address, seed=1)
    hijacked = upload(node, tmp_path, requester.address, seed=2)
    # the no-credential seed 000 detail carries the same funding call as the upload
    detail = node.get(f"/jobs/image_processing/get-job/{short['id']}").json()
    assert detail["funding"] == short["funding"]
    bare = node.get(f"/jobs/{short['id']}/funding")  # seed 000 style, no credentials
    assert bare.status_code == 200 and bare.json() == {"success": True, "data": short["funding"]}
    v1 = node.get(f"/v1/jobs/job_{short['id']}/funding", headers=headers)
    assert v1.status_code == 200 and v1.json() == {"success": True, "data": short["funding"]}

    receipt = send_call(w3, requester, short["funding"], value=REWARD - 1)
    short_gas = receipt["gasUsed"] * receipt["effectiveGasPrice"]
    stranger_before = balance(w3, stranger.address)
    receipt = send_call(w3, stranger, hijacked["funding"])  # the key names the requester
    assert receipt["status"] == 0
    squat_gas = receipt["gasUsed"] * receipt["effectiveGasPrice"]
    tick(node)  # refused: the node (assigner) returns the short deposit through the outbox

    assert node.get("/jobs/get-jobs").json() == []
    assert status_of(node, short["id"]) == status_of(node, hijacked["id"]) == "awaiting_funding"
    rejected, requested, refunded = events_of(node, short["id"], headers)[-3:]
    assert rejected["type"] == "funding_rejected" and "below the reward" in rejected["message"]
    assert rejected["level"] == "warning" and rejected["data"]["tx_hash"].startswith("0x")
    assert requested["type"] == "refund_requested"
    assert refunded["type"] == "settled" and refunded["data"]["outcome"] == "refunded"
    assert events_of(node, hijacked["id"], headers)[-1]["type"] == "created"
    assert balance(w3, stranger.address) == stranger_before - squat_gas
    assert balance(w3, requester.address) == 5 * 10**18 - short_gas  # the short deposit is back
    with session_scope(node.app.state.runtime.sessionmaker) as session:
        rows = session.execute(select(ChainOutbox)).scalars().all()
        assert [(r.action, r.status) for r in rows] == [("refund", "confirmed")]
    # the short deposit's key is retired: the job's funding call now names a new one
    fresh = node.get(f"/jobs/{short['id']}/funding").json()["data"]
    assert call_key(fresh) != call_key(short["funding"])
    send_call(w3, requester, fresh)
    send_call(w3, requester, hijacked["funding"])
    tick(node)
    listed = [j["id"] for j in node.get("/jobs/get-jobs").json()]
    assert listed == [short["id"], hijacked["id"]]
    assert [e["type"] for e in events_of(node, short["id"], headers)][-4:] == [
        "funding_rejected",
        "refund_requested",
        "settled",
        "funded",
    ]
    # someone else's job: 404; a non-awaiting job: 409 with a stable code
    make_user(node.app, username="other", address=stranger.address)
    other = node.get(f"/v1/jobs/job_{short['id']}/funding", headers=auth_headers(node, "other"))
    assert other.status_code == 404 and other.json()["error"]["code"] == "JOB_NOT_FOUND"
    assert node.get(f"/v1/jobs/job_{short['id']}/funding").status_code == 401


def test_full_settle_path_finalizes_a_batch_and_pays_the_providers(node, tmp_path):
    host = node.app.state.runtime.chain
    w3 = Web3(RpcViaTestClient(node))
    escrow = JobEscrow(w3, host.escrow_address)  # the provider's own binding, via /chain/rpc
    requester = wallet(node)
    providers = [Account.create(), Account.create()]
    jobs = []
    for seed, prov in enumerate(providers, start=1):
        node.post("/chain/faucet", json={"address": prov.address, "amount": "1"})
        job = upload(node, tmp_path, requester.address, seed=seed)
        send_call(w3, requester, job["funding"])
        job["key"] = call_key(job["funding"])
        jobs.append(job)
    tick(node)
    assert [j["id"] for j in node.get("/jobs/get-jobs").json()] == [j["id"] for j in jobs]

    before = {p.address: balance(w3, p.address) for p in providers}
    gas_paid = {p.address: 0 for p in providers}
    for prov, job in zip(providers, jobs, strict=True):
        headers = provider_headers(node, prov, f"prov{job['id']}")
        attempt = lease_and_report(node, headers, job["id"])
        tick(node)  # the outbox sends the node's own assignment of the lease
        record = escrow.get_job(job["key"])
        assert (record.provider, record.attempt) == (prov.address, attempt)
        tx = escrow.submit(prov, job["key"], escrow.cid_digest(RESULT_CID))
        gas_paid[prov.address] += tx.fee_wei
    report = tick(node)
    assert report.finalize == []  # challenge window still open
    for job in jobs:
        assert status_of(node, job["id"]) == "submitted"

    time_travel(node, WINDOW + 1)
    report = tick(node)
    assert report.finalize == [j["id"] for j in jobs]
    for job in jobs:
        assert status_of(node, job["id"]) == "completed"
    with session_scope(node.app.state.runtime.sessionmaker) as session:
        rows = session.execute(select(ChainOutbox).order_by(ChainOutbox.id)).scalars().all()
        assert [(r.payload["function"], r.status) for r in rows] == [
            ("assign", "confirmed"),
            ("assign", "confirmed"),
            ("finalizeBatch", "confirmed"),
        ]
        batch_tx = rows[-1].tx_hash
    assert tick(node).finalize == []  # idempotent: nothing is due any more

    for prov, job in zip(providers, jobs, strict=True):
        assert balance(w3, prov.address) == before[prov.address] - gas_paid[prov.address] + REWARD
        resp = node.get("/v1/payouts", params={"provider": prov.address})
        assert resp.status_code == 200
        [payout] = resp.json()["data"]
        assert payout["job_id"] == f"job_{job['id']}" and payout["outcome"] == "finalized"
        assert payout["recipient"] == prov.address and payout["amount_wei"] == str(REWARD)
        assert payout["tx_hash"] == batch_tx and payout["fee_wei"] == "0"
        receipt = w3.eth.get_transaction_receipt(batch_tx)
        assert payout["block_number"] == receipt["blockNumber"]
        block = w3.eth.get_block(receipt["blockNumber"])
        assert payout["timestamp"] == block["timestamp"]
        settled = node.get(f"/v1/jobs/job_{job['id']}/settlement").json()["data"]
        assert settled == payout
    by_requester = node.get("/v1/payouts", params={"requester": requester.address}).json()
    assert len(by_requester["data"]) == 2
    bad = node.get("/v1/payouts", params={"provider": "nope"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "INVALID_QUERY"
    missing = node.get("/v1/jobs/job_999/settlement")
    assert missing.status_code == 404


def test_a_digest_that_differs_from_the_report_is_disputed_and_refunded_on_silence(node, tmp_path):
    """Finding 1: the provider reports one result to the API and submits another digest on
    chain. The node disputes it itself (the arbiter rules); the arbiter stays silent, so
    the node's finalize refunds the requester in full: the provider gets nothing."""
    host = node.app.state.runtime.chain
    w3 = Web3(RpcViaTestClient(node))
    escrow = JobEscrow(w3, host.escrow_address)
    requester, prov = wallet(node), wallet(node, "1")
    make_user(node.app, username="req", address=requester.address)
    job = upload(node, tmp_path, requester.address)
    key = call_key(job["funding"])
    receipt = send_call(w3, requester, job["funding"])
    funding_gas = receipt["gasUsed"] * receipt["effectiveGasPrice"]
    tick(node)
    attempt = lease_and_report(node, provider_headers(node, prov, "prov"), job["id"])
    expiry = w3.eth.get_block("latest")["timestamp"] + 3600
    voucher = escrow.sign_assignment(
        host.operator.account, key, prov.address, attempt, escrow.get_job(key).funding, expiry
    )
    # the provider binds itself with the voucher before the node's assignment is sent
    escrow.submit_with_voucher(prov, voucher, b"\x22" * 32)  # not the digest of RESULT_CID
    prov_after_submit = balance(w3, prov.address)
    tick(node)
    with session_scope(node.app.state.runtime.sessionmaker) as session:
        rows = session.execute(select(ChainOutbox).order_by(ChainOutbox.id)).scalars().all()
        # superseded: it would revert (the job is submitted), so it is never sent
        assert [(r.action, r.status) for r in rows] == [
            ("assign", "skipped"),
            ("dispute", "confirmed"),
        ]
        assert rows[0].tx_hash is None and "WrongStatus" in rows[0].last_error
    events = events_of(node, job["id"], auth_headers(node, "req"))
    mismatch = [e for e in events if e["type"] == "result_digest_mismatch"]
    assert len(mismatch) == 1 and mismatch[0]["level"] == "error"
    assert status_of(node, job["id"]) == "disputed"
    assert escrow.get_job(key).status.name == "DISPUTED"
    time_travel(node, WINDOW + 1)
    assert tick(node).finalize == []  # the arbitration window (7 days) is still open
    time_travel(node, 7 * 24 * 3600)
    assert tick(node).finalize == [job["id"]]
    assert status_of(node, job["id"]) == "cancelled"
    assert balance(w3, requester.address) == 5 * 10**18 - funding_gas  # every wei back
    assert balance(w3, prov.address) == prov_after_submit
    settled = node.get(f"/v1/jobs/job_{job['id']}/settlement").json()["data"]
    assert settled["outcome"] == "default_ruling" and settled["recipient"] == requester.address


def test_deadline_without_result_refunds_the_requester(node, tmp_path):
    w3 = Web3(RpcViaTestClient(node))
    requester = wallet(node)
    job = upload(node, tmp_path, requester.address)
    receipt = send_call(w3, requester, job["funding"])
    funding_gas = receipt["gasUsed"] * receipt["effectiveGasPrice"]
    tick(node)
    assert status_of(node, job["id"]) == "pending"
    after_funding = balance(w3, requester.address)
    assert tick(node).refund == []  # deadline not reached
    time_travel(node, 8 * 24 * 3600)  # past the 7-day default deadline
    report = tick(node)
    assert report.refund == [job["id"]]
    assert status_of(node, job["id"]) == "expired"
    assert balance(w3, requester.address) == after_funding + REWARD
    assert after_funding + funding_gas + REWARD == 5 * 10**18  # every wei accounted for
    [payout] = node.get("/v1/payouts", params={"requester": requester.address}).json()["data"]
    assert payout["outcome"] == "expired" and payout["requester_refund_wei"] == str(REWARD)
    assert payout["recipient"] == requester.address and payout["amount_wei"] == str(REWARD)
    assert payout["provider_amount_wei"] == "0"
    closed = node.get(f"/jobs/{job['id']}/funding")
    assert closed.status_code == 409 and closed.json()["code"] == "NOT_AWAITING_FUNDING"
    assert tick(node).refund == []


def test_cancelling_a_funded_job_refunds_it_through_the_node(node, settings):
    """Finding 6 / money rule changed on purpose: a funded job cancelled through the job
    API (any dialect) gets its deposit back from the node itself; the requester's own
    on-chain cancel stays available."""
    w3 = Web3(RpcViaTestClient(node))
    requester = wallet(node)
    owner = make_user(node.app, username="req", address=requester.address)
    headers = auth_headers(node, "req")
    ws_id = make_workspace(node.app, owner, name="lab")
    with session_scope(node.app.state.runtime.sessionmaker) as session:
        ids = [
            create_job(
                session,
                job_type="container",
                workspace_id=ws_id,
                created_by=owner.id,
                requester_address=requester.address,
                reward_wei=REWARD,
                status=JobStatus.AWAITING_FUNDING,
            ).id
            for _ in range(3)
        ]
    unfunded, funded, self_refunded = ids
    # awaiting funding: cancelled by the node at once
    resp = node.post(f"/workspace/{ws_id}/jobs/job_{unfunded}/cancel", headers=headers)
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "cancelled"

    call = node.get(f"/v1/jobs/job_{funded}/funding", headers=headers).json()["data"]
    detail = node.get(f"/v1/jobs/job_{funded}", headers=headers).json()["data"]
    assert detail["funding"] == call  # the canonical detail carries it while awaiting
    assert detail["escrow"]["status"] == "awaiting" and detail["escrow"]["job_key"] == call_key(
        call
    )
    receipt = send_call(w3, requester, call)
    gas = receipt["gasUsed"] * receipt["effectiveGasPrice"]
    tick(node)
    again = node.get(f"/v1/jobs/job_{funded}/funding", headers=headers)
    assert again.status_code == 409 and again.json()["error"]["code"] == "NOT_AWAITING_FUNDING"
    resp = node.post(f"/workspace/{ws_id}/jobs/job_{funded}/cancel", headers=headers)
    assert resp.status_code == 200, resp.text
    tick(node)
    with session_scope(node.app.state.runtime.sessionmaker) as session:
        assert session.get(Job, funded).status == "cancelled"
        [refund] = session.execute(
            select(ChainOutbox).where(ChainOutbox.action == "refund")
        ).scalars()
        assert refund.status == "confirmed"
    assert balance(w3, requester.address) == 5 * 10**18 - gas  # refunded to the wei
    [payout] = node.get("/v1/payouts", params={"requester": requester.address}).json()["data"]
    assert payout["outcome"] == "refunded" and payout["requester_refund_wei"] == str(REWARD)
    late = node.get(f"/v1/jobs/job_{funded}/cancel-call", headers=headers)
    assert late.status_code == 409

    # The refund deleted the escrow record: a replayed deposit on the cancelled job's key
    # is handed back by the node (the assigner), it never reopens the job.
    receipt = send_call(w3, requester, call)
    gas += receipt["gasUsed"] * receipt["effectiveGasPrice"]
    tick(node)
    with session_scope(node.app.state.runtime.sessionmaker) as session:
        assert session.get(Job, funded).status == "cancelled"
    assert balance(w3, requester.address) == 5 * 10**18 - gas
    stray = events_of(node, funded, headers)[-3:]
    assert [e["type"] for e in stray] == ["funding_rejected", "refund_requested", "settled"]
    assert "not awaiting funding" in stray[0]["message"]

    # A retry goes back to awaiting funding; its deposit goes to a new generation's key.
    retried = node.post(f"/workspace/{ws_id}/jobs/job_{funded}/retry", headers=headers)
    assert retried.status_code == 200, retried.text
    with session_scope(node.app.state.runtime.sessionmaker) as session:
        assert session.get(Job, funded).status == "awaiting_funding"
    retry_call = node.get(f"/v1/jobs/job_{funded}/funding", headers=headers).json()["data"]
    assert call_key(retry_call) != call_key(call)
    send_call(w3, requester, retry_call)
    tick(node)
    with session_scope(node.app.state.runtime.sessionmaker) as session:
        assert session.get(Job, funded).status == "pending"

    # the requester's own refund, which needs no node: the escrow's cancel, signed itself
    call = node.get(f"/v1/jobs/job_{self_refunded}/funding", headers=headers).json()["data"]
    send_call(w3, requester, call)
    tick(node)
    cancel = node.get(f"/v1/jobs/job_{self_refunded}/cancel-call", headers=headers)
    assert cancel.status_code == 200, cancel.text
    cancel_call = cancel.json()["data"]
    assert cancel_call["value"] == "0" and cancel_call["to"] == call["to"]
    send_call(w3, requester, cancel_call)
    tick(node)
    with session_scope(node.app.state.runtime.sessionmaker) as session:
        assert session.get(Job, self_refunded).status == "cancelled"


def test_unfunded_jobs_expire_and_release_pins_no_other_job_uses(node, tmp_path):
    w3 = Web3(RpcViaTestClient(node))
    store = node.app.state.runtime.content
    requester = wallet(node)
    shared_a = upload(node, tmp_path, requester.address, seed=1)
    shared_b = upload(node, tmp_path, requester.address, seed=1)  # same dataset, same CIDs
    alone = upload(node, tmp_path, requester.address, seed=2)
    assert shared_a["folder_cid"] == shared_b["folder_cid"] != alone["folder_cid"]
    send_call(w3, requester, shared_b["funding"])
    tick(node)
    assert status_of(node, shared_b["id"]) == "pending"
    assert tick(node).expired == []  # younger than the funding timeout

    node.app.state.runtime.chain_tick.policy.funding_timeout_seconds = 0
    report = tick(node)
    assert report.expired == [shared_a["id"], alone["id"]]
    assert status_of(node, shared_a["id"]) == status_of(node, alone["id"]) == "expired"
    assert sorted(report.unpinned) == sorted([alone["folder_cid"], alone["metadata_cid"]])
    assert not store.is_pinned(alone["folder_cid"]) and not store.is_pinned(alone["metadata_cid"])
    assert store.is_pinned(shared_a["folder_cid"]) and store.is_pinned(shared_a["metadata_cid"])
    assert node.get(f"/jobs/image_processing/get-job/{alone['id']}").json()["funding"] is None


def test_sdk_funds_cancels_and_reads_settlement(node, tmp_path):
    requester = wallet(node)
    job = upload(node, tmp_path, requester.address)
    sdk = NodeClient("http://testserver")
    sdk.http = node  # TestClient is an httpx.Client: the SDK talks to the in-process node
    receipt = sdk.fund(job["id"], requester)  # signs in with the wallet (SIWE), signs, sends
    assert receipt.status == 1 and receipt.sender == requester.address
    tick(node)
    assert sdk.job(job["id"]).status == "pending"
    sdk.cancel(job["id"], requester)  # funded: the node cancels it and refunds the escrow
    assert sdk.job(job["id"]).status == "cancelled"
    tick(node)
    settlement = sdk.settlement(job["id"])
    assert settlement.outcome == "refunded"
    assert settlement.requester_refund_wei == REWARD
    assert sdk.payouts(requester=requester.address) == [settlement]

    # accept: the requester pays the provider at once, from the wallet, through the SDK
    host = node.app.state.runtime.chain
    escrow = JobEscrow(Web3(RpcViaTestClient(node)), host.escrow_address)
    second = upload(node, tmp_path, requester.address, seed=2)
    sdk.fund(second["id"], requester)
    tick(node)
    prov = wallet(node, "1")
    attempt = lease_and_report(node, provider_headers(node, prov, "prov"), second["id"])
    expiry = escrow.w3.eth.get_block("latest")["timestamp"] + 3600
    key = call_key(second["funding"])
    voucher = escrow.sign_assignment(
        host.operator.account, key, prov.address, attempt, escrow.get_job(key).funding, expiry
    )
    escrow.submit_with_voucher(prov, voucher, escrow.cid_digest(RESULT_CID))
    receipt = sdk.accept(second["id"], requester)
    tick(node)
    assert sdk.job(second["id"]).status == "completed"
    paid = sdk.settlement(second["id"])
    assert paid.outcome == "accepted" and paid.recipient == prov.address
    assert paid.tx_hash == receipt.transaction_hash
    assert sdk.payouts(provider=prov.address) == [paid]


def test_chain_submit_before_the_api_report_waits_for_the_report(node, tmp_path):
    """The provider daemon's order: submit on chain, then report the result to the API."""
    host = node.app.state.runtime.chain
    w3 = Web3(RpcViaTestClient(node))
    escrow = JobEscrow(w3, host.escrow_address)
    requester, prov = wallet(node), wallet(node, "1")
    job = upload(node, tmp_path, requester.address)
    send_call(w3, requester, job["funding"])
    tick(node)
    headers = provider_headers(node, prov, "prov")
    lease = node.post("/v1/providers/claim", json={}, headers=headers).json()["data"]["lease"]
    expiry = w3.eth.get_block("latest")["timestamp"] + 3600
    key = call_key(job["funding"])
    voucher = escrow.sign_assignment(
        host.operator.account,
        key,
        prov.address,
        lease["attempt"],
        escrow.get_job(key).funding,
        expiry,
    )
    escrow.submit_with_voucher(prov, voucher, escrow.cid_digest(RESULT_CID))
    tick(node)
    assert status_of(node, job["id"]) == "claimed"  # the lease holder has yet to report
    body = {"attempt": lease["attempt"], "result_cid": RESULT_CID}
    resp = node.post(f"/v1/jobs/job_{job['id']}/result", json=body, headers=headers)
    assert resp.status_code == 200, resp.text
    assert status_of(node, job["id"]) == "submitted"
    time_travel(node, WINDOW + 1)
    assert tick(node).finalize == [job["id"]]
    assert status_of(node, job["id"]) == "completed"


def test_sdk_reads_one_job_shape_from_both_dialects(node, tmp_path):
    """The seed 000 upload answer (snake_case, integer id, TrainChain status word) and the
    /v1 read (camelCase) of the same job come back as one `Job` shape."""
    requester = wallet(node)
    sdk = NodeClient("http://testserver")
    sdk.http = node
    dataset = write_detection_dataset(tmp_path / "ds", train=3, val=2)
    created = sdk.upload_dataset_job(
        dataset,
        model="yolov8n",
        epochs=3,
        imgsz=64,
        classes=["cat", "dog"],
        reward="0.5",
        requester_address=requester.address,
    )
    sdk.sign_in(requester)
    read = sdk.job(created.id)
    listed = sdk.jobs(status="awaiting_funding")
    assert [j.id for j in listed] == [created.id] == [read.id]
    for job in (created, read, listed[0]):
        assert job.id == f"job_{job.number}" and job.type == "image_processing"
        assert job.status == "awaiting_funding" and job.reward == Decimal("0.5")
        assert job.requester_address == requester.address
        assert job.payload["classes"] == ["cat", "dog"] and job.payload["epochs"] == 3
        assert repr(job) == f"<Job {job.id} image_processing awaiting_funding reward=0.5 ETH>"
    assert created.trainchain_status == "unconfirmed" and created.folder_cid
    assert created.funding is not None and created.funding.value == REWARD
    assert read.funding == sdk.funding(read.id) == created.funding
    assert [e.to_status for e in read.events] == ["awaiting_funding"]
    assert sdk.jobs(status="pending") == []
    with pytest.warns(DeprecationWarning, match=r"use \.status"):
        assert created["status"] == "unconfirmed"  # the old dicts' values, key for key
    with pytest.warns(DeprecationWarning, match=r"use \.result_cid"):
        assert read["resultCid"] is None and read.get("nothing", 7) == 7
