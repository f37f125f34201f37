"""The node against an external chain (`DCM_CHAIN_RPC_URL`): a real Hardhat node."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account
from fastapi.testclient import TestClient
from pydantic import SecretStr
from web3 import Web3

from node.app import create_app
from node.chain.service import funding_request
from node.config import NodeSettings
from node.jobs.models import Job
from tests.fixtures.engines import require_engine
from tests.marketplace.escrow.harness import HardhatNode, hardhat_available
from tests.node.chain.scenario import job_status, make_job, send_call

PASSWORD = "operator-test-password"


@pytest.fixture(scope="module")
def hardhat(tmp_path_factory) -> Iterator[HardhatNode]:
    require_engine(hardhat_available(), "Hardhat not installed (npm ci at the repo root)")
    node = HardhatNode(tmp_path_factory.mktemp("hardhat-external"))
    yield node
    node.stop()


def _external_settings(base: NodeSettings, url: str, tmp_path: Path) -> NodeSettings:
    operator = Account.create()
    keyfile = tmp_path / "operator.json"
    keyfile.write_text(json.dumps(Account.encrypt(operator.key, PASSWORD)))
    w3 = Web3(Web3.HTTPProvider(url))
    w3.provider.make_request("hardhat_setBalance", [operator.address, hex(10**20)])
    return base.model_copy(
        update={
            "chain_rpc_url": url,
            "chain_operator_keyfile": keyfile,
            "chain_operator_password": SecretStr(PASSWORD),
            "chain_watch_interval_seconds": 3600,
        }
    )


def test_external_chain_deploys_escrow_once_and_waits_for_confirmations(
    hardhat, settings, tmp_path
):
    ext = _external_settings(settings, hardhat.url, tmp_path)
    with TestClient(create_app(ext)) as node:
        info = node.get("/chain/info").json()
        assert info["chain_id"] == 31337 and info["rpc_url"] == hardhat.url
        assert info["confirmations"] == 2 and info["escrow_address"]
        assert (
            node.post(
                "/chain/rpc", json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}
            ).status_code
            == 404
        )
        addr = Account.create().address
        assert node.post("/chain/faucet", json={"address": addr, "amount": "1"}).status_code == 404

        host, sessions = node.app.state.chain, node.app.state.sessionmaker
        w3 = Web3(Web3.HTTPProvider(hardhat.url))
        requester = Account.create()
        w3.provider.make_request("hardhat_setBalance", [requester.address, hex(10**19)])
        job_id = make_job(sessions, requester=requester.address, reward_wei=10**16)
        with sessions() as session:
            call = funding_request(session, host.escrow(), session.get(Job, job_id))
            session.commit()
        send_call(w3, requester, call)
        with node.app.state.chain_tick_lock:
            node.app.state.chain_watcher.poll_once()
        assert job_status(sessions, job_id)[0] == "awaiting_funding"  # 0 confirmations yet
        w3.provider.make_request("hardhat_mine", ["0x2"])
        with node.app.state.chain_tick_lock:
            node.app.state.chain_watcher.poll_once()
        assert job_status(sessions, job_id)[0] == "pending"

    with TestClient(create_app(ext)) as node:  # restart: the same escrow, not a new one
        assert node.get("/chain/info").json() == info


def test_configured_escrow_address_is_used_without_deploying(hardhat, settings, tmp_path):
    ext = _external_settings(settings, hardhat.url, tmp_path)
    configured = Account.create().address
    ext = ext.model_copy(update={"chain_escrow_address": configured})
    with TestClient(create_app(ext)) as node:
        assert node.get("/chain/info").json()["escrow_address"] == configured
