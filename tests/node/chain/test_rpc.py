"""JSON-RPC of the embedded EVM through `/chain/rpc`, driven by a real web3 client."""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any

import pytest
from eth_account import Account
from web3 import Web3
from web3._utils.contract_sources.contract_data.emitter_contract import EMITTER_CONTRACT_DATA
from web3._utils.contract_sources.contract_data.revert_contract import REVERT_CONTRACT_DATA
from web3.exceptions import ContractCustomError, ContractLogicError, Web3RPCError

from node.chain.evm import CHAIN_ID

LOG_DOUBLE_ARG = 3  # emitter's WhichEvent values
LOG_DOUBLE_WITH_INDEX = 9


def deploy(w3: Web3, acct, data: dict):
    factory = w3.eth.contract(abi=data["abi"], bytecode=data["bytecode"])
    tx = factory.constructor().build_transaction(
        {"from": acct.address, "nonce": w3.eth.get_transaction_count(acct.address, "pending")}
    )
    receipt = send(w3, acct, tx)
    assert receipt["status"] == 1
    return w3.eth.contract(address=receipt["contractAddress"], abi=data["abi"])


def send(w3: Web3, acct, tx: dict):
    tx_hash = w3.eth.send_raw_transaction(acct.sign_transaction(tx).raw_transaction)
    return w3.eth.wait_for_transaction_receipt(tx_hash, timeout=10)


def transact(w3: Web3, acct, fn):
    tx = fn.build_transaction(
        {"from": acct.address, "nonce": w3.eth.get_transaction_count(acct.address, "pending")}
    )
    return send(w3, acct, tx)


def test_identity_methods(node, w3):
    chain_id = node.app.state.runtime.chain.chain_id
    assert w3.eth.chain_id == chain_id != CHAIN_ID  # a new data dir's own id
    assert w3.net.version == str(chain_id)
    assert "dcm-embedded" in w3.client_version
    assert w3.eth.accounts == []
    assert w3.eth.syncing is False
    assert w3.eth.gas_price > 0
    assert w3.eth.max_priority_fee > 0


def test_deploy_transact_and_read_blocks(w3, funded_account):
    acct = funded_account
    emitter = deploy(w3, acct, EMITTER_CONTRACT_DATA)
    assert w3.eth.get_code(emitter.address) == bytes.fromhex(
        EMITTER_CONTRACT_DATA["bytecode_runtime"][2:]
    )
    receipt = transact(w3, acct, emitter.functions.logDouble(LOG_DOUBLE_WITH_INDEX, 7, 8))
    assert receipt["status"] == 1
    assert receipt["gasUsed"] > 21000
    assert w3.eth.get_transaction_count(acct.address) == 2
    assert w3.eth.get_transaction_count(acct.address, "pending") == 2

    block = w3.eth.get_block(receipt["blockNumber"], full_transactions=True)
    assert block["hash"] == receipt["blockHash"]
    assert block["transactions"][0]["hash"] == receipt["transactionHash"]
    assert block["transactions"][0]["from"] == acct.address
    assert len(block["logsBloom"]) == 256
    by_hash = w3.eth.get_block(receipt["blockHash"])
    assert by_hash["number"] == receipt["blockNumber"]
    assert by_hash["transactions"] == [receipt["transactionHash"]]
    assert by_hash["parentHash"] == w3.eth.get_block(receipt["blockNumber"] - 1)["hash"]
    tx = w3.eth.get_transaction(receipt["transactionHash"])
    assert tx["to"] == emitter.address and tx["blockNumber"] == receipt["blockNumber"]
    events = emitter.events.LogDoubleWithIndex().process_receipt(receipt)
    assert (events[0]["args"]["arg0"], events[0]["args"]["arg1"]) == (7, 8)


def test_unknown_block_and_tx_are_null(w3):
    assert w3.provider.make_request("eth_getBlockByNumber", ["0x999", False])["result"] is None
    missing = "0x" + "ab" * 32
    assert w3.provider.make_request("eth_getTransactionByHash", [missing])["result"] is None
    assert w3.provider.make_request("eth_getTransactionReceipt", [missing])["result"] is None


def test_get_logs_filters_by_block_address_and_topics(w3, funded_account):
    acct = funded_account
    first = deploy(w3, acct, EMITTER_CONTRACT_DATA)
    second = deploy(w3, acct, EMITTER_CONTRACT_DATA)
    for arg1 in (1, 2, 3):
        transact(w3, acct, first.functions.logDouble(LOG_DOUBLE_WITH_INDEX, 100, arg1))
    transact(w3, acct, second.functions.logDouble(LOG_DOUBLE_WITH_INDEX, 200, 2))
    last = transact(w3, acct, first.functions.logDouble(LOG_DOUBLE_ARG, 5, 6))
    sig = first.events.LogDoubleWithIndex().topic
    t = [Web3.to_hex(Web3.to_bytes(n).rjust(32, b"\0")) for n in range(4)]

    everything = w3.eth.get_logs({"fromBlock": 0, "toBlock": "latest"})
    assert len(everything) == 5
    assert len(w3.eth.get_logs({"fromBlock": 0, "address": first.address})) == 4
    assert len(w3.eth.get_logs({"fromBlock": 0, "address": [first.address, second.address]})) == 5
    assert len(w3.eth.get_logs({"fromBlock": 0, "topics": [sig]})) == 4
    assert len(w3.eth.get_logs({"fromBlock": 0, "topics": [None, t[2]]})) == 2
    assert len(w3.eth.get_logs({"fromBlock": 0, "topics": [sig, [t[1], t[3]]]})) == 2
    assert (
        len(w3.eth.get_logs({"fromBlock": 0, "topics": [sig, t[2]], "address": second.address}))
        == 1
    )
    assert (
        w3.eth.get_logs({"fromBlock": last["blockNumber"]})[0]["transactionHash"]
        == last["transactionHash"]
    )
    assert (
        w3.eth.get_logs({"blockHash": last["blockHash"]})[0]["blockNumber"] == last["blockNumber"]
    )
    assert w3.eth.get_logs({"fromBlock": 5, "toBlock": 4}) == []
    decoded = first.events.LogDoubleWithIndex().get_logs(from_block=0, argument_filters={"arg1": 3})
    assert [e["args"]["arg0"] for e in decoded] == [100]


def test_gas_estimates_suffice_and_stay_within_geths_margin(w3, funded_account):
    """An estimate is enough to succeed, and 1.5% less is not (geth's search and margin:
    a few EVM runs, not a search down to the last unit of gas)."""
    acct = funded_account
    other = Account.create().address
    assert w3.eth.estimate_gas({"from": acct.address, "to": other, "value": 1}) == 21_000
    emitter = deploy(w3, acct, EMITTER_CONTRACT_DATA)
    fn = emitter.functions.logDouble(LOG_DOUBLE_WITH_INDEX, 7, 8)
    estimate = fn.estimate_gas({"from": acct.address})
    nonce = w3.eth.get_transaction_count(acct.address, "pending")
    tx = fn.build_transaction({"from": acct.address, "nonce": nonce, "gas": estimate})
    assert send(w3, acct, tx)["status"] == 1
    with pytest.raises((ContractLogicError, Web3RPCError)):
        fn.call({"from": acct.address, "gas": int(estimate * 0.985)})


def test_revert_reason_reaches_web3_as_contract_logic_error(w3, funded_account):
    c = deploy(w3, funded_account, REVERT_CONTRACT_DATA)
    with pytest.raises(ContractLogicError, match="Function has been reverted"):
        c.functions.revertWithMessage().call()
    with pytest.raises(ContractLogicError):
        c.functions.revertWithoutMessage().call()
    with pytest.raises(ContractLogicError, match="Function has been reverted"):
        c.functions.revertWithMessage().estimate_gas({"from": funded_account.address})
    assert c.functions.normalFunction().call() is True


def test_custom_error_reaches_web3_as_contract_custom_error(w3, funded_account):
    c = deploy(w3, funded_account, REVERT_CONTRACT_DATA)
    selector = Web3.keccak(text="Unauthorized()")[:4]
    with pytest.raises(ContractCustomError) as info:
        c.functions.customErrorWithoutMessage().call()
    assert info.value.data == "0x" + selector.hex()
    with pytest.raises(ContractCustomError):
        c.functions.customErrorWithMessage().estimate_gas({"from": funded_account.address})
    resp = w3.provider.make_request(
        "eth_call", [{"to": c.address, "data": c.encode_abi("customErrorWithoutMessage")}]
    )
    assert resp["error"]["code"] == 3
    assert resp["error"]["data"] == "0x" + selector.hex()


def test_reverting_transaction_is_mined_with_status_zero(w3, funded_account):
    c = deploy(w3, funded_account, REVERT_CONTRACT_DATA)
    tx = c.functions.revertWithMessage().build_transaction(
        {"from": funded_account.address, "gas": 100_000, "nonce": 1}
    )
    receipt = send(w3, funded_account, tx)
    assert receipt["status"] == 0
    assert w3.eth.get_transaction_count(funded_account.address) == 2


def test_bad_raw_transactions_are_rejected_without_a_block(w3, funded_account):
    head = w3.eth.block_number
    stale = funded_account.sign_transaction(
        {
            "to": funded_account.address,
            "value": 1,
            "gas": 21000,
            "gasPrice": 10**10,
            "nonce": 5,
            "chainId": w3.eth.chain_id,
        }
    )
    with pytest.raises(Web3RPCError):
        w3.eth.send_raw_transaction(stale.raw_transaction)
    broke = Account.create().sign_transaction(
        {
            "to": funded_account.address,
            "value": 1,
            "gas": 21000,
            "gasPrice": 10**10,
            "nonce": 0,
            "chainId": w3.eth.chain_id,
        }
    )
    with pytest.raises(Web3RPCError):
        w3.eth.send_raw_transaction(broke.raw_transaction)
    wrong_chain = funded_account.sign_transaction(
        {
            "to": funded_account.address,
            "value": 1,
            "gas": 21000,
            "gasPrice": 10**10,
            "nonce": 0,
            "chainId": 1,
        }
    )
    with pytest.raises(Web3RPCError):
        w3.eth.send_raw_transaction(wrong_chain.raw_transaction)
    resp = w3.provider.make_request("eth_sendRawTransaction", ["0xdeadbeef"])
    assert resp["error"]["code"] == -32000
    assert w3.eth.block_number == head


def test_fee_history_and_balance_at_block(w3, funded_account):
    hist = w3.eth.fee_history(2, "latest", [50])
    assert len(hist["baseFeePerGas"]) == len(hist["gasUsedRatio"]) + 1
    head = w3.eth.block_number
    assert w3.eth.get_balance(funded_account.address, head) == 10 * 10**18
    assert w3.eth.get_balance(funded_account.address, 0) == 0


def test_batch_notifications_and_protocol_errors(node):
    batch = [
        {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []},
        {"jsonrpc": "2.0", "id": 2, "method": "eth_nope", "params": []},
        {"jsonrpc": "2.0", "id": 3, "method": "eth_getBalance", "params": ["0x12"]},
        {"jsonrpc": "2.0", "method": "eth_blockNumber", "params": []},
        {"id": 4, "method": "eth_chainId"},
    ]
    replies = {r["id"]: r for r in node.post("/chain/rpc", json=batch).json()}
    assert set(replies) == {1, 2, 3, 4}
    assert replies[1]["result"] == hex(node.app.state.runtime.chain.chain_id)
    assert replies[2]["error"]["code"] == -32601
    assert replies[3]["error"]["code"] == -32602
    assert replies[4]["error"]["code"] == -32600
    parse = node.post(
        "/chain/rpc", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert parse.json()["error"]["code"] == -32700
    assert node.post("/chain/rpc", json=[]).json()["error"]["code"] == -32600
    only_note = node.post("/chain/rpc", json={"jsonrpc": "2.0", "method": "eth_chainId"})
    assert only_note.status_code == 204
    bad_params = node.post(
        "/chain/rpc",
        json={"jsonrpc": "2.0", "id": 9, "method": "eth_getLogs", "params": [{"fromBlock": "xyz"}]},
    ).json()
    assert bad_params["error"]["code"] == -32602


def test_dev_time_control_is_journaled_like_transactions(node, w3, settings):
    head = w3.eth.get_block("latest")
    assert w3.provider.make_request("evm_increaseTime", [3600])["result"] >= (
        head["timestamp"] + 3600
    )
    later = w3.eth.get_block("latest")
    assert later["number"] == head["number"] + 1
    assert later["timestamp"] == head["timestamp"] + 3600
    w3.provider.make_request("evm_mine", [later["timestamp"] + 10])
    assert w3.eth.get_block("latest")["timestamp"] == later["timestamp"] + 10
    back = w3.provider.make_request("evm_mine", [later["timestamp"]])
    assert back["error"]["code"] == -32602
    assert w3.provider.make_request("evm_increaseTime", [0])["error"]["code"] == -32602
    journal = (settings.data_dir / "chain" / "journal.jsonl").read_text().splitlines()
    assert [json.loads(x)["kind"] for x in journal[-2:]] == ["time", "time"]


def test_quick_reads_never_wait_on_the_event_loop_for_a_busy_chain(node, w3, funded_account):
    """A receipt is read on the event loop when the chain is free; while another thread
    holds the chain (a transaction being mined), the same read waits in a worker thread
    and the node keeps answering other requests."""
    acct = funded_account
    receipt = send(
        w3,
        acct,
        {
            "to": Account.create().address,
            "value": 5,
            "gas": 21000,
            "gasPrice": w3.eth.gas_price,
            "nonce": w3.eth.get_transaction_count(acct.address, "pending"),
            "chainId": w3.eth.chain_id,
        },
    )
    evm = node.app.state.runtime.chain.evm
    ask = {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "eth_getTransactionReceipt",
        "params": ["0x" + bytes(receipt["transactionHash"]).hex()],
    }
    held, release = threading.Event(), threading.Event()

    def hold_the_chain() -> None:
        with evm.lock:
            held.set()
            release.wait()

    holder = threading.Thread(target=hold_the_chain)
    holder.start()
    held.wait()
    try:
        dispatcher = node.app.state.runtime.chain.dispatcher
        assert dispatcher.handle_now(ask, dev_allowed=False) == (False, None)
        answers: list[Any] = []
        asker = threading.Thread(target=lambda: answers.append(node.post("/chain/rpc", json=ask)))
        asker.start()
        while not _waiting_in(evm.get_receipt.__code__):  # the ask reached the chain's lock
            asker.join(0.01)
        # the loop is not stuck on the lock: it answers (the bound only turns a hang into
        # a failure)
        health: list[int] = []
        prober = threading.Thread(target=lambda: health.append(node.get("/healthz").status_code))
        prober.start()
        prober.join(60)
        assert health == [200]
        assert not answers  # the receipt waits for the chain
    finally:
        release.set()
        holder.join()
    asker.join()
    assert answers[0].json()["result"]["transactionHash"] == ask["params"][0]
    assert answers[0].json()["result"]["status"] == "0x1"
    # free: answered on this thread. The node's own chain work (its tick, the watcher) may
    # hold the lock for a moment, as it did on a loaded CI machine: ask until it is free.
    for _ in range(500):
        answered, reply = dispatcher.handle_now(ask, dev_allowed=False)
        if answered:
            break
        time.sleep(0.01)
    assert answered and reply == answers[0].json()


def test_only_single_quick_reads_are_answered_on_the_callers_thread(node):
    dispatcher = node.app.state.runtime.chain.dispatcher

    def request(method: str, params: list[Any]) -> dict[str, Any]:
        return {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}

    answered, reply = dispatcher.handle_now(request("eth_blockNumber", []), dev_allowed=False)
    assert answered and reply["result"].startswith("0x")
    head = int(reply["result"], 16)
    for body in (
        request("eth_sendRawTransaction", ["0x00"]),  # a state change
        request("eth_call", [{"to": "0x" + "11" * 20}]),  # runs EVM code
        request("evm_mine", []),
        [request("eth_chainId", [])],  # a batch
        "not a request",
    ):
        assert dispatcher.handle_now(body, dev_allowed=True) == (False, None)
    assert node.app.state.runtime.chain.evm.block_number() == head  # nothing was done


def _waiting_in(code: Any) -> bool:
    """Whether some thread is running (here: blocked in) the function of `code`."""
    return any(
        frame.f_code is code for top in sys._current_frames().values() for frame in _frames(top)
    )


def _frames(frame: Any) -> Any:
    while frame is not None:
        yield frame
        frame = frame.f_back
