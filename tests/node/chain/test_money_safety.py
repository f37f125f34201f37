"""Issue 18, through the node's own routes, watcher, outbox and settlement policy on its
embedded chain: every deposit a job does not end up paying for comes back to its
requester, a result on chain is judged (accepted, or disputed by the node), stale
vouchers and late node transactions cannot reach a newer deposit, and the read models
tell a job's own money from a refused deposit."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from eth_account import Account
from fastapi.testclient import TestClient
from sqlalchemy import select
from web3 import Web3

from marketplace.errors import ChainError, UpstreamUnavailable
from marketplace.escrow import JobEscrow, Status, cidv0_of_digest
from marketplace.jobs.states import JobStatus
from marketplace.sdk.client import NodeClient
from node.db import session_scope, utcnow
from node.jobs.service import create_job
from node.models.escrow import ChainEscrow, ChainOutbox
from node.models.jobs import Job
from node.providers.service import reap_expired
from tests.fixtures.factories import auth_headers, make_user
from tests.node.chain.conftest import RpcViaTestClient, hand_driven_node
from tests.node.chain.scenario import call_key, send_call
from tests.node.chain.test_settle import (
    RESULT_CID,
    REWARD,
    WINDOW,
    balance,
    events_of,
    provider_headers,
    status_of,
    tick,
    time_travel,
    upload,
    wallet,
)

ARBITRATION = 7 * 24 * 3600  # the embedded escrow's arbitration window
START = 5 * 10**18  # what `wallet()` gives


@pytest.fixture
def node(settings) -> Any:
    with hand_driven_node(settings) as client:  # the test drives every tick itself
        yield client


def _escrow(node: TestClient) -> JobEscrow:
    return JobEscrow(Web3(RpcViaTestClient(node)), node.app.state.runtime.chain.escrow_address)


def _gas(receipt: Any) -> int:
    return receipt["gasUsed"] * receipt["effectiveGasPrice"]


def _funded(node: TestClient, tmp_path, requester: Any, seed: int = 1) -> tuple[dict, str, int]:
    """A seed 000 job funded by its requester with the node's call, opened by the watcher;
    returns the job, its escrow key and the funding gas."""
    w3 = Web3(RpcViaTestClient(node))
    job = upload(node, tmp_path, requester.address, seed=seed)
    gas = _gas(send_call(w3, requester, job["funding"]))
    tick(node)
    assert status_of(node, job["id"]) == "pending"
    return job, call_key(job["funding"]), gas


def _claim(node: TestClient, headers: dict[str, str]) -> dict[str, Any]:
    resp = node.post("/v1/providers/claim", json={}, headers=headers)
    assert resp.status_code == 200, resp.text
    return resp.json()["data"]


def _expire_lease(node: TestClient, job_id: int) -> None:
    with session_scope(node.app.state.runtime.sessionmaker) as session:
        session.get(Job, job_id).lease_expires_at = utcnow() - dt.timedelta(seconds=1)
        assert reap_expired(session) == [job_id]


def _outbox(node: TestClient) -> list[tuple[str, str]]:
    with session_scope(node.app.state.runtime.sessionmaker) as session:
        rows = session.execute(select(ChainOutbox).order_by(ChainOutbox.id)).scalars().all()
        out = [(r.action, r.status) for r in rows]
    return out


def _arbiter(settings) -> Any:
    return Account.from_key((settings.data_dir / "chain" / "arbiter.key").read_text().strip())


def test_a_result_nobody_reported_is_disputed_and_never_pays_its_provider(node, tmp_path):
    """Finding 1 (variant) and issue 19: a provider submits garbage on chain and never
    reports; its lease expires. The node shows the on-chain result, disputes it, and the
    job is not re-leased to a successor who could never be paid; the arbiter's silence
    refunds the requester even when the provider sends the finalize itself."""
    escrow = _escrow(node)
    requester, prov, successor = wallet(node), wallet(node, "1"), wallet(node, "1")
    make_user(node.app, username="req", address=requester.address)
    job, key, funding_gas = _funded(node, tmp_path, requester)
    claim = _claim(node, provider_headers(node, prov, "prov"))
    tick(node)  # the node binds the lease holder
    assert escrow.get_job(key).provider == prov.address
    escrow.submit(prov, key, b"\x66" * 32)
    tick(node)
    assert status_of(node, job["id"]) == "claimed"  # its lease is live: its report may come
    shown = node.get(f"/v1/jobs/job_{job['id']}/escrow").json()["data"]
    assert shown["status"] == "submitted" and shown["result"]["submitted_by"] == prov.address
    assert shown["result"]["digest"] == "0x" + "66" * 32
    assert shown["result"]["cid"] == cidv0_of_digest(b"\x66" * 32)
    assert shown["result"]["verdict"] == "awaiting_report"

    _expire_lease(node, job["id"])  # it never reports: the lease ends
    tick(node)
    assert status_of(node, job["id"]) == "disputed"  # not offered to anyone else
    assert _claim_none(node, provider_headers(node, successor, "succ"))
    assert escrow.get_job(key).status == Status.DISPUTED
    refused = [e for e in events_of(node, job["id"], auth_headers(node, "req"))]
    assert any(e["type"] == "result_refused" and "had ended" in e["message"] for e in refused)
    assert ("dispute", "confirmed") in _outbox(node)
    assert claim["lease"]["attempt"] == 1

    time_travel(node, ARBITRATION + 1)
    escrow.finalize(prov, key)  # the provider's own finalize: the default ruling refunds
    tick(node)
    assert status_of(node, job["id"]) == "cancelled"
    assert balance(escrow.w3, requester.address) == START - funding_gas


def _claim_none(node: TestClient, headers: dict[str, str]) -> bool:
    resp = node.post("/v1/providers/claim", json={"wait_seconds": 0}, headers=headers)
    return resp.status_code == 204


def test_the_requester_disputes_and_the_arbiter_rules(node, tmp_path, settings):
    """Finding 1 and the requester's dispute route: POST /v1/jobs/{id}/dispute returns the
    call its wallet signs; the node never finalizes a disputed job before the arbiter's
    window; the arbiter (a key the node's operator does not hold) splits the deposit."""
    escrow = _escrow(node)
    requester, prov = wallet(node), wallet(node, "1")
    make_user(node.app, username="req", address=requester.address)
    headers = auth_headers(node, "req")
    job, key, funding_gas = _funded(node, tmp_path, requester)
    prov_headers = provider_headers(node, prov, "prov")
    lease = _claim(node, prov_headers)["lease"]
    tick(node)
    prov_before = balance(escrow.w3, prov.address)
    receipt = escrow.submit(prov, key, escrow.cid_digest(RESULT_CID))
    prov_gas = receipt.fee_wei
    body = {"attempt": lease["attempt"], "result_cid": RESULT_CID}
    resp = node.post(f"/v1/jobs/job_{job['id']}/result", json=body, headers=prov_headers)
    assert resp.status_code == 200, resp.text
    tick(node)
    assert (
        node.get(f"/v1/jobs/job_{job['id']}/escrow").json()["data"]["result"]["verdict"]
        == "accepted"
    )

    assert node.post(f"/v1/jobs/job_{job['id']}/dispute").status_code == 401
    resp = node.post(f"/v1/jobs/job_{job['id']}/dispute", headers=headers)
    assert resp.status_code == 200, resp.text
    call = resp.json()["data"]
    assert call["to"] == escrow.address and call["value"] == "0"
    dispute_gas = _gas(send_call(escrow.w3, requester, call))
    tick(node)
    assert status_of(node, job["id"]) == "disputed"
    assert [e["type"] for e in events_of(node, job["id"], headers)][-2:] == [
        "dispute_requested",
        "disputed",
    ]
    again = node.post(f"/v1/jobs/job_{job['id']}/dispute", headers=headers)
    assert again.status_code == 409 and again.json()["error"]["code"] == "CHAIN_REVERT"
    time_travel(node, WINDOW + 1)
    assert tick(node).finalize == []  # the arbiter still has its window

    arbiter = _arbiter(settings)
    assert arbiter.address != node.app.state.runtime.chain.operator.address
    with pytest.raises(ChainError) as info:
        escrow.resolve(node.app.state.runtime.chain.operator.account, key, 10_000)
    assert info.value.error_name == "NotArbiter"
    escrow.resolve(arbiter, key, 3_000)
    tick(node)
    assert status_of(node, job["id"]) == "completed"
    share = REWARD * 3_000 // 10_000
    assert balance(escrow.w3, prov.address) == prov_before - prov_gas + share
    assert (
        balance(escrow.w3, requester.address)
        == START - funding_gas - dispute_gas - share  # deposit back but the share
    )
    settled = node.get(f"/v1/jobs/job_{job['id']}/settlement").json()["data"]
    assert settled["outcome"] == "resolved" and settled["provider_amount_wei"] == str(share)


def test_a_dispute_after_the_challenge_window_is_refused(node, tmp_path):
    escrow = _escrow(node)
    requester, prov = wallet(node), wallet(node, "1")
    make_user(node.app, username="req", address=requester.address)
    job, key, _ = _funded(node, tmp_path, requester)
    prov_headers = provider_headers(node, prov, "prov")
    lease = _claim(node, prov_headers)["lease"]
    tick(node)
    escrow.submit(prov, key, escrow.cid_digest(RESULT_CID))
    body = {"attempt": lease["attempt"], "result_cid": RESULT_CID}
    node.post(f"/v1/jobs/job_{job['id']}/result", json=body, headers=prov_headers)
    time_travel(node, WINDOW + 1)
    resp = node.post(f"/v1/jobs/job_{job['id']}/dispute", headers=auth_headers(node, "req"))
    assert resp.status_code == 409
    assert resp.json()["error"]["details"]["challenge_end"] > 0
    assert "closed" in resp.json()["error"]["message"]
    assert tick(node).finalize == [job["id"]]  # the accepted result is paid


def test_cancelling_a_claimed_job_unassigns_and_refunds_it(node, tmp_path):
    """Finding 6: a bound deposit comes back when the job is cancelled: the node releases
    the provider's binding, then refunds; the provider's late submit is fenced."""
    escrow = _escrow(node)
    requester, prov = wallet(node), wallet(node, "1")
    make_user(node.app, username="req", address=requester.address)
    job, key, funding_gas = _funded(node, tmp_path, requester)
    _claim(node, provider_headers(node, prov, "prov"))
    tick(node)
    assert escrow.get_job(key).status == Status.BOUND
    resp = node.post(f"/v1/jobs/job_{job['id']}/cancel", headers=auth_headers(node, "req"))
    assert resp.status_code == 200 and resp.json()["data"]["status"] == "cancelled"
    tick(node)  # unassign (every tick)...
    tick(node)  # ... then the refund of a deposit the job does not use
    assert [a for a, _ in _outbox(node)] == ["assign", "unassign", "refund"]
    assert all(s == "confirmed" for _, s in _outbox(node))
    assert balance(escrow.w3, requester.address) == START - funding_gas
    with pytest.raises(ChainError) as info:
        escrow.submit(prov, key, escrow.cid_digest(RESULT_CID))
    assert info.value.error_name == "WrongStatus"
    assert status_of(node, job["id"]) == "cancelled"


def test_garbage_submitted_before_the_unassign_lands_is_disputed_and_refunded(node, tmp_path):
    """Finding 6 (second half): the provider of a cancelled job submits before the node's
    unassign is mined; the node disputes that result, the arbiter stays silent, and the
    deposit goes back to the requester: the provider cannot finalize itself a reward."""
    escrow = _escrow(node)
    requester, prov = wallet(node), wallet(node, "1")
    make_user(node.app, username="req", address=requester.address)
    job, key, funding_gas = _funded(node, tmp_path, requester)
    _claim(node, provider_headers(node, prov, "prov"))
    tick(node)
    node.post(f"/v1/jobs/job_{job['id']}/cancel", headers=auth_headers(node, "req"))
    escrow.submit(prov, key, b"\x99" * 32)  # before the node's next tick
    tick(node)  # the result is judged before any unassign: the job is cancelled
    assert _outbox(node) == [("assign", "confirmed"), ("dispute", "confirmed")]
    assert status_of(node, job["id"]) == "cancelled"
    view = node.get(f"/v1/jobs/job_{job['id']}/escrow").json()["data"]
    assert view["status"] == "disputed" and view["result"]["verdict"] == "disputed"
    time_travel(node, WINDOW + ARBITRATION + 2)
    with pytest.raises(ChainError):
        escrow.accept(prov, key)  # only the requester accepts
    assert tick(node).finalize == [job["id"]]
    assert balance(escrow.w3, requester.address) == START - funding_gas


def test_a_job_whose_attempts_are_exhausted_is_refunded(node, tmp_path):
    """Issue 9 item 7: a provider that never submits (a wrong RPC URL, a crash) burns the
    attempts; the failed job's deposit comes back although the escrow was bound."""
    escrow = _escrow(node)
    requester, prov = wallet(node), wallet(node, "1")
    job, key, funding_gas = _funded(node, tmp_path, requester)
    headers = provider_headers(node, prov, "prov")
    with session_scope(node.app.state.runtime.sessionmaker) as session:
        session.get(Job, job["id"]).max_retries = 1
    for _attempt in (1, 2):
        _claim(node, headers)
        tick(node)
        assert escrow.get_job(key).status == Status.BOUND
        _expire_lease(node, job["id"])
        tick(node)
    assert status_of(node, job["id"]) == "failed"
    tick(node)
    assert escrow.get_job(key).status == Status.NONE
    assert balance(escrow.w3, requester.address) == START - funding_gas
    [payout] = node.get("/v1/payouts", params={"requester": requester.address}).json()["data"]
    assert payout["outcome"] == "refunded" and payout["amount_wei"] == str(REWARD)


def test_an_old_voucher_cannot_take_a_new_deposit_of_the_job(node, tmp_path):
    """Finding 3: voucher for attempt 1, the provider abandons, the job is cancelled and
    refunded, the requester funds the retry: the old voucher binds nothing (the retry's
    deposit is under a new key), and not the old key funded again either (its tag)."""
    escrow = _escrow(node)
    requester, prov = wallet(node), wallet(node, "1")
    owner = make_user(node.app, username="req", address=requester.address)
    headers = auth_headers(node, "req")
    from tests.fixtures.factories import make_workspace

    ws = make_workspace(node.app, owner, name="lab")
    with session_scope(node.app.state.runtime.sessionmaker) as session:
        job_id = create_job(
            session,
            job_type="image_processing",
            workspace_id=ws,
            created_by=owner.id,
            requester_address=requester.address,
            reward_wei=REWARD,
            status=JobStatus.AWAITING_FUNDING,
        ).id
    first = node.get(f"/v1/jobs/job_{job_id}/funding", headers=headers).json()["data"]
    send_call(escrow.w3, requester, first)
    tick(node)
    voucher = _claim(node, provider_headers(node, prov, "prov"))["voucher"]
    from worker.chain import voucher_from_json

    old = voucher_from_json(voucher)
    tick(node)  # the node binds the lease
    escrow.abandon(prov, old.key)
    node.post(f"/v1/jobs/job_{job_id}/cancel", headers=headers)
    tick(node)
    tick(node)
    assert escrow.get_job(old.key).status == Status.NONE  # refunded
    node.post(f"/workspace/{ws}/jobs/job_{job_id}/retry", headers=headers)
    retry = node.get(f"/v1/jobs/job_{job_id}/funding", headers=headers).json()["data"]
    assert call_key(retry) != call_key(first)
    send_call(escrow.w3, requester, retry)
    tick(node)
    with pytest.raises(ChainError) as info:
        escrow.submit_with_voucher(prov, old, b"\x13" * 32)
    assert info.value.error_name == "WrongStatus"  # the old key holds nothing
    time_travel(node, 5)
    send_call(escrow.w3, requester, first)  # the old call replayed: the old key funded again
    with pytest.raises(ChainError) as info:
        escrow.submit_with_voucher(prov, old, b"\x13" * 32)
    assert info.value.error_name == "WrongFunding"
    tick(node)
    tick(node)
    assert escrow.get_job(old.key).status == Status.NONE  # the replay went back
    assert status_of(node, job_id) == "pending"  # the retry's deposit is untouched
    assert escrow.get_job(call_key(retry)).status == Status.OPEN


def test_nobody_can_squat_a_future_jobs_key(node, tmp_path):
    """Findings 4 and 5: keys name their requester, so a stranger can neither fund a job's
    key nor make the node spend gas on its own deposits."""
    escrow = _escrow(node)
    requester, stranger = wallet(node), wallet(node)
    for number in range(1, 6):  # the next jobs' numbers, under the stranger's own address
        escrow.fund(
            stranger,
            escrow.job_key(number, stranger.address),
            amount_wei=10**14,
            deadline=escrow.w3.eth.get_block("latest")["timestamp"] + 300 * 86_400,
            challenge_window=60,
        )
    jobs = [upload(node, tmp_path, requester.address, seed=n) for n in range(1, 4)]
    for job in jobs:
        assert send_call(escrow.w3, requester, job["funding"])["status"] == 1
    tick(node)
    assert [status_of(node, j["id"]) for j in jobs] == ["pending"] * 3
    assert _outbox(node) == []  # no reject loop: the node sends nothing for strangers
    with pytest.raises(ChainError) as info:  # and cannot fund a job's own key
        escrow.fund(
            stranger,
            call_key(jobs[0]["funding"]),
            amount_wei=1,
            deadline=escrow.w3.eth.get_block("latest")["timestamp"] + 3600,
            challenge_window=60,
        )
    assert info.value.error_name in ("NotRequester", "JobExists")


def test_a_late_refusal_never_returns_a_deposit_the_job_runs_on(node, tmp_path):
    """Finding 7: the requester funds too little; before the node's refund lands it takes
    that deposit back itself and funds the same key again, correctly. The key was retired
    by the refusal, so the late refund only ever hits a deposit the node refused too: the
    job never shows `pending` over an empty escrow, and opens on the fresh key."""
    escrow = _escrow(node)
    w3 = escrow.w3
    requester = wallet(node)
    job = upload(node, tmp_path, requester.address)
    key = call_key(job["funding"])
    gas = _gas(send_call(w3, requester, job["funding"], value=REWARD - 1))
    with node.app.state.runtime.chain_tick.lock:  # refused, and its refund queued (not sent yet)
        node.app.state.runtime.chain_tick.watcher.poll_once()
        assert node.app.state.runtime.chain_tick.policy.run_once().refund == [job["id"]]
    assert _outbox(node) == [("refund", "pending")]
    gas += escrow.cancel(requester, key).fee_wei  # the requester's own cancel...
    gas += _gas(send_call(w3, requester, job["funding"]))  # ... and a correct deposit
    tick(node)  # the queued refund lands on that deposit; the watcher sees it all
    tick(node)
    assert status_of(node, job["id"]) == "awaiting_funding"
    assert escrow.get_job(key).status == Status.NONE
    assert balance(w3, requester.address) == START - gas
    fresh = node.get(f"/jobs/{job['id']}/funding").json()["data"]
    assert call_key(fresh) != key
    send_call(w3, requester, fresh)
    tick(node)
    assert status_of(node, job["id"]) == "pending"


@pytest.mark.parametrize(
    ("deadline_in", "window", "reason"),
    [(120, WINDOW, "deadline leaves the job"), (7 * 86_400, 30 * 86_400, "challenge window")],
)
def test_deposits_outside_the_nodes_terms_are_refused_and_refunded(
    node, tmp_path, deadline_in, window, reason
):
    """Finding 9: a 2-minute deadline (the provider's submit would revert) or a 30-day
    challenge window never opens a job; the deposit goes back."""
    escrow = _escrow(node)
    requester = wallet(node)
    make_user(node.app, username="req", address=requester.address)
    job = upload(node, tmp_path, requester.address)
    call = escrow.funding_call(
        call_key(job["funding"]),
        amount_wei=REWARD,
        deadline=escrow.w3.eth.get_block("latest")["timestamp"] + deadline_in,
        challenge_window=window,
    )
    gas = _gas(send_call(escrow.w3, requester, call))
    tick(node)
    assert status_of(node, job["id"]) == "awaiting_funding"
    [refused] = [
        e
        for e in events_of(node, job["id"], auth_headers(node, "req"))
        if e["type"] == "funding_rejected"
    ]
    assert reason in refused["message"]
    assert balance(escrow.w3, requester.address) == START - gas


def test_the_policy_finds_due_deposits_beyond_the_oldest_jobs(node, tmp_path):
    """Finding 8: 600 long-lived funded jobs with lower ids do not hide a newer one whose
    deadline passed: the due query selects by phase end, not by job id."""
    escrow = _escrow(node)
    requester = wallet(node)
    with session_scope(node.app.state.runtime.sessionmaker) as session:
        for n in range(600):
            job = create_job(
                session,
                job_type="image_processing",
                requester_address=requester.address,
                reward_wei=REWARD,
                status=JobStatus.PENDING,
            )
            session.add(
                ChainEscrow(
                    job_key="0x" + escrow.job_key(job.id, requester.address).hex(),
                    job_id=job.id,
                    requester=requester.address,
                    generation=0,
                    status="open",
                    accepted=True,
                    amount_wei=REWARD,
                    deadline=2**40 + n,
                    phase_end=2**40 + n,
                    attempt=0,
                    version=1,
                )
            )
    job, key, funding_gas = _funded(node, tmp_path, requester)
    time_travel(node, 8 * 86_400)  # past the 7-day deadline
    report = tick(node)
    assert report.refund == [job["id"]]
    assert status_of(node, job["id"]) == "expired"
    assert balance(escrow.w3, requester.address) == START - funding_gas


def test_payouts_show_deferred_payments_and_a_refused_deposit_is_not_the_settlement(node, tmp_path):
    """Finding 12: a refund pushed to a requester contract that refuses ether is shown as
    deferred (waiting in `owed`); a job's settlement is that of its own deposit, never the
    refund of one the node refused."""
    from tests.marketplace.escrow.harness import Harness

    escrow = _escrow(node)
    w3 = escrow.w3
    deployer = wallet(node)
    harness = Harness(w3, "node", {"deployer": deployer})
    harness.escrow = escrow
    contract = harness.deploy_wallet()
    job = upload(node, tmp_path, contract)
    short = escrow.funding_call(
        call_key(job["funding"]),
        amount_wei=REWARD - 1,
        deadline=w3.eth.get_block("latest")["timestamp"] + 86_400,
        challenge_window=WINDOW,
    )
    harness.wallet_call(
        contract,
        "exec",
        short["to"],
        REWARD - 1,
        bytes.fromhex(short["data"][2:]),
        value=REWARD - 1,
    )
    harness.wallet_call(contract, "configure", True, "0x" + "00" * 20, 0, b"")  # refuse ether
    tick(node)  # refused: the refund is pushed, fails, and waits in owed
    assert escrow.owed(contract) == REWARD - 1
    missing = node.get(f"/v1/jobs/job_{job['id']}/settlement")
    assert missing.status_code == 404  # the refused deposit's refund is not the job's
    [payout] = node.get("/v1/payouts", params={"requester": contract}).json()["data"]
    assert payout["refused_deposit"] is True and payout["outcome"] == "refunded"
    assert payout["deferred"] == [{"account": contract, "amount_wei": str(REWARD - 1)}]
    # the contract names another recipient for what it is owed
    rescue = Account.create().address
    harness.wallet_call(
        contract, "exec", escrow.address, 0, escrow.contract.encode_abi("withdrawTo", args=[rescue])
    )
    assert balance(w3, rescue) == REWARD - 1 and escrow.owed(contract) == 0


def test_dcm_serve_advertises_the_port_it_listens_on(tmp_path, database_url):
    """Issue 9 item 7: without DCM_PUBLIC_URL, /chain/info and the SIWE domain name where
    `dcm serve` actually listens, not http://127.0.0.1:8000."""
    from tests.fixtures.served import Served

    served = Served(tmp_path / "node", database_url, DCM_PUBLIC_URL="")
    try:
        info = NodeClient(served.url).request("GET", "/chain/info").json()
        assert info["rpc_url"] == f"{served.url}/chain/rpc"
        nonce = NodeClient(served.url).request("GET", "/auth/nonce").json()
        assert nonce["domain"] == f"127.0.0.1:{served.port}"
        assert Web3(Web3.HTTPProvider(info["rpc_url"])).eth.chain_id == info["chain_id"]
        # a provider facing a node that advertises a dead URL uses the node's own RPC, and
        # refuses to start when no RPC answers (rather than burning a job's attempts)
        from worker.chain import resolve_rpc

        wrong = {**info, "rpc_url": "http://127.0.0.1:9/chain/rpc"}
        assert resolve_rpc(wrong, served.url) == f"{served.url}/chain/rpc"
        with pytest.raises(UpstreamUnavailable):
            resolve_rpc(wrong, "http://127.0.0.1:9")
    finally:
        served.stop()


def test_a_deposit_after_the_funding_timeout_is_refunded(node, tmp_path):
    """Every path that ends a job without a paid result returns the deposit: a job that
    expired unfunded and is funded afterwards from its old call."""
    w3 = Web3(RpcViaTestClient(node))
    requester = wallet(node)
    job = upload(node, tmp_path, requester.address)
    node.app.state.runtime.chain_tick.policy.funding_timeout_seconds = 0
    assert tick(node).expired == [job["id"]]
    gas = _gas(send_call(w3, requester, job["funding"]))
    report = tick(node)
    assert report.refund == [job["id"]] and status_of(node, job["id"]) == "expired"
    assert balance(w3, requester.address) == START - gas


def test_a_reaped_lease_is_fenced_on_chain_before_any_successor(node, tmp_path):
    """Issue 19 item 1: reaping a lease sends `unassign` on its own (no successor claim
    needed), so the old holder's submit reverts, and so does its voucher."""
    from worker.chain import voucher_from_json

    escrow = _escrow(node)
    requester, prov = wallet(node), wallet(node, "1")
    job, key, _ = _funded(node, tmp_path, requester)
    claim = _claim(node, provider_headers(node, prov, "prov"))
    tick(node)
    assert escrow.get_job(key).provider == prov.address
    _expire_lease(node, job["id"])
    tick(node)
    assert [a for a, _ in _outbox(node)] == ["assign", "unassign"]
    record = escrow.get_job(key)
    assert record.status == Status.OPEN and record.provider != prov.address
    with pytest.raises(ChainError) as info:
        escrow.submit(prov, key, escrow.cid_digest(RESULT_CID))
    assert info.value.error_name in {"WrongStatus", "NotProvider"}
    with pytest.raises(ChainError):
        escrow.submit_with_voucher(
            prov, voucher_from_json(claim["voucher"]), escrow.cid_digest(RESULT_CID)
        )
    assert status_of(node, job["id"]) == "pending"
