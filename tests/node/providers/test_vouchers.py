"""The claim of an escrowed job carries an assignment voucher the contract accepts."""

from __future__ import annotations

import time

from eth_account import Account

from marketplace.escrow.client import Voucher
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


def test_claim_voucher_binds_the_provider_on_chain(app, client):
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
    voucher = claim["voucher"]
    assert voucher["attempt"] == claim["lease"]["attempt"] == 1
    provider_address = client.get("/auth/me", headers=headers).json()["address"]
    assert voucher["provider"] == provider_address

    relayer = Account.create()  # anyone may send the voucher
    chain.faucet(relayer.address, 10**17)
    escrow.bind(relayer, _voucher(voucher))
    record = escrow.get_job(job_id)
    assert record.provider == provider_address and record.attempt == 1


def test_job_without_reward_has_no_voucher(app, client):
    _job(app)
    headers = _provider(app, client, "gpu1")
    claim = client.post("/v1/providers/claim", json={}, headers=headers).json()["data"]
    assert claim["voucher"] is None
