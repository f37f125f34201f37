"""End-to-end fixtures: a real `dcm serve`, wallets funded by its dev faucet, a tiny YOLO
dataset, and the provider daemon with the real Ultralytics executor."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from web3 import Web3

from marketplace.datasets.synthetic import write_detection_dataset
from marketplace.escrow.client import JobEscrow
from marketplace.sdk.client import NodeClient
from tests.fixtures.engines import require_engine
from tests.fixtures.served import REPO, Served, dcm_env

REWARD_WEI = 10**16  # 0.01 ETH


@pytest.fixture
def training_available() -> None:
    require_engine(
        importlib.util.find_spec("ultralytics") is not None,
        "ultralytics not installed (pip install -e '.[train]')",
    )


@pytest.fixture
def node(request: pytest.FixtureRequest, tmp_path: Path, database_url: str) -> Iterator[Served]:
    """A served node on the embedded chain, or (param "hardhat") on a real Hardhat node
    through DCM_CHAIN_RPC_URL with a keystore operator that deploys the escrow."""
    env = {"DCM_LEASES__LEASE_SECONDS": "10", "DCM_LEASES__REAPER_INTERVAL_SECONDS": "0.5"}
    hardhat = None
    if getattr(request, "param", "embedded") == "hardhat":
        from tests.marketplace.escrow.harness import HardhatNode, hardhat_available

        require_engine(hardhat_available(), "Hardhat not installed (npm ci at the repo root)")
        hardhat = HardhatNode(tmp_path)
        operator = Account.create()
        keyfile = tmp_path / "operator.json"
        keyfile.write_text(json.dumps(Account.encrypt(operator.key, "operator")))
        _set_balance(hardhat.url, operator.address, 10**20)
        env.update(
            DCM_CHAIN_RPC_URL=hardhat.url,
            DCM_CHAIN_OPERATOR_KEYFILE=str(keyfile),
            DCM_CHAIN_OPERATOR_PASSWORD="operator",
            DCM_CHAIN_CONFIRMATIONS="0",
            DCM_CHAIN_WATCH_INTERVAL_SECONDS="0.5",
        )
    served = Served(tmp_path / "node", database_url, **env)
    served.chain_rpc = hardhat.url if hardhat else served.url + "/chain/rpc"  # type: ignore[attr-defined]
    try:
        yield served
    finally:
        served.stop()
        if hardhat is not None:
            hardhat.stop()


def _set_balance(rpc_url: str, address: str, wei: int) -> None:
    w3 = Web3(Web3.HTTPProvider(rpc_url))
    w3.provider.make_request("hardhat_setBalance", [address, hex(wei)])


def faucet(node: Served, address: str, eth: str) -> None:
    """Give `address` ether: the node's dev faucet, or Hardhat's balance cheat code."""
    rpc = getattr(node, "chain_rpc", node.url + "/chain/rpc")
    if not rpc.startswith(node.url):
        _set_balance(rpc, address, int(float(eth) * 10**18))
        return
    resp = httpx.post(node.url + "/chain/faucet", json={"address": address, "amount": eth})
    assert resp.status_code == 200, resp.text


@pytest.fixture
def requester(node: Served) -> Any:
    account = Account.create()
    faucet(node, account.address, "1")
    return account


def new_provider(node: Served) -> Any:
    account = Account.create()
    faucet(node, account.address, "0.2")
    return account


def escrow_of(node: Served) -> JobEscrow:
    info = httpx.get(node.url + "/chain/info").json()
    return JobEscrow(Web3(Web3.HTTPProvider(info["rpc_url"])), info["escrow_address"])


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return write_detection_dataset(tmp_path / "shapes", train=16, val=8, size=64)


def fund(node: Served, job_id: int, requester: Any) -> None:
    """Fund the job's escrow from the requester's own wallet: the call the node prepared,
    signed locally, sent through /chain/rpc."""
    escrow = escrow_of(node)
    resp = httpx.get(f"{node.url}/jobs/{job_id}/funding")
    if resp.status_code == 200:  # the node's prepared call (funding gate)
        call = resp.json()["data"] if "data" in resp.json() else resp.json()
        w3 = escrow.w3
        tx = {
            "to": call["to"],
            "data": call["data"],
            "value": int(call["value"]),
            "chainId": int(call["chain_id"]),
            "nonce": w3.eth.get_transaction_count(requester.address),
            "gas": 200_000,
            "gasPrice": w3.eth.gas_price,
        }
        signed = requester.sign_transaction(tx)
        receipt = w3.eth.wait_for_transaction_receipt(
            w3.eth.send_raw_transaction(signed.raw_transaction), timeout=60
        )
        assert receipt["status"] == 1
    else:
        escrow.fund(
            requester,
            job_id,
            amount_wei=REWARD_WEI,
            deadline=int(time.time()) + 3600,
            challenge_window=600,
        )


def wait_status(node: Served, job_id: int, statuses: set[str], timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        detail = httpx.get(f"{node.url}/jobs/image_processing/get-job/{job_id}").json()
        if detail["status"] in statuses:
            return detail
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {detail['status']}, wanted {statuses}")
        time.sleep(0.2)


def run_provider(node: Served, account: Any, workdir: Path, **config: Any) -> list[dict]:
    """Run the real daemon until it has finished one job; returns what it completed."""
    from worker.daemon import DaemonConfig, ProviderDaemon
    from worker.executors import default_executors

    cfg = DaemonConfig(
        node_url=node.url,
        workdir=workdir,
        run_once=True,
        claim_wait_seconds=5,
        lease_seconds=10,
        grace_seconds=300,
        **config,
    )

    async def main() -> list[dict]:
        async with ProviderDaemon(cfg, account, default_executors()) as daemon:
            await daemon.run()
            return daemon.completed

    return asyncio.run(main())


def job_events(node: Served, requester: Any, job_id: int) -> list[dict]:
    client = NodeClient(node.url)
    client.sign_in(requester)
    return client.job(job_id)["events"]


def provider_process(
    node: Served, tmp_path: Path, name: str, *extra_args: str
) -> tuple[subprocess.Popen, Any, Any]:
    """`dcm provider run` as its own process with a fresh faucet-funded keystore wallet;
    returns the process, its open log file (the caller closes it) and the account."""
    account = new_provider(node)
    keyfile = tmp_path / f"{name}.json"
    keyfile.write_text(json.dumps(Account.encrypt(account.key, "pw")))
    env = dcm_env(tmp_path / "unused", None, DCM_WALLET_PASSWORD="pw")
    log = open(tmp_path / f"{name}.log", "wb")  # noqa: SIM115 (closed by the caller)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dcm.cli",
            "provider",
            "run",
            "--node",
            node.url,
            "--keyfile",
            str(keyfile),
            "--workdir",
            str(tmp_path / name),
            *extra_args,
        ],
        env=env,
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    return proc, log, account


def wait_for_epoch(node: Served, requester: Any, job_id: int, proc: subprocess.Popen) -> None:
    """Block until the job has reported its first training epoch."""
    deadline = time.monotonic() + 120
    while not any(
        e["type"] == "progress" and (e.get("message") or "").startswith("Epoch")
        for e in job_events(node, requester, job_id)
    ):
        assert proc.poll() is None, "provider exited before training"
        assert time.monotonic() < deadline, "no epoch reported"
        time.sleep(0.3)
