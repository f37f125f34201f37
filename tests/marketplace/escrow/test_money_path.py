"""The whole money path, on the in-process EVM and on a Hardhat node over HTTP.

Every actor's balance is checked to the wei after each scenario: what it funded, what it
was paid, and the gas of every transaction it sent (gasUsed * effectiveGasPrice).
"""

from __future__ import annotations

import pytest
from eth_utils import keccak

from marketplace.errors import ChainError
from marketplace.escrow import JobEscrow, Outcome, Status, TxResult

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


def fund_job(
    chain: Harness, books: Books, key: bytes, *, deadline_in: int = 86_400, who="requester"
) -> None:
    res = chain.escrow.fund(
        chain.actors[who],
        key,
        amount_wei=AMOUNT,
        deadline=chain.now() + deadline_in,
        challenge_window=WINDOW,
        dataset_digest=DIGEST,
    )
    books.tx(who, res, AMOUNT)


def bind(
    chain: Harness,
    books: Books,
    key: bytes,
    provider: str = "provider",
    attempt: int = 1,
    *,
    via: str = "assign",
):
    """Bind `provider` the way the node does (`assign`, its own transaction) or with a
    voucher the provider relays (`via="voucher"`)."""
    acct = chain.actors[provider]
    if via == "assign":
        books.tx("node", chain.escrow.assign(chain.node, key, acct.address, attempt))
        return
    books.tx(provider, chain.escrow.bind(acct, chain.voucher(key, provider, attempt)))


def submit(chain: Harness, books: Books, key: bytes, provider: str = "provider") -> None:
    books.tx(provider, chain.escrow.submit(chain.actors[provider], key, RESULT))


def settled(chain: Harness, key: bytes) -> list:
    return [e["args"] for e in chain.escrow.events("JobSettled") if e["args"]["jobKey"] == key]


def test_fund_bind_submit_accept(chain: Harness):
    esc, books = chain.escrow, Books(chain)
    key = chain.key("job_1")
    fund_job(chain, books, key)
    rec = esc.get_job(key)
    assert (rec.requester, rec.amount, rec.status) == (chain.requester.address, AMOUNT, Status.OPEN)
    books.revert("NotAssigner", esc.assign, chain.mallory, key, chain.mallory.address, 1)
    bind(chain, books, key)
    assert esc.get_job(key).provider == chain.provider.address
    submit(chain, books, key)
    books.revert("NotRequester", esc.accept, chain.mallory, key)
    books.tx("requester", esc.accept(chain.requester, key))
    books.paid("provider", AMOUNT - fee_of(AMOUNT))
    books.check()
    assert esc.owed(chain.fee.address) == fee_of(AMOUNT)
    assert esc.get_job(key) == esc.get_job(chain.key("job_999"))  # settled: record deleted
    # The fee is pulled to the fixed recipient by anyone; the escrow ends empty.
    books.tx("keeper", esc.withdraw(chain.keeper, chain.fee.address))
    books.paid("fee", fee_of(AMOUNT))
    books.check()
    assert chain.balance(esc.address) == 0
    books.revert("NothingOwed", esc.withdraw, chain.mallory, chain.fee.address)
    # Settled for good: nothing pays twice.
    books.revert("WrongStatus", esc.accept, chain.requester, key)
    books.revert("WrongStatus", esc.finalize, chain.mallory, key)
    [ev] = settled(chain, key)
    assert (ev["requester"], ev["provider"]) == (chain.requester.address, chain.provider.address)
    assert ev["outcome"] == Outcome.ACCEPTED
    assert ev["providerAmount"] + ev["fee"] == AMOUNT and ev["requesterAmount"] == 0
    funded = esc.events("JobFunded")[0]["args"]
    assert funded["amount"] == AMOUNT and funded["datasetDigest"] == DIGEST
    assert esc.events("ResultSubmitted")[0]["args"]["resultDigest"] == RESULT
    # A new funding of the key is a new escrow, from attempt 0: it pays nobody from the
    # old one and its funder can take it back.
    res = esc.fund(
        chain.requester, key, amount_wei=5, deadline=chain.now() + 100, challenge_window=10
    )
    books.tx("requester", res, 5)
    assert esc.get_job(key).attempt == 0
    books.revert("WrongStatus", esc.submit, chain.provider, key, RESULT)
    books.tx("requester", esc.cancel(chain.requester, key))
    books.paid("requester", 5)
    books.check()


def test_nobody_can_fund_a_key_that_names_another_requester(chain: Harness):
    """Finding 4/5: a stranger cannot squat a job's key, this job's or a future one's:
    the key names its requester, and only that requester may fund it."""
    esc, books = chain.escrow, Books(chain)
    for job in ("job_40", "job_41", "job_9999"):  # a live job and future ones
        books.revert(
            "NotRequester",
            esc.fund,
            chain.mallory,
            chain.key(job),
            amount_wei=1,
            deadline=chain.now() + 10**6,
            challenge_window=60,
        )
    books.check()
    fund_job(chain, books, chain.key("job_40"))  # the real requester is never blocked
    # the stranger's own key for the same job number is its own money, not the job's
    mallory_key = chain.key("job_40", "mallory")
    books.tx(
        "mallory",
        esc.fund(
            chain.mallory, mallory_key, amount_wei=7, deadline=chain.now() + 99, challenge_window=9
        ),
        7,
    )
    assert esc.get_job(chain.key("job_40")).requester == chain.requester.address
    assert esc.get_job(mallory_key).requester == chain.mallory.address
    books.check()


def test_assigner_refunds_an_open_deposit_to_its_requester_only(chain: Harness):
    esc, books = chain.escrow, Books(chain)
    key = chain.key("job_42")
    fund_job(chain, books, key)
    books.revert("NotAssigner", esc.refund, chain.requester, key)
    books.revert("NotAssigner", esc.refund, chain.arbiter, key)
    books.tx("node", esc.refund(chain.node, key))
    books.paid("requester", AMOUNT)
    books.check()
    [ev] = settled(chain, key)
    assert ev["outcome"] == Outcome.REFUNDED and ev["requesterAmount"] == AMOUNT
    # a bound deposit is refunded only after the node released the binding
    fund_job(chain, books, key)
    bind(chain, books, key)
    books.revert("WrongStatus", esc.refund, chain.node, key)
    books.revert("StaleAttempt", esc.unassign, chain.node, key, 2)  # not this lease
    books.revert("NotAssigner", esc.unassign, chain.provider, key, 1)
    books.tx("node", esc.unassign(chain.node, key, 1))
    assert esc.get_job(key).status == Status.OPEN
    books.revert("WrongStatus", esc.submit, chain.provider, key, RESULT)  # fenced
    books.tx("node", esc.refund(chain.node, key))
    books.paid("requester", AMOUNT)
    books.check()


def test_assigner_cannot_bind_itself_the_arbiter_or_the_requester(chain: Harness):
    """Finding 2: the operator key cannot route a deposit to an address of its own."""
    esc, books = chain.escrow, Books(chain)
    key = chain.key("job_43")
    fund_job(chain, books, key)
    zero = "0x" + "00" * 20
    for who in (chain.node.address, chain.arbiter.address, chain.requester.address, zero):
        books.revert("ForbiddenProvider", esc.assign, chain.node, key, who, 1)
    # nor with a voucher it signs
    voucher = esc.sign_assignment(
        chain.node, key, chain.node.address, 1, esc.get_job(key).funding, chain.now() + 60
    )
    books.revert("ForbiddenProvider", esc.bind, chain.node, voucher)
    books.check()


def test_assigner_cannot_rebind_a_bound_job_only_unassign_it(chain: Harness):
    """Finding 2/6: a job someone works on is taken away only by ending that lease."""
    esc, books = chain.escrow, Books(chain)
    key = chain.key("job_44")
    fund_job(chain, books, key)
    bind(chain, books, key, "provider", 1)
    books.revert("WrongStatus", esc.assign, chain.node, key, chain.provider2.address, 2)
    books.revert("WrongStatus", esc.bind, chain.provider2, chain.voucher(key, "provider2", 2))
    books.tx("node", esc.unassign(chain.node, key, 1))
    books.revert("StaleAttempt", esc.assign, chain.node, key, chain.provider.address, 1)
    bind(chain, books, key, "provider2", 2)
    submit(chain, books, key, "provider2")
    books.check()
    released = [e["args"] for e in esc.events("ProviderReleased")]
    assert [(r["provider"], r["attempt"]) for r in released] == [(chain.provider.address, 1)]


def test_binding_the_bound_provider_again_is_a_no_op(chain: Harness):
    """Finding 11: the provider's submitWithVoucher racing the node's own assign for the
    same lease succeeds whichever lands first."""
    esc, books = chain.escrow, Books(chain)
    key = chain.key("job_45")
    fund_job(chain, books, key)
    voucher = chain.voucher(key, "provider", 1)
    bind(chain, books, key, "provider", 1)  # the node's assign lands first
    bind(chain, books, key, "provider", 1)  # sent twice (outbox retry): no-op
    books.tx("provider", esc.bind(chain.provider, voucher))  # relayed voucher: no-op
    books.tx("provider", esc.submit_with_voucher(chain.provider, voucher, RESULT))
    assert esc.get_job(key).status == Status.SUBMITTED
    assert len([e for e in esc.events("ProviderBound") if e["args"]["jobKey"] == key]) == 1
    books.revert("WrongStatus", esc.assign, chain.node, key, chain.provider.address, 1)
    books.check()


def test_an_old_voucher_cannot_bind_a_new_deposit_on_the_same_key(chain: Harness):
    """Finding 3: settlement resets the attempt counter, but a voucher names the deposit
    it was signed for (its funding tag)."""
    esc, books = chain.escrow, Books(chain)
    key = chain.key("job_46")
    fund_job(chain, books, key)
    old = chain.voucher(key, "provider2", 1)
    bind(chain, books, key, "provider2", 1, via="voucher")
    books.tx("provider2", esc.abandon(chain.provider2, key))
    books.tx("requester", esc.cancel(chain.requester, key))
    books.paid("requester", AMOUNT)
    chain.travel(5)
    fund_job(chain, books, key)  # the requester funds the same key again
    assert esc.get_job(key).funding != old.funding
    books.revert("WrongFunding", esc.submit_with_voucher, chain.provider2, old, RESULT)
    books.revert("WrongFunding", esc.bind, chain.mallory, old)
    bind(chain, books, key, "provider", 2)  # the node's next lease is not blocked
    submit(chain, books, key)
    books.check()
    # and a voucher for another generation's key is just another key: nothing there
    other = chain.key("job_46", generation=1)
    forged_over = esc.sign_assignment(
        chain.node, other, chain.provider2.address, 1, old.funding, chain.now() + 60
    )
    books.revert("WrongStatus", esc.bind, chain.provider2, forged_over)


def test_finalize_after_challenge_window(chain: Harness):
    esc, books = chain.escrow, Books(chain)
    key = chain.key("job_2")
    fund_job(chain, books, key)
    bind(chain, books, key)
    submit(chain, books, key)
    books.revert("ChallengeWindowOpen", esc.finalize, chain.mallory, key)
    chain.travel(WINDOW + 1)
    books.revert("ChallengeWindowClosed", esc.dispute, chain.requester, key)
    books.tx("keeper", esc.finalize(chain.keeper, key))
    books.paid("provider", AMOUNT - fee_of(AMOUNT))
    books.check()
    assert settled(chain, key)[0]["outcome"] == Outcome.FINALIZED


def test_dispute_resolved_by_arbiter(chain: Harness):
    esc, books = chain.escrow, Books(chain)
    key = chain.key("job_3")
    fund_job(chain, books, key)
    bind(chain, books, key)
    submit(chain, books, key)
    books.revert("NotRequester", esc.dispute, chain.provider, key)
    books.revert("NotRequester", esc.dispute, chain.arbiter, key)
    books.tx("requester", esc.dispute(chain.requester, key))
    books.revert("ArbitrationWindowOpen", esc.finalize, chain.keeper, key)
    books.revert("NotArbiter", esc.resolve, chain.requester, key, 0)
    books.revert("NotArbiter", esc.resolve, chain.node, key, 10_000)
    books.revert("BadShare", esc.resolve, chain.arbiter, key, 10_001)
    books.tx("arbiter", esc.resolve(chain.arbiter, key, 7_000))
    share = AMOUNT * 7_000 // 10_000
    books.paid("provider", share - fee_of(share))
    books.paid("requester", AMOUNT - share)
    books.check()
    assert esc.owed(chain.fee.address) == fee_of(share)
    [ev] = settled(chain, key)
    assert ev["outcome"] == Outcome.RESOLVED
    assert ev["providerAmount"] + ev["requesterAmount"] + ev["fee"] == AMOUNT


def test_arbiter_silence_refunds_the_requester_in_full(chain: Harness):
    """Finding 1 (a deliberate change of the default rule): an unresolved dispute never
    pays the provider; after the arbitration window `finalize` refunds the requester."""
    esc, books = chain.escrow, Books(chain)
    key = chain.key("job_4")
    fund_job(chain, books, key)
    bind(chain, books, key)
    submit(chain, books, key)
    books.tx("requester", esc.dispute(chain.requester, key))
    chain.travel(ARBITRATION_WINDOW + 1)
    books.revert("ArbitrationWindowClosed", esc.resolve, chain.arbiter, key, 10_000)
    books.tx("provider", esc.finalize(chain.provider, key))  # even the provider's own call
    books.paid("requester", AMOUNT)
    books.check()
    [ev] = settled(chain, key)
    assert ev["outcome"] == Outcome.DEFAULT_RULING
    assert (ev["providerAmount"], ev["requesterAmount"], ev["fee"]) == (0, AMOUNT, 0)


def test_assigner_disputes_to_freeze_the_money_for_the_arbiter(chain: Harness):
    """The node disputes a result its check refused: nothing moves; the arbiter rules (or
    its silence refunds), and the requester may still accept."""
    esc, books = chain.escrow, Books(chain)
    frozen, accepted = chain.key("job_47"), chain.key("job_48")
    for key in (frozen, accepted):
        fund_job(chain, books, key)
        bind(chain, books, key)
        submit(chain, books, key)
        books.tx("node", esc.dispute(chain.node, key))
        assert esc.get_job(key).status == Status.DISPUTED
    books.revert("WrongStatus", esc.dispute, chain.requester, frozen)
    disputes = [e["args"] for e in esc.events("JobDisputed")]
    assert [d["by"] for d in disputes] == [chain.node.address] * 2
    books.revert("NotRequester", esc.accept, chain.node, accepted)
    books.tx("requester", esc.accept(chain.requester, accepted))
    books.paid("provider", AMOUNT - fee_of(AMOUNT))
    books.tx("arbiter", esc.resolve(chain.arbiter, frozen, 10_000))
    books.paid("provider", AMOUNT - fee_of(AMOUNT))
    books.check()


def test_constructor_refuses_an_arbiter_that_is_the_assigner_and_short_windows(chain: Harness):
    """Finding 1/12: the arbiter is not the node; arbitration lasts at least an hour."""
    deployer, node, arbiter = chain.deployer, chain.node.address, chain.arbiter.address
    for arbiter_, window in ((node, 3600), (arbiter, 3599), (arbiter, 1), (arbiter, 91 * 86_400)):
        with pytest.raises(ChainError) as info:
            JobEscrow.deploy(
                chain.w3, deployer, arbiter=arbiter_, assigner=node, arbitration_window=window
            )
        assert info.value.error_name == "InvalidConfig", info.value.message
    ok = JobEscrow.deploy(
        chain.w3, deployer, arbiter=arbiter, assigner=node, arbitration_window=3600
    )
    assert (ok.arbiter(), ok.assigner(), ok.arbitration_window()) == (arbiter, node, 3600)


def test_cancel_before_binding(chain: Harness):
    esc, books = chain.escrow, Books(chain)
    key = chain.key("job_5")
    fund_job(chain, books, key)
    books.revert("NotRequester", esc.cancel, chain.mallory, key)
    books.revert("NotRequester", esc.cancel, chain.node, key)
    books.tx("requester", esc.cancel(chain.requester, key))
    books.paid("requester", AMOUNT)
    books.check()
    assert chain.balance(esc.address) == 0
    voucher = esc.sign_assignment(chain.node, key, chain.provider.address, 1, 0, chain.now() + 60)
    books.revert("WrongStatus", esc.bind, chain.mallory, voucher)
    # Once bound, the requester can no longer cancel.
    key6 = chain.key("job_6")
    fund_job(chain, books, key6)
    bind(chain, books, key6)
    books.revert("WrongStatus", esc.cancel, chain.requester, key6)


def test_refund_after_deadline_without_result(chain: Harness):
    esc, books = chain.escrow, Books(chain)
    key = chain.key("job_7")
    fund_job(chain, books, key, deadline_in=1_000)
    bind(chain, books, key)
    books.revert("DeadlineNotReached", esc.refund_expired, chain.keeper, key)
    chain.travel(1_001)
    books.revert("DeadlinePassed", esc.submit, chain.provider, key, RESULT)
    books.tx("keeper", esc.refund_expired(chain.keeper, key))
    books.paid("requester", AMOUNT)
    books.check()
    [ev] = settled(chain, key)
    assert ev["outcome"] == Outcome.EXPIRED and ev["requesterAmount"] == AMOUNT


def test_abandonment_and_rebinding(chain: Harness):
    esc, books = chain.escrow, Books(chain)
    key = chain.key("job_8")
    fund_job(chain, books, key)
    bind(chain, books, key, "provider", attempt=1, via="voucher")
    books.revert("NotProvider", esc.abandon, chain.provider2, key)
    books.tx("provider", esc.abandon(chain.provider, key))
    assert esc.get_job(key).status == Status.OPEN
    books.revert("WrongStatus", esc.submit, chain.provider, key, RESULT)
    # A replayed voucher, or one with a stale attempt, cannot bind again.
    stale = chain.voucher(key, "provider2", 1, expiry_in=60)
    books.revert("StaleAttempt", esc.bind, chain.mallory, stale)
    forged = chain.voucher(key, "mallory", 5, expiry_in=60, signer=chain.mallory)
    books.revert("BadSignature", esc.bind, chain.mallory, forged)
    late = chain.voucher(key, "provider2", 2, expiry_in=-1)
    books.revert("VoucherExpired", esc.bind, chain.mallory, late)
    bind(chain, books, key, "provider2", attempt=2, via="voucher")
    # The node reaps provider2's lease: it releases the binding at that lease's attempt,
    # then assigns the next lease with a higher attempt (fencing).
    books.tx("node", esc.unassign(chain.node, key, 2))
    books.revert("StaleAttempt", esc.assign, chain.node, key, chain.provider.address, 2)
    bind(chain, books, key, "provider", attempt=3)
    books.revert("NotProvider", esc.submit, chain.provider2, key, RESULT)
    submit(chain, books, key, "provider")
    books.tx("requester", esc.accept(chain.requester, key))
    books.paid("provider", AMOUNT - fee_of(AMOUNT))
    books.check()
    released = [e["args"]["provider"] for e in esc.events("ProviderReleased")]
    assert released == [chain.provider.address, chain.provider2.address]


def test_submit_with_voucher_and_batch_finalize(chain: Harness):
    esc, books = chain.escrow, Books(chain)
    keys = [chain.key(f"job_{n}") for n in range(20, 24)]
    for key in keys:
        fund_job(chain, books, key)
        voucher = chain.voucher(key, "provider", 1, expiry_in=60)
        books.revert("BadSignature", esc.submit_with_voucher, chain.provider2, voucher, RESULT)
        books.tx("provider", esc.submit_with_voucher(chain.provider, voucher, RESULT))
    books.tx("requester", esc.accept(chain.requester, keys[0]))
    books.paid("provider", AMOUNT - fee_of(AMOUNT))
    books.tx("requester", esc.dispute(chain.requester, keys[1]))
    chain.travel(WINDOW + 1)
    res = books.tx("keeper", esc.finalize_batch(chain.keeper, keys))  # 0 settled, 1 disputed
    for _ in keys[2:]:
        books.paid("provider", AMOUNT - fee_of(AMOUNT))
    books.check()
    assert esc.get_job(keys[1]).status == Status.DISPUTED
    chain.travel(ARBITRATION_WINDOW)
    books.tx("keeper", esc.finalize_batch(chain.keeper, keys))  # the default ruling refunds
    books.paid("requester", AMOUNT)
    books.check()
    assert all(esc.get_job(k).status == Status.NONE for k in keys)
    assert len(esc.events("JobSettled", from_block=res.block_number)) == 3


def _wallet_key(chain: Harness, wallet: str, job: str) -> bytes:
    return JobEscrow.job_key(job, wallet)


def _fund_from_wallet(chain: Harness, wallet: str, key: bytes, amount: int) -> None:
    data = chain.escrow.contract.encode_abi(
        "fund", args=[key, DIGEST, chain.now() + 10_000, WINDOW]
    )
    receipt = chain.wallet_call(wallet, "exec", chain.escrow.address, amount, data, value=amount)
    assert receipt["status"] == 1


def test_a_refund_cannot_be_reentered_to_fund_the_key_again(chain: Harness):
    """Finding 4: a requester contract re-funding its key from inside the node's refund is
    refused (`fund` cannot be entered from a payment); the refund waits in `owed` and the
    node's one refund ends it."""
    esc = chain.escrow
    wallet = chain.deploy_wallet()
    key = _wallet_key(chain, wallet, "job_50")
    _fund_from_wallet(chain, wallet, key, 10**15)
    refund_again = esc.contract.encode_abi("fund", args=[key, DIGEST, chain.now() + 9_000, WINDOW])
    chain.wallet_call(wallet, "configure", False, esc.address, 10**15, refund_again)
    before = chain.balance(wallet)
    res = esc.refund(chain.node, key)
    assert esc.get_job(key).status == Status.NONE  # not funded again from inside
    assert esc.owed(wallet) == 10**15 and chain.balance(wallet) == before
    topic = keccak(b"PaymentDeferred(bytes32,address,uint256)")
    deferred = [log for log in res.logs if bytes(log["topics"][0]) == topic]
    assert len(deferred) == 1 and bytes(deferred[0]["topics"][1]) == key  # names the job
    # without the guard the 50k gas of the push would re-fund the key; with it, the wallet
    # takes its ether back with a plain withdraw
    chain.wallet_call(wallet, "configure", False, "0x" + "00" * 20, 0, b"")
    chain.wallet_call(
        wallet, "exec", esc.address, 0, esc.contract.encode_abi("withdraw", args=[wallet])
    )
    assert esc.owed(wallet) == 0 and chain.balance(wallet) == before + 10**15


def test_withdraw_to_rescues_ether_owed_to_a_contract_that_refuses_it(chain: Harness):
    """Finding 10: a requester contract without a way to receive ether names another
    recipient for what it is owed."""
    esc = chain.escrow
    wallet = chain.deploy_wallet()
    key = _wallet_key(chain, wallet, "job_51")
    _fund_from_wallet(chain, wallet, key, 10**15)
    chain.wallet_call(wallet, "configure", True, "0x" + "00" * 20, 0, b"")  # refuse ether
    esc.refund(chain.node, key)
    assert esc.owed(wallet) == 10**15
    with pytest.raises(ChainError) as info:
        esc.withdraw(chain.keeper, wallet)
    assert info.value.error_name == "TransferFailed"
    rescue = chain.keeper.address
    before = chain.balance(rescue)
    data = esc.contract.encode_abi("withdrawTo", args=[rescue])
    chain.wallet_call(wallet, "exec", esc.address, 0, data)
    assert esc.owed(wallet) == 0 and chain.balance(rescue) == before + 10**15
    [ev] = [e["args"] for e in esc.events("Withdrawn")]
    assert (ev["account"], ev["to"], ev["amount"]) == (wallet, rescue, 10**15)


def test_funding_call_matches_a_wallet_signed_transaction(chain: Harness):
    """What the funding gate serves is enough for a wallet to fund the job."""
    esc = chain.escrow
    key = chain.key("job_30", "requester2")
    call = esc.funding_call(
        key,
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
    rec = esc.get_job(key)
    assert (rec.requester, rec.amount) == (wallet.address, AMOUNT)
    assert esc.events("JobFunded")[0]["args"]["datasetDigest"] == esc.cid_digest(
        "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"
    )
