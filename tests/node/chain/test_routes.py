"""`/chain/info`, the dev faucet and the escrow deployment hook."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from fastapi.testclient import TestClient
from pydantic import SecretStr
from web3._utils.contract_sources.contract_data.emitter_contract import EMITTER_CONTRACT_DATA

from node.chain.evm import CHAIN_ID
from node.chain.host import ChainHost
from node.config import NodeSettings
from tests.fixtures.app import create_app


def artifact_deploy_hook(
    name: str, artifact_path: Path, args: Callable[[ChainHost], list[Any]] | None = None
) -> Callable[[ChainHost], None]:
    """A deploy hook (`Runtime.deploy_hooks`) deploying an `{"abi", "bytecode"}` artifact once,
    if the file exists (was in node/chain/startup.py, used by these tests only)."""

    def hook(host: ChainHost) -> None:
        if name == "JobEscrow" and host.escrow_address and not host.embedded:
            return  # configured external escrow
        if not artifact_path.exists():
            return
        if host.operator is None:
            return
        artifact = json.loads(artifact_path.read_text())
        host.deploy(name, artifact["abi"], artifact["bytecode"], *(args(host) if args else []))

    return hook


def test_info_on_the_embedded_chain(node):
    info = node.get("/chain/info").json()
    assert info["chain_id"] == node.app.state.runtime.chain.evm.chain_id != CHAIN_ID
    assert info["confirmations"] == 0
    assert info["rpc_url"] == "http://testserver/chain/rpc"


def test_faucet_funds_an_address(node):
    addr = Account.create().address
    resp = node.post("/chain/faucet", json={"address": addr, "amount": "1.25"})
    assert resp.status_code == 200
    body = resp.json()
    assert body["amount_wei"] == str(125 * 10**16) == body["balance_wei"]
    assert body["tx_hash"].startswith("0x") and body["block_number"] >= 1
    lower = Account.create().address.lower()
    assert node.post("/chain/faucet", json={"address": lower, "amount": "1"}).status_code == 200


def test_faucet_rejects_bad_input(node):
    addr = Account.create().address
    bad_checksum = addr[:2] + addr[2:].swapcase() if addr[2:] != addr[2:].swapcase() else addr
    cases = [
        {"address": bad_checksum, "amount": "1"},
        {"address": "0x1234", "amount": "1"},
        {"address": addr, "amount": "abc"},
        {"address": addr, "amount": "-1"},
        {"address": addr, "amount": "0"},
        {"address": addr, "amount": "0.0000000000000000001"},
        {"address": addr, "amount": "100.000000000000000001"},
        {"address": addr, "amount": "NaN"},
        {"address": addr, "amount": "1", "extra": True},
    ]
    for body in cases:
        resp = node.post("/chain/faucet", json=body)
        assert resp.status_code == 422, (body, resp.text)
        assert resp.json()["code"] == "VALIDATION_ERROR"
    assert node.get("/chain/info").status_code == 200


@pytest.mark.parametrize(
    "amount",
    [
        "1e999999999",
        "1E3",
        "NaN",
        "sNaN",
        "Infinity",
        "-inf",
        "-1",
        "9" * 100,
        "0x10",
        " 1",
        "1_000",
        "1\n",
        1.5,
        10,
        None,
        True,
        ["1"],
    ],
)
def test_faucet_refuses_amounts_that_are_not_plain_decimal_eth(node, amount):
    body = {"address": Account.create().address, "amount": amount}
    resp = node.post("/chain/faucet", json=body)
    assert resp.status_code == 422, resp.text
    assert resp.json()["code"] == "VALIDATION_ERROR"


@pytest.mark.parametrize("address", ["0x" + "0" * 40, "0X" + "ab" * 20, "ab" * 20, 5])
def test_faucet_refuses_addresses_nobody_holds_a_key_for(node, address):
    resp = node.post("/chain/faucet", json={"address": address, "amount": "1"})
    assert resp.status_code == 422, resp.text


def test_time_control_answers_only_loopback_clients_or_the_operator_token(settings):
    settings.operator_token = SecretStr("operator-token-for-this-test")
    body = {"jsonrpc": "2.0", "id": 1, "method": "evm_increaseTime", "params": [60]}
    with TestClient(create_app(settings), client=("203.0.113.7", 4000)) as remote:
        refused = remote.post("/chain/rpc", json=body).json()
        assert refused["error"]["code"] == -32601
        assert "loopback" in refused["error"]["message"]
        mine = {**body, "method": "evm_mine", "params": []}
        assert remote.post("/chain/rpc", json=mine).json()["error"]["code"] == -32601
        wrong = {"Authorization": "Bearer not-the-operator-token"}
        assert "error" in remote.post("/chain/rpc", json=body, headers=wrong).json()
        operator = {"Authorization": "Bearer operator-token-for-this-test"}
        assert "result" in remote.post("/chain/rpc", json=body, headers=operator).json()
        loopback = TestClient(remote.app, client=("127.0.0.1", 4001))
        assert "result" in loopback.post("/chain/rpc", json=body).json()
        assert "result" in loopback.post("/chain/rpc", json=mine).json()


def test_faucet_does_not_exist_in_production(tmp_path, database_url):
    settings = NodeSettings(
        data_dir=tmp_path / "prod",
        database_url=database_url,
        environment="production",
        secret_key="a-real-secret-for-this-test-only-0123456789",
    )
    with TestClient(create_app(settings)) as node:
        addr = Account.create().address
        assert node.post("/chain/faucet", json={"address": addr, "amount": "1"}).status_code == 404
        assert "/chain/faucet" not in node.get("/openapi.json").json()["paths"]
        assert node.get("/chain/info").status_code == 200


def test_deploy_hook_deploys_once_and_info_reports_it(settings, tmp_path):
    artifact = tmp_path / "Stand-in.json"
    artifact.write_text(json.dumps(EMITTER_CONTRACT_DATA))  # any {abi, bytecode} artifact
    app = create_app(settings)
    app.state.runtime.deploy_hooks = [artifact_deploy_hook("JobEscrow", artifact)]
    with TestClient(app) as node:
        info = node.get("/chain/info").json()
        assert info["escrow_address"] and info["deployment_block"] == 1
        code = node.app.state.runtime.chain.w3.eth.get_code(info["escrow_address"])
        assert code.hex() == EMITTER_CONTRACT_DATA["bytecode_runtime"][2:]
    app = create_app(settings)
    app.state.runtime.deploy_hooks = [artifact_deploy_hook("JobEscrow", artifact)]
    with TestClient(app) as node:
        assert node.get("/chain/info").json() == info
        assert node.app.state.runtime.chain.evm.block_number() == 1  # not deployed twice


def test_escrow_is_deployed_at_first_start_and_kept(settings):
    with TestClient(create_app(settings)) as node:
        info = node.get("/chain/info").json()
        host = node.app.state.runtime.chain
        assert info["escrow_address"] and info["deployment_block"] == 1
        assert len(host.w3.eth.get_code(info["escrow_address"])) > 100
        # the arbiter is a second key of the data dir, never the operator (the assigner)
        arbiter_file = settings.data_dir / "chain" / "arbiter.key"
        arbiter = Account.from_key(arbiter_file.read_text().strip()).address
        assert (arbiter_file.stat().st_mode & 0o777) == 0o600
        assert info["arbiter"] == host.escrow().arbiter() == arbiter
        assert info["assigner"] == host.escrow().assigner() == host.operator.address != arbiter
        assert host.w3.eth.get_balance(arbiter) > 0  # gas to rule with
        block = node.app.state.runtime.chain.evm.block_number()
    with TestClient(create_app(settings)) as node:
        assert node.get("/chain/info").json() == info
        assert node.app.state.runtime.chain.evm.block_number() == block  # nothing deployed again


def test_concurrent_faucet_requests_all_succeed(node):
    from concurrent.futures import ThreadPoolExecutor

    host = node.app.state.runtime.chain
    addresses = [Account.create().address for _ in range(8)]
    with ThreadPoolExecutor(8) as pool:
        receipts = list(pool.map(lambda a: host.faucet(a, 10**18), addresses))
    assert all(r["status"] == 1 for r in receipts)
    assert all(host.w3.eth.get_balance(a) == 10**18 for a in addresses)


def test_time_control_methods_do_not_exist_in_production(tmp_path, database_url):
    settings = NodeSettings(
        data_dir=tmp_path / "prod-rpc",
        database_url=database_url,
        environment="production",
        secret_key="a-real-secret-for-this-test-only-0123456789",
    )
    with TestClient(create_app(settings)) as node:
        for method, params in (("evm_mine", []), ("evm_increaseTime", [60])):
            body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
            assert node.post("/chain/rpc", json=body).json()["error"]["code"] == -32601
