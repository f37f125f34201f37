"""Throughput of signed transactions through the embedded chain's JSON-RPC.

Sends N sequential value transfers, each followed by its receipt, in the tuned style
of OFFLINE.md (fixed gas limit, locally tracked nonce, fees fetched once) through:
  direct   - Web3(EthereumTesterProvider()) in-process (the baseline, no journal)
  host     - the node's EmbeddedChainHost w3 (in-process dispatcher, fsynced journal)
  http     - a real `dcm serve` on loopback, web3 HTTPProvider -> POST /chain/rpc
Prints tx/s and writes bench/results/chain_rpc.json.

    PYTHONPATH=. python bench/chain_rpc.py [N]
"""

from __future__ import annotations

import json
import platform
import sys
import tempfile
import time
from pathlib import Path

from eth_account import Account
from web3 import EthereumTesterProvider, HTTPProvider, Web3

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from node.chain.host import EmbeddedChainHost  # noqa: E402
from node.chain.keys import load_or_create_operator_key  # noqa: E402


def run(w3: Web3, sender, n: int) -> float:
    nonce = w3.eth.get_transaction_count(sender.address, "pending")
    base = w3.eth.get_block("latest")["baseFeePerGas"]
    fees = {"maxFeePerGas": 4 * base + 10**9, "maxPriorityFeePerGas": 10**9}
    chain_id = w3.eth.chain_id
    to = Account.create().address
    started = time.perf_counter()
    for i in range(n):
        tx = {"to": to, "value": 1, "gas": 21000, "nonce": nonce + i, "chainId": chain_id, **fees}
        h = w3.eth.send_raw_transaction(sender.sign_transaction(tx).raw_transaction)
        receipt = w3.eth.wait_for_transaction_receipt(h, timeout=30, poll_latency=0.01)
        assert receipt["status"] == 1
    elapsed = time.perf_counter() - started
    assert w3.eth.get_balance(to) == n
    return n / elapsed


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    results: dict[str, float] = {}

    direct = Web3(EthereumTesterProvider())
    key = direct.provider.ethereum_tester.backend.account_keys[0]
    results["direct_eth_tester_tx_per_s"] = run(direct, Account.from_key(key.to_bytes()), n)

    with tempfile.TemporaryDirectory() as tmp:
        chain_dir = Path(tmp) / "chain"
        host = EmbeddedChainHost(
            chain_dir, load_or_create_operator_key(chain_dir / "operator.key"), "in-process"
        )
        results["host_in_process_tx_per_s"] = run(host.w3, host.operator.account, n)
        host.close()

    from tests.node.chain.test_http import Served

    with tempfile.TemporaryDirectory() as tmp:
        served = Served(Path(tmp) / "node", f"sqlite:///{tmp}/node.sqlite3")
        try:
            sender = Account.create()
            import httpx

            httpx.post(
                served.url + "/chain/faucet", json={"address": sender.address, "amount": "1"}
            )
            w3 = Web3(HTTPProvider(served.url + "/chain/rpc"))
            results["http_chain_rpc_tx_per_s"] = run(w3, sender, n)
        finally:
            served.stop()

    base = results["direct_eth_tester_tx_per_s"]
    out = {
        "transactions": n,
        "method": "sequential signed EIP-1559 transfers, receipt awaited, fixed gas, local nonce",
        "machine": f"{platform.machine()} {platform.python_version()}",
        **{k: round(v, 2) for k, v in results.items()},
        "ratio_host_vs_direct": round(results["host_in_process_tx_per_s"] / base, 3),
        "ratio_http_vs_direct": round(results["http_chain_rpc_tx_per_s"] / base, 3),
    }
    print(json.dumps(out, indent=2))
    (ROOT / "bench" / "results").mkdir(parents=True, exist_ok=True)
    (ROOT / "bench" / "results" / "chain_rpc.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
