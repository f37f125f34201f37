"""The embedded chain survives restarts: the journal replays to identical state."""

from __future__ import annotations

import json
import os

import pytest
from eth_account import Account
from fastapi.testclient import TestClient
from web3 import Web3
from web3._utils.contract_sources.contract_data.emitter_contract import EMITTER_CONTRACT_DATA

from marketplace.errors import ChainError
from node.chain.evm import EmbeddedEVM
from node.chain.journal import Journal
from tests.fixtures.app import create_app
from tests.node.chain.conftest import RpcViaTestClient, fund
from tests.node.chain.test_rpc import LOG_DOUBLE_WITH_INDEX, deploy, transact


def _snapshot(w3: Web3, addresses: list[str], contract: str) -> dict:
    head = w3.eth.block_number
    return {
        "head": head,
        "blocks": [dict(w3.eth.get_block(n, full_transactions=True)) for n in range(head + 1)],
        "logs": [dict(x) for x in w3.eth.get_logs({"fromBlock": 0, "toBlock": head})],
        "balances": [w3.eth.get_balance(a) for a in addresses],
        "nonces": [w3.eth.get_transaction_count(a) for a in addresses],
        "code": w3.eth.get_code(contract),
    }


def test_restart_replays_blocks_hashes_logs_and_balances(settings):
    acct = Account.create()
    with TestClient(create_app(settings)) as node:
        w3 = Web3(RpcViaTestClient(node))
        fund(node, acct.address, "3")
        emitter = deploy(w3, acct, EMITTER_CONTRACT_DATA)
        for i in range(3):
            transact(w3, acct, emitter.functions.logDouble(LOG_DOUBLE_WITH_INDEX, i, i + 1))
        node.app.state.runtime.chain.evm.time_travel(w3.eth.get_block("latest")["timestamp"] + 3600)
        operator = node.app.state.runtime.chain.operator.address
        before = _snapshot(w3, [acct.address, operator], emitter.address)
    # escrow deploy, the arbiter's gas, then 6
    assert before["head"] == 8 and len(before["logs"]) == 3

    with TestClient(create_app(settings)) as node:
        w3 = Web3(RpcViaTestClient(node))
        assert node.app.state.runtime.chain.operator.address == operator
        after = _snapshot(w3, [acct.address, operator], emitter.address)
        assert after == before
        # and the chain keeps going from there
        emitter = w3.eth.contract(address=emitter.address, abi=EMITTER_CONTRACT_DATA["abi"])
        receipt = transact(w3, acct, emitter.functions.logDouble(LOG_DOUBLE_WITH_INDEX, 9, 9))
        assert receipt["blockNumber"] == before["head"] + 1
        assert w3.eth.get_block(before["head"] + 1)["parentHash"] == before["blocks"][-1]["hash"]


def test_operator_key_file_is_private_and_never_in_the_journal(settings):
    with TestClient(create_app(settings)) as node:
        fund(node, Account.create().address, "1")
        host = node.app.state.runtime.chain
        key_hex = host.operator.account.key.hex()
    key_path = settings.data_dir / "chain" / "operator.key"
    assert os.stat(key_path).st_mode & 0o777 == 0o600
    journal = (settings.data_dir / "chain" / "journal.jsonl").read_text()
    assert key_hex not in journal and key_hex.removeprefix("0x") not in journal
    assert key_hex not in repr(host.operator)


def test_torn_last_journal_line_is_dropped(tmp_path):
    acct = Account.create()
    path = tmp_path / "journal.jsonl"
    evm = EmbeddedEVM.open(path, {acct.address: 10**20})
    tx = acct.sign_transaction(
        {
            "to": acct.address,
            "value": 1,
            "gas": 21000,
            "gasPrice": 10**10,
            "nonce": 0,
            "chainId": evm.chain_id,
        }
    )
    evm.send_raw_transaction(tx.raw_transaction)
    head_hash = evm.get_block("latest", False)["hash"]
    evm.journal.close()
    with open(path, "ab") as fh:
        fh.write(b'{"kind":"tx","timestamp":1,"ha')  # crash mid-write
    again = EmbeddedEVM.open(path, {})
    assert again.get_block("latest", False)["hash"] == head_hash
    assert again.get_nonce(acct.address) == 1
    assert path.read_bytes().endswith(b"\n")
    assert len(Journal(path).entries) == 2


def test_genesis_is_taken_from_the_journal_not_the_arguments(tmp_path):
    a, b = Account.create(), Account.create()
    first = EmbeddedEVM.open(tmp_path / "j.jsonl", {a.address: 5})
    genesis_hash = first.get_block(0, False)["hash"]
    first.journal.close()
    second = EmbeddedEVM.open(tmp_path / "j.jsonl", {b.address: 7})
    assert second.get_block(0, False)["hash"] == genesis_hash
    assert second.get_balance(a.address) == 5 and second.get_balance(b.address) == 0
    head = json.loads((tmp_path / "j.jsonl").read_text().splitlines()[0])
    assert head["kind"] == "genesis" and head["chain_id"] == first.chain_id == second.chain_id


def test_node_refuses_to_start_on_an_escrow_of_another_build(settings):
    """A data directory whose escrow was compiled from another JobEscrow source (an older
    dcm) would speak the wrong functions and keys: the node says so instead of starting."""
    acct = Account.create()
    with TestClient(create_app(settings)) as node:
        w3 = Web3(RpcViaTestClient(node))
        fund(node, acct.address, "1")
        other = deploy(w3, acct, EMITTER_CONTRACT_DATA)
    path = settings.data_dir / "chain" / "deployments.json"
    records = json.loads(path.read_text())
    records["JobEscrow"]["address"] = other.address
    path.write_text(json.dumps(records))
    app = create_app(settings)
    with pytest.raises(ChainError, match="not this dcm's JobEscrow build") as info, TestClient(app):
        pass
    assert info.value.error_name == "EscrowBuildMismatch"
    assert "DCM_DATA_DIR" in info.value.message
