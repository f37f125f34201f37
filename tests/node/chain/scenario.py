"""Helpers to drive escrow scenarios against a node's embedded chain."""

from __future__ import annotations

from typing import Any

from eth_account import Account
from web3 import Web3

from marketplace.jobs.states import JobStatus
from node.chain.host import EmbeddedChainHost
from node.db import session_scope
from node.jobs.service import create_job
from node.models.jobs import Job


def make_job(
    sessions: Any,
    *,
    requester: str | None,
    reward_wei: int,
    status: JobStatus = JobStatus.AWAITING_FUNDING,
) -> int:
    with session_scope(sessions) as session:
        job = create_job(
            session,
            job_type="container",
            requester_address=requester,
            reward_wei=reward_wei,
            status=status,
            folder_cid="QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG",
        )
        job_id = job.id
    return job_id  # outside the loop: the scope commits when the generator finishes


def job_status(sessions: Any, job_id: int) -> tuple[str, list[tuple[str, str | None]]]:
    with session_scope(sessions) as session:
        job = session.get(Job, job_id)
        out = job.status, [(e.type, e.message) for e in job.events]
    return out


def send_call(w3: Web3, acct: Any, call: dict[str, Any], value: int | None = None) -> Any:
    """Sign a `{chain_id, to, data, value}` funding call locally and send it."""
    base = w3.eth.get_block("latest")["baseFeePerGas"]
    tx = {
        "to": call["to"],
        "data": call["data"],
        "value": int(call["value"]) if value is None else value,
        "chainId": int(call["chain_id"]),
        "gas": 150_000,
        "nonce": w3.eth.get_transaction_count(acct.address, "pending"),
        "maxFeePerGas": 2 * base + 10**9,
        "maxPriorityFeePerGas": 10**9,
    }
    tx_hash = w3.eth.send_raw_transaction(acct.sign_transaction(tx).raw_transaction)
    return w3.eth.wait_for_transaction_receipt(tx_hash, timeout=10)


def funded_wallet(host: EmbeddedChainHost, eth: int = 5) -> Any:
    acct = Account.create()
    host.faucet(acct.address, eth * 10**18)
    return acct


def call_key(call: dict[str, Any]) -> str:
    """The escrow key a `{chain_id, to, data, value}` funding call (or any call whose first
    argument is the key) names, as 0x hex."""
    return "0x" + call["data"][10:74]


def bind_and_submit(host: EmbeddedChainHost, provider: Any, key: str, attempt: int = 1) -> None:
    escrow = host.escrow()
    expiry = host.evm.head_timestamp() + 3600
    voucher = escrow.sign_assignment(
        host.operator.account, key, provider.address, attempt, escrow.get_job(key).funding, expiry
    )
    escrow.submit_with_voucher(provider, voucher, b"\x11" * 32)
