"""Binding plumbing: nonce resync when another client used the account, RPC outages."""

from __future__ import annotations

import pytest
from web3 import Web3

from marketplace.errors import UpstreamUnavailable, ValidationFailed
from marketplace.escrow import JobEscrow, Status

from .harness import Harness


def test_nonce_is_resynced_after_another_client_used_the_account(chain: Harness):
    esc, req, w3 = chain.escrow, chain.requester, chain.w3
    esc.fund(req, "job_1", amount_wei=5, deadline=chain.now() + 1000, challenge_window=60)
    block = w3.eth.get_block("latest")
    external = {
        "chainId": w3.eth.chain_id,
        "to": chain.keeper.address,
        "value": 1,
        "gas": 21_000,
        "nonce": w3.eth.get_transaction_count(req.address),
        "maxFeePerGas": 2 * block["baseFeePerGas"] + 10**9,
        "maxPriorityFeePerGas": 10**9,
    }
    tx_hash = w3.eth.send_raw_transaction(req.sign_transaction(external).raw_transaction)
    w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)
    # The binding's cached nonce is now stale: it resyncs and the call still succeeds.
    esc.fund(req, "job_2", amount_wei=7, deadline=chain.now() + 1000, challenge_window=60)
    assert esc.get_job("job_2").status == Status.OPEN


def test_unreachable_rpc_is_upstream_unavailable(chain: Harness):
    dead = Web3(Web3.HTTPProvider("http://127.0.0.1:9", request_kwargs={"timeout": 2}))
    esc = JobEscrow(dead, chain.escrow.address)
    with pytest.raises(UpstreamUnavailable):
        esc.get_job(b"\x00" * 32)
    with pytest.raises(UpstreamUnavailable):
        esc.cancel(chain.requester, b"\x00" * 32)


def test_bad_arguments_are_validation_errors(chain: Harness):
    esc = chain.escrow
    with pytest.raises(ValidationFailed):
        esc.get_job(b"\x01" * 31)  # not a 32-byte key
    with pytest.raises(ValidationFailed):
        esc.submit(chain.provider, b"\x01" * 32, b"short")
    with pytest.raises(ValidationFailed):
        esc.funding_call("job_1", amount_wei=0, deadline=chain.now() + 10, challenge_window=5)
