"""Gas of every JobEscrow operation and of one job lifecycle, on the in-process EVM.

Writes bench/results/gas.json and prints the figures. The lifecycle is fund + bind + submit +
finalize (issue 4 target, kept by issue 18: at most 170,000 gas; the original YOLO
marketplace contract spends 528,361 for create + accept + complete; 166,388 before issue
18), with the binding the node itself makes when it
leases a job (`assign`, sent by the assigner key). The same lifecycle with a voucher the
provider relays (`bind`) and with bind + submit in one transaction (`submitWithVoucher`)
is reported beside it. Measured in steady state (the fee recipient's
`owed` slot already non-zero), with and without a platform fee, plus a 50-job batch
finalize (stretch target: at most 25,000 gas per job).

    PYTHONPATH=. .venv/bin/python bench/gas.py
"""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

from eth_account import Account
from web3 import EthereumTesterProvider, Web3

from marketplace.escrow import JobEscrow, job_key, load_artifact

REFERENCE_ORIGINAL = 528_361
# fund + assign + submit + finalize of the contract before issue 18 (commit 101dc03), as
# this script measured it (the figure moves by ~12 gas with the random test addresses)
BEFORE_ISSUE_18 = 166_388
TARGET_LIFECYCLE = 170_000
TARGET_BATCH_PER_JOB = 25_000
BATCH = 50
OUT = Path(__file__).parent / "results" / "gas.json"


class Chain:
    def __init__(self, fee_bps: int) -> None:
        self.provider = EthereumTesterProvider()
        self.w3 = Web3(self.provider)
        self.tester = self.provider.ethereum_tester
        self.arbiter, self.node, self.req, self.prov, self.fee, self.keeper = (
            self.account() for _ in range(6)
        )
        self.escrow = JobEscrow.deploy(
            self.w3,
            self.keeper,
            arbiter=self.arbiter.address,
            assigner=self.node.address,
            fee_bps=fee_bps,
            fee_recipient=self.fee.address,
            arbitration_window=3600,
        )
        self.deploy_gas = self.w3.eth.get_transaction_receipt(
            self.w3.eth.get_block(self.escrow.deployment_block)["transactions"][0]
        )["gasUsed"]
        self.n = 0

    def account(self):
        acct = Account.create()
        self.w3.eth.send_transaction(
            {"from": self.w3.eth.accounts[0], "to": acct.address, "value": 10**22}
        )
        return acct

    def now(self) -> int:
        return self.w3.eth.get_block("latest")["timestamp"]

    def next_key(self) -> bytes:
        """The next job's key: the requester's address, generation 0, the job number."""
        self.n += 1
        return job_key(self.n, self.req.address)

    def voucher(self, key: bytes, provider, attempt: int):
        funding = self.escrow.get_job(key).funding
        return self.escrow.sign_assignment(
            self.node, key, provider.address, attempt, funding, self.now() + 3600
        )

    def new_job(
        self, digest: bytes = b"\x5a" * 32, via: str = "assign"
    ) -> tuple[bytes, dict[str, int]]:
        job = self.next_key()
        gas = {}
        now = self.now()
        gas["fund"] = self.escrow.fund(
            self.req,
            job,
            amount_wei=10**18,
            deadline=now + 86400,
            challenge_window=600,
            dataset_digest=digest,
        ).gas_used
        if via == "assign":
            gas["assign"] = self.escrow.assign(self.node, job, self.prov.address, 1).gas_used
        else:
            gas["bind"] = self.escrow.bind(self.prov, self.voucher(job, self.prov, 1)).gas_used
        gas["submit"] = self.escrow.submit(self.prov, job, b"\xa5" * 32).gas_used
        return job, gas

    def travel(self, seconds: int) -> None:
        self.tester.time_travel(self.now() + seconds)


def measure(fee_bps: int) -> dict:
    c = Chain(fee_bps)
    esc = c.escrow
    # Warm-up job: makes the fee recipient's `owed` slot non-zero (steady state).
    job, _ = c.new_job()
    c.travel(601)
    esc.finalize(c.keeper, job)

    ops: dict[str, int] = {"deploy": c.deploy_gas}
    job, gas = c.new_job()
    ops.update(gas)
    c.travel(601)
    ops["finalize"] = esc.finalize(c.keeper, job).gas_used
    lifecycle = ops["fund"] + ops["assign"] + ops["submit"] + ops["finalize"]

    # The same with a voucher the provider relays.
    job, gas = c.new_job(via="voucher")
    ops["bind"] = gas["bind"]
    c.travel(601)
    lifecycle_voucher = (
        gas["fund"] + gas["bind"] + gas["submit"] + esc.finalize(c.keeper, job).gas_used
    )

    # Bind and submit in one transaction (submitWithVoucher).
    job = c.next_key()
    now = c.now()
    fund_gas = esc.fund(
        c.req,
        job,
        amount_wei=10**18,
        deadline=now + 86400,
        challenge_window=600,
        dataset_digest=b"\x5a" * 32,
    ).gas_used
    voucher = c.voucher(job, c.prov, 1)
    ops["submit_with_voucher"] = esc.submit_with_voucher(c.prov, voucher, b"\xa5" * 32).gas_used
    c.travel(601)
    lifecycle_3tx = fund_gas + ops["submit_with_voucher"] + esc.finalize(c.keeper, job).gas_used

    job, _ = c.new_job()
    ops["accept"] = esc.accept(c.req, job).gas_used
    job, _ = c.new_job()
    ops["dispute"] = esc.dispute(c.req, job).gas_used
    ops["resolve_split"] = esc.resolve(c.arbiter, job, 7000).gas_used
    job, _ = c.new_job()
    ops["dispute_by_assigner"] = esc.dispute(c.node, job).gas_used
    c.travel(3601)
    ops["finalize_default_ruling_refund"] = esc.finalize(c.keeper, job).gas_used
    job = c.next_key()
    esc.fund(c.req, job, amount_wei=10**18, deadline=c.now() + 100, challenge_window=60)
    ops["cancel"] = esc.cancel(c.req, job).gas_used
    job = c.next_key()
    esc.fund(c.req, job, amount_wei=10**18, deadline=c.now() + 100, challenge_window=60)
    ops["refund_by_assigner"] = esc.refund(c.node, job).gas_used
    job = c.next_key()
    esc.fund(c.req, job, amount_wei=10**18, deadline=c.now() + 100, challenge_window=60)
    esc.bind(c.prov, c.voucher(job, c.prov, 1))
    ops["abandon"] = esc.abandon(c.prov, job).gas_used
    ops["rebind"] = esc.bind(c.keeper, c.voucher(job, c.keeper, 2)).gas_used
    ops["unassign"] = esc.unassign(c.node, job, 2).gas_used
    ops["assign_again"] = esc.assign(c.node, job, c.prov.address, 3).gas_used
    ops["assign_idempotent"] = esc.assign(c.node, job, c.prov.address, 3).gas_used
    c.travel(101)
    ops["refund_expired"] = esc.refund_expired(c.keeper, job).gas_used
    if fee_bps:
        ops["withdraw_fees"] = esc.withdraw(c.keeper, c.fee.address).gas_used

    jobs = [c.new_job()[0] for _ in range(BATCH)]
    c.travel(601)
    batch = esc.finalize_batch(c.keeper, jobs)
    assert all(esc.get_job(j).status.name == "NONE" for j in jobs)  # settled and deleted
    return {
        "fee_bps": fee_bps,
        "operations": ops,
        "lifecycle_fund_bind_submit_finalize": lifecycle,
        "lifecycle_binding": "assign (the node's own transaction when it leases the job)",
        "lifecycle_fund_voucherBind_submit_finalize": lifecycle_voucher,
        "lifecycle_fund_submitWithVoucher_finalize": lifecycle_3tx,
        "batch_finalize": {
            "jobs": BATCH,
            "gas": batch.gas_used,
            "per_job": batch.gas_used / BATCH,
            "per_job_excluding_21000_base": (batch.gas_used - 21_000) / BATCH,
        },
    }


def main() -> int:
    art = load_artifact()
    results = {
        "chain": "eth-tester (py-evm), in-process",
        "compiler": art["compiler"],
        "python": platform.python_version(),
        "reference_original_yolo_create_accept_complete": REFERENCE_ORIGINAL,
        "lifecycle_before_issue_18": BEFORE_ISSUE_18,
        "target_lifecycle": TARGET_LIFECYCLE,
        "target_batch_per_job": TARGET_BATCH_PER_JOB,
        "runs": [measure(0), measure(100)],
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2) + "\n")
    for run in results["runs"]:
        print(f"-- fee {run['fee_bps']} bps")
        for name, gas in run["operations"].items():
            print(f"  {name:26s} {gas:>9,}")
        life = run["lifecycle_fund_bind_submit_finalize"]
        print(
            f"  lifecycle (fund+assign+submit+finalize) {life:,} "
            f"(target {TARGET_LIFECYCLE:,}: {'met' if life <= TARGET_LIFECYCLE else 'MISSED'}; "
            f"original {REFERENCE_ORIGINAL:,} = {REFERENCE_ORIGINAL / life:.2f}x; "
            f"before issue 18 {BEFORE_ISSUE_18:,})"
        )
        print(
            "  lifecycle with a relayed voucher (fund+bind+submit+finalize) "
            f"{run['lifecycle_fund_voucherBind_submit_finalize']:,}"
        )
        life3 = run["lifecycle_fund_submitWithVoucher_finalize"]
        print(f"  lifecycle with bind+submit in one tx (fund+submitWithVoucher+finalize) {life3:,}")
        b = run["batch_finalize"]
        print(
            f"  batch finalize {b['jobs']} jobs: {b['gas']:,} gas, {b['per_job']:,.0f}/job "
            f"(target {TARGET_BATCH_PER_JOB:,})"
        )
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
