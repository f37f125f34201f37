"""The whole money path, on the in-process EVM and on a Hardhat node over HTTP.

Every actor's balance is checked to the wei after each scenario: what it funded, what it
was paid, and the gas of every transaction it sent (gasUsed * effectiveGasPrice).
"""

from __future__ import annotations

import pytest

from marketplace.errors import ChainError
from marketplace.escrow import Outcome, Status, TxResult

from .harness import ARBITRATION_WINDOW, FEE_BPS, Harness

AMOUNT = 3 * 10**18 + 123_456_789  # odd on purpose: fee rounding is exercised
DIGEST = bytes.fromhex("5a" * 32)
RESULT = bytes.fromhex("a5" * 32)
WINDOW = 600


class Books:
    """Expected balances of every actor, updated per transaction."""

    def __init__(self, chain: Harness) -> None:
        self.chain = chain
        self.expected = {name: chain.balance(acct) for name, acct in chain.actors.items()}
        self.contract = chain.balance(chain.escrow.address)

    def tx(self, who: str, result: TxResult, value: int = 0) -> TxResult:
        self.expected[who] -= result.fee_wei + value
        self.contract += value
        return result

    def paid(self, who: str, amount: int) -> None:
        self.expected[who] += amount
        self.contract -= amount

    def revert(self, name: str, fn, sender, *args, **kwargs) -> ChainError:
        """Call `fn(sender, ...)`, expect the custom error `name`, and charge the sender the
        gas of the failed transaction (both backends mine it)."""
        with pytest.raises(ChainError) as info:
            fn(sender, *args, **kwargs)
        assert info.value.error_name == name, info.value.message
        w3 = self.chain.w3
        block = w3.eth.get_block("latest")
        for tx_hash in block["transactions"]:
            receipt = w3.eth.get_transaction_receipt(tx_hash)
            if receipt["from"] == sender.address and receipt["status"] == 0:
                who = next(n for n, a in self.chain.actors.items() if a.address == sender.address)
                self.expected[who] -= receipt["gasUsed"] * receipt["effectiveGasPrice"]
        return info.value

    def check(self) -> None:
        actual = {name: self.chain.balance(acct) for name, acct in self.chain.actors.items()}
        assert actual == self.expected
        assert self.chain.balance(self.chain.escrow.address) == self.contract


def fee_of(amount: int) -> int:
    return amount * FEE_BPS // 10_000


def fund_job(chain: Harness, books: Books, job: str, *, deadline_in: int = 86_400) -> None:
    res = chain.escrow.fund(
        chain.requester,
        job,
        amount_wei=AMOUNT,
        deadline=chain.now() + deadline_in,
        challenge_window=WINDOW,
        dataset_digest=DIGEST,
    )
    books.tx("requester", res, AMOUNT)


def bind(
    chain: Harness,
    books: Books,
    job: str,
    provider: str = "provider",
    attempt: int = 1,
    *,
    via: str = "assign",
):
    """Bind `provider` the way the node does (`assign`, its own transaction) or with a
    voucher the provider relays (`via="voucher"`)."""
    acct = chain.actors[provider]
    if via == "assign":
        books.tx("node", chain.escrow.assign(chain.node, job, acct.address, attempt))
        return
    voucher = chain.escrow.sign_assignment(
        chain.node, job, acct.address, attempt, chain.now() + 3600
    )
    books.tx(provider, chain.escrow.bind(acct, voucher))


def submit(chain: Harness, books: Books, job: str, provider: str = "provider") -> None:
    books.tx(provider, chain.escrow.submit(chain.actors[provider], job, RESULT))


def test_fund_bind_submit_accept(chain: Harness):
    esc, books = chain.escrow, Books(chain)
    fund_job(chain, books, "job_1")
    rec = esc.get_job("job_1")
    assert (rec.requester, rec.amount, rec.status) == (chain.requester.address, AMOUNT, Status.OPEN)
    books.revert("NotAssigner", esc.assign, chain.mallory, "job_1", chain.mallory.address, 1)
    bind(chain, books, "job_1")
    assert esc.get_job("job_1").provider == chain.provider.address
    submit(chain, books, "job_1")
    books.revert("NotRequester", esc.accept, chain.mallory, "job_1")
    books.tx("requester", esc.accept(chain.requester, "job_1"))
    books.paid("provider", AMOUNT - fee_of(AMOUNT))
    books.check()
    assert esc.owed(chain.fee.address) == fee_of(AMOUNT)
    assert esc.get_job("job_1") == esc.get_job("job_999")  # settled: the record is deleted
    # The fee is pulled to the fixed recipient by anyone; the escrow ends empty.
    books.tx("keeper", esc.withdraw(chain.keeper, chain.fee.address))
    books.paid("fee", fee_of(AMOUNT))
    books.check()
    assert chain.balance(esc.address) == 0
    books.revert("NothingOwed", esc.withdraw, chain.mallory, chain.fee.address)
    # Settled for good: nothing pays twice.
    books.revert("WrongStatus", esc.accept, chain.requester, "job_1")
    books.revert("WrongStatus", esc.finalize, chain.mallory, "job_1")
    events = esc.events("JobSettled")
    assert len(events) == 1
    ev = events[0]["args"]
    assert ev["jobKey"] == esc.job_key("job_1")
    assert (ev["requester"], ev["provider"]) == (chain.requester.address, chain.provider.address)
    assert ev["outcome"] == Outcome.ACCEPTED
    assert ev["providerAmount"] + ev["fee"] == AMOUNT and ev["requesterAmount"] == 0
    funded = esc.events("JobFunded")[0]["args"]
    assert funded["amount"] == AMOUNT and funded["datasetDigest"] == DIGEST
    assert esc.events("ResultSubmitted")[0]["args"]["resultDigest"] == RESULT
    # A new funding of the key is a new escrow, from attempt 0: it pays nobody from the
    # old one and its funder can take it back.
    res = esc.fund(
        chain.requester2, "job_1", amount_wei=5, deadline=chain.now() + 100, challenge_window=10
    )
    books.tx("requester2", res, 5)
    assert esc.get_job("job_1").attempt == 0
    books.revert("WrongStatus", esc.submit, chain.provider, "job_1", RESULT)
    books.tx("requester2", esc.cancel(chain.requester2, "job_1"))
    books.paid("requester2", 5)
    books.check()


def test_assigner_rejects_a_squatted_funding_and_frees_the_key(chain: Harness):
    """A stranger funds someone else's job id first: the node returns the stranger's ether
    and the real requester funds the job."""
    esc, books = chain.escrow, Books(chain)
    books.tx(
        "mallory",
        esc.fund(
            chain.mallory, "job_40", amount_wei=1, deadline=chain.now() + 10**6, challenge_window=60
        ),
        1,
    )
    books.revert(
        "JobExists",
        esc.fund,
        chain.requester,
        "job_40",
        amount_wei=AMOUNT,
        deadline=chain.now() + 1000,
        challenge_window=WINDOW,
    )
    books.revert("NotAssigner", esc.reject, chain.requester, "job_40")
    books.tx("node", esc.reject(chain.node, "job_40"))
    books.paid("mallory", 1)
    books.check()
    assert esc.get_job("job_40").status == Status.NONE
    fund_job(chain, books, "job_40")
    bind(chain, books, "job_40")
    books.revert("WrongStatus", esc.reject, chain.node, "job_40")
    books.tx("provider", esc.abandon(chain.provider, "job_40"))
    # Once a provider was assigned, the node can no longer take the job away from its funder.
    books.revert("AlreadyAssigned", esc.reject, chain.node, "job_40")
    books.check()
    ev = esc.events("JobSettled")[0]["args"]
    assert ev["outcome"] == Outcome.REJECTED and ev["requester"] == chain.mallory.address
    assert ev["requesterAmount"] == 1


def test_finalize_after_challenge_window(chain: Harness):
    esc, books = chain.escrow, Books(chain)
    fund_job(chain, books, "job_2")
    bind(chain, books, "job_2")
    submit(chain, books, "job_2")
    books.revert("ChallengeWindowOpen", esc.finalize, chain.mallory, "job_2")
    chain.travel(WINDOW + 1)
    books.revert("ChallengeWindowClosed", esc.dispute, chain.requester, "job_2")
    books.tx("keeper", esc.finalize(chain.keeper, "job_2"))
    books.paid("provider", AMOUNT - fee_of(AMOUNT))
    books.check()
    assert esc.events("JobSettled")[0]["args"]["outcome"] == Outcome.FINALIZED


def test_dispute_resolved_by_arbiter(chain: Harness):
    esc, books = chain.escrow, Books(chain)
    fund_job(chain, books, "job_3")
    bind(chain, books, "job_3")
    submit(chain, books, "job_3")
    books.revert("NotRequester", esc.dispute, chain.provider, "job_3")
    books.tx("requester", esc.dispute(chain.requester, "job_3"))
    books.revert("WrongStatus", esc.accept, chain.requester, "job_3")
    books.revert("ArbitrationWindowOpen", esc.finalize, chain.keeper, "job_3")
    books.revert("NotArbiter", esc.resolve, chain.requester, "job_3", 0)
    books.revert("BadShare", esc.resolve, chain.arbiter, "job_3", 10_001)
    books.tx("arbiter", esc.resolve(chain.arbiter, "job_3", 7_000))
    share = AMOUNT * 7_000 // 10_000
    books.paid("provider", share - fee_of(share))
    books.paid("requester", AMOUNT - share)
    books.check()
    assert esc.owed(chain.fee.address) == fee_of(share)
    ev = esc.events("JobSettled")[0]["args"]
    assert ev["outcome"] == Outcome.RESOLVED
    assert ev["providerAmount"] + ev["requesterAmount"] + ev["fee"] == AMOUNT


def test_dispute_default_rule_after_arbitration_window(chain: Harness):
    esc, books = chain.escrow, Books(chain)
    fund_job(chain, books, "job_4")
    bind(chain, books, "job_4")
    submit(chain, books, "job_4")
    books.tx("requester", esc.dispute(chain.requester, "job_4"))
    chain.travel(ARBITRATION_WINDOW + 1)
    books.revert("ArbitrationWindowClosed", esc.resolve, chain.arbiter, "job_4", 0)
    books.tx("keeper", esc.finalize(chain.keeper, "job_4"))
    books.paid("provider", AMOUNT - fee_of(AMOUNT))  # default rule: the result stands
    books.check()
    assert esc.events("JobSettled")[0]["args"]["outcome"] == Outcome.DEFAULT_RULING


def test_cancel_before_binding(chain: Harness):
    esc, books = chain.escrow, Books(chain)
    fund_job(chain, books, "job_5")
    books.revert("NotRequester", esc.cancel, chain.mallory, "job_5")
    books.tx("requester", esc.cancel(chain.requester, "job_5"))
    books.paid("requester", AMOUNT)
    books.check()
    assert chain.balance(esc.address) == 0
    voucher = esc.sign_assignment(chain.node, "job_5", chain.provider.address, 1, chain.now() + 60)
    books.revert("WrongStatus", esc.bind, chain.mallory, voucher)
    # Once bound, the requester can no longer cancel.
    fund_job(chain, books, "job_6")
    bind(chain, books, "job_6")
    books.revert("WrongStatus", esc.cancel, chain.requester, "job_6")


def test_refund_after_deadline_without_result(chain: Harness):
    esc, books = chain.escrow, Books(chain)
    fund_job(chain, books, "job_7", deadline_in=1_000)
    bind(chain, books, "job_7")
    books.revert("DeadlineNotReached", esc.refund_expired, chain.keeper, "job_7")
    chain.travel(1_001)
    books.revert("DeadlinePassed", esc.submit, chain.provider, "job_7", RESULT)
    books.tx("keeper", esc.refund_expired(chain.keeper, "job_7"))
    books.paid("requester", AMOUNT)
    books.check()
    ev = esc.events("JobSettled")[0]["args"]
    assert ev["outcome"] == Outcome.EXPIRED and ev["requesterAmount"] == AMOUNT


def test_abandonment_and_rebinding(chain: Harness):
    esc, books = chain.escrow, Books(chain)
    fund_job(chain, books, "job_8")
    bind(chain, books, "job_8", "provider", attempt=1, via="voucher")
    books.revert("NotProvider", esc.abandon, chain.provider2, "job_8")
    books.tx("provider", esc.abandon(chain.provider, "job_8"))
    assert esc.get_job("job_8").status == Status.OPEN
    books.revert("WrongStatus", esc.submit, chain.provider, "job_8", RESULT)
    # A replayed voucher, or one with a stale attempt, cannot bind again.
    stale = esc.sign_assignment(chain.node, "job_8", chain.provider2.address, 1, chain.now() + 60)
    books.revert("StaleAttempt", esc.bind, chain.mallory, stale)
    forged = esc.sign_assignment(chain.mallory, "job_8", chain.mallory.address, 5, chain.now() + 60)
    books.revert("BadSignature", esc.bind, chain.mallory, forged)
    late = esc.sign_assignment(chain.node, "job_8", chain.provider2.address, 2, chain.now() - 1)
    books.revert("VoucherExpired", esc.bind, chain.mallory, late)
    bind(chain, books, "job_8", "provider2", attempt=2, via="voucher")
    # The node reaps provider2's lease and re-assigns with a higher attempt (fencing); its
    # own assignments are fenced the same way.
    books.revert("StaleAttempt", esc.assign, chain.node, "job_8", chain.provider.address, 2)
    bind(chain, books, "job_8", "provider", attempt=3)
    books.revert("NotProvider", esc.submit, chain.provider2, "job_8", RESULT)
    submit(chain, books, "job_8", "provider")
    books.tx("requester", esc.accept(chain.requester, "job_8"))
    books.paid("provider", AMOUNT - fee_of(AMOUNT))
    books.check()
    released = [e["args"]["provider"] for e in esc.events("ProviderReleased")]
    assert released == [chain.provider.address, chain.provider2.address]


def test_submit_with_voucher_and_batch_finalize(chain: Harness):
    esc, books = chain.escrow, Books(chain)
    jobs = [f"job_{n}" for n in range(20, 24)]
    for job in jobs:
        fund_job(chain, books, job)
        voucher = esc.sign_assignment(chain.node, job, chain.provider.address, 1, chain.now() + 60)
        books.revert("BadSignature", esc.submit_with_voucher, chain.provider2, voucher, RESULT)
        books.tx("provider", esc.submit_with_voucher(chain.provider, voucher, RESULT))
    books.tx("requester", esc.accept(chain.requester, jobs[0]))
    books.paid("provider", AMOUNT - fee_of(AMOUNT))
    chain.travel(WINDOW + 1)
    res = books.tx("keeper", esc.finalize_batch(chain.keeper, jobs))  # jobs[0] is skipped
    for _ in jobs[1:]:
        books.paid("provider", AMOUNT - fee_of(AMOUNT))
    books.check()
    assert all(esc.get_job(j).status == Status.NONE for j in jobs)
    assert len(esc.events("JobSettled", from_block=res.block_number)) == 3


def test_funding_call_matches_a_wallet_signed_transaction(chain: Harness):
    """What the funding gate serves is enough for a wallet to fund the job."""
    esc = chain.escrow
    call = esc.funding_call(
        "job_30",
        amount_wei=AMOUNT,
        deadline=chain.now() + 1000,
        challenge_window=WINDOW,
        dataset_cid="QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG",
    )
    assert call["chain_id"] == chain.w3.eth.chain_id and call["value"] == str(AMOUNT)
    w3, wallet = chain.w3, chain.requester2
    block = w3.eth.get_block("latest")
    tx = {
        "chainId": call["chain_id"],
        "to": call["to"],
        "data": call["data"],
        "value": int(call["value"]),
        "nonce": w3.eth.get_transaction_count(wallet.address),
        "gas": 150_000,
        "maxFeePerGas": 2 * block["baseFeePerGas"] + 10**9,
        "maxPriorityFeePerGas": 10**9,
    }
    tx_hash = w3.eth.send_raw_transaction(wallet.sign_transaction(tx).raw_transaction)
    assert w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)["status"] == 1
    rec = esc.get_job("job_30")
    assert (rec.requester, rec.amount) == (wallet.address, AMOUNT)
    assert esc.events("JobFunded")[0]["args"]["datasetDigest"] == esc.cid_digest(
        "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"
    )
