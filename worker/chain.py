"""The provider's on-chain steps for escrowed jobs: submit the result digest when done,
abandon the job when it stops without one. The node binds the provider itself when it
grants the lease (its own `assign` transaction); the voucher in the claim response is the
provider's way in when that has not landed by submit time (`submitWithVoucher`, a no-op
bind when the node's assignment landed meanwhile). When the lease ended the node releases
the binding on chain (`unassign`): the provider then sends nothing (it would only revert)
and reports the lease as lost. Transactions are signed locally with the provider's key and
sent through the chain RPC the node names (checked at start: `resolve_rpc`)."""

from __future__ import annotations

import logging
import time
from typing import Any

from web3 import Web3

from marketplace.errors import StaleAttempt, UpstreamUnavailable
from marketplace.escrow.client import JobEscrow, Status, Voucher

log = logging.getLogger("dcm.provider.chain")

PREDECESSOR_WAIT_SECONDS = 60.0


def voucher_from_json(data: dict[str, Any]) -> Voucher:
    return Voucher(
        key=bytes.fromhex(data["job_key"].removeprefix("0x")),
        provider=data["provider"],
        attempt=int(data["attempt"]),
        funding=int(data["funding"]),
        expiry=int(data["expiry"]),
        v=int(data["v"]),
        r=bytes.fromhex(data["r"].removeprefix("0x")),
        s=bytes.fromhex(data["s"].removeprefix("0x")),
    )


def _answers(rpc_url: str, chain_id: int) -> bool:
    try:
        w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 10}))
        return int(w3.eth.chain_id) == chain_id
    except Exception:  # noqa: BLE001 - unreachable, refused, not JSON-RPC
        return False


def resolve_rpc(info: dict[str, Any], node_url: str) -> str:
    """The chain RPC to use: the one the node advertises, or the node's own `/chain/rpc`
    when the advertised one does not answer with the node's chain id (a node started on
    another port than it advertises). Raises UpstreamUnavailable when neither does: a
    provider that cannot reach the chain must not take escrowed jobs."""
    chain_id = int(info["chain_id"])
    candidates = [info.get("rpc_url"), node_url.rstrip("/") + "/chain/rpc"]
    for url in dict.fromkeys(c for c in candidates if c):
        if _answers(url, chain_id):
            if url != info.get("rpc_url"):
                log.warning(
                    "the node advertises %s, which does not answer: using %s",
                    info.get("rpc_url"),
                    url,
                )
            return url
    raise UpstreamUnavailable(
        f"no chain RPC answers for chain {chain_id} (tried {', '.join(c for c in candidates if c)})"
    )


class ProviderChain:
    def __init__(self, rpc_url: str, escrow_address: str, account: Any) -> None:
        self.w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 60}))
        self.escrow = JobEscrow(self.w3, escrow_address)
        self.account = account

    def submit(
        self,
        voucher: dict[str, Any],
        result_cid: str,
        *,
        wait_seconds: float = PREDECESSOR_WAIT_SECONDS,
    ) -> str | None:
        """Submit the result digest for this lease: as the bound provider when the node's
        assignment landed, else binding with the voucher in the same transaction. While
        the escrow is still bound to an earlier lease (the node's `unassign` is on its way)
        it waits up to `wait_seconds`. Raises StaleAttempt (a conflict: the lease is lost)
        when the escrow holds a later lease, another deposit, or no job at all, and
        UpstreamUnavailable when the chain RPC does not answer (the caller retries).
        Returns the transaction's hash; None when this lease's result is already on chain
        (a retry after an answer that was lost)."""
        try:
            return self._submit(voucher, result_cid, wait_seconds)
        except OSError as exc:  # requests' connection errors and timeouts are OSErrors
            raise UpstreamUnavailable(f"the chain RPC did not answer: {exc}") from exc

    def _submit(self, voucher: dict[str, Any], result_cid: str, wait_seconds: float) -> str | None:
        digest = self.escrow.cid_digest(result_cid)
        key, attempt = voucher["job_key"], int(voucher["attempt"])
        funding = int(voucher["funding"])
        give_up = time.monotonic() + wait_seconds
        while True:
            record = self.escrow.get_job(key)
            mine = record.provider == self.account.address and record.attempt == attempt
            if record.status == Status.SUBMITTED and mine:
                return None
            if record.status == Status.BOUND and mine:
                return self.escrow.submit(self.account, key, digest).tx_hash
            ours = record.funding == funding and record.attempt < attempt
            if record.status == Status.OPEN and ours:
                return self.escrow.submit_with_voucher(
                    self.account, voucher_from_json(voucher), digest
                ).tx_hash
            if record.status == Status.BOUND and ours and time.monotonic() < give_up:
                time.sleep(1.0)  # an earlier lease's binding: the node releases it
                continue
            raise StaleAttempt(
                f"the escrow no longer holds lease {attempt} of this job "
                f"({record.status.name.lower()}, attempt {record.attempt})",
                details={"escrow_status": record.status.name.lower(), "attempt": attempt},
            )

    def abandon(self, job_key: str, attempt: int) -> str | None:
        """Give the job up on chain if this lease is still bound (it becomes open: the
        node rebinds or refunds it); None when there is nothing to release."""
        record = self.escrow.get_job(job_key)
        if not (
            record.status == Status.BOUND
            and record.provider == self.account.address
            and record.attempt == attempt
        ):
            return None
        return self.escrow.abandon(self.account, job_key).tx_hash

    def balance(self) -> int:
        return int(self.w3.eth.get_balance(self.account.address))
