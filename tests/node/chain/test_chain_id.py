"""The embedded chain's id is chosen once per data dir (random unless configured), kept in
its journal, and named by every surface: eth_chainId, /chain/info, /auth/nonce. A
transaction signed for one node's chain does not replay on another's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_account import Account
from fastapi.testclient import TestClient

from node.chain.evm import CHAIN_ID, ChainIdMismatch, EmbeddedEVM
from node.config import NodeSettings
from tests.fixtures.app import create_app
from tests.node.chain.conftest import fund


def _settings(base: NodeSettings, data_dir: Path, **overrides: object) -> NodeSettings:
    return base.model_copy(update={"data_dir": data_dir, **overrides})


def _ids(node: TestClient) -> set[int]:
    rpc = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
    return {
        node.get("/chain/info").json()["chain_id"],
        node.get("/auth/nonce").json()["chain_id"],
        int(node.post("/chain/rpc", json=rpc).json()["result"], 16),
    }


def test_each_data_dir_has_its_own_chain_id_kept_across_restarts(
    settings: NodeSettings, tmp_path: Path
) -> None:
    with TestClient(create_app(settings)) as node:
        first = _ids(node)
    with TestClient(create_app(settings)) as node:
        assert _ids(node) == first
    other = _settings(settings, tmp_path / "other-node", database_url=None)
    with TestClient(create_app(other)) as node:
        second = _ids(node)
    assert len(first) == len(second) == 1  # every surface names the same id
    assert first != second and CHAIN_ID not in first | second


def test_a_transaction_signed_for_one_node_is_refused_by_another(
    settings: NodeSettings, tmp_path: Path
) -> None:
    acct = Account.create()
    other = _settings(settings, tmp_path / "other-node", database_url=None)
    with TestClient(create_app(settings)) as a, TestClient(create_app(other)) as b:
        fund(a, acct.address)
        fund(b, acct.address)  # same nonce and funds on both: only the chain id differs
        chain_a = a.get("/chain/info").json()["chain_id"]
        tx = {
            "to": Account.create().address,
            "value": 1,
            "gas": 21000,
            "gasPrice": 10**10,
            "nonce": 0,
            "chainId": chain_a,
        }
        raw = "0x" + acct.sign_transaction(tx).raw_transaction.hex().removeprefix("0x")
        send = {"jsonrpc": "2.0", "id": 1, "method": "eth_sendRawTransaction", "params": [raw]}
        replay = b.post("/chain/rpc", json=send).json()
        assert "invalid chain id" in replay["error"]["message"]
        assert "result" in a.post("/chain/rpc", json=send).json()


def test_a_configured_chain_id_is_the_new_chains_id(settings: NodeSettings) -> None:
    settings.chain_id = 424242
    with TestClient(create_app(settings)) as node:
        assert _ids(node) == {424242}
        fund(node, Account.create().address)  # the operator signs for that id too


def test_a_configured_id_other_than_the_journals_refuses_to_start(
    settings: NodeSettings,
) -> None:
    with TestClient(create_app(settings)):
        pass
    settings.chain_id = 424242
    with (
        pytest.raises(ChainIdMismatch, match="unset DCM_CHAIN_ID"),
        TestClient(create_app(settings)),
    ):
        pass


def test_a_journal_from_before_per_node_ids_keeps_eth_testers_id(tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    genesis = {"kind": "genesis", "timestamp": 1_700_000_000, "alloc": {}}
    journal.write_text(json.dumps(genesis) + "\n")
    evm = EmbeddedEVM.open(journal, {})
    assert evm.chain_id == CHAIN_ID
