"""Stateful property test of the escrow on the in-process EVM.

Hypothesis drives random sequences of every operation (fund, assign, unassign, refund,
bind, submitWithVoucher, replays of old vouchers, abandon, submit, accept, dispute by the
requester or the assigner, resolve, finalize, finalizeBatch, cancel, refundExpired,
withdraw, withdrawTo) by every actor, across several keys (each naming its requester),
with time travel: re-funding a key after settlement while vouchers of its earlier deposits
are still around, arbiter rulings and arbiter silence. A Python model mirrors the
contract's rules, including the order of its checks, so every call must either succeed
when the model allows it or revert with exactly the custom error the model predicts (which
covers "unauthorised calls revert"). After every step:
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
from marketplace.escrow import JobEscrow, Voucher, job_key

from .harness import ARBITRATION_WINDOW, FEE_BPS, Harness, in_process

NONE, OPEN, BOUND, SUBMITTED, DISPUTED = range(5)
# Each job's key names its requester: only that requester may fund it.
JOBS = {"job_1": "requester", "job_2": "requester", "job_3": "requester2", "job_4": "requester2"}
REQUESTERS = ("requester", "requester2")
PROVIDERS = ("provider", "provider2")
CALLERS = ("requester", "requester2", "provider", "provider2", "arbiter", "keeper")
# "right" resolves to the party entitled to act (the job's requester or provider), so that
# deep paths are reached often; any other name is tried as is (usually unauthorised).
REQUESTER_SIDE = st.sampled_from(("right", "right", "right", *CALLERS))
PROVIDER_SIDE = st.sampled_from(("right", "right", "right", *CALLERS))
# who the assigner binds: mostly providers, sometimes a party it must never bind
BINDABLE = st.sampled_from((*PROVIDERS, *PROVIDERS, *PROVIDERS, "node", "arbiter", "requester"))


@dataclass
class Job:
    status: int = NONE
    amount: int = 0
    provider: str | None = None
    phase_end: int = 0
    window: int = 0
    attempt: int = 0
    funding: int = 0


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
        self.keys = {job: job_key(job, self.addr(who)) for job, who in JOBS.items()}
        self.expected = {n: self.chain.balance(a) for n, a in self.chain.actors.items()}
        self.owed: dict[str, int] = {}
        self.settled: Counter[str] = Counter()  # settlements per job (one per funding)
        self.vouchers: list[tuple[str, str, Voucher]] = []  # every voucher signed so far

    # ------------------------------------------------------------ plumbing

    def addr(self, name: str) -> str:
        return self.chain.actors[name].address

    def requester(self, job: str) -> str:
        return JOBS[job]

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
        key = self.keys[job]
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

    def refund_requester(self, job: str) -> None:
        self.pay(self.requester(job), self.jobs[job].amount)
        self.settle(job)

    def bound(self, j: Job, provider: str, attempt: int) -> bool:
        """Binding the provider already bound at this attempt is a no-op."""
        return j.status == BOUND and j.provider == provider and j.attempt == attempt

    def _assign_predict(self, job: str, provider: str, attempt: int, expiry: int):
        """The contract's assignment checks, in its order (before the voucher's funding tag
        and signature)."""
        j = self.jobs[job]

        def predict(ts):
            if j.status != OPEN:
                return "WrongStatus"
            if ts >= j.phase_end:
                return "DeadlinePassed"
            if ts > expiry:
                return "VoucherExpired"
            if attempt <= j.attempt or attempt > 0xFFFF:
                return "StaleAttempt"
            if provider in ("node", "arbiter", self.requester(job)):
                return "ForbiddenProvider"
            return None

        return predict

    def _voucher_predict(self, job: str, voucher: Voucher, provider: str, signer: str):
        j = self.jobs[job]
        inner = self._assign_predict(job, provider, voucher.attempt, voucher.expiry)

        def predict(ts):
            if self.bound(j, provider, voucher.attempt):
                return None
            error = inner(ts)
            if error:
                return error
            if voucher.funding != j.funding:
                return "WrongFunding"
            return None if signer == "node" else "BadSignature"

        return predict

    def sign(self, job: str, provider: str, attempt: int, expiry: int, signer="node") -> Voucher:
        voucher = self.esc.sign_assignment(
            self.chain.actors[signer],
            self.keys[job],
            self.addr(provider),
            attempt,
            self.jobs[job].funding,
            expiry,
        )
        if signer == "node":
            self.vouchers.append((job, provider, voucher))
        return voucher

    def _bound_by_voucher(self, job: str, provider: str, voucher: Voucher) -> None:
        j = self.jobs[job]
        j.provider, j.attempt, j.status = provider, voucher.attempt, BOUND

    # ------------------------------------------------------------ rules

    @initialize(
        plans=st.lists(
            st.tuples(
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
        for job, (amount, deadline_in, window) in zip(JOBS, plans, strict=False):
            self.fund(job, "right", amount, deadline_in, window)

    @rule(
        job=st.sampled_from(list(JOBS)),
        who=st.sampled_from(("right", "right", "right", *REQUESTERS, "provider")),
        amount=st.sampled_from([1, 999, 10**18 + 7, 3 * 10**17 + 11, 0]),
        deadline_in=st.sampled_from([900, 4000, 4000, 120, 0]),
        window=st.sampled_from([60, 300, 300, 0]),
    )
    def fund(self, job, who, amount, deadline_in, window):
        j = self.jobs[job]
        who = self.requester(job) if who == "right" else who
        deadline = self.chain.now() + deadline_in

        def predict(ts):
            if amount == 0:
                return "ZeroAmount"
            if who != self.requester(job):
                return "NotRequester"
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
                a, self.keys[job], amount_wei=amount, deadline=deadline, challenge_window=window
            ),
            predict,
        )
        if res:
            self.expected[who] -= amount
            self.jobs[job] = Job(OPEN, amount, None, deadline, window, 0, ts & 0xFFFF)

    @rule(
        job=st.sampled_from(list(JOBS)),
        provider=BINDABLE,
        delta=st.sampled_from([1, 1, 2, 0]),
        who=st.sampled_from(["node", "node", "node", "requester", "provider"]),
    )
    def assign(self, job, provider, delta, who):
        """The assigner's own transaction; anyone else is refused before any other check."""
        j = self.jobs[job]
        provider = self.requester(job) if provider == "requester" else provider
        attempt = j.attempt + delta
        inner = self._assign_predict(job, provider, attempt, 2**256 - 1)

        def predict(ts):
            if who != "node":
                return "NotAssigner"
            return None if self.bound(j, provider, attempt) else inner(ts)

        res, _ = self.do(
            who, lambda a: self.esc.assign(a, self.keys[job], self.addr(provider), attempt), predict
        )
        if res:
            j.provider, j.attempt, j.status = provider, attempt, BOUND

    @rule(
        job=st.sampled_from(list(JOBS)),
        delta=st.sampled_from([0, 0, 0, 1, -1]),
        who=st.sampled_from(["node", "node", "node", "provider", "requester"]),
    )
    def unassign(self, job, delta, who):
        """The node ends a lease: it releases that lease's binding only."""
        j = self.jobs[job]
        attempt = max(j.attempt + delta, 0)

        def predict(ts):
            if who != "node":
                return "NotAssigner"
            if j.status != BOUND:
                return "WrongStatus"
            return None if attempt == j.attempt else "StaleAttempt"

        if self.do(who, lambda a: self.esc.unassign(a, self.keys[job], attempt), predict)[0]:
            j.provider, j.status = None, OPEN

    @rule(job=st.sampled_from(list(JOBS)), who=st.sampled_from(["node", "node", "requester"]))
    def refund(self, job, who):
        """The assigner returns an Open deposit, always to the key's requester."""
        j = self.jobs[job]

        def predict(ts):
            if who != "node":
                return "NotAssigner"
            return None if j.status == OPEN else "WrongStatus"

        if self.do(who, lambda a: self.esc.refund(a, self.keys[job]), predict)[0]:
            self.refund_requester(job)

    @rule(
        job=st.sampled_from(list(JOBS)),
        provider=BINDABLE,
        delta=st.sampled_from([1, 1, 2, 0]),
        sender=st.sampled_from(CALLERS),
        expiry_in=st.sampled_from([100, 100, 100, -5]),
    )
    def bind(self, job, provider, delta, sender, expiry_in):
        j = self.jobs[job]
        provider = self.requester(job) if provider == "requester" else provider
        attempt, expiry = j.attempt + delta, self.chain.now() + expiry_in
        voucher = self.sign(job, provider, attempt, expiry)
        res, _ = self.do(
            sender,
            lambda a: self.esc.bind(a, voucher),
            self._voucher_predict(job, voucher, provider, "node"),
        )
        if res:
            self._bound_by_voucher(job, provider, voucher)

    def _submit_with(self, job: str, provider: str, voucher: Voucher):
        j = self.jobs[job]
        bind = self._voucher_predict(job, voucher, provider, "node")

        def predict(ts):
            error = bind(ts)
            if error:
                return error
            # bound now (or already): the submit's own check
            return "DeadlinePassed" if ts >= j.phase_end else None

        res, ts = self.do(
            provider, lambda a: self.esc.submit_with_voucher(a, voucher, b"\x01" * 32), predict
        )
        if res:
            self._bound_by_voucher(job, provider, voucher)
            j.status, j.phase_end = SUBMITTED, ts + j.window

    @rule(
        job=st.sampled_from(list(JOBS)),
        provider=st.sampled_from(PROVIDERS),
        delta=st.sampled_from([0, 1]),
    )
    def submit_with_voucher(self, job, provider, delta):
        j = self.jobs[job]
        voucher = self.sign(job, provider, j.attempt + delta, self.chain.now() + 100)
        self._submit_with(job, provider, voucher)

    @rule(data=st.data(), submit=st.booleans())
    def replay_old_voucher(self, data, submit):
        """A voucher signed earlier (maybe for a deposit since settled, the key funded
        again) is tried again: it binds only the deposit it was signed for."""
        # mostly vouchers of a key that is Open now (maybe funded again since): the
        # interesting case; sometimes any
        open_now = [v for v in self.vouchers if self.jobs[v[0]].status == OPEN]
        pool = open_now if open_now and data.draw(st.integers(0, 3)) else self.vouchers
        if not pool:
            return
        job, provider, voucher = data.draw(st.sampled_from(pool))
        if submit:
            self._submit_with(job, provider, voucher)
            return
        res, _ = self.do(
            "keeper",
            lambda a: self.esc.bind(a, voucher),
            self._voucher_predict(job, voucher, provider, "node"),
        )
        if res:
            self._bound_by_voucher(job, provider, voucher)

    @rule(job=st.sampled_from(list(JOBS)), who=st.sampled_from(CALLERS))
    def bad_voucher(self, job, who):
        """A voucher not signed by the assigner never binds."""
        j = self.jobs[job]
        voucher = self.sign(job, who, j.attempt + 1, self.chain.now() + 100, signer=who)
        predict = self._voucher_predict(job, voucher, who, who)
        if self.do(who, lambda a: self.esc.bind(a, voucher), predict)[0]:
            self._bound_by_voucher(job, who, voucher)  # only the no-op of a bound provider

    @rule(job=st.sampled_from(list(JOBS)), who=PROVIDER_SIDE)
    def abandon(self, job, who):
        j = self.jobs[job]
        if who == "right":
            who = j.provider or "keeper"

        def predict(ts):
            if j.status != BOUND:
                return "WrongStatus"
            return None if who == j.provider else "NotProvider"

        if self.do(who, lambda a: self.esc.abandon(a, self.keys[job]), predict)[0]:
            j.provider, j.status = None, OPEN

    @rule(job=st.sampled_from(list(JOBS)), who=PROVIDER_SIDE)
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

        res, ts = self.do(who, lambda a: self.esc.submit(a, self.keys[job], b"\x02" * 32), predict)
        if res:
            j.status, j.phase_end = SUBMITTED, ts + j.window

    @rule(job=st.sampled_from(list(JOBS)), who=REQUESTER_SIDE)
    def accept(self, job, who):
        j = self.jobs[job]
        if who == "right":
            who = self.requester(job)

        def predict(ts):
            if j.status not in (SUBMITTED, DISPUTED):
                return "WrongStatus"
            return None if who == self.requester(job) else "NotRequester"

        if self.do(who, lambda a: self.esc.accept(a, self.keys[job]), predict)[0]:
            self.pay_provider(job)

    @rule(
        job=st.sampled_from(list(JOBS)),
        who=st.sampled_from(("right", "right", "node", "node", *CALLERS)),
    )
    def dispute(self, job, who):
        """The requester, or the assigner on its behalf, freezes a result for the arbiter."""
        j = self.jobs[job]
        if who == "right":
            who = self.requester(job)

        def predict(ts):
            if j.status != SUBMITTED:
                return "WrongStatus"
            if who not in (self.requester(job), "node"):
                return "NotRequester"
            return "ChallengeWindowClosed" if ts >= j.phase_end else None

        res, ts = self.do(who, lambda a: self.esc.dispute(a, self.keys[job]), predict)
        if res:
            j.status, j.phase_end = DISPUTED, ts + ARBITRATION_WINDOW

    @rule(
        job=st.sampled_from(list(JOBS)),
        who=st.sampled_from(["arbiter", "arbiter", "node", "requester", "provider"]),
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

        if self.do(who, lambda a: self.esc.resolve(a, self.keys[job], share), predict)[0]:
            part = j.amount * share // 10_000
            fee = part * FEE_BPS // 10_000
            if part - fee:
                self.pay(j.provider, part - fee)
            if j.amount - part:
                self.pay(self.requester(job), j.amount - part)
            self.credit_fee(fee)
            self.settle(job)

    def _close_on_silence(self, job: str) -> None:
        """After the window: a result stands (provider paid); an unresolved dispute refunds
        the requester in full."""
        if self.jobs[job].status == SUBMITTED:
            self.pay_provider(job)
        else:
            self.refund_requester(job)

    @rule(job=st.sampled_from(list(JOBS)), who=st.sampled_from(CALLERS))
    def finalize(self, job, who):
        j = self.jobs[job]

        def predict(ts):
            if j.status == SUBMITTED:
                return "ChallengeWindowOpen" if ts < j.phase_end else None
            if j.status == DISPUTED:
                return "ArbitrationWindowOpen" if ts < j.phase_end else None
            return "WrongStatus"

        if self.do(who, lambda a: self.esc.finalize(a, self.keys[job]), predict)[0]:
            self._close_on_silence(job)

    @rule(jobs=st.lists(st.sampled_from(list(JOBS)), min_size=1, max_size=4, unique=True))
    def finalize_batch(self, jobs):
        keys = [self.keys[job] for job in jobs]
        res, ts = self.do("keeper", lambda a: self.esc.finalize_batch(a, keys), lambda ts: None)
        for job in jobs:
            j = self.jobs[job]
            if j.status in (SUBMITTED, DISPUTED) and ts >= j.phase_end:
                self._close_on_silence(job)

    @rule(job=st.sampled_from(list(JOBS)), who=REQUESTER_SIDE)
    def cancel(self, job, who):
        j = self.jobs[job]
        if who == "right":
            who = self.requester(job)

        def predict(ts):
            if j.status != OPEN:
                return "WrongStatus"
            return None if who == self.requester(job) else "NotRequester"

        if self.do(who, lambda a: self.esc.cancel(a, self.keys[job]), predict)[0]:
            self.refund_requester(job)

    @rule(job=st.sampled_from(list(JOBS)), who=st.sampled_from(CALLERS))
    def refund_expired(self, job, who):
        j = self.jobs[job]

        def predict(ts):
            if j.status not in (OPEN, BOUND):
                return "WrongStatus"
            return "DeadlineNotReached" if ts < j.phase_end else None

        if self.do(who, lambda a: self.esc.refund_expired(a, self.keys[job]), predict)[0]:
            self.refund_requester(job)

    @rule(account=st.sampled_from(["fee", "provider", "requester"]), who=st.sampled_from(CALLERS))
    def withdraw(self, account, who):
        owed = self.owed.get(account, 0)
        predict = lambda ts: None if owed else "NothingOwed"  # noqa: E731
        if self.do(who, lambda a: self.esc.withdraw(a, self.addr(account)), predict)[0]:
            self.pay(account, owed)
            self.owed[account] = 0

    @rule(to=st.sampled_from(["keeper", "provider", "fee"]))
    def withdraw_to(self, to):
        """The fee recipient sends what it is owed elsewhere."""
        owed = self.owed.get("fee", 0)
        predict = lambda ts: None if owed else "NothingOwed"  # noqa: E731
        if self.do("fee", lambda a: self.esc.withdraw_to(a, self.addr(to)), predict)[0]:
            self.pay(to, owed)
            self.owed["fee"] = 0

    @rule(
        moves=st.lists(
            st.tuples(
                st.sampled_from(PROVIDERS), st.integers(0, 3), st.sampled_from([0, 3333, 10_000])
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
                self.fund(job, "right", 10**18 + 7, 4000, 300)
            elif j.status == OPEN and choice == 0:
                self.submit_with_voucher(job, provider, 1)
            elif j.status == OPEN and choice == 1:
                self.bind(job, provider, 1, provider, 100)
            elif j.status == OPEN and choice == 2:
                self.refund(job, "node")
            elif j.status == OPEN:
                self.assign(job, provider, 1, "node")
            elif j.status == BOUND:
                if choice == 3:
                    self.unassign(job, 0, "node")
                else:
                    self.submit(job, "right") if choice else self.abandon(job, "right")
            elif j.status == SUBMITTED:
                if choice == 2:
                    self.finalize(job, "keeper")
                elif choice == 3:
                    self.dispute(job, "node")
                else:
                    (self.accept, self.dispute)[choice](job, "right")
            elif j.status == DISPUTED:
                if choice == 3:
                    self.travel(3601)  # the arbiter stays silent
                    self.finalize(job, "keeper")
                else:
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
        assert keys == Counter({self.keys[j]: n for j, n in self.settled.items() if n})
        for job, j in self.jobs.items():
            record = self.esc.get_job(self.keys[job])
            assert (record.status, record.attempt, record.funding) == (
                j.status,
                j.attempt,
                j.funding,
            )

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
