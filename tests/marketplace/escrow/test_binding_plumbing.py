"""Binding plumbing: nonce resync when another client used the account, RPC outages."""

from __future__ import annotations

import pytest
from web3 import Web3

from marketplace.errors import UpstreamUnavailable, ValidationFailed
from marketplace.escrow import JobEscrow, Status

from .harness import Harness


def _send_raw(chain: Harness, acct, **fields) -> dict:
    """Sign and send a transaction outside the binding (another client of the account)."""
    w3 = chain.w3
    block = w3.eth.get_block("latest")
    tx = {
        "chainId": w3.eth.chain_id,
        "value": 0,
        "nonce": w3.eth.get_transaction_count(acct.address),
        "maxFeePerGas": 2 * block["baseFeePerGas"] + 10**9,
        "maxPriorityFeePerGas": 10**9,
        **fields,
    }
    tx_hash = w3.eth.send_raw_transaction(acct.sign_transaction(tx).raw_transaction)
    return w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)


def test_nonce_is_resynced_after_another_client_used_the_account(chain: Harness):
    esc, req = chain.escrow, chain.requester
    esc.fund(
        req, chain.key("job_1"), amount_wei=5, deadline=chain.now() + 1000, challenge_window=60
    )
    _send_raw(chain, req, to=chain.keeper.address, value=1, gas=21_000)
    # The binding's cached nonce is now stale: it resyncs and the call still succeeds.
    key = chain.key("job_2")
    esc.fund(req, key, amount_wei=7, deadline=chain.now() + 1000, challenge_window=60)
    assert esc.get_job(key).status == Status.OPEN


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
        esc.funding_call(
            chain.key("job_1"), amount_wei=0, deadline=chain.now() + 10, challenge_window=5
        )
    with pytest.raises(ValidationFailed):
        esc.get_job("job_1")  # a job id is not a key: the requester is part of it


def _deploy_runtime(chain: Harness, runtime: bytes) -> str:
    """Deploy `runtime` as is (init code: CODECOPY it to memory and RETURN it)."""
    n = len(runtime).to_bytes(2, "big")
    init = bytes.fromhex("61") + n + bytes.fromhex("8061000d6000396000f3") + runtime
    assert len(init) - len(runtime) == 0x0D
    receipt = _send_raw(chain, chain.deployer, data=init, gas=3_000_000)
    assert receipt["status"] == 1
    return receipt["contractAddress"]


def test_runs_this_build_tells_this_escrow_from_other_code(chain: Harness):
    from marketplace.escrow import load_artifact

    assert chain.escrow.runs_this_build()
    runtime = bytes.fromhex(load_artifact()["deployedBytecode"][2:])
    same = _deploy_runtime(chain, runtime)
    assert JobEscrow(chain.w3, same).runs_this_build()
    # one byte of the metadata hash differs: another source or compiler settings
    altered = bytearray(runtime)
    altered[-20] ^= 0xFF
    other = _deploy_runtime(chain, bytes(altered))
    assert not JobEscrow(chain.w3, other).runs_this_build()
    assert not JobEscrow(chain.w3, chain.keeper.address).runs_this_build()  # no code at all
