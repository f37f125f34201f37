"""Which standard Ethereum JSON-RPC methods answer: the node's `/chain/rpc` against Hardhat.

Starts `dcm serve` (embedded chain, development mode, a fresh data dir, SQLite) from a
source tree (this one by default, `--tree /path` for another checkout: how the "before"
column was taken) and a `hardhat node`, both on loopback. On each it funds an account,
deploys web3's Emitter test contract and emits one event, then sends the same list of
`METHODS` with params built from that context, in order (a filter is created before its
changes are read, a snapshot taken before it is reverted). A method "answers" when the
reply holds a `result`; anything else is shown as its error code. Prints one row per
method (method, ours, hardhat) and writes bench/results/rpc_methods.json (`--out`).

    PYTHONPATH=. python bench/rpc_methods.py [--tree DIR] [--label before|after] [--out F]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from eth_account import Account
from web3 import HTTPProvider, Web3
from web3._utils.contract_sources.contract_data.emitter_contract import EMITTER_CONTRACT_DATA

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fixtures.ports import free_port  # noqa: E402
from tests.marketplace.escrow.harness import HardhatNode  # noqa: E402

Ctx = dict[str, Any]
P = Callable[[Ctx], list[Any]]


def _none(c: Ctx) -> list[Any]:
    return []


def _tx(c: Ctx) -> dict[str, Any]:
    return {"from": c["acct"], "to": c["contract"], "data": c["call_data"]}


# (method, params from context). ~74 methods a wallet, library or explorer may call.
METHODS: list[tuple[str, P]] = [
    ("web3_clientVersion", _none),
    ("web3_sha3", lambda c: ["0x68656c6c6f"]),
    ("net_version", _none),
    ("net_listening", _none),
    ("net_peerCount", _none),
    ("eth_protocolVersion", _none),
    ("eth_chainId", _none),
    ("eth_syncing", _none),
    ("eth_coinbase", _none),
    ("eth_mining", _none),
    ("eth_hashrate", _none),
    ("eth_accounts", _none),
    ("eth_blockNumber", _none),
    ("eth_gasPrice", _none),
    ("eth_maxPriorityFeePerGas", _none),
    ("eth_blobBaseFee", _none),
    ("eth_feeHistory", lambda c: ["0x3", "latest", [25, 75]]),
    ("eth_getBalance", lambda c: [c["acct"], "latest"]),
    ("eth_getStorageAt", lambda c: [c["contract"], "0x0", "latest"]),
    ("eth_getTransactionCount", lambda c: [c["acct"], "latest"]),
    ("eth_getCode", lambda c: [c["contract"], "latest"]),
    ("eth_getProof", lambda c: [c["contract"], ["0x0"], "latest"]),
    ("eth_call", lambda c: [_tx(c), "latest"]),
    ("eth_estimateGas", lambda c: [_tx(c)]),
    ("eth_createAccessList", lambda c: [_tx(c), "latest"]),
    ("eth_simulateV1", lambda c: [{"blockStateCalls": [{"calls": [_tx(c)]}]}, "latest"]),
    ("eth_sendRawTransaction", lambda c: [c["raw_tx"]]),
    ("eth_sendTransaction", lambda c: [{"from": c["signer"], "to": c["acct"], "value": "0x1"}]),
    ("eth_sign", lambda c: [c["signer"], "0x68656c6c6f"]),
    ("personal_sign", lambda c: ["0x68656c6c6f", c["signer"]]),
    (
        "eth_signTransaction",
        lambda c: [{"from": c["signer"], "to": c["acct"], "value": "0x1", "gas": "0x5208"}],
    ),
    ("eth_signTypedData_v4", lambda c: [c["signer"], json.dumps(TYPED_DATA)]),
    ("eth_getBlockByNumber", lambda c: ["latest", False]),
    ("eth_getBlockByHash", lambda c: [c["block_hash"], True]),
    ("eth_getHeaderByNumber", lambda c: ["latest"]),
    ("eth_getHeaderByHash", lambda c: [c["block_hash"]]),
    ("eth_getBlockTransactionCountByNumber", lambda c: [c["block_number"]]),
    ("eth_getBlockTransactionCountByHash", lambda c: [c["block_hash"]]),
    ("eth_getBlockReceipts", lambda c: [c["block_number"]]),
    ("eth_getUncleCountByBlockNumber", lambda c: [c["block_number"]]),
    ("eth_getUncleCountByBlockHash", lambda c: [c["block_hash"]]),
    ("eth_getUncleByBlockNumberAndIndex", lambda c: [c["block_number"], "0x0"]),
    ("eth_getUncleByBlockHashAndIndex", lambda c: [c["block_hash"], "0x0"]),
    ("eth_getTransactionByHash", lambda c: [c["tx_hash"]]),
    ("eth_getTransactionByBlockNumberAndIndex", lambda c: [c["block_number"], "0x0"]),
    ("eth_getTransactionByBlockHashAndIndex", lambda c: [c["block_hash"], "0x0"]),
    ("eth_getTransactionReceipt", lambda c: [c["tx_hash"]]),
    ("eth_getLogs", lambda c: [{"fromBlock": "0x0", "address": c["contract"]}]),
    ("eth_newFilter", lambda c: [{"fromBlock": "0x0", "address": c["contract"]}]),
    ("eth_newBlockFilter", _none),
    ("eth_newPendingTransactionFilter", _none),
    ("eth_getFilterChanges", lambda c: [c.get("filter_id", "0x1")]),
    ("eth_getFilterLogs", lambda c: [c.get("filter_id", "0x1")]),
    ("eth_uninstallFilter", lambda c: [c.get("filter_id", "0x1")]),
    ("eth_subscribe", lambda c: ["newHeads"]),
    ("eth_unsubscribe", lambda c: ["0x1"]),
    ("eth_pendingTransactions", _none),
    ("eth_getWork", _none),
    ("eth_submitWork", lambda c: ["0x" + "00" * 8, "0x" + "00" * 32, "0x" + "00" * 32]),
    ("eth_submitHashrate", lambda c: ["0x" + "00" * 32, "0x" + "00" * 32]),
    ("txpool_status", _none),
    ("txpool_content", _none),
    ("txpool_inspect", _none),
    ("debug_traceTransaction", lambda c: [c["tx_hash"], {"tracer": "callTracer"}]),
    ("debug_traceCall", lambda c: [_tx(c), "latest", {"tracer": "callTracer"}]),
    ("debug_traceBlockByNumber", lambda c: [c["block_number"], {"tracer": "callTracer"}]),
    ("debug_traceBlockByHash", lambda c: [c["block_hash"], {"tracer": "callTracer"}]),
    ("debug_getRawTransaction", lambda c: [c["tx_hash"]]),
    ("debug_getRawBlock", lambda c: [c["block_number"]]),
    ("debug_getRawHeader", lambda c: [c["block_number"]]),
    ("debug_getRawReceipts", lambda c: [c["block_number"]]),
    ("admin_nodeInfo", _none),
    ("admin_peers", _none),
    ("evm_snapshot", _none),
    ("evm_revert", lambda c: [c.get("snapshot_id", "0x1")]),
    ("evm_mine", _none),
    ("evm_increaseTime", lambda c: [60]),
]

TYPED_DATA = {
    "types": {
        "EIP712Domain": [{"name": "name", "type": "string"}],
        "Mail": [{"name": "contents", "type": "string"}],
    },
    "primaryType": "Mail",
    "domain": {"name": "probe"},
    "message": {"contents": "hello"},
}


def _rpc(url: str, method: str, params: list[Any]) -> dict[str, Any]:
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    try:
        resp = httpx.post(url, json=body, timeout=30)
    except httpx.HTTPError as exc:
        return {"error": {"code": "http", "message": str(exc)}}
    if resp.status_code != 200:
        return {"error": {"code": f"http {resp.status_code}", "message": resp.text[:200]}}
    return resp.json()


def _prepare(url: str, fund: Callable[[str], None]) -> Ctx:
    """Fund an account, deploy the Emitter, emit one event; the context params use."""
    w3 = Web3(HTTPProvider(url, request_kwargs={"timeout": 30}))
    acct = Account.create()
    fund(acct.address)
    chain_id = w3.eth.chain_id
    base = w3.eth.get_block("latest")["baseFeePerGas"]
    fees = {"maxFeePerGas": 2 * base + 10**9, "maxPriorityFeePerGas": 10**9, "chainId": chain_id}

    def send(tx: dict[str, Any]) -> Any:
        tx = {**fees, "nonce": w3.eth.get_transaction_count(acct.address), **tx}
        h = w3.eth.send_raw_transaction(acct.sign_transaction(tx).raw_transaction)
        return w3.eth.wait_for_transaction_receipt(h, timeout=30)

    deployed = send({"data": EMITTER_CONTRACT_DATA["bytecode"], "gas": 2_000_000})
    emitter = w3.eth.contract(address=deployed["contractAddress"], abi=EMITTER_CONTRACT_DATA["abi"])
    call_data = emitter.encode_abi("logDouble", args=[9, 1, 2])
    mined = send({"to": emitter.address, "data": call_data, "gas": 200_000})
    raw = acct.sign_transaction(
        {
            **fees,
            "nonce": w3.eth.get_transaction_count(acct.address),
            "to": acct.address,
            "value": 1,
            "gas": 21000,
        }
    ).raw_transaction
    accounts = w3.eth.accounts
    return {
        "acct": acct.address,
        "signer": accounts[0] if accounts else acct.address,
        "contract": emitter.address,
        "call_data": call_data,
        "tx_hash": "0x" + bytes(mined["transactionHash"]).hex(),
        "block_hash": "0x" + bytes(mined["blockHash"]).hex(),
        "block_number": hex(mined["blockNumber"]),
        "raw_tx": "0x" + bytes(raw).hex(),
    }


def probe(url: str, ctx: Ctx) -> dict[str, str]:
    out: dict[str, str] = {}
    for method, params in METHODS:
        reply = _rpc(url, method, params(ctx))
        if "result" in reply:
            out[method] = "ok"
            if method == "eth_newFilter":
                ctx["filter_id"] = reply["result"]
            if method == "evm_snapshot":
                ctx["snapshot_id"] = reply["result"]
        else:
            err = reply.get("error") or {}
            out[method] = f"err {err.get('code')}"
    return out


class ServedTree:
    """`dcm serve` from source tree `tree` on a free loopback port (SQLite, dev mode)."""

    def __init__(self, tree: Path, work: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ)
        env.pop("DCM_DATABASE_URL", None)
        env.update(
            PYTHONPATH=str(tree),
            DCM_DATA_DIR=str(work / "data"),
            DCM_ENVIRONMENT="development",
            DCM_PUBLIC_URL=self.url,
        )
        py = [sys.executable, "-m", "dcm.cli"]
        subprocess.run([*py, "db", "upgrade"], env=env, cwd=tree, check=True, capture_output=True)
        self.log = (work / "serve.log").open("wb")
        self.proc = subprocess.Popen(
            [*py, "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            env=env,
            cwd=tree,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("dcm serve exited; see " + self.log.name)
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("dcm serve did not start")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.log.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tree", type=Path, default=ROOT, help="source tree of the node to probe")
    ap.add_argument("--label", default="ours")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "rpc_methods.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "hh").mkdir()
        (work / "dcm").mkdir()
        hardhat = HardhatNode(work / "hh")
        served = ServedTree(args.tree.resolve(), work / "dcm")
        try:
            hw3 = Web3(HTTPProvider(hardhat.url))

            def hh_fund(address: str) -> None:
                hw3.provider.make_request("hardhat_setBalance", [address, hex(10**20)])

            def our_fund(address: str) -> None:
                body = {"address": address, "amount": "10"}
                httpx.post(served.url + "/chain/faucet", json=body, timeout=30).raise_for_status()

            ours = probe(served.url + "/chain/rpc", _prepare(served.url + "/chain/rpc", our_fund))
            theirs = probe(hardhat.url, _prepare(hardhat.url, hh_fund))
        finally:
            served.stop()
            hardhat.stop()
    width = max(len(m) for m, _ in METHODS)
    print(f"{'method':<{width}}  {args.label:<12}  hardhat")
    for method, _ in METHODS:
        print(f"{method:<{width}}  {ours[method]:<12}  {theirs[method]}")
    n_ours = sum(v == "ok" for v in ours.values())
    n_hh = sum(v == "ok" for v in theirs.values())
    print(f"answered: {args.label} {n_ours}/{len(METHODS)}, hardhat {n_hh}/{len(METHODS)}")
    previous = json.loads(args.out.read_text()) if args.out.exists() else {}
    previous.setdefault("columns", {})
    previous["methods"] = [m for m, _ in METHODS]
    previous["columns"][args.label] = ours
    previous["columns"]["hardhat"] = theirs
    previous.setdefault("answered", {})[args.label] = n_ours
    previous["answered"]["hardhat"] = n_hh
    args.out.write_text(json.dumps(previous, indent=2, sort_keys=True) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
