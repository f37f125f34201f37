"""Funding gate and watcher: only the requester funding at least the reward opens a job;
events are applied once, also across restarts; settlements become payouts."""

from __future__ import annotations

import pytest
from eth_account import Account
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from web3 import Web3

from marketplace.errors import NotAwaitingFunding
from marketplace.escrow import job_key
from marketplace.jobs.states import JobStatus
from node.db import session_scope
from node.escrow.service import (
    EscrowFunding,
    escrow_view,
    funding_request,
    list_payouts,
    settlement_for_job,
)
from node.models.escrow import ChainEscrow, ChainEvent
from node.models.jobs import Job
from tests.fixtures.app import create_app
from tests.node.chain.conftest import RpcViaTestClient, hand_driven_node
from tests.node.chain.scenario import (
    bind_and_submit,
    call_key,
    funded_wallet,
    job_status,
    make_job,
    send_call,
)

REWARD = 10**17


def _poll(node: TestClient) -> int:
    with node.app.state.runtime.chain_tick.lock:
        return node.app.state.runtime.chain_tick.watcher.poll_once()


def _funding(node: TestClient, job_id: int) -> dict:
    with session_scope(node.app.state.runtime.sessionmaker) as session:
        call = funding_request(
            session, node.app.state.runtime.chain.escrow(), session.get(Job, job_id)
        )
    return call


def _event_count(node: TestClient) -> int:
    with session_scope(node.app.state.runtime.sessionmaker) as session:
        count = session.execute(select(func.count(ChainEvent.id))).scalar_one()
    return count


def test_requester_funding_opens_the_job_once_across_restarts(settings):
    with hand_driven_node(settings) as node:
        host, sessions = node.app.state.runtime.chain, node.app.state.runtime.sessionmaker
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
        status, events_after = job_status(node.app.state.runtime.sessionmaker, job_id)
        assert status == "pending" and events_after == events
        assert w3.eth.get_balance(node.app.state.runtime.chain.escrow_address) == balance == REWARD
        assert w3.eth.get_code(node.app.state.runtime.chain.escrow_address) == code


def test_a_read_that_raced_the_watcher_keeps_the_funded_key(settings):
    """A job read as awaiting_funding just before the watcher opened it on a deposit (the
    seed 000 detail and /v1 reads ask for the funding call) must not retire that key:
    the escrow view, the requester's accept and the settlement all use it."""
    with hand_driven_node(settings) as node:
        host, sessions = node.app.state.runtime.chain, node.app.state.runtime.sessionmaker
        requester = funded_wallet(host)
        job_id = make_job(sessions, requester=requester.address, reward_wei=REWARD)
        call = _funding(node, job_id)
        send_call(Web3(RpcViaTestClient(node)), requester, call)
        with session_scope(sessions) as stale:
            job = stale.get(Job, job_id)
            assert job.status == "awaiting_funding"
            assert _poll(node) == 1  # the watcher opens the job meanwhile
            with pytest.raises(NotAwaitingFunding):
                funding_request(stale, host.escrow(), job)
            assert EscrowFunding(lambda: host).funding_call(stale, job) is None
        with session_scope(sessions) as session:
            keys = session.execute(
                select(ChainEscrow.generation).where(ChainEscrow.job_id == job_id)
            ).scalars()
            assert list(keys) == [0]
            view = escrow_view(session, session.get(Job, job_id))
        assert view["job_key"] == call_key(call) and view["accepted"] is True


def test_underfunding_a_strangers_deposit_and_a_strangers_key_never_open_a_job(settings):
    with hand_driven_node(settings) as node:
        host, sessions = node.app.state.runtime.chain, node.app.state.runtime.sessionmaker
        w3 = Web3(RpcViaTestClient(node))
        requester, stranger = funded_wallet(host), funded_wallet(host)
        short = make_job(sessions, requester=requester.address, reward_wei=REWARD)
        send_call(w3, requester, _funding(node, short), value=REWARD - 1)
        hijacked = make_job(sessions, requester=requester.address, reward_wei=REWARD)
        # the job's key names its requester: a stranger's deposit on it reverts
        receipt = send_call(w3, stranger, _funding(node, hijacked))
        assert receipt["status"] == 0
        # the stranger's own key for the same job number is its own money, not the job's
        own = host.escrow().funding_call(
            job_key(hijacked, stranger.address),
            amount_wei=REWARD,
            deadline=host.evm.head_timestamp() + 3600,
            challenge_window=600,
        )
        assert send_call(w3, stranger, own)["status"] == 1
        assert _poll(node) == 2

        status, events = job_status(sessions, short)
        assert status == "awaiting_funding"
        assert events[-1][0] == "funding_rejected" and "below the reward" in events[-1][1]
        status, events = job_status(sessions, hijacked)
        assert status == "awaiting_funding" and events[-1][0] == "created"
        with session_scope(sessions) as session:
            orphan = session.execute(
                select(ChainEvent).where(ChainEvent.job_id.is_(None))
            ).scalar_one()
            assert orphan.event == "JobFunded" and orphan.requester == stranger.address


def test_settlement_becomes_a_payout(settings):
    with hand_driven_node(settings) as node:
        host, sessions = node.app.state.runtime.chain, node.app.state.runtime.sessionmaker
        w3 = Web3(RpcViaTestClient(node))
        requester, provider = funded_wallet(host), funded_wallet(host)
        job_id = make_job(sessions, requester=requester.address, reward_wei=REWARD)
        call = _funding(node, job_id)
        send_call(w3, requester, call)
        _poll(node)
        with session_scope(sessions) as session:  # the job runs (provider side, off-chain)
            job = session.get(Job, job_id)
            job.status, job.attempt, job.lease_holder = JobStatus.RUNNING.value, 1, provider.address
        bind_and_submit(host, provider, call_key(call))
        result = host.escrow().accept(requester, call_key(call))
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
