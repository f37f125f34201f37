"""The provider daemon's chain steps against the real contract (in-process EVM): it sends
only what the escrow will take for its lease, and a lease the node fenced costs no gas."""

from __future__ import annotations

import pytest

from marketplace.errors import StaleAttempt
from marketplace.escrow import JobEscrow, Status
from tests.marketplace.escrow.harness import Harness, in_process
from worker.chain import ProviderChain

RESULT_CID = "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"


@pytest.fixture
def chain() -> Harness:
    harness = in_process()
    harness.deploy()
    return harness


def _daemon_chain(chain: Harness, who: str) -> ProviderChain:
    """The daemon's `ProviderChain`, on the in-process chain instead of an RPC URL."""
    pc = ProviderChain.__new__(ProviderChain)
    pc.w3, pc.account = chain.w3, chain.actors[who]
    pc.escrow = JobEscrow(chain.w3, chain.escrow.address)
    return pc


def _voucher_json(chain: Harness, key: bytes, who: str, attempt: int) -> dict:
    v = chain.voucher(key, who, attempt)
    return {
        "job_key": "0x" + v.key.hex(),
        "provider": v.provider,
        "attempt": v.attempt,
        "funding": v.funding,
        "expiry": v.expiry,
        "v": v.v,
        "r": "0x" + v.r.hex(),
        "s": "0x" + v.s.hex(),
    }


def _funded(chain: Harness, job: str) -> bytes:
    key = chain.key(job)
    chain.escrow.fund(
        chain.requester, key, amount_wei=10**15, deadline=chain.now() + 3600, challenge_window=60
    )
    return key


def test_submit_succeeds_whether_or_not_the_nodes_assignment_landed(chain: Harness):
    """Finding 11: the provider's submit does not lose the work to the node's own assign
    for the same lease, whichever lands first."""
    pc = _daemon_chain(chain, "provider")
    first, second = _funded(chain, "job_1"), _funded(chain, "job_2")
    chain.escrow.assign(chain.node, first, chain.provider.address, 1)  # landed
    pc.submit(_voucher_json(chain, first, "provider", 1), RESULT_CID)
    pc.submit(_voucher_json(chain, second, "provider", 1), RESULT_CID)  # not yet: voucher
    for key in (first, second):
        record = chain.escrow.get_job(key)
        assert (record.status, record.provider) == (Status.SUBMITTED, chain.provider.address)


def test_a_fenced_lease_sends_nothing(chain: Harness):
    """Issue 19: once the node unassigned the lease (it ended), the daemon raises a lost
    lease without spending gas on a transaction that would revert."""
    pc = _daemon_chain(chain, "provider")
    key = _funded(chain, "job_3")
    voucher = _voucher_json(chain, key, "provider", 1)
    chain.escrow.assign(chain.node, key, chain.provider.address, 1)
    chain.escrow.unassign(chain.node, key, 1)
    nonce = chain.w3.eth.get_transaction_count(chain.provider.address)
    with pytest.raises(StaleAttempt):
        pc.submit(voucher, RESULT_CID, wait_seconds=0)
    assert pc.abandon("0x" + key.hex(), 1) is None  # nothing bound to release either
    assert chain.w3.eth.get_transaction_count(chain.provider.address) == nonce
    chain.escrow.assign(chain.node, key, chain.provider2.address, 2)  # the successor
    with pytest.raises(StaleAttempt):
        pc.submit(voucher, RESULT_CID, wait_seconds=0)
    assert chain.w3.eth.get_transaction_count(chain.provider.address) == nonce
