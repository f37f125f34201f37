"""The outbox: a node killed between a state change and its send sends exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from node.db import session_scope
from node.escrow.outbox import enqueue
from node.models.escrow import ChainOutbox
from tests.fixtures.app import create_app
from tests.node.chain.scenario import job_status

REPO = Path(__file__).resolve().parents[3]


def _finalize_txs(host) -> list[str]:
    selector = "0x" + bytes(host.w3.keccak(text="finalize(bytes32)")[:4]).hex()
    found = []
    for n in range(host.evm.block_number() + 1):
        for tx in host.w3.eth.get_block(n, full_transactions=True)["transactions"]:
            if tx["to"] == host.escrow_address and tx["input"].hex().startswith(
                selector.removeprefix("0x")
            ):
                found.append(tx["hash"].hex())
    return found


@pytest.mark.parametrize("crash_point", ["before_sign", "after_sign"])
def test_kill_between_state_change_and_send_sends_exactly_once(settings, crash_point):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    child = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.node.chain.outbox_crash",
            str(settings.data_dir),
            settings.sqlalchemy_url,
            crash_point,
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    job_id = int(child.stdout.split()[0])

    app = create_app(settings)  # not started yet: look at what the killed node left
    with session_scope(app.state.runtime.sessionmaker) as session:
        left = session.execute(select(ChainOutbox)).scalar_one()
        expected = "pending" if crash_point == "before_sign" else "signed"
        assert (left.status, left.tx_hash is not None) == (expected, expected == "signed")
    assert job_status(app.state.runtime.sessionmaker, job_id)[0] == "submitted"

    settings.chain_watch_interval_seconds = 0.1
    with TestClient(create_app(settings)) as node:
        host, sessions = node.app.state.runtime.chain, node.app.state.runtime.sessionmaker
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if job_status(sessions, job_id)[0] == "completed":
                break
            time.sleep(0.1)
        assert job_status(sessions, job_id)[0] == "completed"
        with session_scope(sessions) as session:
            rows = session.execute(select(ChainOutbox)).scalars().all()
            assert [(r.status, r.receipt_status) for r in rows] == [("confirmed", 1)]
            tx_hash = rows[0].tx_hash
        assert _finalize_txs(host) == [tx_hash.removeprefix("0x")]
        # enqueueing the same decision again is a no-op
        with session_scope(sessions) as session:
            again = enqueue(
                session,
                dedupe_key=f"finalize:{job_id}",
                action="finalize",
                function="finalize",
                args=[],
            )
            assert again.status == "confirmed"
        with node.app.state.runtime.chain_tick.lock:
            node.app.state.runtime.chain_tick.outbox.process()
        assert len(_finalize_txs(host)) == 1
