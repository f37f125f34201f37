"""The claim of an escrowed job binds the provider on chain (the node's own `assign`) and
carries the assignment voucher that binds it when that transaction has not landed."""

from __future__ import annotations

import time

import pytest
from eth_account import Account

from marketplace.errors import ChainError
from marketplace.escrow.client import Status, Voucher
from marketplace.jobs.states import JobStatus
from node.db import session_scope
from node.escrow.service import funding_request
from node.models.jobs import Job
from tests.node.providers.test_leases import _get, _job, _provider


def _voucher(data: dict) -> Voucher:
    return Voucher(
        key=bytes.fromhex(data["job_key"][2:]),
        provider=data["provider"],
        attempt=data["attempt"],
        funding=data["funding"],
        expiry=data["expiry"],
        v=data["v"],
        r=bytes.fromhex(data["r"][2:]),
        s=bytes.fromhex(data["s"][2:]),
    )


def _funded_job(app) -> tuple[int, str]:
    """An escrowed job its requester funded with the node's funding call, opened by the
    watcher; returns its id and escrow key."""
    chain = app.state.runtime.chain
    requester = Account.create()
    chain.faucet(requester.address, 10**18)
    job_id = _job(
        app,
        reward_wei=10**16,
        requester_address=requester.address,
        status=JobStatus.AWAITING_FUNDING,
    )
    with session_scope(app.state.runtime.sessionmaker) as session:
        call = funding_request(session, chain.escrow(), session.get(Job, job_id))
    key = "0x" + call["data"][10:74]
    chain.escrow().fund(
        requester,
        key,
        amount_wei=10**16,
        deadline=int(time.time()) + 7200,
        challenge_window=24 * 3600,
    )
    give_up = time.monotonic() + 10
    while _get(app, job_id).status != "pending":  # the background watcher opens it
        assert time.monotonic() < give_up, "the watcher did not open the funded job"
        time.sleep(0.05)
    return job_id, key


def test_claim_binds_the_provider_on_chain_and_carries_a_voucher(app, client):
    chain = app.state.runtime.chain
    escrow = chain.escrow()
    job_id, key = _funded_job(app)

    headers = _provider(app, client, "gpu1")
    claim = client.post("/v1/providers/claim", json={}, headers=headers).json()["data"]
    provider_address = client.get("/auth/me", headers=headers).json()["address"]
    # The claim's commit woke the outbox: the node's own `assign` binds the lease holder.
    give_up = time.monotonic() + 10
    while escrow.get_job(key).provider != provider_address:
        assert time.monotonic() < give_up, "the node did not assign the job on chain"
        time.sleep(0.05)
    record = escrow.get_job(key)
    assert (
        (record.status, record.attempt)
        == (Status.BOUND, claim["lease"]["attempt"])
        == (
            Status.BOUND,
            1,
        )
    )
    [bound] = escrow.events("ProviderBound")
    assert bound["args"]["provider"] == provider_address
    assert escrow.w3.eth.get_transaction(bound["transactionHash"])["from"] == chain.operator.address

    # The voucher is the same decision, signed by the assigner key, for the provider to
    # use when the node's transaction has not landed: for this deposit (its funding tag),
    # this lease. Once the node's own transaction landed, relaying it is a no-op.
    voucher = claim["voucher"]
    assert voucher["job_key"] == key and voucher["funding"] == record.funding
    assert voucher["attempt"] == 1 and voucher["provider"] == provider_address
    assert _voucher(voucher) == escrow.sign_assignment(
        chain.operator.account, key, provider_address, 1, record.funding, voucher["expiry"]
    )
    relayer = Account.create()
    chain.faucet(relayer.address, 10**17)
    escrow.bind(relayer, _voucher(voucher))
    assert escrow.get_job(key) == record and len(escrow.events("ProviderBound")) == 1
    # a voucher for another provider at the same attempt is fenced
    other = escrow.sign_assignment(
        chain.operator.account, key, relayer.address, 1, record.funding, voucher["expiry"]
    )
    with pytest.raises(ChainError) as info:
        escrow.bind(relayer, other)
    assert info.value.error_name == "WrongStatus"


def test_job_without_reward_has_no_voucher(app, client):
    _job(app)
    headers = _provider(app, client, "gpu1")
    claim = client.post("/v1/providers/claim", json={}, headers=headers).json()["data"]
    assert claim["voucher"] is None
