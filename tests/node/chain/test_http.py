"""A real `dcm serve` on a loopback port, driven by web3's HTTP providers."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account
from web3 import AsyncHTTPProvider, AsyncWeb3, HTTPProvider, Web3
from web3._utils.contract_sources.contract_data.emitter_contract import EMITTER_CONTRACT_DATA
from web3.exceptions import ContractLogicError

from node.chain.evm import CHAIN_ID
from tests.fixtures import web
from tests.fixtures.served import Served
from tests.node.chain.test_rpc import LOG_DOUBLE_WITH_INDEX, deploy, transact


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "served"


@pytest.fixture
def served(data_dir: Path, database_url: str) -> Iterator[Served]:
    s = Served(data_dir, database_url)
    yield s
    s.stop()


def test_web3_http_client_deploys_transacts_and_reads_logs(served, data_dir, database_url):
    acct = Account.create()
    resp = web.post(served.url + "/chain/faucet", json={"address": acct.address, "amount": "5"})
    assert resp.status_code == 200, resp.text
    w3 = Web3(HTTPProvider(served.url + "/chain/rpc"))
    node_chain_id = web.get(served.url + "/chain/info").json()["chain_id"]
    assert w3.is_connected() and w3.eth.chain_id == node_chain_id != CHAIN_ID
    emitter = deploy(w3, acct, EMITTER_CONTRACT_DATA)
    receipt = transact(w3, acct, emitter.functions.logDouble(LOG_DOUBLE_WITH_INDEX, 11, 12))
    events = emitter.events.LogDoubleWithIndex().get_logs(from_block=0)
    assert [(e["args"]["arg0"], e["args"]["arg1"]) for e in events] == [(11, 12)]
    with pytest.raises(ContractLogicError):
        emitter.functions.logDouble(0, 1, 2).call()

    async def read_async() -> tuple[int, int, list]:
        aw3 = AsyncWeb3(AsyncHTTPProvider(served.url + "/chain/rpc"))
        logs = await aw3.eth.get_logs({"fromBlock": 0, "address": emitter.address})
        return await aw3.eth.chain_id, await aw3.eth.get_balance(acct.address), logs

    chain_id, balance, alogs = asyncio.run(read_async())
    assert chain_id == node_chain_id and balance == w3.eth.get_balance(acct.address)
    assert alogs[0]["transactionHash"] == receipt["transactionHash"]

    batch = web.post(
        served.url + "/chain/rpc",
        json=[
            {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []},
            {
                "jsonrpc": "2.0",
                "id": 2,
                "method": "eth_getCode",
                "params": [emitter.address, "latest"],
            },
        ],
    ).json()
    assert [r["id"] for r in batch] == [1, 2] and batch[1]["result"].startswith("0x60")

    head = w3.eth.block_number
    block_before = w3.eth.get_block(head)
    logs_before = w3.eth.get_logs({"fromBlock": 0})
    balance_before = w3.eth.get_balance(acct.address)
    served.stop()
    # SIGTERM is a clean shutdown: the chain is snapshotted at its head
    assert list((data_dir / "chain" / "snapshots").glob("*.snap"))

    again = Served(data_dir, database_url)
    try:
        assert "chain snapshot" in again.log() and "restored" in again.log()
        w3 = Web3(HTTPProvider(again.url + "/chain/rpc"))
        assert w3.eth.block_number == head
        assert w3.eth.get_block(head) == block_before
        assert w3.eth.get_logs({"fromBlock": 0}) == logs_before
        assert w3.eth.get_balance(acct.address) == balance_before
        assert (
            w3.eth.get_code(emitter.address).hex() == EMITTER_CONTRACT_DATA["bytecode_runtime"][2:]
        )
    finally:
        again.stop()
