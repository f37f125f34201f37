"""ethers 6 (from npm, run by node) against a real `dcm serve` and against a Hardhat node:
the same script, the same contracts, the same mistakes; the node must read storage and
events as Hardhat does and its errors must classify as Hardhat's do (NONCE_EXPIRED,
CALL_EXCEPTION with the revert reason and custom-error data), and a spent-funds mistake
as INSUFFICIENT_FUNDS, as against geth (Hardhat 2's own wording is not classified)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from web3 import HTTPProvider, Web3
from web3._utils.contract_sources.contract_data.emitter_contract import EMITTER_CONTRACT_DATA
from web3._utils.contract_sources.contract_data.revert_contract import REVERT_CONTRACT_DATA
from web3._utils.contract_sources.contract_data.storage_contract import STORAGE_CONTRACT_DATA

from tests.fixtures import web
from tests.fixtures.engines import require_engine
from tests.fixtures.served import Served
from tests.marketplace.escrow.harness import ROOT, HardhatNode, hardhat_available

SCRIPT = Path(__file__).with_name("ethers_client.cjs")
ETHERS = ROOT / "node_modules" / "ethers" / "package.json"
UNAUTHORIZED = "0x" + Web3.keccak(text="Unauthorized()")[:4].hex()


def ethers_available() -> bool:
    return ETHERS.exists() and shutil.which("node") is not None


@pytest.fixture(scope="module")
def hardhat(tmp_path_factory) -> Iterator[HardhatNode]:
    require_engine(hardhat_available(), "Hardhat not installed (npm ci at the repo root)")
    node = HardhatNode(tmp_path_factory.mktemp("hardhat-ethers"))
    yield node
    node.stop()


@pytest.fixture
def served(tmp_path: Path, database_url: str) -> Iterator[Served]:
    s = Served(tmp_path / "served", database_url)
    yield s
    s.stop()


def _deploy(w3: Web3, acct: Any, data: dict[str, Any]) -> str:
    tx = {
        "data": data["bytecode"],
        "gas": 3_000_000,
        "nonce": w3.eth.get_transaction_count(acct.address),
        "chainId": w3.eth.chain_id,
        "maxFeePerGas": 2 * w3.eth.get_block("latest")["baseFeePerGas"] + 10**9,
        "maxPriorityFeePerGas": 10**9,
    }
    tx_hash = w3.eth.send_raw_transaction(acct.sign_transaction(tx).raw_transaction)
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)
    assert receipt["status"] == 1
    return receipt["contractAddress"]


def run_ethers(url: str, fund) -> dict[str, Any]:
    """Deploy the three contracts from a funded account, then run the ethers script."""
    w3 = Web3(HTTPProvider(url, request_kwargs={"timeout": 30}))
    deployer, user = Account.create(), Account.create()
    fund(deployer.address)
    fund(user.address)
    spec = {
        "url": url,
        "key": "0x" + bytes(user.key).hex(),
        "storage": _deploy(w3, deployer, STORAGE_CONTRACT_DATA),
        "emitter": _deploy(w3, deployer, EMITTER_CONTRACT_DATA),
        "reverter": _deploy(w3, deployer, REVERT_CONTRACT_DATA),
    }
    done = subprocess.run(
        ["node", str(SCRIPT), json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_ethers_reads_and_errors_match_hardhat(hardhat, served):
    require_engine(ethers_available(), "ethers not installed (npm ci at the repo root)")
    hh = Web3(HTTPProvider(hardhat.url))

    def hardhat_fund(address: str) -> None:
        hh.provider.make_request("hardhat_setBalance", [address, hex(10**20)])

    def node_fund(address: str) -> None:
        body = {"address": address, "amount": "10"}
        resp = web.post(served.url + "/chain/faucet", json=body, timeout=30)
        assert resp.status_code == 200, resp.text

    ours = run_ethers(served.url + "/chain/rpc", node_fund)
    theirs = run_ethers(hardhat.url, hardhat_fund)

    # storage: StorageContract's slots 0..2 hold 0, 1, 2 and slot 3 the short string "three"
    three = b"three".ljust(31, b"\0") + bytes([2 * len("three")])
    expected = ["0x" + n.to_bytes(32, "big").hex() for n in (0, 1, 2)] + ["0x" + three.hex()]
    assert ours["storage"] == theirs["storage"] == expected
    # events: from the receipt and from a topic query over the whole chain
    assert ours["receiptStatus"] == theirs["receiptStatus"] == 1
    assert ours["receiptEvents"] == theirs["receiptEvents"] == [["LogDoubleWithIndex", "41", "42"]]
    assert ours["queried"] == theirs["queried"] == [["41", True]]
    # the mistakes classify as against Hardhat
    assert ours["nonceLow"]["code"] == theirs["nonceLow"]["code"] == "NONCE_EXPIRED"
    # geth's words classify as INSUFFICIENT_FUNDS; Hardhat 2's own text ("Sender doesn't
    # have enough funds to send tx") leaves ethers at UNKNOWN_ERROR, so here the node
    # answers as geth does, not as Hardhat does
    assert ours["fundsSend"]["code"] == "INSUFFICIENT_FUNDS"
    assert ours["fundsEstimate"]["code"] == "INSUFFICIENT_FUNDS"
    for case in ("revertCall", "revertSend"):
        assert ours[case]["code"] == theirs[case]["code"] == "CALL_EXCEPTION", (ours, theirs)
        assert ours[case]["reason"] == theirs[case]["reason"] == "Function has been reverted."
    assert ours["custom"] == theirs["custom"] == {"code": "CALL_EXCEPTION", "data": UNAUTHORIZED}
    assert ours["normal"] is theirs["normal"] is True


def test_fee_history_answers_as_hardhat_does(hardhat, served):
    """The same three 1-gwei-tip transfers on each chain, then `eth_feeHistory(3, latest,
    [25, 75])`: blocks ascending from head-2, four base fees (the last the next block's),
    the blocks' own gas used ratios, one reward row per block."""
    tip = 10**9
    hh = Web3(HTTPProvider(hardhat.url))
    ours = Web3(HTTPProvider(served.url + "/chain/rpc"))
    for w3 in (hh, ours):
        acct = Account.create()
        if w3 is hh:
            hh.provider.make_request("hardhat_setBalance", [acct.address, hex(10**20)])
        else:
            body = {"address": acct.address, "amount": "1"}
            assert web.post(served.url + "/chain/faucet", json=body).status_code == 200
        for nonce in range(3):
            base = w3.eth.get_block("latest")["baseFeePerGas"]
            tx = {
                "to": Account.create().address,
                "value": 1,
                "gas": 21000,
                "nonce": nonce,
                "chainId": w3.eth.chain_id,
                "maxFeePerGas": 2 * base + tip,
                "maxPriorityFeePerGas": tip,
            }
            h = w3.eth.send_raw_transaction(acct.sign_transaction(tx).raw_transaction)
            assert w3.eth.wait_for_transaction_receipt(h)["status"] == 1
        head = w3.eth.block_number
        hist = w3.eth.fee_history(3, "latest", [25, 75])
        blocks = [w3.eth.get_block(n) for n in range(head - 2, head + 1)]
        assert hist["oldestBlock"] == head - 2, w3.provider.endpoint_uri
        assert len(hist["baseFeePerGas"]) == 4
        assert hist["baseFeePerGas"][:3] == [b["baseFeePerGas"] for b in blocks]
        assert hist["gasUsedRatio"] == pytest.approx([b["gasUsed"] / b["gasLimit"] for b in blocks])
        assert hist["reward"] == [[tip, tip]] * 3
