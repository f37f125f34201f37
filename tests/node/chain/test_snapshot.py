"""Chain snapshots (`node.chain.snapshot`): a start replays only the journal after the
newest usable snapshot and reaches the chain a full replay reaches; a snapshot that is
corrupt, of another chain, or ahead of the journal is ignored, and the journal wins."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from fastapi.testclient import TestClient
from web3 import Web3
from web3._utils.contract_sources.contract_data.emitter_contract import EMITTER_CONTRACT_DATA

from node.chain import snapshot as snapshot_module
from node.chain.evm import EmbeddedEVM
from node.chain.snapshot import Snapshots
from tests.fixtures.app import create_app
from tests.node.chain.conftest import RpcViaTestClient, fund
from tests.node.chain.test_persistence import _snapshot as node_state
from tests.node.chain.test_rpc import LOG_DOUBLE_WITH_INDEX, deploy, transact

EMITTER = Web3().eth.contract(abi=EMITTER_CONTRACT_DATA["abi"])


class Chain:
    """An embedded chain on `dir/journal.jsonl`, fed signed transactions: value transfers
    and an emitter contract's logs."""

    def __init__(self, directory: Path, every: int = 0, keep: int = 2) -> None:
        self.dir = directory
        self.every, self.keep = every, keep
        self.acct = Account.create()
        self.other = Account.create()
        self.evm = EmbeddedEVM.open(
            self.journal, {self.acct.address: 10**21}, snapshots=self.snapshots()
        )
        self.nonce = 0
        self.tx_hashes: list[str] = []
        receipt = self.evm.get_receipt(
            self.send({"data": EMITTER_CONTRACT_DATA["bytecode"], "gas": 3_000_000})
        )
        assert receipt["status"] == 1
        self.emitter = receipt["contract_address"]

    @property
    def journal(self) -> Path:
        return self.dir / "journal.jsonl"

    def snapshots(self) -> Snapshots | None:
        return Snapshots(self.dir / "snapshots", self.every, self.keep) if self.keep else None

    def send(self, tx: dict[str, Any]) -> str:
        tx = {
            "nonce": self.nonce,
            "chainId": self.evm.chain_id,
            "maxFeePerGas": 10**10,
            "maxPriorityFeePerGas": 1,
            **tx,
        }
        tx_hash = self.evm.send_raw_transaction(self.acct.sign_transaction(tx).raw_transaction)
        self.nonce += 1
        self.tx_hashes.append(tx_hash)
        return tx_hash

    def grow(self, n: int) -> None:
        for i in range(n):
            if i % 2:
                data = EMITTER.encode_abi("logDouble", args=[LOG_DOUBLE_WITH_INDEX, i, i + 1])
                self.send({"to": self.emitter, "data": data, "gas": 100_000})
            else:
                self.send({"to": self.other.address, "value": 1000 + i, "gas": 21000})

    def state(self, evm: EmbeddedEVM | None = None) -> dict[str, Any]:
        evm = evm or self.evm
        head = evm.block_number()
        return {
            "head": head,
            "blocks": [evm.get_block(n, True) for n in range(head + 1)],
            "balances": [evm.get_balance(a) for a in (self.acct.address, self.other.address)],
            "nonce": evm.get_nonce(self.acct.address),
            "receipts": [evm.get_receipt(h) for h in self.tx_hashes if evm.get_receipt(h)],
            "logs": evm.get_logs(0, head, None, []),
        }

    def reopen(self, snapshots: bool = True) -> EmbeddedEVM:
        self.evm = EmbeddedEVM.open(
            self.journal, {}, snapshots=self.snapshots() if snapshots else None
        )
        return self.evm

    def snapshot_files(self) -> list[Path]:
        return sorted(self.dir.glob("snapshots/*.snap"), key=lambda p: int(p.stem.split("-")[0]))


def replayed(caplog: pytest.LogCaptureFixture) -> int:
    """Journal records the last open replayed (0: none)."""
    counts = [
        int(r.getMessage().split()[3])
        for r in caplog.records
        if r.getMessage().startswith("chain journal replayed:")
    ]
    caplog.clear()
    return counts[-1] if counts else 0


@pytest.fixture(autouse=True)
def _info(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="dcm.chain")


def test_snapshot_restart_replays_only_the_tail_to_the_full_replays_chain(tmp_path, caplog):
    chain = Chain(tmp_path)
    chain.grow(6)
    chain.evm.close()  # clean shutdown: a snapshot at the head (8 records)
    assert [p.name.split("-")[0] for p in chain.snapshot_files()] == ["8"]
    chain.reopen()
    assert replayed(caplog) == 0
    chain.grow(5)
    chain.evm.snapshots.wait()
    # a crash: the journal goes on past the snapshot, no snapshot at shutdown
    chain.evm.journal.close()
    with_snapshot = chain.state(chain.reopen())
    assert replayed(caplog) == 5
    chain.evm.journal.close()
    full = chain.state(chain.reopen(snapshots=False))
    assert replayed(caplog) == 12
    assert with_snapshot == full
    assert full["head"] == 12 and len(full["logs"]) == 5 and len(full["receipts"]) == 12
    # and the restored chain goes on as the replayed one does
    chain.evm.journal.close()
    chain.reopen()
    chain.grow(1)
    assert chain.evm.get_block(13, False)["parent_hash"] == full["blocks"][12]["hash"]


def test_snapshots_are_written_every_n_records_in_the_background_and_pruned(tmp_path, caplog):
    chain = Chain(tmp_path, every=3, keep=2)
    chain.grow(9)  # records 2 (deploy) .. 11
    chain.evm.snapshots.wait()
    # one every 3 records (a write still running when the next is due is not doubled:
    # the next record starts it), the newest two kept
    positions = [int(p.name.split("-")[0]) for p in chain.snapshot_files()]
    assert len(positions) == 2 and 6 <= positions[0] < positions[1] <= 11
    assert positions[1] - positions[0] >= 3
    chain.evm.journal.close()
    before = chain.state()
    assert chain.state(chain.reopen()) == before
    assert replayed(caplog) == 11 - positions[1]


def test_a_corrupt_snapshot_is_deleted_and_the_whole_journal_replayed(tmp_path, caplog):
    chain = Chain(tmp_path)
    chain.grow(4)
    before = chain.state()
    chain.evm.close()
    (path,) = chain.snapshot_files()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    assert chain.state(chain.reopen()) == before
    assert replayed(caplog) == 5
    assert not path.exists()


def test_a_snapshot_ahead_of_a_cut_journal_is_ignored(tmp_path, caplog):
    chain = Chain(tmp_path)
    chain.grow(4)
    chain.evm.close()
    (path,) = chain.snapshot_files()
    lines = chain.journal.read_bytes().splitlines(keepends=True)
    chain.journal.write_bytes(b"".join(lines[:-2]))  # two records gone (a restored backup)
    chain.tx_hashes = chain.tx_hashes[:-2]
    full = chain.state(chain.reopen())
    assert any("not used" in r.getMessage() for r in caplog.records)
    assert replayed(caplog) == 3 and full["head"] == 3
    assert not path.exists()


def test_evm_revert_behind_a_snapshot_drops_it(tmp_path, caplog):
    chain = Chain(tmp_path)
    chain.grow(2)
    sid = chain.evm.snapshot()
    chain.evm.write_snapshot()  # a snapshot at sid's position: still good
    chain.grow(3)
    chain.evm.write_snapshot()  # one past it
    kept, ahead = chain.snapshot_files()
    saved = ahead.read_bytes()
    assert chain.evm.revert(sid)
    assert chain.snapshot_files() == [kept]
    chain.tx_hashes = chain.tx_hashes[:3]
    before = chain.state()
    chain.evm.journal.close()
    # even were it left behind, the snapshot past the journal's end is not used
    ahead.write_bytes(saved)
    assert chain.state(chain.reopen()) == before
    assert replayed(caplog) == 0 and before["head"] == 3
    assert not ahead.exists()


def test_a_crash_between_temp_file_and_rename_leaves_the_old_snapshot_usable(tmp_path, caplog):
    chain = Chain(tmp_path)
    chain.grow(2)
    chain.evm.write_snapshot()
    (old,) = chain.snapshot_files()
    chain.grow(3)
    newer = chain.evm.write_snapshot()
    assert newer is not None
    torn = newer.with_name(newer.name + ".tmp")
    torn.write_bytes(newer.read_bytes()[:1000])  # the write the crash interrupted
    newer.unlink()
    before = chain.state()
    chain.evm.journal.close()
    assert chain.state(chain.reopen()) == before
    assert replayed(caplog) == 3
    assert not torn.exists() and old.exists()


def test_a_snapshot_of_another_chain_is_ignored(tmp_path, caplog):
    ours = Chain(tmp_path / "ours")
    ours.grow(2)
    ours.evm.journal.close()
    # the same genesis record (same chain id and alloc), another history after it
    theirs_dir = tmp_path / "theirs"
    theirs_dir.mkdir()
    genesis = ours.journal.read_bytes().splitlines(keepends=True)[0]
    (theirs_dir / "journal.jsonl").write_bytes(genesis)
    theirs = EmbeddedEVM.open(theirs_dir / "journal.jsonl", {}, snapshots=None)
    tx = ours.acct.sign_transaction(
        {
            "to": ours.acct.address,
            "value": 5,
            "gas": 21000,
            "nonce": 0,
            "chainId": theirs.chain_id,
            "gasPrice": 10**10,
        }
    )
    theirs.send_raw_transaction(tx.raw_transaction)
    theirs.snapshots = Snapshots(theirs_dir / "snapshots", 0)
    theirs.close()
    (path,) = theirs_dir.glob("snapshots/*.snap")
    (tmp_path / "ours" / "snapshots").mkdir()
    shutil.copy(path, tmp_path / "ours" / "snapshots" / "2-999999.snap")
    shutil.copy(path, tmp_path / "ours" / "snapshots" / path.name)
    before = ours.state(ours.reopen(snapshots=False))
    ours.evm.journal.close()
    caplog.clear()
    assert ours.state(ours.reopen()) == before
    assert replayed(caplog) == 3
    assert list((tmp_path / "ours" / "snapshots").glob("*.snap")) == []


def test_the_journal_names_each_block_and_replay_checks_it(tmp_path):
    chain = Chain(tmp_path, keep=0)
    chain.grow(2)
    chain.evm.journal.close()
    lines = chain.journal.read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["block"] for r in records[1:]] == [
        chain.evm.get_block(n, False)["hash"] for n in (1, 2, 3)
    ]
    records[2]["block"] = "0x" + "11" * 32
    chain.journal.write_text("".join(json.dumps(r) + "\n" for r in records))
    with pytest.raises(RuntimeError, match="journal replay diverged at block 2"):
        chain.reopen(snapshots=False)


def test_node_restart_starts_from_the_shutdown_snapshot(settings, caplog):
    acct = Account.create()
    with TestClient(create_app(settings)) as node:
        w3 = Web3(RpcViaTestClient(node))
        fund(node, acct.address, "3")
        emitter = deploy(w3, acct, EMITTER_CONTRACT_DATA)
        transact(w3, acct, emitter.functions.logDouble(LOG_DOUBLE_WITH_INDEX, 1, 2))
        operator = node.app.state.runtime.chain.operator.address
        before = node_state(w3, [acct.address, operator], emitter.address)
    assert list((settings.data_dir / "chain" / "snapshots").glob("*.snap"))
    caplog.clear()
    with TestClient(create_app(settings)) as node:
        w3 = Web3(RpcViaTestClient(node))
        messages = [r.getMessage() for r in caplog.records]
        assert any(m.startswith("chain snapshot") and "restored" in m for m in messages)
        assert replayed(caplog) == 0
        assert node_state(w3, [acct.address, operator], emitter.address) == before


def test_a_tail_that_does_not_replay_onto_the_snapshot_falls_back_to_the_full_replay(
    tmp_path, caplog
):
    """A snapshot that passes its checks but whose state is not what its head says (here:
    the head's state root node missing, as a py-evm whose storage changed could leave it)
    is dropped once the tail fails on it, and the full replay runs."""
    chain = Chain(tmp_path)
    chain.grow(2)
    path = chain.evm.write_snapshot()
    assert path is not None
    chain.grow(2)
    before = chain.state()
    state_root = chain.evm.backend.chain.get_canonical_block_header_by_number(3).state_root
    chain.evm.journal.close()
    header, payload = snapshot_module._read(path)
    logs, kv = snapshot_module._decode_payload(payload)
    del kv[state_root]
    body = snapshot_module._encode_body(header, logs, kv)
    path.write_bytes(snapshot_module.MAGIC + hashlib.sha256(body).digest() + body)
    assert chain.state(chain.reopen()) == before
    assert any("diverged from the snapshot" in r.getMessage() for r in caplog.records)
    assert replayed(caplog) == 5
    assert chain.snapshot_files() == []
