"""An explorer's indexing pass over `/chain/rpc` from block 0, as Blockscout runs one:
blocks with their transactions, receipts by block, logs by block, and internal
transactions from `debug_traceTransaction` with geth's call tracer. The escrow pays
providers with internal value transfers (`call` from the contract), which no receipt or
log carries as a transfer: the pass must find every payout of a settled job there, with
the amount the node's /v1/payouts reports, and agree with the escrow's JobSettled logs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from eth_account import Account
from fastapi.testclient import TestClient
from web3 import Web3

from marketplace.escrow.client import JobEscrow
from tests.node.chain.conftest import RpcViaTestClient, hand_driven_node
from tests.node.chain.scenario import call_key, send_call
from tests.node.chain.test_settle import (
    RESULT_CID,
    REWARD,
    WINDOW,
    lease_and_report,
    provider_headers,
    status_of,
    tick,
    time_travel,
    upload,
    wallet,
)

TRACER = {"tracer": "callTracer"}


@pytest.fixture
def node(settings) -> Iterator[TestClient]:
    with hand_driven_node(settings) as client:  # the test drives every tick itself
        yield client


def rpc(w3: Web3, method: str, *params: Any) -> Any:
    reply = w3.provider.make_request(method, list(params))
    assert "error" not in reply, reply
    return reply["result"]


def internal_transfers(frame: dict[str, Any], depth: int = 0) -> Iterator[tuple[str, str, int]]:
    """(from, to, wei) of every CALL below the top frame that moved value and succeeded."""
    if depth > 0 and frame["type"] == "CALL" and "error" not in frame:
        value = int(frame.get("value", "0x0"), 16)
        if value:
            yield frame["from"], frame["to"], value
    for child in frame.get("calls", ()):
        yield from internal_transfers(child, depth + 1)


def index_chain(w3: Web3) -> dict[str, Any]:
    """Blocks 0..head the way an indexer walks them; what it stores."""
    out: dict[str, Any] = {"txs": {}, "logs": [], "internal": []}
    head = w3.eth.block_number
    for number in range(head + 1):
        block = w3.eth.get_block(number, full_transactions=True)
        assert block["number"] == number
        if number:
            assert block["parentHash"] == w3.eth.get_block(number - 1)["hash"]
        receipts = w3.eth.get_block_receipts(number)
        assert [r["transactionHash"] for r in receipts] == [
            t["hash"] for t in block["transactions"]
        ]
        assert rpc(w3, "eth_getBlockTransactionCountByNumber", hex(number)) == hex(len(receipts))
        block_logs = w3.eth.get_logs({"fromBlock": number, "toBlock": number})
        assert block_logs == [entry for r in receipts for entry in r["logs"]]
        out["logs"].extend(block_logs)
        for tx, receipt in zip(block["transactions"], receipts, strict=True):
            tx_hash = "0x" + bytes(tx["hash"]).hex()
            trace = rpc(w3, "debug_traceTransaction", tx_hash, TRACER)
            assert trace["from"] == tx["from"]
            assert trace["to"] == (tx["to"] or receipt["contractAddress"])
            assert int(trace["value"], 16) == tx["value"]
            assert int(trace["gasUsed"], 16) == receipt["gasUsed"]
            assert ("error" in trace) == (receipt["status"] == 0)
            out["txs"][tx_hash] = {"block": number, "status": receipt["status"]}
            out["internal"].extend((tx_hash, *t) for t in internal_transfers(trace))
    return out


def test_an_indexer_from_block_zero_finds_every_payout_of_settled_jobs(node, tmp_path):
    host = node.app.state.runtime.chain
    w3 = Web3(RpcViaTestClient(node))
    escrow = JobEscrow(w3, host.escrow_address)
    requester = wallet(node)
    providers = [Account.create(), Account.create()]
    jobs = []
    for seed, prov in enumerate(providers, start=1):
        node.post("/chain/faucet", json={"address": prov.address, "amount": "1"})
        job = upload(node, tmp_path, requester.address, seed=seed)
        send_call(w3, requester, job["funding"])
        job["key"] = call_key(job["funding"])
        jobs.append(job)
    tick(node)
    for prov, job in zip(providers, jobs, strict=True):
        headers = provider_headers(node, prov, f"prov{job['id']}")
        lease_and_report(node, headers, job["id"])
        tick(node)
        escrow.submit(prov, job["key"], escrow.cid_digest(RESULT_CID))
    time_travel(node, WINDOW + 1)
    tick(node)
    assert [status_of(node, j["id"]) for j in jobs] == ["completed", "completed"]

    index = index_chain(w3)

    payouts = []
    for prov in providers:
        resp = node.get("/v1/payouts", params={"provider": prov.address})
        assert resp.status_code == 200, resp.text
        payouts.extend(resp.json()["data"])
    assert len(payouts) == 2
    from_escrow = [t for t in index["internal"] if t[1] == escrow.address]
    # every payout the node reports is an internal transfer the indexer found, and the
    # escrow made no other transfer
    assert sorted(from_escrow) == sorted(
        (p["tx_hash"], escrow.address, p["recipient"], int(p["amount_wei"])) for p in payouts
    )
    assert {p["recipient"] for p in payouts} == {p.address for p in providers}
    assert all(int(p["amount_wei"]) == REWARD for p in payouts)
    # the escrow's own account of it: one JobSettled per payout, same tx, same amount
    settled_topic = Web3.to_hex(hexstr=escrow.contract.events.JobSettled().topic)
    settled = [
        escrow.contract.events.JobSettled().process_log(entry)
        for entry in index["logs"]
        if entry["address"] == escrow.address and Web3.to_hex(entry["topics"][0]) == settled_topic
    ]
    assert sorted(
        (
            "0x" + bytes(e["transactionHash"]).hex(),
            e["args"]["provider"],
            e["args"]["providerAmount"],
        )
        for e in settled
    ) == sorted((t[0], t[2], t[3]) for t in from_escrow)
    # deposits were top-level value into the escrow: the index holds them as transactions
    assert all(index["txs"][p["tx_hash"]]["status"] == 1 for p in payouts)
