"""Start time of the node's embedded chain on a journal of N transactions (issue 12).

Builds a chain of N transactions through `EmbeddedChainHost` (its journal and its
periodic snapshots, `DCM_CHAIN_SNAPSHOT_EVERY`): value transfers between 20 accounts
signed locally, and every tenth a contract call (a storage write or a log). Then, in
the same run, times building the host (what a node start does for the chain) on:
  full      - no snapshot: the whole journal replayed (what every start did before)
  crash     - a periodic snapshot and the `every` records journaled after it (the
              worst case after a crash)
  clean     - the snapshot written at clean shutdown: nothing left to replay
Each start is checked to reach the same head block hash, balances, receipts and logs as
the chain that wrote the journal. Prints the figures, cProfiles of the snapshot starts
(a second start of each, so the timed one runs unprofiled), and writes
bench/results/chain_start.json.

    PYTHONPATH=. python bench/chain_start.py [N] [--profile-full]
"""

from __future__ import annotations

import cProfile
import io
import json
import platform
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from eth_account import Account
from web3 import Web3
from web3._utils.contract_sources.contract_data.emitter_contract import EMITTER_CONTRACT_DATA
from web3._utils.contract_sources.contract_data.math_contract import MATH_CONTRACT_DATA

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from node.chain.host import EmbeddedChainHost  # noqa: E402
from node.chain.keys import load_or_create_operator_key  # noqa: E402

EVERY = 500
ACCOUNTS = 20


def open_host(chain_dir: Path, keep: int, every: int) -> tuple[EmbeddedChainHost, float]:
    operator = load_or_create_operator_key(chain_dir / "operator.key")
    started = time.perf_counter()
    host = EmbeddedChainHost(
        chain_dir, operator, "in-process", snapshot_every=every, snapshot_keep=keep
    )
    return host, time.perf_counter() - started


class Builder:
    def __init__(self, host: EmbeddedChainHost) -> None:
        self.host = host
        self.evm = host.evm
        self.w3 = host.w3
        self.chain_id = host.chain_id
        self.fees = {"maxFeePerGas": 10**10, "maxPriorityFeePerGas": 1}
        self.nonces: dict[str, int] = {}
        self.tx_hashes: list[str] = []
        self.accounts = [Account.create() for _ in range(ACCOUNTS)]

    def send(self, acct: Any, tx: dict[str, Any]) -> str:
        nonce = self.nonces.get(acct.address, 0)
        tx = {**tx, "nonce": nonce, "chainId": self.chain_id, **self.fees}
        tx_hash = self.evm.send_raw_transaction(acct.sign_transaction(tx).raw_transaction)
        self.nonces[acct.address] = nonce + 1
        self.tx_hashes.append(tx_hash)
        return tx_hash

    def deploy(self, acct: Any, data: dict[str, Any]) -> Any:
        factory = self.w3.eth.contract(abi=data["abi"], bytecode=data["bytecode"])
        tx = factory.constructor().build_transaction({"from": acct.address, "gas": 3_000_000})
        tx.pop("to", None)
        for k in ("nonce", "chainId", "maxFeePerGas", "maxPriorityFeePerGas", "gasPrice"):
            tx.pop(k, None)
        tx_hash = self.send(acct, tx)
        address = self.evm.get_receipt(tx_hash)["contract_address"]
        return self.w3.eth.contract(address=address, abi=data["abi"])

    def build(self, n: int) -> dict[str, Any]:
        operator = self.host.operator
        assert operator is not None
        op = operator.account
        for acct in self.accounts:
            self.send(op, {"to": acct.address, "value": 10**22, "gas": 21000})
        math = self.deploy(self.accounts[0], MATH_CONTRACT_DATA)
        emitter = self.deploy(self.accounts[1], EMITTER_CONTRACT_DATA)
        started = time.perf_counter()
        i = 0
        while len(self.tx_hashes) < n:
            acct = self.accounts[i % ACCOUNTS]
            if i % 20 == 5:
                call = math.functions.incrementCounter(i)
                tx = call.build_transaction({"from": acct.address, "gas": 100_000, "nonce": 0})
            elif i % 20 == 15:
                call = emitter.functions.logDouble(1, i, i + 1)  # LogDoubleWithIndex
                tx = call.build_transaction({"from": acct.address, "gas": 100_000, "nonce": 0})
            else:
                to = self.accounts[(i + 1) % ACCOUNTS].address
                tx = {"to": to, "value": 1 + i, "gas": 21000}
            for k in ("nonce", "chainId", "maxFeePerGas", "maxPriorityFeePerGas", "gasPrice"):
                tx.pop(k, None)
            self.send(acct, tx)
            i += 1
        elapsed = time.perf_counter() - started
        return {"math": math.address, "build_tx_per_s": round((n - ACCOUNTS - 2) / elapsed, 1)}


def fingerprint(host: EmbeddedChainHost, addresses: list[str], tx_hashes: list[str]) -> str:
    evm = host.evm
    head = evm.block_number()
    state = {
        "head": head,
        "head_hash": evm.get_block(head, False)["hash"],
        "balances": [evm.get_balance(a) for a in addresses],
        "nonces": [evm.get_nonce(a) for a in addresses],
        "receipts": [evm.get_receipt(h) for h in tx_hashes[:: max(1, len(tx_hashes) // 50)]],
        "logs": evm.get_logs(0, head, None, []),
    }
    return Web3.to_json(state)  # type: ignore[arg-type]


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    n = int(args[0]) if args else 10_000
    profile_full = "--profile-full" in sys.argv
    every = min(EVERY, max(1, n // 4))  # the node's default; smaller for a short trial
    out: dict[str, Any] = {"transactions": n, "snapshot_every": every}
    with tempfile.TemporaryDirectory() as tmp:
        chain_dir = Path(tmp) / "chain"
        host, _ = open_host(chain_dir, keep=2, every=every)
        builder = Builder(host)
        out.update(builder.build(n))
        addresses = [a.address for a in builder.accounts] + [builder.host.operator.address]
        reference = fingerprint(host, addresses, builder.tx_hashes)
        assert host.evm.snapshots is not None
        host.evm.snapshots.wait()
        host.evm.journal.close()  # a crash: no snapshot at shutdown
        journal = chain_dir / "journal.jsonl"
        out["journal_records"] = sum(1 for _ in journal.open("rb"))
        out["journal_mib"] = round(journal.stat().st_size / 2**20, 2)
        snaps = sorted((chain_dir / "snapshots").glob("*.snap"))
        print("snapshots after the build:", [p.name for p in snaps])

        # full replay: the snapshots out of the way
        shutil.move(chain_dir / "snapshots", chain_dir / "snapshots.aside")
        profiler = cProfile.Profile() if profile_full else None
        if profiler:
            profiler.enable()
        host, out["full_replay_start_s"] = open_host(chain_dir, keep=0, every=every)
        if profiler:
            profiler.disable()
            out["profile_full"] = _top(profiler, 25)
        assert fingerprint(host, addresses, builder.tx_hashes) == reference, "full replay"
        host.close()
        shutil.move(chain_dir / "snapshots.aside", chain_dir / "snapshots")

        # after a crash, the worst case: the newest periodic snapshot lost, the one before
        # it and the `every` records journaled after it
        snaps = sorted((chain_dir / "snapshots").glob("*.snap"), key=_records)
        if len(snaps) > 1:
            snaps.pop().unlink()
        newest = snaps[-1]
        out["crash_tail_records"] = out["journal_records"] - _records(newest)
        out["snapshot_mib"] = round(newest.stat().st_size / 2**20, 2)
        kept = newest.read_bytes()
        host, out["snapshot_crash_start_s"] = open_host(chain_dir, keep=2, every=every)
        assert fingerprint(host, addresses, builder.tx_hashes) == reference, "snapshot + tail"
        host.evm.journal.close()  # the same crash again, under cProfile
        newest.write_bytes(kept)
        profiler = cProfile.Profile()
        profiler.enable()
        host, _ = open_host(chain_dir, keep=2, every=every)
        profiler.disable()
        out["profile_crash_start"] = _top(profiler, 25)
        started = time.perf_counter()
        host.close()  # writes the snapshot at the head
        out["shutdown_snapshot_write_s"] = round(time.perf_counter() - started, 3)

        # after a clean shutdown: nothing to replay
        host, out["snapshot_clean_start_s"] = open_host(chain_dir, keep=2, every=every)
        assert fingerprint(host, addresses, builder.tx_hashes) == reference, "snapshot"
        host.evm.journal.close()
        profiler = cProfile.Profile()
        profiler.enable()
        host, _ = open_host(chain_dir, keep=2, every=every)
        profiler.disable()
        out["profile_clean_start"] = _top(profiler, 25)
        host.close()

    for key in ("full_replay_start_s", "snapshot_crash_start_s", "snapshot_clean_start_s"):
        out[key] = round(out[key], 3)
    out["speedup_clean"] = round(out["full_replay_start_s"] / out["snapshot_clean_start_s"], 1)
    out["full_replay_tx_per_s"] = round(n / out["full_replay_start_s"], 1)
    out["python"] = platform.python_version()
    out["machine"] = platform.machine()
    out["cpus"] = __import__("os").cpu_count()
    for key, value in out.items():
        if not key.startswith("profile"):
            print(f"{key}: {value}")
    print("\ncProfile of the crash start (cumulative):\n" + out["profile_crash_start"])
    print("\ncProfile of the clean start (cumulative):\n" + out["profile_clean_start"])
    if "profile_full" in out:
        print("\ncProfile of the full replay (cumulative):\n" + out["profile_full"])
    results = ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "chain_start.json").write_text(json.dumps(out, indent=2) + "\n")


def _records(path: Path) -> int:
    return int(path.stem.split("-")[0])


def _top(profiler: cProfile.Profile, lines: int) -> str:
    buf = io.StringIO()
    pstats.Stats(profiler, stream=buf).sort_stats("cumulative").print_stats(lines)
    text = buf.getvalue()
    return text[text.index("ncalls") :] if "ncalls" in text else text


if __name__ == "__main__":
    main()
