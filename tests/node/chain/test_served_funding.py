"""Issue 4's first "Done when", against a real `dcm serve` process over HTTP.

A requester with only a wallet (funded by the dev faucet) uploads through the seed 000
route, takes the `funding` call from the answer, signs it locally and sends it through
`/chain/rpc` with web3.py's plain HTTP provider; the job then shows in `GET /jobs/get-jobs`.
Raw `eth_getLogs` shows the `JobFunded` event as an explorer reads it (topics decoded by
hand). A second job is funded with `dcm job fund --keyfile` (eth-account keystore). After
a restart on the same data dir, balances, contract code and job states are unchanged.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from eth_abi import decode
from eth_account import Account
from eth_utils import keccak
from web3 import Web3

from marketplace.datasets.synthetic import write_detection_dataset
from marketplace.escrow.client import JobEscrow
from tests.fixtures import web
from tests.fixtures.datasets import files_of, form
from tests.fixtures.ports import free_port

ROOT = Path(__file__).resolve().parents[3]
REWARD = 5 * 10**17
FUNDED_TOPIC = (
    "0x" + keccak(text="JobFunded(bytes32,address,uint256,bytes32,uint256,uint256)").hex()
)


@contextlib.contextmanager
def serve(data_dir: Path, database_url: str, log_path: Path) -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DCM_DATA_DIR": str(data_dir),
        "DCM_DATABASE_URL": database_url,
        "DCM_PUBLIC_URL": url,
        "DCM_CHAIN_WATCH_INTERVAL_SECONDS": "0.1",
    }
    subprocess.run(  # as a node's operator does before `dcm serve`
        [sys.executable, "-m", "dcm.cli", "db", "upgrade"], env=env, check=True, capture_output=True
    )
    log = open(log_path, "ab")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "dcm.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if web.get(url + "/chain/info", timeout=1).status_code == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                raise AssertionError("dcm serve did not start:\n" + log_path.read_text()[-3000:])
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _wait_listed(url: str, job_id: int, timeout: float = 30) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        listed = web.get(url + "/jobs/get-jobs").json()
        if job_id in [j["id"] for j in listed]:
            return listed
        assert time.monotonic() < deadline, f"job {job_id} never listed: {listed}"
        time.sleep(0.1)


def _upload(url: str, root: Path, requester: str) -> dict[str, Any]:
    resp = web.post(
        url + "/jobs/image_processing/upload",
        data=form(requesterAddress=requester),
        files=files_of(root),
        timeout=60,
    )
    assert resp.status_code == 200, resp.text
    return resp.json()["job"]


def test_wallet_funds_a_seed_000_job_through_chain_rpc_and_it_survives_restart(settings, tmp_path):
    data_dir, log = tmp_path / "node", tmp_path / "serve.log"
    dataset = write_detection_dataset(tmp_path / "ds", train=3, val=2)
    other = write_detection_dataset(tmp_path / "ds2", train=3, val=2, seed=9)
    requester = Account.create()
    keyfile = tmp_path / "wallet.json"
    second = Account.create()
    keystore = Account.encrypt(second.key, "pw-123456", kdf="pbkdf2", iterations=1000)
    keyfile.write_text(json.dumps(keystore))

    with serve(data_dir, settings.database_url, log) as url:
        for acct in (requester, second):
            faucet = web.post(url + "/chain/faucet", json={"address": acct.address, "amount": "2"})
            assert faucet.status_code == 200, faucet.text
        job = _upload(url, dataset, requester.address)
        assert job["dcm_status"] == "awaiting_funding"
        funding = job["funding"]
        assert set(funding) == {"chain_id", "to", "data", "value"} and funding["value"] == str(
            REWARD
        )
        assert web.get(url + "/jobs/get-jobs").json() == []

        # the wallet: web3.py's plain HTTP provider on /chain/rpc, a locally signed tx
        w3 = Web3(Web3.HTTPProvider(url + "/chain/rpc"))
        assert w3.eth.chain_id == funding["chain_id"]
        tx = {
            "to": funding["to"],
            "data": funding["data"],
            "value": int(funding["value"]),
            "chainId": funding["chain_id"],
            "nonce": w3.eth.get_transaction_count(requester.address),
            "gas": 150_000,
            "maxFeePerGas": 2 * w3.eth.get_block("latest")["baseFeePerGas"] + 10**9,
            "maxPriorityFeePerGas": 10**9,
        }
        tx_hash = w3.eth.send_raw_transaction(requester.sign_transaction(tx).raw_transaction)
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)
        assert receipt["status"] == 1
        listed = _wait_listed(url, job["id"])
        assert [j["dcm_status"] for j in listed] == ["pending"]

        # an explorer's view: raw eth_getLogs, topics and data decoded by hand
        body = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "eth_getLogs",
            "params": [{"fromBlock": "0x0", "address": funding["to"], "topics": [FUNDED_TOPIC]}],
        }
        [entry] = web.post(url + "/chain/rpc", json=body).json()["result"]
        escrow = JobEscrow(w3, funding["to"])
        assert entry["transactionHash"] == "0x" + bytes(tx_hash).hex()
        assert entry["topics"][1] == "0x" + escrow.job_key(job["id"], requester.address).hex()
        assert entry["topics"][2] == "0x" + "00" * 12 + requester.address[2:].lower()
        amount, digest, deadline, window = decode(
            ["uint256", "bytes32", "uint256", "uint256"], bytes.fromhex(entry["data"][2:])
        )
        assert amount == REWARD and digest == escrow.cid_digest(job["folder_cid"])
        assert deadline > int(entry["blockNumber"], 16) and window > 0

        # the same with the CLI and an encrypted keystore (signs in with SIWE, signs locally)
        job2 = _upload(url, other, second.address)
        cli = subprocess.run(
            [sys.executable, "-m", "dcm.cli", "job", "fund", str(job2["id"])]
            + ["--keyfile", str(keyfile), "--password-stdin", "--node", url],
            input="pw-123456\n",
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            timeout=120,
        )
        assert cli.returncode == 0, cli.stderr
        assert "fund: tx 0x" in cli.stdout and second.address in cli.stdout
        assert second.key.hex() not in cli.stdout + cli.stderr
        listed = _wait_listed(url, job2["id"])
        wrong = subprocess.run(
            [sys.executable, "-m", "dcm.cli", "job", "fund", str(job2["id"])]
            + ["--keyfile", str(keyfile), "--password-stdin", "--node", url],
            input="wrong\n",
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            timeout=120,
        )
        assert wrong.returncode != 0 and "cannot unlock" in wrong.stderr

        addresses = [requester.address, second.address, funding["to"]]
        balances = {a: w3.eth.get_balance(a) for a in addresses}
        code = w3.eth.get_code(funding["to"])
        states = {j["id"]: j["dcm_status"] for j in listed}
        head = w3.eth.block_number
        assert balances[funding["to"]] == 2 * REWARD

    with serve(data_dir, settings.database_url, log) as url:
        w3 = Web3(Web3.HTTPProvider(url + "/chain/rpc"))
        assert w3.eth.block_number == head
        assert {a: w3.eth.get_balance(a) for a in addresses} == balances
        assert w3.eth.get_code(funding["to"]) == code
        time.sleep(0.5)  # a few watcher ticks: nothing may be applied twice
        listed = web.get(url + "/jobs/get-jobs").json()
        assert {j["id"]: j["dcm_status"] for j in listed} == states
        detail = web.get(f"{url}/jobs/image_processing/get-job/{job['id']}").json()
        assert detail["dcm_status"] == "pending" and detail["funding"] is None
