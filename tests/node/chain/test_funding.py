"""Funding gate and watcher: only the requester funding at least the reward opens a job;
events are applied once, also across restarts; settlements become payouts."""

from __future__ import annotations

from eth_account import Account
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from web3 import Web3

from marketplace.jobs.states import JobStatus
from node.app import create_app
from node.chain.models import ChainEvent
from node.chain.service import funding_request, list_payouts, settlement_for_job
from node.db import session_scope
from node.jobs.models import Job
from tests.node.chain.conftest import RpcViaTestClient
from tests.node.chain.scenario import (
    bind_and_submit,
    funded_wallet,
    job_status,
    make_job,
    send_call,
)

REWARD = 10**17


def _poll(node: TestClient) -> int:
    with node.app.state.chain_tick_lock:
        return node.app.state.chain_watcher.poll_once()


def _funding(node: TestClient, job_id: int) -> dict:
    with session_scope(node.app.state.sessionmaker) as session:
        call = funding_request(session, node.app.state.chain.escrow(), session.get(Job, job_id))
    return call


def _event_count(node: TestClient) -> int:
    with session_scope(node.app.state.sessionmaker) as session:
        count = session.execute(select(func.count(ChainEvent.id))).scalar_one()
    return count


def test_requester_funding_opens_the_job_once_across_restarts(settings):
    settings.chain_watch_interval_seconds = 3600
    with TestClient(create_app(settings)) as node:
        host, sessions = node.app.state.chain, node.app.state.sessionmaker
        requester = funded_wallet(host)
        job_id = make_job(sessions, requester=requester.address, reward_wei=REWARD)
        call = _funding(node, job_id)
        assert call["chain_id"] == host.chain_id and call["to"] == host.escrow_address
        assert call["value"] == str(REWARD)
        w3 = Web3(RpcViaTestClient(node))  # the wallet talks to /chain/rpc only
        receipt = send_call(w3, requester, call)
        assert receipt["status"] == 1
        assert job_status(sessions, job_id)[0] == "awaiting_funding"  # not before the watcher
        assert _poll(node) == 1
        status, events = job_status(sessions, job_id)
        assert status == "pending" and events[-1][0] == "funded"
        topic = host.escrow().contract.events.JobFunded().topic
        logs = w3.eth.get_logs({"fromBlock": 0, "address": host.escrow_address, "topics": [topic]})
        assert len(logs) == 1 and logs[0]["transactionHash"] == receipt["transactionHash"]
        assert _poll(node) == 0
        balance = w3.eth.get_balance(host.escrow_address)
        code = w3.eth.get_code(host.escrow_address)
        count = _event_count(node)

    with TestClient(create_app(settings)) as node:
        _poll(node)
        w3 = Web3(RpcViaTestClient(node))
        assert _event_count(node) == count
        status, events_after = job_status(node.app.state.sessionmaker, job_id)
        assert status == "pending" and events_after == events
        assert w3.eth.get_balance(node.app.state.chain.escrow_address) == balance == REWARD
        assert w3.eth.get_code(node.app.state.chain.escrow_address) == code


def test_underfunding_wrong_sender_and_unknown_key_never_open_a_job(settings):
    settings.chain_watch_interval_seconds = 3600
    with TestClient(create_app(settings)) as node:
        host, sessions = node.app.state.chain, node.app.state.sessionmaker
        w3 = Web3(RpcViaTestClient(node))
        requester, stranger = funded_wallet(host), funded_wallet(host)
        short = make_job(sessions, requester=requester.address, reward_wei=REWARD)
        send_call(w3, requester, _funding(node, short), value=REWARD - 1)
        hijacked = make_job(sessions, requester=requester.address, reward_wei=REWARD)
        send_call(w3, stranger, _funding(node, hijacked))
        unknown = host.escrow().funding_call(
            999_999,
            amount_wei=REWARD,
            deadline=host.evm.head_timestamp() + 3600,
            challenge_window=600,
        )
        send_call(w3, stranger, unknown)
        assert _poll(node) == 3

        status, events = job_status(sessions, short)
        assert status == "awaiting_funding"
        assert events[-1][0] == "funding_rejected" and "below the reward" in events[-1][1]
        status, events = job_status(sessions, hijacked)
        assert status == "awaiting_funding"
        assert "not by the job's requester" in events[-1][1]
        with session_scope(sessions) as session:
            orphan = session.execute(
                select(ChainEvent).where(ChainEvent.job_id.is_(None))
            ).scalar_one()
            assert orphan.event == "JobFunded" and orphan.requester == stranger.address


def test_settlement_becomes_a_payout(settings):
    settings.chain_watch_interval_seconds = 3600
    with TestClient(create_app(settings)) as node:
        host, sessions = node.app.state.chain, node.app.state.sessionmaker
        w3 = Web3(RpcViaTestClient(node))
        requester, provider = funded_wallet(host), funded_wallet(host)
        job_id = make_job(sessions, requester=requester.address, reward_wei=REWARD)
        send_call(w3, requester, _funding(node, job_id))
        _poll(node)
        with session_scope(sessions) as session:  # the job runs (provider side, off-chain)
            session.get(Job, job_id).status = JobStatus.SUBMITTED.value
        bind_and_submit(host, provider, job_id)
        result = host.escrow().accept(requester, job_id)
        _poll(node)
        assert job_status(sessions, job_id)[0] == "completed"
        with session_scope(sessions) as session:
            payout = settlement_for_job(session, job_id)
            assert payout["recipient"] == provider.address
            assert payout["amount_wei"] == str(REWARD) and payout["outcome"] == "accepted"
            assert payout["tx_hash"] == result.tx_hash
            assert payout["block_number"] == result.block_number
            assert payout["timestamp"] == w3.eth.get_block(result.block_number)["timestamp"]
            assert list_payouts(session, provider=provider.address) == [payout]
            assert list_payouts(session, requester=requester.address) == [payout]
            assert list_payouts(session, provider=Account.create().address) == []
