"""The provider's on-chain steps for escrowed jobs: bind with the node's voucher before
working, submit the result digest when done. Transactions are signed locally with the
provider's key and sent through the node's `/chain/rpc` (or any RPC the node names)."""

from __future__ import annotations

from typing import Any

from web3 import Web3

from marketplace.escrow.client import JobEscrow, Voucher


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

    def bind(self, voucher: dict[str, Any]) -> str:
        return self.escrow.bind(self.account, voucher_from_json(voucher)).tx_hash

    def submit(self, job_key: str, result_cid: str) -> str:
        digest = self.escrow.cid_digest(result_cid)
        return self.escrow.submit(self.account, job_key, digest).tx_hash

    def abandon(self, job_key: str) -> str:
        """Give the job up on chain (it becomes open: rebindable, or refundable to the
        requester)."""
        return self.escrow.abandon(self.account, job_key).tx_hash

    def balance(self) -> int:
        return int(self.w3.eth.get_balance(self.account.address))
