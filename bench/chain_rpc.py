"""Throughput of signed transactions through the embedded chain's JSON-RPC.

Sends N sequential value transfers, each followed by its receipt, in the tuned style
of OFFLINE.md (fixed gas limit, locally tracked nonce, fees fetched once) through:
  direct   - Web3(EthereumTesterProvider()) in-process (no journal, no node)
  host     - the node's EmbeddedChainHost w3 (in-process dispatcher, fsynced journal)
  http     - a real `dcm serve` on loopback, web3 HTTPProvider -> POST /chain/rpc
and, with `--baseline-src DIR` (a checkout of the code before a change, say
`git worktree add /tmp/base main`), `http_baseline`: the same against `dcm serve` run
from DIR, so that a change is measured against its baseline in the same run.

What bounds `http`, measured with it: the same client against two servers that do no
chain work, answering each method with the result the chain gave once:
  null_inproc - in-process (the host's provider): the client's own work (signing,
                web3's formatting), what `host` costs beyond the chain
  null_http   - over HTTP, a bare Starlette app under `dcm serve`'s server settings
                (`bench/_null_rpc.py`): the client's work and the HTTP exchange
  null_raw    - over HTTP, no web framework: an asyncio protocol on uvloop that reads
                each request and writes its answer (`bench/_null_rpc.RawRpc`)
and, with `--wallets K` (default 4), what the chain serves many wallets at once: K
wallets each sending its share of the N transfers, all at the same time,
  host_wallets - K threads on the in-process host, each a web3 of its own
  http_wallets - K processes (each wallet a client of its own) against the node over HTTP
Sequential transfers add the client's time to the chain's: over HTTP the client's HTTP
work alone caps one wallet (`ceiling_any_server`); with many wallets the node's chain is
busy while a client formats its next request. In-process, threads share one interpreter,
so `host_wallets` is what the chain itself serves in one process.
The null servers' difference is what HTTP costs a transaction when the server does nothing
(`http_floor_ms_per_tx`); `ceiling_http_vs_host` is the ratio `http` would reach if the
node's HTTP handling cost no more than the bare app's, and `node_http_ms_per_tx` what it
costs beyond that. `raw_floor_ms_per_tx` and `ceiling_any_server` are the same against
`null_raw`: what the client and the machine cost a transaction over HTTP, whatever the
server, and the most any server could reach with this client.

The modes take turns, `--rounds` times, and each figure is the median of its rounds: the
machine is shared, and a burst of load in one mode's only run would otherwise decide the
ratio. Every receipt is there when the first poll asks (each transaction is mined as it
arrives), so web3's poll interval never enters the figure; the script checks that.
`cpu_ms_per_tx` is the CPU time one transaction costs the benchmark's process and, over
HTTP, the node's process too (`*_node_cpu_ms_per_tx`, its share): a figure that load on
the machine moves much less than tx/s.

Prints the figures and writes bench/results/chain_rpc.json.

    PYTHONPATH=. python bench/chain_rpc.py [N] [--rounds R] [--baseline-src DIR]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path

import httpx
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import EthereumTesterProvider, HTTPProvider, Web3
from web3.types import RPCResponse

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import _null_rpc  # noqa: E402
from node.chain.host import EmbeddedChainHost, InProcessProvider  # noqa: E402
from node.chain.keys import load_or_create_operator_key  # noqa: E402
from tests.fixtures.ports import free_port  # noqa: E402
from tests.fixtures.served import dcm_env  # noqa: E402


def transfer_fields(w3: Web3) -> dict[str, int]:
    """What every transfer of a run carries, asked of the chain once (OFFLINE.md's tuned
    style): a fixed gas limit, the chain id and fees well over the current base fee."""
    base = w3.eth.get_block("latest")["baseFeePerGas"]
    return {
        "gas": 21000,
        "chainId": w3.eth.chain_id,
        "maxFeePerGas": 4 * base + 10**9,
        "maxPriorityFeePerGas": 10**9,
    }


def run(
    w3: Web3,
    sender,
    n: int,
    cpu_of_server: Callable[[], float] | None = None,
    chain: bool = True,
) -> dict:
    """N transfers from `sender`, each followed by its receipt: tx/s and CPU ms per tx.
    `chain`: a real chain, whose balances the run checks (the null servers have none)."""
    nonce = w3.eth.get_transaction_count(sender.address, "pending")
    fields = transfer_fields(w3)
    to = Account.create().address
    server_started = cpu_of_server() if cpu_of_server else 0.0
    cpu_started = time.process_time()
    started = time.perf_counter()
    for i in range(n):
        tx = {"to": to, "value": 1, "nonce": nonce + i, **fields}
        h = w3.eth.send_raw_transaction(sender.sign_transaction(tx).raw_transaction)
        # mined on arrival: the first ask has it (web3's wait_for_transaction_receipt asks
        # the same, then sleeps between asks; here a missing receipt fails the run)
        receipt = w3.eth.get_transaction_receipt(h)
        assert receipt["status"] == 1
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    server_cpu = (cpu_of_server() - server_started) if cpu_of_server else 0.0
    if chain:
        assert w3.eth.get_balance(to) == n
    return {
        "tx_per_s": n / elapsed,
        "cpu_ms_per_tx": 1000 * (cpu + server_cpu) / n,
        "node_cpu_ms_per_tx": 1000 * server_cpu / n,
    }


def fund(w3: Web3, funder, addresses: list[str], wei: int = 10**18) -> None:
    """Send `wei` to each of `addresses` from `funder` (mined on arrival)."""
    nonce = w3.eth.get_transaction_count(funder.address, "pending")
    fields = transfer_fields(w3)
    for i, address in enumerate(addresses):
        tx = {"to": address, "value": wei, "nonce": nonce + i, **fields}
        w3.eth.send_raw_transaction(funder.sign_transaction(tx).raw_transaction)


def at_once(wallets: int, n: int, one: Callable[[int, int], tuple[float, float, float]]) -> dict:
    """`wallets` wallets sending n // wallets transfers each, at the same time: `one(i, k)`
    runs wallet i's k transfers and returns when they started and ended (perf_counter: one
    clock for every process of the machine) and the CPU seconds its client spent. The rate
    counts from the first start to the last end."""
    each = n // wallets
    spans = one_each(wallets, lambda i: one(i, each))
    elapsed = max(end for _, end, _ in spans) - min(start for start, _, _ in spans)
    return {
        "tx_per_s": each * wallets / elapsed,
        "transactions": each * wallets,
        "clients_cpu_s": sum(c for *_, c in spans),  # one process each (not threads)
    }


def one_each(count: int, work: Callable[[int], tuple[float, float, float]]) -> list:
    """`work(i)` for i in range(count), each in a thread of its own, all at once."""
    results: list = [None] * count
    gate = threading.Barrier(count)

    def go(i: int) -> None:
        gate.wait()
        results[i] = work(i)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if any(r is None for r in results):
        raise RuntimeError("a wallet failed (see above)")
    return results


def _timed(w3: Web3, sender, k: int) -> tuple[float, float, float]:
    """`run` of k transfers: (start, end, CPU seconds of the process meanwhile)."""
    cpu = time.process_time()
    started = time.perf_counter()
    run(w3, sender, k)
    return started, time.perf_counter(), time.process_time() - cpu


def _wallet_process(conn: Connection, url: str, key: bytes) -> None:
    """One wallet of `http_wallets`, a process of its own: runs the transfers it is sent
    a count of, answers `_timed`'s figures; None ends it."""
    w3 = Web3(HTTPProvider(url))
    sender = Account.from_key(key)
    while (k := conn.recv()) is not None:
        conn.send(_timed(w3, sender, k))


class _HttpWallets:
    """K wallet processes against `url`, each with a funded key of its own."""

    def __init__(self, url: str, keys: list[bytes]) -> None:
        spawn = multiprocessing.get_context("spawn")  # a clean client, as a wallet's is
        self.pipes: list[Connection] = []
        self.procs = []
        for key in keys:
            parent, child = spawn.Pipe()
            proc = spawn.Process(target=_wallet_process, args=(child, url, key), daemon=True)
            proc.start()
            self.pipes.append(parent)
            self.procs.append(proc)

    def one(self, i: int, k: int) -> tuple[float, float, float]:
        self.pipes[i].send(k)
        return self.pipes[i].recv()

    def close(self) -> None:
        for pipe, proc in zip(self.pipes, self.procs, strict=True):
            pipe.send(None)
            proc.join(30)


def recorded_results(host: EmbeddedChainHost) -> dict[str, object]:
    """The result of each method `run` calls, as the host's chain answered it for one
    transfer of the operator's: what the null servers answer."""
    account = host.operator.account

    def ask(method: str, *params: object) -> object:
        call = {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
        return host.dispatcher.handle_one(call)["result"]

    results = {
        "eth_chainId": ask("eth_chainId"),
        "eth_getTransactionCount": ask("eth_getTransactionCount", account.address, "pending"),
        "eth_getBlockByNumber": ask("eth_getBlockByNumber", "latest", False),
    }
    base = int(results["eth_getBlockByNumber"]["baseFeePerGas"], 16)
    tx = {
        "to": Account.create().address,
        "value": 1,
        "gas": 21000,
        "nonce": int(results["eth_getTransactionCount"], 16),
        "chainId": int(results["eth_chainId"], 16),
        "maxFeePerGas": 4 * base + 10**9,
        "maxPriorityFeePerGas": 10**9,
    }
    raw = account.sign_transaction(tx).raw_transaction.to_0x_hex()
    results["eth_sendRawTransaction"] = ask("eth_sendRawTransaction", raw)
    results["eth_getTransactionReceipt"] = ask(
        "eth_getTransactionReceipt", results["eth_sendRawTransaction"]
    )
    return results


class _Recorded:
    """A dispatcher that answers each method with its recorded result (`null_inproc`)."""

    def __init__(self, results: dict[str, object]) -> None:
        self.results = results

    def handle_one(self, req: dict) -> RPCResponse:
        return {"jsonrpc": "2.0", "id": req["id"], "result": self.results[req["method"]]}


class _Node:
    """`dcm serve` (development: the faucet is mounted) from the source tree `src`."""

    def __init__(self, src: Path, data_dir: Path) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        env = dcm_env(data_dir, f"sqlite:///{data_dir}/node.sqlite3", DCM_PUBLIC_URL=self.url)
        env["PYTHONPATH"] = str(src)
        data_dir.mkdir(parents=True, exist_ok=True)
        cli = [sys.executable, "-m", "dcm.cli"]
        subprocess.run([*cli, "db", "upgrade"], env=env, cwd=src, check=True, capture_output=True)
        self._log = (data_dir / "node.log").open("ab")
        self.proc = subprocess.Popen(
            [*cli, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            cwd=src,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 180  # a loaded 2-core machine imports slowly
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"dcm serve from {src} did not start: {data_dir / 'node.log'}")

    def cpu_seconds(self) -> float:
        """User + system CPU of the node's process so far (Linux /proc)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def funded_account(self) -> LocalAccount:
        """A fresh account, funded by the faucet."""
        account = Account.create()
        resp = httpx.post(
            self.url + "/chain/faucet",
            json={"address": account.address, "amount": "1"},
            timeout=120,
        )
        resp.raise_for_status()
        return account

    def funded_w3(self) -> tuple[Web3, object]:
        return Web3(HTTPProvider(self.url + "/chain/rpc")), self.funded_account()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("n", nargs="?", type=int, default=200, help="transactions per run")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each mode, in turns")
    parser.add_argument("--baseline-src", type=Path, help="serve `http_baseline` from here")
    parser.add_argument("--wallets", type=int, default=4, help="wallets sending at once")
    args = parser.parse_args()
    n = args.n
    wallets = None

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        direct = Web3(EthereumTesterProvider())
        key = direct.provider.ethereum_tester.backend.account_keys[0]
        direct_sender = Account.from_key(key.to_bytes())
        chain_dir = tmp / "host" / "chain"
        host = EmbeddedChainHost(
            chain_dir, load_or_create_operator_key(chain_dir / "operator.key"), "in-process"
        )
        results = recorded_results(host)
        null_server, null_url = _null_rpc.start(results, tmp)
        raw_server, raw_url = _null_rpc.start(results, tmp, raw=True)
        nodes: dict[str, _Node] = {}
        try:
            nodes["http"] = _Node(ROOT, tmp / "node")
            if args.baseline_src:
                baseline = _Node(args.baseline_src.resolve(), tmp / "node-baseline")
                nodes["http_baseline"] = baseline
            null_sender = host.operator.account  # signs as in `host`; nothing is sent
            null_inproc = Web3(InProcessProvider(_Recorded(results)))
            null_http = Web3(HTTPProvider(null_url))
            null_raw = Web3(HTTPProvider(raw_url))
            modes: dict[str, Callable[[int], dict]] = {
                "direct": lambda k: run(direct, direct_sender, k),
                "host": lambda k: run(host.w3, host.operator.account, k),
                "null_inproc": lambda k: run(null_inproc, null_sender, k, chain=False),
                "null_http": lambda k: run(null_http, null_sender, k, chain=False),
                "null_raw": lambda k: run(null_raw, null_sender, k, chain=False),
            }
            for name, node in nodes.items():
                w3, sender = node.funded_w3()
                modes[name] = lambda k, w3=w3, sender=sender, node=node: run(
                    w3, sender, k, node.cpu_seconds
                )
            # many wallets at once: in-process threads, and processes over HTTP
            host_senders = [Account.create() for _ in range(args.wallets)]
            fund(host.w3, host.operator.account, [a.address for a in host_senders])
            host_w3s = [Web3(InProcessProvider(host.dispatcher)) for _ in host_senders]

            def host_wallets(k: int) -> dict:
                cpu = time.process_time()  # the threads' process: the clients and the chain
                figures = at_once(
                    args.wallets, k, lambda i, each: _timed(host_w3s[i], host_senders[i], each)
                )
                cpu = time.process_time() - cpu
                return {**figures, "cpu_ms_per_tx": 1000 * cpu / figures["transactions"]}

            modes["host_wallets"] = host_wallets
            node = nodes["http"]
            wallets = _HttpWallets(
                node.url + "/chain/rpc", [node.funded_account().key for _ in range(args.wallets)]
            )

            def http_wallets(k: int) -> dict:
                node_cpu = node.cpu_seconds()
                figures = at_once(args.wallets, k, wallets.one)
                node_cpu = node.cpu_seconds() - node_cpu
                count = figures["transactions"]
                return {
                    **figures,
                    "cpu_ms_per_tx": 1000 * (figures["clients_cpu_s"] + node_cpu) / count,
                    "node_cpu_ms_per_tx": 1000 * node_cpu / count,
                }

            modes["http_wallets"] = http_wallets
            for mode in modes.values():  # warm up: imports, connections, caches
                mode(10)
            rounds: dict[str, list[dict]] = {name: [] for name in modes}
            for r in range(args.rounds):
                for name, mode in modes.items():
                    rounds[name].append(mode(n))
                    print(f"round {r + 1} {name}: {rounds[name][-1]}", file=sys.stderr)
        finally:
            if wallets is not None:
                wallets.close()
            for node in nodes.values():
                node.stop()
            for server in (null_server, raw_server):
                server.terminate()
                server.wait(60)
            host.close()

    def median(name: str, key: str) -> float:
        return statistics.median(r[key] for r in rounds[name])

    out: dict[str, object] = {
        "transactions": n,
        "rounds": args.rounds,
        "method": "sequential signed EIP-1559 transfers, receipt fetched after each (mined on "
        "arrival: no polling sleep), fixed gas, local nonce; modes in turns, medians",
        "machine": f"{platform.machine()} {platform.python_version()} {os.cpu_count()} cpus",
        "load_average_at_end": os.getloadavg()[0],
    }
    for name in rounds:
        out[f"{name}_tx_per_s"] = round(median(name, "tx_per_s"), 2)
        out[f"{name}_cpu_ms_per_tx"] = round(median(name, "cpu_ms_per_tx"), 2)
        # of which the node's process (the rest: the clients')
        if name in nodes or name == "http_wallets":
            out[f"{name}_node_cpu_ms_per_tx"] = round(median(name, "node_cpu_ms_per_tx"), 2)
        out[f"{name}_tx_per_s_rounds"] = [round(r["tx_per_s"], 2) for r in rounds[name]]
    host_rate = median("host", "tx_per_s")
    out["ratio_host_vs_direct"] = round(host_rate / median("direct", "tx_per_s"), 3)
    for name in nodes:
        out[f"ratio_{name}_vs_host"] = round(median(name, "tx_per_s") / host_rate, 3)
        # per round too: each against the in-process run just before it
        out[f"ratio_{name}_vs_host_rounds"] = [
            round(h["tx_per_s"] / i["tx_per_s"], 3)
            for h, i in zip(rounds[name], rounds["host"], strict=True)
        ]
    out["wallets"] = args.wallets
    wallets_rate = median("host_wallets", "tx_per_s")
    out["ratio_host_wallets_vs_host"] = round(wallets_rate / host_rate, 3)
    out["ratio_http_wallets_vs_host_wallets"] = round(
        median("http_wallets", "tx_per_s") / wallets_rate, 3
    )
    out["ratio_http_wallets_vs_host_wallets_rounds"] = [
        round(h["tx_per_s"] / i["tx_per_s"], 3)
        for h, i in zip(rounds["http_wallets"], rounds["host_wallets"], strict=True)
    ]
    # against the best the chain does in-process, one wallet or many: the headline
    out["ratio_http_wallets_vs_best_in_process"] = round(
        median("http_wallets", "tx_per_s") / max(host_rate, wallets_rate), 3
    )
    # per transaction, ms: what HTTP costs when the server does nothing, and the ratio
    # `http` would reach if the node's HTTP handling cost no more than the bare app's
    ms = {name: 1000 / median(name, "tx_per_s") for name in rounds}
    floor = ms["null_http"] - ms["null_inproc"]
    out["http_floor_ms_per_tx"] = round(floor, 3)
    out["ceiling_http_vs_host"] = round(ms["host"] / (ms["host"] + floor), 3)
    for name in nodes:
        out[f"{name}_node_http_ms_per_tx"] = round(ms[name] - ms["host"] - floor, 3)
    raw_floor = ms["null_raw"] - ms["null_inproc"]
    out["raw_floor_ms_per_tx"] = round(raw_floor, 3)
    out["ceiling_any_server"] = round(ms["host"] / (ms["host"] + raw_floor), 3)
    print(json.dumps(out, indent=2))
    (ROOT / "bench" / "results").mkdir(parents=True, exist_ok=True)
    (ROOT / "bench" / "results" / "chain_rpc.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
