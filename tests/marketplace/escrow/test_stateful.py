"""Stateful property test of the escrow on the in-process EVM.

Hypothesis drives random sequences of every operation (fund, assign, bind,
submitWithVoucher, abandon, submit, accept, dispute, resolve, finalize, finalizeBatch,
cancel, refundExpired, reject, withdraw) by every actor, across several jobs, with time
travel. A Python model mirrors the contract's rules, including the order of its checks, so
every call must either succeed when the model allows it or revert with exactly the custom
error the model predicts (which covers "unauthorised calls revert"). After every step:
  - the contract's balance equals the unsettled escrow plus what is owed (fees, deferred);
  - every actor's balance equals its start balance minus its gas minus what it funded plus
    what it was paid, to the wei;
  - every settling transaction emits exactly one JobSettled for its job, and each funding
    is settled at most once (nobody is paid twice).
At teardown every job is settled and every debt withdrawn: the contract holds 0 wei and all
funded wei sit with requesters, providers or the fee recipient.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import pytest
from eth_utils import keccak
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from marketplace.errors import ChainError
from marketplace.escrow import JobEscrow

from .harness import ARBITRATION_WINDOW, FEE_BPS, Harness, in_process

NONE, OPEN, BOUND, SUBMITTED, DISPUTED = range(5)
JOBS = ("job_1", "job_2", "job_3", "job_4")
REQUESTERS = ("requester", "requester2")
PROVIDERS = ("provider", "provider2")
CALLERS = ("requester", "requester2", "provider", "provider2", "arbiter", "keeper")
# "right" resolves to the party entitled to act (the job's requester or provider), so that
# deep paths are reached often; any other name is tried as is (usually unauthorised).
REQUESTER_SIDE = st.sampled_from(("right", "right", "right", *CALLERS))
PROVIDER_SIDE = st.sampled_from(("right", "right", "right", *CALLERS))


@dataclass
class Job:
    status: int = NONE
    requester: str | None = None
    amount: int = 0
    provider: str | None = None
    phase_end: int = 0
    window: int = 0
    attempt: int = 0


_CHAIN: dict[str, object] = {}
SETTLED_TOPIC = keccak(b"JobSettled(bytes32,address,address,uint8,uint256,uint256,uint256)")


def shared_chain() -> tuple[Harness, object]:
    """One deployed chain per session; each example starts from its snapshot."""
    if "harness" not in _CHAIN:
        harness = in_process()
        harness.deploy()
        _CHAIN["harness"] = harness
        _CHAIN["snapshot"] = harness.tester.take_snapshot()
    return _CHAIN["harness"], _CHAIN["snapshot"]  # type: ignore[return-value]


class EscrowMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.chain, snapshot = shared_chain()
        self.chain.tester.revert_to_snapshot(snapshot)
        self.esc = JobEscrow(self.chain.w3, self.chain.escrow.address)  # fresh nonce cache
        self.jobs = {job: Job() for job in JOBS}
        self.expected = {n: self.chain.balance(a) for n, a in self.chain.actors.items()}
        self.owed: dict[str, int] = {}
        self.settled: Counter[str] = Counter()  # settlements per job (one per funding)

    # ------------------------------------------------------------ plumbing

    def addr(self, name: str) -> str:
        return self.chain.actors[name].address

    def do(self, who: str, call, predict):
        """Run `call(account)`; `predict(ts)` gives the expected error name (None: success)
        at the timestamp of the block that included the transaction."""
        account = self.chain.actors[who]
        try:
            result = call(account)
        except ChainError as err:
            ts = self.chain.now()
            assert err.details and "fee_wei" in err.details, err.message
            self.expected[who] -= err.details["fee_wei"]
            assert err.error_name == predict(ts), err.message
            return None, ts
        ts = self.chain.now()
        self.expected[who] -= result.fee_wei
        assert predict(ts) is None, f"succeeded but the model expected {predict(ts)}"
        self.last = result
        return result, ts

    def pay(self, who: str | None, amount: int) -> None:
        assert who is not None
        self.expected[who] += amount

    def credit_fee(self, fee: int) -> None:
        if fee:
            self.owed["fee"] = self.owed.get("fee", 0) + fee

    def settle(self, job: str) -> None:
        """Settlement deletes the record: the key may be funded again, from attempt 0."""
        self.jobs[job] = Job()
        self.settled[job] += 1
        # The settling transaction carries exactly one JobSettled for this job.
        key = self.esc.job_key(job)
        settled = [
            log
            for log in self.last.logs
            if bytes(log["topics"][0]) == SETTLED_TOPIC and bytes(log["topics"][1]) == key
        ]
        assert len(settled) == 1

    def pay_provider(self, job: str) -> None:
        j = self.jobs[job]
        fee = j.amount * FEE_BPS // 10_000
        self.pay(j.provider, j.amount - fee)
        self.credit_fee(fee)
        self.settle(job)

    # ------------------------------------------------------------ rules

    @initialize(
        plans=st.lists(
            st.tuples(
                st.sampled_from(REQUESTERS),
                st.sampled_from([1, 999, 10**18 + 7, 3 * 10**17 + 11]),
                st.sampled_from([900, 4000, 4000]),
                st.sampled_from([60, 300]),
            ),
            min_size=len(JOBS) - 1,
            max_size=len(JOBS) - 1,
        )
    )
    def fund_most_jobs(self, plans):
        """Most jobs start funded (the last one is left to the `fund` rule)."""
        for job, (who, amount, deadline_in, window) in zip(JOBS, plans, strict=False):
            self.fund(job, who, amount, deadline_in, window)

    @rule(
        job=st.sampled_from(JOBS),
        who=st.sampled_from(REQUESTERS),
        amount=st.sampled_from([1, 999, 10**18 + 7, 3 * 10**17 + 11, 0]),
        deadline_in=st.sampled_from([900, 4000, 4000, 120, 0]),
        window=st.sampled_from([60, 300, 300, 0]),
    )
    def fund(self, job, who, amount, deadline_in, window):
        j = self.jobs[job]
        deadline = self.chain.now() + deadline_in

        def predict(ts):
            if amount == 0:
                return "ZeroAmount"
            if deadline <= ts:
                return "BadDeadline"
            if window == 0:
                return "BadChallengeWindow"
            if j.status != NONE:
                return "JobExists"
            return None

        res, ts = self.do(
            who,
            lambda a: self.esc.fund(
                a, job, amount_wei=amount, deadline=deadline, challenge_window=window
            ),
            predict,
        )
        if res:
            self.expected[who] -= amount
            self.jobs[job] = Job(OPEN, who, amount, None, deadline, window, 0)

    def _bind_predict(self, j: Job, provider: str, attempt: int, expiry: int):
        def predict(ts):
            if j.status not in (OPEN, BOUND):
                return "WrongStatus"
            if ts >= j.phase_end:
                return "DeadlinePassed"
            if ts > expiry:
                return "VoucherExpired"
            if attempt <= j.attempt:
                return "StaleAttempt"
            return None

        return predict

    @rule(
        job=st.sampled_from(JOBS),
        provider=st.sampled_from(PROVIDERS),
        delta=st.sampled_from([1, 1, 2, 0]),
        who=st.sampled_from(["node", "node", "node", "requester", "provider"]),
    )
    def assign(self, job, provider, delta, who):
        """The assigner's own transaction; anyone else is refused before any other check."""
        j = self.jobs[job]
        attempt = j.attempt + delta
        inner = self._bind_predict(j, provider, attempt, 2**256 - 1)
        res, _ = self.do(
            who,
            lambda a: self.esc.assign(a, job, self.addr(provider), attempt),
            lambda ts: "NotAssigner" if who != "node" else inner(ts),
        )
        if res:
            j.provider, j.attempt, j.status = provider, attempt, BOUND

    @rule(
        job=st.sampled_from(JOBS),
        provider=st.sampled_from(PROVIDERS),
        delta=st.sampled_from([1, 1, 2, 0]),
        sender=st.sampled_from(CALLERS),
        expiry_in=st.sampled_from([100, 100, 100, -5]),
    )
    def bind(self, job, provider, delta, sender, expiry_in):
        j = self.jobs[job]
        attempt, expiry = j.attempt + delta, self.chain.now() + expiry_in
        voucher = self.esc.sign_assignment(
            self.chain.node, job, self.addr(provider), attempt, expiry
        )
        res, _ = self.do(
            sender,
            lambda a: self.esc.bind(a, voucher),
            self._bind_predict(j, provider, attempt, expiry),
        )
        if res:
            j.provider, j.attempt, j.status = provider, attempt, BOUND

    @rule(
        job=st.sampled_from(JOBS),
        provider=st.sampled_from(PROVIDERS),
        delta=st.sampled_from([0, 1]),
    )
    def submit_with_voucher(self, job, provider, delta):
        j = self.jobs[job]
        attempt, expiry = j.attempt + delta, self.chain.now() + 100
        voucher = self.esc.sign_assignment(
            self.chain.node, job, self.addr(provider), attempt, expiry
        )
        res, ts = self.do(
            provider,
            lambda a: self.esc.submit_with_voucher(a, voucher, b"\x01" * 32),
            self._bind_predict(j, provider, attempt, expiry),
        )
        if res:
            j.provider, j.attempt, j.status = provider, attempt, SUBMITTED
            j.phase_end = ts + j.window

    @rule(job=st.sampled_from(JOBS), who=st.sampled_from(CALLERS))
    def bad_voucher(self, job, who):
        """A voucher not signed by the assigner never binds."""
        j = self.jobs[job]
        attempt, expiry = j.attempt + 1, self.chain.now() + 100
        voucher = self.esc.sign_assignment(
            self.chain.actors[who], job, self.addr(who), attempt, expiry
        )
        inner = self._bind_predict(j, who, attempt, expiry)
        self.do(who, lambda a: self.esc.bind(a, voucher), lambda ts: inner(ts) or "BadSignature")

    @rule(job=st.sampled_from(JOBS), who=PROVIDER_SIDE)
    def abandon(self, job, who):
        j = self.jobs[job]
        if who == "right":
            who = j.provider or "keeper"

        def predict(ts):
            if j.status != BOUND:
                return "WrongStatus"
            return None if who == j.provider else "NotProvider"

        if self.do(who, lambda a: self.esc.abandon(a, job), predict)[0]:
            j.provider, j.status = None, OPEN

    @rule(job=st.sampled_from(JOBS), who=PROVIDER_SIDE)
    def submit(self, job, who):
        j = self.jobs[job]
        if who == "right":
            who = j.provider or "keeper"

        def predict(ts):
            if j.status != BOUND:
                return "WrongStatus"
            if who != j.provider:
                return "NotProvider"
            return "DeadlinePassed" if ts >= j.phase_end else None

        res, ts = self.do(who, lambda a: self.esc.submit(a, job, b"\x02" * 32), predict)
        if res:
            j.status, j.phase_end = SUBMITTED, ts + j.window

    @rule(job=st.sampled_from(JOBS), who=REQUESTER_SIDE)
    def accept(self, job, who):
        j = self.jobs[job]
        if who == "right":
            who = j.requester or "keeper"

        def predict(ts):
            if j.status != SUBMITTED:
                return "WrongStatus"
            return None if who == j.requester else "NotRequester"

        if self.do(who, lambda a: self.esc.accept(a, job), predict)[0]:
            self.pay_provider(job)

    @rule(job=st.sampled_from(JOBS), who=REQUESTER_SIDE)
    def dispute(self, job, who):
        j = self.jobs[job]
        if who == "right":
            who = j.requester or "keeper"

        def predict(ts):
            if j.status != SUBMITTED:
                return "WrongStatus"
            if who != j.requester:
                return "NotRequester"
            return "ChallengeWindowClosed" if ts >= j.phase_end else None

        res, ts = self.do(who, lambda a: self.esc.dispute(a, job), predict)
        if res:
            j.status, j.phase_end = DISPUTED, ts + ARBITRATION_WINDOW

    @rule(
        job=st.sampled_from(JOBS),
        who=st.sampled_from(["arbiter", "arbiter", "requester", "provider"]),
        share=st.sampled_from([0, 3333, 10_000, 10_001]),
    )
    def resolve(self, job, who, share):
        j = self.jobs[job]

        def predict(ts):
            if who != "arbiter":
                return "NotArbiter"
            if j.status != DISPUTED:
                return "WrongStatus"
            if ts >= j.phase_end:
                return "ArbitrationWindowClosed"
            return "BadShare" if share > 10_000 else None

        if self.do(who, lambda a: self.esc.resolve(a, job, share), predict)[0]:
            part = j.amount * share // 10_000
            fee = part * FEE_BPS // 10_000
            if part - fee:
                self.pay(j.provider, part - fee)
            if j.amount - part:
                self.pay(j.requester, j.amount - part)
            self.credit_fee(fee)
            self.settle(job)

    @rule(job=st.sampled_from(JOBS), who=st.sampled_from(CALLERS))
    def finalize(self, job, who):
        j = self.jobs[job]

        def predict(ts):
            if j.status == SUBMITTED:
                return "ChallengeWindowOpen" if ts < j.phase_end else None
            if j.status == DISPUTED:
                return "ArbitrationWindowOpen" if ts < j.phase_end else None
            return "WrongStatus"

        if self.do(who, lambda a: self.esc.finalize(a, job), predict)[0]:
            self.pay_provider(job)

    @rule(jobs=st.lists(st.sampled_from(JOBS), min_size=1, max_size=4, unique=True))
    def finalize_batch(self, jobs):
        res, ts = self.do("keeper", lambda a: self.esc.finalize_batch(a, jobs), lambda ts: None)
        for job in jobs:
            j = self.jobs[job]
            if j.status in (SUBMITTED, DISPUTED) and ts >= j.phase_end:
                self.pay_provider(job)

    @rule(job=st.sampled_from(JOBS), who=REQUESTER_SIDE)
    def cancel(self, job, who):
        j = self.jobs[job]
        if who == "right":
            who = j.requester or "keeper"

        def predict(ts):
            if j.status != OPEN:
                return "WrongStatus"
            return None if who == j.requester else "NotRequester"

        if self.do(who, lambda a: self.esc.cancel(a, job), predict)[0]:
            self.pay(j.requester, j.amount)
            self.settle(job)

    @rule(job=st.sampled_from(JOBS), who=st.sampled_from(CALLERS))
    def refund_expired(self, job, who):
        j = self.jobs[job]

        def predict(ts):
            if j.status not in (OPEN, BOUND):
                return "WrongStatus"
            return "DeadlineNotReached" if ts < j.phase_end else None

        if self.do(who, lambda a: self.esc.refund_expired(a, job), predict)[0]:
            self.pay(j.requester, j.amount)
            self.settle(job)

    @rule(job=st.sampled_from(JOBS), who=st.sampled_from(["node", "node", "requester"]))
    def reject(self, job, who):
        j = self.jobs[job]

        def predict(ts):
            if who != "node":
                return "NotAssigner"
            if j.status != OPEN:
                return "WrongStatus"
            return "AlreadyAssigned" if j.attempt else None

        if self.do(who, lambda a: self.esc.reject(a, job), predict)[0]:
            self.pay(j.requester, j.amount)
            self.settle(job)

    @rule(account=st.sampled_from(["fee", "provider", "requester"]), who=st.sampled_from(CALLERS))
    def withdraw(self, account, who):
        owed = self.owed.get(account, 0)
        predict = lambda ts: None if owed else "NothingOwed"  # noqa: E731
        if self.do(who, lambda a: self.esc.withdraw(a, self.addr(account)), predict)[0]:
            self.pay(account, owed)
            self.owed[account] = 0

    @rule(
        moves=st.lists(
            st.tuples(
                st.sampled_from(PROVIDERS), st.integers(0, 2), st.sampled_from([0, 3333, 10_000])
            ),
            min_size=len(JOBS),
            max_size=len(JOBS),
        )
    )
    def advance(self, moves):
        """Take every job one step down a legitimate path (the other rules add the noise)."""
        for job, (provider, choice, share) in zip(JOBS, moves, strict=True):
            j = self.jobs[job]
            if j.status == NONE:
                self.fund(job, REQUESTERS[choice % 2], 10**18 + 7, 4000, 300)
            elif j.status == OPEN and choice == 0:
                self.submit_with_voucher(job, provider, 1)
            elif j.status == OPEN and choice == 1:
                self.bind(job, provider, 1, provider, 100)
            elif j.status == OPEN:
                self.assign(job, provider, 1, "node")
            elif j.status == BOUND:
                self.submit(job, "right") if choice else self.abandon(job, "right")
            elif j.status == SUBMITTED:
                if choice == 2:
                    self.finalize(job, "keeper")
                else:
                    (self.accept, self.dispute)[choice](job, "right")
            elif j.status == DISPUTED:
                self.resolve(job, "arbiter", share)

    advance_more = advance  # twice the weight

    @rule(seconds=st.sampled_from([1, 1, 30, 61, 301, 901, 3601]))
    def travel(self, seconds):
        self.chain.travel(seconds)

    # ------------------------------------------------------------ invariants

    @invariant()
    def money_is_where_the_model_says(self):
        escrowed = sum(j.amount for j in self.jobs.values())
        assert self.chain.balance(self.esc.address) == escrowed + sum(self.owed.values())
        actual = {n: self.chain.balance(a) for n, a in self.chain.actors.items()}
        assert actual == self.expected

    def check_chain_records(self):
        """The slower reads (eth_call, getLogs): once per example, at teardown."""
        for name in ("fee", "provider", "requester"):
            assert self.esc.owed(self.addr(name)) == self.owed.get(name, 0)
        keys = Counter(e["args"]["jobKey"] for e in self.esc.events("JobSettled"))
        assert keys == Counter({self.esc.job_key(j): n for j, n in self.settled.items() if n})
        for job, j in self.jobs.items():
            assert self.esc.get_job(job).status == j.status

    def teardown(self):
        """Settle everything: the contract ends empty and every wei is accounted for."""
        if not hasattr(self, "esc"):
            return
        self.chain.travel(10_000)
        for job, j in self.jobs.items():
            if j.status in (OPEN, BOUND):
                self.refund_expired(job, "keeper")
            elif j.status in (SUBMITTED, DISPUTED):
                self.finalize(job, "keeper")
        for account, owed in list(self.owed.items()):
            if owed:
                self.withdraw(account, "keeper")
        self.money_is_where_the_model_says()
        self.check_chain_records()
        assert self.chain.balance(self.esc.address) == 0
        assert all(j.status == NONE for j in self.jobs.values())


EscrowMachine.TestCase.settings = settings(
    max_examples=15,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_escrow_state_machine = pytest.mark.slow(EscrowMachine.TestCase)
