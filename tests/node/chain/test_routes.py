"""`/chain/info`, the dev faucet and the escrow deployment hook."""

from __future__ import annotations

import json

from eth_account import Account
from fastapi.testclient import TestClient
from web3._utils.contract_sources.contract_data.emitter_contract import EMITTER_CONTRACT_DATA

from node.app import create_app
from node.chain.evm import CHAIN_ID
from node.chain.startup import artifact_deploy_hook
from node.config import NodeSettings


def test_info_on_the_embedded_chain(node):
    info = node.get("/chain/info").json()
    assert info["chain_id"] == CHAIN_ID
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
    app.state.chain_deploy_hooks = [artifact_deploy_hook("JobEscrow", artifact)]
    with TestClient(app) as node:
        info = node.get("/chain/info").json()
        assert info["escrow_address"] and info["deployment_block"] == 1
        code = node.app.state.chain.w3.eth.get_code(info["escrow_address"])
        assert code.hex() == EMITTER_CONTRACT_DATA["bytecode_runtime"][2:]
    app = create_app(settings)
    app.state.chain_deploy_hooks = [artifact_deploy_hook("JobEscrow", artifact)]
    with TestClient(app) as node:
        assert node.get("/chain/info").json() == info
        assert node.app.state.chain.evm.block_number() == 1  # not deployed twice


def test_escrow_is_deployed_at_first_start_and_kept(settings):
    with TestClient(create_app(settings)) as node:
        info = node.get("/chain/info").json()
        host = node.app.state.chain
        assert info["escrow_address"] and info["deployment_block"] == 1
        assert len(host.w3.eth.get_code(info["escrow_address"])) > 100
        assert host.escrow().arbiter() == host.operator.address
    with TestClient(create_app(settings)) as node:
        assert node.get("/chain/info").json() == info
        assert node.app.state.chain.evm.block_number() == 1


def test_concurrent_faucet_requests_all_succeed(node):
    from concurrent.futures import ThreadPoolExecutor

    host = node.app.state.chain
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
