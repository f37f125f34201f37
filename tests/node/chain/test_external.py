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

from marketplace.errors import ChainError
from marketplace.escrow import JobEscrow
from node.config import NodeSettings
from node.escrow.service import funding_request
from node.models.jobs import Job
from tests.fixtures.app import create_app
from tests.fixtures.engines import require_engine
from tests.fixtures.keystores import keystore_json
from tests.marketplace.escrow.harness import HardhatNode, hardhat_available
from tests.node.chain.scenario import call_key, job_status, make_job, send_call

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
    keyfile.write_text(keystore_json(operator.key, PASSWORD))
    w3 = Web3(Web3.HTTPProvider(url))
    w3.provider.make_request("hardhat_setBalance", [operator.address, hex(10**20)])
    return base.model_copy(
        update={
            "chain_rpc_url": url,
            "chain_operator_keyfile": keyfile,
            "chain_operator_password": SecretStr(PASSWORD),
            "chain_arbiter_address": Account.create().address,
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
        assert info["arbiter"] == ext.chain_arbiter_address != info["assigner"]
        assert (
            node.post(
                "/chain/rpc", json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}
            ).status_code
            == 404
        )
        addr = Account.create().address
        assert node.post("/chain/faucet", json={"address": addr, "amount": "1"}).status_code == 404

        host, sessions = node.app.state.runtime.chain, node.app.state.runtime.sessionmaker
        w3 = Web3(Web3.HTTPProvider(hardhat.url))
        requester = Account.create()
        w3.provider.make_request("hardhat_setBalance", [requester.address, hex(10**19)])
        job_id = make_job(sessions, requester=requester.address, reward_wei=10**16)
        with sessions() as session:
            call = funding_request(session, host.escrow(), session.get(Job, job_id))
            session.commit()
        send_call(w3, requester, call)
        with node.app.state.runtime.chain_tick.lock:
            node.app.state.runtime.chain_tick.watcher.poll_once()
        assert job_status(sessions, job_id)[0] == "awaiting_funding"  # 0 confirmations yet
        w3.provider.make_request("hardhat_mine", ["0x2"])
        with node.app.state.runtime.chain_tick.lock:
            node.app.state.runtime.chain_tick.watcher.poll_once()
        assert job_status(sessions, job_id)[0] == "pending"

    with TestClient(create_app(ext)) as node:  # restart: the same escrow, not a new one
        assert node.get("/chain/info").json() == info


def test_configured_escrow_address_is_used_without_deploying(hardhat, settings, tmp_path):
    ext = _external_settings(settings, hardhat.url, tmp_path)
    w3 = Web3(Web3.HTTPProvider(hardhat.url))
    deployer = Account.create()
    w3.provider.make_request("hardhat_setBalance", [deployer.address, hex(10**19)])
    operator = Account.from_key(
        Account.decrypt(json.loads(ext.chain_operator_keyfile.read_text()), PASSWORD)
    )
    deployed = JobEscrow.deploy(w3, deployer, arbiter=deployer.address, assigner=operator.address)
    head = w3.eth.block_number
    with TestClient(
        create_app(ext.model_copy(update={"chain_escrow_address": deployed.address}))
    ) as node:
        assert node.get("/chain/info").json()["escrow_address"] == deployed.address
    assert w3.eth.block_number == head  # nothing deployed
    # an address without this build's code (here: none at all) is refused at startup
    nowhere = ext.model_copy(update={"chain_escrow_address": Account.create().address})
    with (
        pytest.raises(ChainError, match="DCM_CHAIN_ESCROW_ADDRESS") as info,
        TestClient(create_app(nowhere)),
    ):
        pass
    assert info.value.error_name == "EscrowBuildMismatch"
    # an escrow of this build assigned by another key: the node could never bind or refund
    foreign = JobEscrow.deploy(w3, deployer, arbiter=operator.address, assigner=deployer.address)
    elsewhere = ext.model_copy(update={"chain_escrow_address": foreign.address})
    with (
        pytest.raises(ChainError, match="assigned by") as info,
        TestClient(create_app(elsewhere)),
    ):
        pass
    assert info.value.error_name == "EscrowAssignerMismatch"


def test_external_chain_refuses_to_deploy_without_an_arbiter(hardhat, settings, tmp_path):
    """The arbiter who rules disputes is never the node's operator: the node does not
    deploy an escrow it would arbitrate itself."""
    ext = _external_settings(settings, hardhat.url, tmp_path)
    bare = ext.model_copy(update={"chain_arbiter_address": None})
    with pytest.raises(ChainError, match="DCM_CHAIN_ARBITER_ADDRESS"), TestClient(create_app(bare)):
        pass


def test_policy_finalizes_through_the_outbox_on_a_hardhat_node(hardhat, settings, tmp_path):
    """Settlement on an external chain: confirmations are honoured by the watcher, the
    policy's finalize goes through the outbox signed by the keystore operator."""
    from marketplace.jobs.states import JobStatus
    from node.db import session_scope
    from node.models.escrow import ChainOutbox

    ext = _external_settings(settings, hardhat.url, tmp_path)
    with TestClient(create_app(ext)) as node:
        state = node.app.state.runtime
        host, sessions = state.chain, state.sessionmaker
        w3 = Web3(Web3.HTTPProvider(hardhat.url))
        requester, provider = Account.create(), Account.create()
        for acct in (requester, provider):
            w3.provider.make_request("hardhat_setBalance", [acct.address, hex(10**19)])
        job_id = make_job(sessions, requester=requester.address, reward_wei=10**16)
        with sessions() as session:
            call = funding_request(session, host.escrow(), session.get(Job, job_id))
            session.commit()
        send_call(w3, requester, call)
        escrow = host.escrow()
        w3.provider.make_request("hardhat_mine", ["0x2"])
        with state.chain_tick.lock:
            state.chain_tick.watcher.poll_once()  # the deposit opens the job
        with session_scope(sessions) as session:  # the provider holds the lease
            job = session.get(Job, job_id)
            job.status, job.attempt, job.lease_holder = "running", 1, provider.address
        key = call_key(call)
        voucher = escrow.sign_assignment(
            host.operator.account,
            key,
            provider.address,
            1,
            escrow.get_job(key).funding,
            w3.eth.get_block("latest")["timestamp"] + 3600,
        )
        escrow.submit_with_voucher(provider, voucher, escrow.cid_digest(RESULT_CID))
        with session_scope(sessions) as session:  # the provider reported through the API
            job = session.get(Job, job_id)
            job.status, job.result_cid = "submitted", RESULT_CID

        def tick() -> list[int]:
            return state.chain_tick.run_once(drain=True).finalize

        w3.provider.make_request("hardhat_mine", ["0x2"])
        assert tick() == [] and job_status(sessions, job_id)[0] == JobStatus.SUBMITTED
        w3.provider.make_request("evm_increaseTime", [24 * 3600 + 1])
        w3.provider.make_request("hardhat_mine", ["0x1"])
        assert tick() == [job_id]
        assert job_status(sessions, job_id)[0] == "submitted"  # settled, not yet confirmed
        assert tick() == []  # the finalize is sent: nothing is enqueued twice
        w3.provider.make_request("hardhat_mine", ["0x2"])
        tick()
        status, events = job_status(sessions, job_id)
        assert status == "completed" and events[-1][0] == "settled"
        with session_scope(sessions) as session:
            [row] = session.query(ChainOutbox).all()
            assert (row.payload["function"], row.status) == ("finalize", "confirmed")
        payout = node.get(f"/v1/jobs/job_{job_id}/settlement").json()["data"]
        assert payout["recipient"] == provider.address and payout["amount_wei"] == str(10**16)
        assert payout["tx_hash"] == row.tx_hash


RESULT_CID = "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"


def test_the_node_withdraws_the_fees_its_escrow_accrued(hardhat, settings, tmp_path):
    """Finding 12: fees accrue to `owed[FEE_RECIPIENT]`; the node's policy withdraws them
    to the fee recipient (on a configured escrow with a 1 % fee)."""
    from node.db import session_scope
    from node.models.escrow import ChainOutbox

    ext = _external_settings(settings, hardhat.url, tmp_path)
    w3 = Web3(Web3.HTTPProvider(hardhat.url))
    operator = Account.from_key(
        Account.decrypt(json.loads(ext.chain_operator_keyfile.read_text()), PASSWORD)
    )
    deployer, fee_recipient = Account.create(), Account.create()
    w3.provider.make_request("hardhat_setBalance", [deployer.address, hex(10**19)])
    escrow = JobEscrow.deploy(
        w3,
        deployer,
        arbiter=deployer.address,
        assigner=operator.address,
        fee_bps=100,
        fee_recipient=fee_recipient.address,
    )
    ext = ext.model_copy(update={"chain_escrow_address": escrow.address, "chain_confirmations": 0})
    with TestClient(create_app(ext)) as node:
        state = node.app.state.runtime
        sessions = state.sessionmaker
        requester, provider = Account.create(), Account.create()
        for acct in (requester, provider):
            w3.provider.make_request("hardhat_setBalance", [acct.address, hex(10**19)])
        job_id = make_job(sessions, requester=requester.address, reward_wei=10**16)
        with sessions() as session:
            call = funding_request(session, escrow, session.get(Job, job_id))
            session.commit()
        send_call(w3, requester, call)
        key = call_key(call)

        def tick() -> None:
            state.chain_tick.run_once(drain=True)

        tick()  # the deposit opens the job
        voucher = escrow.sign_assignment(
            operator,
            key,
            provider.address,
            1,
            escrow.get_job(key).funding,
            w3.eth.get_block("latest")["timestamp"] + 3600,
        )
        escrow.submit_with_voucher(provider, voucher, escrow.cid_digest(RESULT_CID))
        escrow.accept(requester, key)  # pays the provider; 1 % accrues to the fee recipient
        assert escrow.owed(fee_recipient.address) == 10**14
        tick()
        assert escrow.owed(fee_recipient.address) == 0
        assert w3.eth.get_balance(fee_recipient.address) == 10**14
        with session_scope(sessions) as session:
            rows = session.query(ChainOutbox).filter(ChainOutbox.action == "withdraw_fees").all()
            assert [(r.payload["args"], r.status) for r in rows] == [
                ([fee_recipient.address], "confirmed")
            ]
        tick()  # nothing owed: nothing sent again
        with session_scope(sessions) as session:
            assert (
                session.query(ChainOutbox).filter(ChainOutbox.action == "withdraw_fees").count()
                == 1
            )
