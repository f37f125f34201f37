"""web3.py against `/chain/rpc` for what wallets, libraries and explorers call beyond the
basics: storage, fee history, filters, block-index methods, receipts by block, proofs,
geth's error messages, development snapshots and CORS."""

from __future__ import annotations

import json

import pytest
import rlp
from eth_account import Account
from fastapi.testclient import TestClient
from pydantic import SecretStr
from trie import HexaryTrie
from web3 import Web3
from web3._utils.contract_sources.contract_data.emitter_contract import EMITTER_CONTRACT_DATA
from web3._utils.contract_sources.contract_data.revert_contract import REVERT_CONTRACT_DATA
from web3._utils.contract_sources.contract_data.storage_contract import STORAGE_CONTRACT_DATA
from web3.exceptions import Web3RPCError

from node.chain.filters import IDLE_SECONDS, FilterNotFound, FilterRegistry
from tests.fixtures.app import create_app
from tests.node.chain.conftest import LOOPBACK_CLIENT
from tests.node.chain.test_rpc import LOG_DOUBLE_WITH_INDEX, deploy, send, transact

TIP = 10**9


def rpc(w3: Web3, method: str, *params):
    return w3.provider.make_request(method, list(params))


def value_tx(w3: Web3, acct, nonce: int, **extra) -> dict:
    base = w3.eth.get_block("latest")["baseFeePerGas"]
    return {
        "to": acct.address,
        "value": 1,
        "gas": 21000,
        "nonce": nonce,
        "chainId": w3.eth.chain_id,
        "maxFeePerGas": 2 * base + TIP,
        "maxPriorityFeePerGas": TIP,
        **extra,
    }


def test_storage_slots_at_head_and_at_earlier_blocks(w3, funded_account):
    before = w3.eth.block_number
    store = deploy(w3, funded_account, STORAGE_CONTRACT_DATA)
    slots = [w3.eth.get_storage_at(store.address, i) for i in range(4)]
    assert [int.from_bytes(s, "big") for s in slots[:3]] == [0, 1, 2]
    assert slots[3] == b"three".ljust(31, b"\0") + bytes([10])  # a short string, in place
    assert w3.eth.get_storage_at(store.address, 1, before) == b"\0" * 32  # not deployed yet
    assert w3.eth.get_storage_at(store.address, 2**256 - 1) == b"\0" * 32
    assert rpc(w3, "eth_getStorageAt", store.address, "0xzz")["error"]["code"] == -32602
    assert rpc(w3, "eth_getStorageAt", store.address, hex(2**256))["error"]["code"] == -32602


def test_fee_history_is_ascending_with_one_reward_row_per_block(w3, funded_account):
    for nonce in range(3):
        send(w3, funded_account, value_tx(w3, funded_account, nonce))
    head = w3.eth.block_number
    hist = w3.eth.fee_history(3, "latest", [25, 75])
    assert hist["oldestBlock"] == head - 2
    blocks = [w3.eth.get_block(n) for n in range(head - 2, head + 1)]
    assert hist["baseFeePerGas"][:3] == [b["baseFeePerGas"] for b in blocks]
    assert hist["gasUsedRatio"] == [b["gasUsed"] / b["gasLimit"] for b in blocks]
    assert hist["reward"] == [[TIP, TIP]] * 3  # each block: one transfer tipping 1 gwei
    # the fourth base fee is the next block's, as the next block then shows
    send(w3, funded_account, value_tx(w3, funded_account, 3))
    assert hist["baseFeePerGas"][3] == w3.eth.get_block(head + 1)["baseFeePerGas"]
    older = w3.eth.fee_history(2, head - 1, [50])
    assert older["oldestBlock"] == head - 2
    assert older["baseFeePerGas"] == hist["baseFeePerGas"][:3]
    empty = w3.eth.fee_history(1, 0, [10, 90])  # genesis: no transactions, zero rewards
    assert empty["oldestBlock"] == 0 and empty["reward"] == [[0, 0]]
    assert "reward" not in rpc(w3, "eth_feeHistory", "0x2", "latest")["result"]
    for bad in ([90, 10], [101], ["x"], list(range(101))):
        assert rpc(w3, "eth_feeHistory", "0x2", "latest", bad)["error"]["code"] == -32602


def test_web3_filters_report_new_blocks_and_logs_once(w3, funded_account):
    emitter = deploy(w3, funded_account, EMITTER_CONTRACT_DATA)
    transact(w3, funded_account, emitter.functions.logDouble(LOG_DOUBLE_WITH_INDEX, 1, 2))
    blocks = w3.eth.filter("latest")
    pending = w3.eth.filter("pending")
    event = emitter.events.LogDoubleWithIndex()
    logs = event.create_filter(from_block=0)
    by_topic = event.create_filter(from_block=0, argument_filters={"arg1": 7})
    assert blocks.get_new_entries() == []
    assert [e["args"]["arg1"] for e in logs.get_all_entries()] == [2]
    assert logs.get_new_entries() == []  # changes start at the filter's creation

    r1 = transact(w3, funded_account, emitter.functions.logDouble(LOG_DOUBLE_WITH_INDEX, 3, 7))
    r2 = transact(w3, funded_account, emitter.functions.logDouble(LOG_DOUBLE_WITH_INDEX, 4, 8))
    assert blocks.get_new_entries() == [r1["blockHash"], r2["blockHash"]]
    assert blocks.get_new_entries() == []
    assert [e["args"]["arg0"] for e in logs.get_new_entries()] == [3, 4]
    assert logs.get_new_entries() == []
    assert [e["transactionHash"] for e in by_topic.get_new_entries()] == [r1["transactionHash"]]
    assert [e["args"]["arg0"] for e in logs.get_all_entries()] == [1, 3, 4]
    assert pending.get_new_entries() == []  # mined at once: never anything pending

    assert w3.eth.uninstall_filter(logs.filter_id) is True
    assert w3.eth.uninstall_filter(logs.filter_id) is False
    with pytest.raises(Web3RPCError, match="filter not found"):
        w3.eth.get_filter_changes(logs.filter_id)
    assert rpc(w3, "eth_getFilterLogs", blocks.filter_id)["error"]["code"] == -32000
    bad = rpc(w3, "eth_newFilter", {"fromBlock": "soon"})
    assert bad["error"]["code"] == -32602


def test_idle_filters_expire():
    now = [1000.0]
    reg = FilterRegistry(clock=lambda: now[0])
    polled, idle = reg.install("blocks", 0), reg.install("blocks", 0)
    now[0] += IDLE_SECONDS - 1
    reg.get(polled)
    now[0] += 2
    assert reg.get(polled).kind == "blocks"
    with pytest.raises(FilterNotFound):
        reg.get(idle)
    assert len(reg) == 1


def test_block_index_methods_and_receipts_by_block(w3, funded_account):
    receipt = send(w3, funded_account, value_tx(w3, funded_account, 0))
    number, block_hash = receipt["blockNumber"], receipt["blockHash"]
    tx_hash = receipt["transactionHash"]
    assert w3.eth.get_block_transaction_count(number) == 1
    assert w3.eth.get_block_transaction_count(block_hash) == 1
    assert w3.eth.get_transaction_by_block(number, 0)["hash"] == tx_hash
    assert w3.eth.get_transaction_by_block(block_hash, 0)["hash"] == tx_hash
    assert rpc(w3, "eth_getTransactionByBlockNumberAndIndex", hex(number), "0x1")["result"] is None
    assert rpc(w3, "eth_getBlockTransactionCountByNumber", "0x999")["result"] is None
    missing = "0x" + "ab" * 32
    assert rpc(w3, "eth_getBlockTransactionCountByHash", missing)["result"] is None
    [by_block] = w3.eth.get_block_receipts(number)
    assert by_block == w3.eth.get_transaction_receipt(tx_hash)
    assert w3.eth.get_block_receipts(block_hash) == [by_block]
    assert w3.eth.get_block_receipts(0) == []
    assert rpc(w3, "eth_getBlockReceipts", "0x999")["result"] is None


def nodes(proof: list[bytes]) -> list:
    """EIP-1186 proofs are RLP-encoded trie nodes; `trie` verifies decoded ones."""
    return [rlp.decode(bytes(n)) for n in proof]


def test_get_proof_verifies_against_the_block_state_root(w3, funded_account):
    store = deploy(w3, funded_account, STORAGE_CONTRACT_DATA)
    block = w3.eth.get_block("latest")
    proof = w3.eth.get_proof(store.address, [1, 3, 9], block["number"])
    account = HexaryTrie.get_from_proof(
        block["stateRoot"], Web3.keccak(hexstr=store.address), nodes(proof["accountProof"])
    )
    nonce, balance, storage_root, code_hash = rlp.decode(account)
    assert (int.from_bytes(nonce, "big"), int.from_bytes(balance, "big")) == (1, 0)
    assert storage_root == proof["storageHash"]
    assert code_hash == Web3.keccak(w3.eth.get_code(store.address)) == proof["codeHash"]
    values = {}
    for item in proof["storageProof"]:  # web3 gives key and value as bytes
        slot = int.from_bytes(item["key"], "big")
        raw = HexaryTrie.get_from_proof(
            storage_root, Web3.keccak(slot.to_bytes(32, "big")), nodes(item["proof"])
        )
        values[slot] = int.from_bytes(rlp.decode(raw), "big") if raw else 0
        assert values[slot] == int.from_bytes(item["value"], "big")
    assert values[1] == 1 and values[9] == 0
    nobody = w3.eth.get_proof(Account.create().address, [], "latest")
    assert nobody["balance"] == 0 and nobody["nonce"] == 0


def test_mistakes_get_gethes_messages_and_codes(w3, funded_account):
    acct = funded_account
    send(w3, acct, value_tx(w3, acct, 0))
    cases = {
        "nonce too low": value_tx(w3, acct, 0, value=2),
        "nonce too high": value_tx(w3, acct, 5),
        "intrinsic gas too low": value_tx(w3, acct, 1, gas=20000),
        "max fee per gas less than block base fee": value_tx(
            w3, acct, 1, maxFeePerGas=1, maxPriorityFeePerGas=1
        ),
        "insufficient funds for gas * price + value": value_tx(w3, acct, 1, value=10**30),
    }
    head = w3.eth.block_number
    for message, tx in cases.items():
        reply = rpc(w3, "eth_sendRawTransaction", acct.sign_transaction(tx).raw_transaction)
        assert reply["error"]["code"] == -32000, reply
        assert reply["error"]["message"].startswith(message), reply
    again = acct.sign_transaction(value_tx(w3, acct, 1))
    send_reply = rpc(w3, "eth_sendRawTransaction", again.raw_transaction)
    assert "result" in send_reply
    assert rpc(w3, "eth_sendRawTransaction", again.raw_transaction)["error"] == {
        "code": -32000,
        "message": "already known",
    }
    assert w3.eth.block_number == head + 1  # only the good one was mined
    broke = Account.create().address
    call = rpc(w3, "eth_call", {"from": broke, "to": acct.address, "value": "0x10"}, "latest")
    assert call["error"]["code"] == -32000
    assert call["error"]["message"].startswith("insufficient funds for gas * price + value")
    estimate = rpc(w3, "eth_estimateGas", {"from": broke, "to": acct.address, "value": "0x10"})
    assert estimate["error"]["message"].startswith("insufficient funds")


def test_small_methods(w3):
    assert rpc(w3, "web3_sha3", "0x68656c6c6f")["result"] == "0x" + Web3.keccak(b"hello").hex()
    assert rpc(w3, "eth_coinbase")["result"] == "0x" + "00" * 20
    assert rpc(w3, "eth_pendingTransactions")["result"] == []
    keyed = rpc(w3, "eth_sendTransaction", {"from": Account.create().address})["error"]
    assert keyed["code"] == -32601 and "eth_sendRawTransaction" in keyed["message"]
    bad = rpc(w3, "debug_traceTransaction", "0x" + "ab" * 32, {})
    assert bad["error"]["code"] == -32602 and "callTracer" in bad["error"]["message"]


def test_snapshots_rewind_the_chain_and_its_journal(node, w3, funded_account, settings):
    journal = settings.data_dir / "chain" / "journal.jsonl"
    lines = journal.read_text().splitlines()
    head = w3.eth.block_number
    snap = rpc(w3, "evm_snapshot")["result"]
    gone = send(w3, funded_account, value_tx(w3, funded_account, 0, to=Account.create().address))
    assert w3.eth.get_transaction_count(funded_account.address) == 1
    assert rpc(w3, "evm_revert", snap)["result"] is True
    assert w3.eth.block_number == head
    # its receipt went with its block (the node keeps the newest receipts in memory)
    receipt_now = rpc(w3, "eth_getTransactionReceipt", gone["transactionHash"].to_0x_hex())
    assert receipt_now["result"] is None
    assert w3.eth.get_transaction_count(funded_account.address) == 0
    assert journal.read_text().splitlines() == lines  # a restart replays the rewound chain
    assert rpc(w3, "evm_revert", snap)["result"] is False  # used up, as on Hardhat
    receipt = send(w3, funded_account, value_tx(w3, funded_account, 0))
    assert receipt["blockNumber"] == head + 1 and receipt["status"] == 1
    # a browser page (it sends Origin) is no loopback client, even from this machine
    body = {"jsonrpc": "2.0", "id": 1, "method": "evm_snapshot", "params": []}
    page = node.post("/chain/rpc", json=body, headers={"origin": "https://evil.example"})
    assert page.json()["error"]["code"] == -32601


def test_production_has_no_snapshots(settings, tmp_path):
    prod = settings.model_copy(
        update={"environment": "production", "secret_key": SecretStr("p" * 40)}
    )
    with TestClient(create_app(prod), client=LOOPBACK_CLIENT) as client:
        body = {"jsonrpc": "2.0", "id": 1, "method": "evm_snapshot", "params": []}
        assert client.post("/chain/rpc", json=body).json()["error"]["code"] == -32601
        pre = client.options(
            "/chain/rpc",
            headers={"origin": "https://dapp.example", "access-control-request-method": "POST"},
        )
        assert pre.status_code == 204 and "access-control-allow-origin" not in pre.headers


def test_cors_preflight_and_answers(node, settings):
    headers = {
        "origin": "https://dapp.example",
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type",
    }
    pre = node.options("/chain/rpc", headers=headers)
    assert pre.status_code == 204
    assert pre.headers["access-control-allow-origin"] == "*"
    assert "POST" in pre.headers["access-control-allow-methods"]
    assert "content-type" in pre.headers["access-control-allow-headers"]
    assert "access-control-allow-credentials" not in pre.headers
    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
    resp = node.post("/chain/rpc", json=body, headers={"origin": "https://dapp.example"})
    assert resp.headers["access-control-allow-origin"] == "*" and "result" in resp.json()

    settings.chain_rpc_cors_origins = ["https://dapp.example"]
    listed = node.post("/chain/rpc", json=body, headers={"origin": "https://dapp.example"})
    assert listed.headers["access-control-allow-origin"] == "https://dapp.example"
    assert listed.headers["vary"] == "Origin"
    other = node.options("/chain/rpc", headers={**headers, "origin": "https://other.example"})
    assert other.status_code == 204 and "access-control-allow-origin" not in other.headers
    assert json.loads(listed.text)["result"] == hex(node.app.state.runtime.chain.chain_id)


def test_headers_raw_encodings_uncles_and_the_empty_pool(w3, funded_account):
    signed = funded_account.sign_transaction(value_tx(w3, funded_account, 0))
    tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash)
    number, block_hash = receipt["blockNumber"], receipt["blockHash"]
    raw_tx = rpc(w3, "debug_getRawTransaction", tx_hash.to_0x_hex())["result"]
    assert bytes.fromhex(raw_tx[2:]) == bytes(signed.raw_transaction)
    assert Web3.keccak(hexstr=raw_tx) == tx_hash
    raw_header = rpc(w3, "debug_getRawHeader", hex(number))["result"]
    assert Web3.keccak(hexstr=raw_header) == block_hash
    raw_block = rlp.decode(bytes.fromhex(rpc(w3, "debug_getRawBlock", hex(number))["result"][2:]))
    assert rlp.encode(raw_block[0]) == bytes.fromhex(raw_header[2:])
    assert len(rpc(w3, "debug_getRawReceipts", block_hash.to_0x_hex())["result"]) == 1
    header = rpc(w3, "eth_getHeaderByNumber", hex(number))["result"]
    assert header == rpc(w3, "eth_getHeaderByHash", block_hash.to_0x_hex())["result"]
    block = rpc(w3, "eth_getBlockByNumber", hex(number), False)["result"]
    assert header["hash"] == block["hash"] and "transactions" not in header
    assert {k: block[k] for k in header} == header
    assert rpc(w3, "eth_getUncleCountByBlockNumber", hex(number))["result"] == "0x0"
    assert rpc(w3, "eth_getUncleCountByBlockHash", "0x" + "ab" * 32)["result"] is None
    assert rpc(w3, "eth_getUncleByBlockNumberAndIndex", hex(number), "0x0")["result"] is None
    assert rpc(w3, "txpool_status")["result"] == {"pending": "0x0", "queued": "0x0"}
    assert w3.eth.blob_base_fee >= 1


def test_call_tracer_on_a_reverted_transaction_and_on_a_call(w3, funded_account):
    c = deploy(w3, funded_account, REVERT_CONTRACT_DATA)
    tx = c.functions.revertWithMessage().build_transaction(
        {"from": funded_account.address, "gas": 100_000, "nonce": 1}
    )
    receipt = send(w3, funded_account, tx)
    assert receipt["status"] == 0
    tracer = {"tracer": "callTracer"}
    frame = rpc(w3, "debug_traceTransaction", receipt["transactionHash"].to_0x_hex(), tracer)
    frame = frame["result"]
    assert (frame["type"], frame["from"], frame["to"]) == (
        "CALL",
        funded_account.address,
        c.address,
    )
    assert frame["error"] == "execution reverted"
    assert frame["revertReason"] == "Function has been reverted."
    assert int(frame["gasUsed"], 16) == receipt["gasUsed"]
    assert frame["input"] == tx["data"]
    call = {"from": funded_account.address, "to": c.address, "data": c.encode_abi("normalFunction")}
    top = rpc(
        w3, "debug_traceCall", call, "latest", {**tracer, "tracerConfig": {"onlyTopCall": True}}
    )
    assert top["result"]["output"] == "0x" + (1).to_bytes(32, "big").hex()
    assert "calls" not in top["result"]
    missing = rpc(w3, "debug_traceTransaction", "0x" + "ab" * 32, tracer)
    assert missing["error"]["code"] == -32000
