"""End-to-end fixtures: a real `dcm serve`, wallets funded by its dev faucet, a tiny YOLO
dataset, and the provider daemon with the real Ultralytics executor."""

from __future__ import annotations

import asyncio
import importlib.util
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from web3 import Web3

from marketplace.datasets.synthetic import write_detection_dataset
from marketplace.escrow.client import JobEscrow
from marketplace.sdk.client import NodeClient
from marketplace.sdk.models import Event
from tests.fixtures import web
from tests.fixtures.engines import require_engine
from tests.fixtures.keystores import keystore_json
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
        keyfile.write_text(keystore_json(operator.key, "operator"))
        _set_balance(hardhat.url, operator.address, 10**20)
        env.update(
            DCM_CHAIN_RPC_URL=hardhat.url,
            DCM_CHAIN_OPERATOR_KEYFILE=str(keyfile),
            DCM_CHAIN_OPERATOR_PASSWORD="operator",
            DCM_CHAIN_ARBITER_ADDRESS=Account.create().address,
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
    resp = web.post(node.url + "/chain/faucet", json={"address": address, "amount": eth})
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
    info = web.get(node.url + "/chain/info").json()
    return JobEscrow(Web3(Web3.HTTPProvider(info["rpc_url"])), info["escrow_address"])


def key_of(node: Served, job_id: int) -> str:
    """The escrow key of the job's deposit, as the node shows it (public, no credentials)."""
    return web.get(f"{node.url}/v1/jobs/job_{job_id}/escrow").json()["data"]["job_key"]


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return write_detection_dataset(tmp_path / "shapes", train=16, val=8, size=64)


def fund(node: Served, job_id: int, requester: Any) -> None:
    """Fund the job's escrow from the requester's own wallet: the call the node prepared,
    signed locally, sent through /chain/rpc."""
    resp = web.get(f"{node.url}/jobs/{job_id}/funding")
    if resp.status_code != 200:  # the node's prepared call (funding gate)
        raise AssertionError(f"job {job_id} has no funding call: {resp.text}")
    call = resp.json()["data"] if "data" in resp.json() else resp.json()
    send_call(escrow_of(node), requester, call, gas=200_000)


def send_call(escrow: Any, account: Any, call: dict[str, Any], gas: int = 300_000) -> None:
    """Sign a `{chain_id, to, data, value}` call with the wallet and send it; it must
    succeed."""
    w3 = escrow.w3
    tx = {
        "to": call["to"],
        "data": call["data"],
        "value": int(call["value"]),
        "chainId": int(call["chain_id"]),
        "nonce": w3.eth.get_transaction_count(account.address),
        "gas": gas,
        "gasPrice": w3.eth.gas_price,
    }
    signed = account.sign_transaction(tx)
    receipt = w3.eth.wait_for_transaction_receipt(
        w3.eth.send_raw_transaction(signed.raw_transaction), timeout=60
    )
    assert receipt["status"] == 1


def wait_status(node: Served, job_id: int, statuses: set[str], timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        detail = web.get(f"{node.url}/jobs/image_processing/get-job/{job_id}").json()
        if detail["dcm_status"] in statuses:
            return detail
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {detail['dcm_status']}, wanted {statuses}")
        time.sleep(0.2)


def run_provider(
    node: Served, account: Any, workdir: Path, *, within: float = 300, **config: Any
) -> list[dict]:
    """Run the real daemon until it has finished one job; returns what it completed. A
    daemon that has not finished one `within` seconds fails the test (a `--once` daemon
    that never gets a job would poll forever)."""
    from worker.daemon import DaemonConfig, ProviderDaemon
    from worker.executors import default_executors

    cfg = DaemonConfig(
        node_url=node.url,
        workdir=workdir,
        run_once=True,
        claim_wait_seconds=5,
        grace_seconds=300,
        **config,
    )

    async def main() -> list[dict]:
        async with ProviderDaemon(cfg, account, default_executors()) as daemon:
            try:
                await asyncio.wait_for(daemon.run(), within)
            except TimeoutError:
                raise AssertionError(
                    f"the provider finished no job in {within:.0f} s: {daemon.completed}"
                ) from None
            return daemon.completed

    return asyncio.run(main())


_signed_in: dict[tuple[str, str], NodeClient] = {}


def job_events(node: Served, requester: Any, job_id: int) -> list[Event]:
    """The job's events, read as the requester. The requester signs in once per node and
    reuses its token, as a real client does (a sign-in per poll trips the node's SIWE
    rate limits)."""
    key = (node.url, requester.address)
    if key not in _signed_in:
        client = NodeClient(node.url)
        client.sign_in(requester)
        _signed_in[key] = client
    return _signed_in[key].job(job_id).events


def provider_process(
    node: Served, tmp_path: Path, name: str, *extra_args: str
) -> tuple[subprocess.Popen, Any, Any]:
    """`dcm provider run` as its own process with a fresh faucet-funded keystore wallet;
    returns the process, its open log file (the caller closes it) and the account."""
    account = new_provider(node)
    keyfile = tmp_path / f"{name}.json"
    keyfile.write_text(keystore_json(account.key, "pw"))
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
    proc.log_path = tmp_path / f"{name}.log"  # type: ignore[attr-defined]  # for failures
    return proc, log, account


def provider_log_tail(proc: subprocess.Popen, size: int = 4000) -> str:
    """The end of a `provider_process`'s output, for assertion messages."""
    path = getattr(proc, "log_path", None)
    return path.read_bytes()[-size:].decode(errors="replace") if path else ""


def wait_for_epoch(node: Served, requester: Any, job_id: int, proc: subprocess.Popen) -> None:
    """Block until the job has reported its first training epoch."""
    deadline = time.monotonic() + 120
    while True:
        events = job_events(node, requester, job_id)
        if any(e.type == "progress" and (e.message or "").startswith("Epoch") for e in events):
            return
        assert proc.poll() is None, (
            f"provider exited before training; events {events}\n{provider_log_tail(proc)}"
        )
        assert time.monotonic() < deadline, f"no epoch reported\n{provider_log_tail(proc)}"
        time.sleep(0.3)


def upload_funded_job(node: Served, requester: Any, dataset: Path, epochs: int) -> int:
    """A seed 000 YOLO job of `dataset` for `epochs`, funded by `requester` and open
    (`pending`); returns its id."""
    job = NodeClient(node.url).upload_dataset_job(
        dataset,
        model="yolov8n",
        epochs=epochs,
        imgsz=64,
        classes=["cat", "dog"],
        reward="0.01",
        requester_address=requester.address,
        export_format="pt",
    )
    fund(node, job.number, requester)
    wait_status(node, job.number, {"pending"}, timeout=30)
    return job.number
