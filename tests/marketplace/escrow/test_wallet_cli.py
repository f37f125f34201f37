"""`dcm wallet new|address` and `dcm chain deploy` (the latter against a Hardhat node)."""

from __future__ import annotations

import json
import stat

from click.testing import CliRunner
from eth_account import Account
from web3 import Web3

from dcm.cli import main
from marketplace.escrow import JobEscrow
from marketplace.wallet import load_keystore

PASSWORD = "correct horse battery"


def test_wallet_new_and_address(tmp_path, monkeypatch):
    monkeypatch.delenv("DCM_WALLET_PASSWORD", raising=False)
    out = tmp_path / "w.json"
    runner = CliRunner()
    res = runner.invoke(
        main, ["wallet", "new", "--out", str(out), "--password-stdin"], input=PASSWORD + "\n"
    )
    assert res.exit_code == 0, res.output
    address = res.output.strip()
    assert Web3.is_checksum_address(address)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    account = load_keystore(out, PASSWORD)
    assert account.address == address
    key_hex = account.key.hex().removeprefix("0x")
    assert key_hex not in out.read_text() and key_hex not in res.output
    res = runner.invoke(main, ["wallet", "address", str(out)])
    assert res.exit_code == 0 and res.output.strip() == address
    # Never overwrites an existing wallet.
    res = runner.invoke(
        main, ["wallet", "new", "--out", str(out), "--password-stdin"], input=PASSWORD + "\n"
    )
    assert res.exit_code != 0 and "already exists" in res.output
    # Password from the environment; a short one is refused.
    monkeypatch.setenv("DCM_WALLET_PASSWORD", "short")
    res = runner.invoke(main, ["wallet", "new", "--out", str(tmp_path / "x.json")])
    assert res.exit_code != 0 and "at least 8" in res.output
    assert not (tmp_path / "x.json").exists()


def test_wrong_password_and_bad_files_say_nothing_about_keys(tmp_path):
    out = tmp_path / "w.json"
    CliRunner().invoke(
        main, ["wallet", "new", "--out", str(out), "--password-stdin"], input=PASSWORD + "\n"
    )
    account = load_keystore(out, PASSWORD)
    try:
        load_keystore(out, "not the password")
    except Exception as exc:  # noqa: BLE001
        assert "wrong password" in str(exc)
        assert account.key.hex().removeprefix("0x") not in repr(exc)
    else:
        raise AssertionError("decrypted with a wrong password")
    junk = tmp_path / "junk.json"
    junk.write_text("{not json")
    res = CliRunner().invoke(main, ["wallet", "address", str(junk)])
    assert res.exit_code != 0 and "not a keystore" in res.output
    res = CliRunner().invoke(main, ["wallet", "address", str(tmp_path / "missing.json")])
    assert res.exit_code != 0 and "not found" in res.output


def test_chain_deploy_on_a_hardhat_node(tmp_path, hardhat_node, monkeypatch):
    monkeypatch.setenv("DCM_WALLET_PASSWORD", PASSWORD)
    keyfile = tmp_path / "deployer.json"
    runner = CliRunner()
    deployer = runner.invoke(main, ["wallet", "new", "--out", str(keyfile)]).output.strip()
    w3 = Web3(Web3.HTTPProvider(hardhat_node.url))
    w3.provider.make_request("hardhat_setBalance", [deployer, hex(10**20)])
    arbiter, fee = Account.create().address, Account.create().address
    res = runner.invoke(
        main,
        [
            "chain",
            "deploy",
            "--rpc",
            hardhat_node.url,
            "--keyfile",
            str(keyfile),
            "--arbiter",
            arbiter,
            "--fee-bps",
            "150",
            "--fee-recipient",
            fee,
            "--arbitration-window",
            "7200",
        ],
    )
    assert res.exit_code == 0, res.output
    info = json.loads(res.output)
    assert info["chain_id"] == 31337 and info["deployer"] == deployer
    escrow = JobEscrow(w3, info["address"])
    assert escrow.arbiter() == arbiter and escrow.assigner() == deployer
    assert (escrow.fee_bps(), escrow.fee_recipient(), escrow.arbitration_window()) == (
        150,
        fee,
        7200,
    )
    # Invalid configuration is refused before or by the chain, never half-deployed.
    res = runner.invoke(
        main,
        [
            "chain",
            "deploy",
            "--rpc",
            hardhat_node.url,
            "--keyfile",
            str(keyfile),
            "--arbiter",
            arbiter,
            "--fee-bps",
            "150",
        ],
    )
    assert res.exit_code != 0 and "--fee-recipient" in res.output
    # the arbiter is never the assigner (here: the deployer, the default assigner)
    res = runner.invoke(
        main,
        [
            "chain",
            "deploy",
            "--rpc",
            hardhat_node.url,
            "--keyfile",
            str(keyfile),
            "--arbiter",
            deployer,
        ],
    )
    assert res.exit_code != 0 and "InvalidConfig" in res.output
    res = runner.invoke(
        main,
        [
            "chain",
            "deploy",
            "--rpc",
            hardhat_node.url,
            "--keyfile",
            str(keyfile),
            "--arbiter",
            arbiter,
            "--fee-bps",
            "5000",
        ],
    )
    assert res.exit_code != 0
