"""The provider's on-chain steps for escrowed jobs: submit the result digest when done,
abandon the job when it stops without one. The node binds the provider itself when it
grants the lease (its own `assign` transaction); the voucher in the claim response is the
provider's way in when that has not landed by submit time (`submitWithVoucher`).
Transactions are signed locally with the provider's key and sent through the node's
`/chain/rpc` (or any RPC the node names)."""

from __future__ import annotations

from typing import Any

from web3 import Web3

from marketplace.escrow.client import JobEscrow, Status, Voucher


def voucher_from_json(data: dict[str, Any]) -> Voucher:
    return Voucher(
        key=bytes.fromhex(data["job_key"].removeprefix("0x")),
        provider=data["provider"],
        attempt=int(data["attempt"]),
        expiry=int(data["expiry"]),
        v=int(data["v"]),
        r=bytes.fromhex(data["r"].removeprefix("0x")),
        s=bytes.fromhex(data["s"].removeprefix("0x")),
    )


class ProviderChain:
    def __init__(self, rpc_url: str, escrow_address: str, account: Any) -> None:
        self.w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 60}))
        self.escrow = JobEscrow(self.w3, escrow_address)
        self.account = account

    def submit(self, voucher: dict[str, Any], result_cid: str) -> str:
        """Submit the result digest: as the bound provider when the node's assignment for
        this lease landed, else binding with the voucher in the same transaction (which
        reverts `StaleAttempt` when the node has since assigned the job to a newer lease)."""
        digest = self.escrow.cid_digest(result_cid)
        record = self.escrow.get_job(voucher["job_key"])
        bound = (
            record.status == Status.BOUND
            and record.provider == self.account.address
            and record.attempt == int(voucher["attempt"])
        )
        if bound:
            return self.escrow.submit(self.account, voucher["job_key"], digest).tx_hash
        return self.escrow.submit_with_voucher(
            self.account, voucher_from_json(voucher), digest
        ).tx_hash

    def abandon(self, job_key: str) -> str:
        """Give the job up on chain (it becomes open: rebindable, or refundable to the
        requester)."""
        return self.escrow.abandon(self.account, job_key).tx_hash

    def balance(self) -> int:
        return int(self.w3.eth.get_balance(self.account.address))
