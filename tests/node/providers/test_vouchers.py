"""The claim of an escrowed job binds the provider on chain (the node's own `assign`) and
carries the assignment voucher that binds it when that transaction has not landed."""

from __future__ import annotations

import time

import pytest
from eth_account import Account

from marketplace.errors import ChainError
from marketplace.escrow.client import Status, Voucher
from tests.node.providers.test_leases import _job, _provider


def _voucher(data: dict) -> Voucher:
    return Voucher(
        key=bytes.fromhex(data["job_key"][2:]),
        provider=data["provider"],
        attempt=data["attempt"],
        expiry=data["expiry"],
        v=data["v"],
        r=bytes.fromhex(data["r"][2:]),
        s=bytes.fromhex(data["s"][2:]),
    )


def test_claim_binds_the_provider_on_chain_and_carries_a_voucher(app, client):
    chain = app.state.chain
    escrow = chain.escrow()
    requester = Account.create()
    chain.faucet(requester.address, 10**18)
    job_id = _job(app, reward_wei=10**16, requester_address=requester.address)
    escrow.fund(
        requester, job_id, amount_wei=10**16, deadline=int(time.time()) + 7200, challenge_window=600
    )

    headers = _provider(app, client, "gpu1")
    claim = client.post("/v1/providers/claim", json={}, headers=headers).json()["data"]
    provider_address = client.get("/auth/me", headers=headers).json()["address"]
    # The claim's commit woke the outbox: the node's own `assign` binds the lease holder.
    give_up = time.monotonic() + 10
    while escrow.get_job(job_id).provider != provider_address:
        assert time.monotonic() < give_up, "the node did not assign the job on chain"
        time.sleep(0.05)
    record = escrow.get_job(job_id)
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
    # use when the node's transaction has not landed; once it has, it is fenced like any
    # replay of the same attempt.
    voucher = claim["voucher"]
    assert voucher["attempt"] == 1 and voucher["provider"] == provider_address
    assert _voucher(voucher) == escrow.sign_assignment(
        chain.operator.account, job_id, provider_address, 1, voucher["expiry"]
    )
    relayer = Account.create()
    chain.faucet(relayer.address, 10**17)
    with pytest.raises(ChainError) as info:
        escrow.bind(relayer, _voucher(voucher))
    assert info.value.error_name == "StaleAttempt"


def test_job_without_reward_has_no_voucher(app, client):
    _job(app)
    headers = _provider(app, client, "gpu1")
    claim = client.post("/v1/providers/claim", json={}, headers=headers).json()["data"]
    assert claim["voucher"] is None
