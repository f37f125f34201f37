"""Run as a child process by test_outbox.py: prepare a job whose escrow can be
finalized, commit the state change and its outbox row, then die by SIGKILL either
before anything is signed (`before_sign`) or after the signed transaction is stored
but before it is sent (`after_sign`)."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from marketplace.jobs.states import JobStatus
from node.app import create_app
from node.chain.outbox import OutboxSender, enqueue
from node.chain.service import register_job_key
from node.chain.startup import build_host, escrow_deploy_hook
from node.config import NodeSettings
from node.db import session_scope
from node.jobs.models import Job
from node.jobs.service import record_event
from tests.node.chain.scenario import bind_and_submit, funded_wallet, make_job


def main(data_dir: str, database_url: str, mode: str) -> None:
    settings = NodeSettings(data_dir=Path(data_dir), database_url=database_url)
    app = create_app(settings)  # migrates; no lifespan, so no background watcher
    sessions = app.state.sessionmaker
    host = build_host(settings)
    escrow_deploy_hook(host)
    escrow = host.escrow()
    requester, provider = funded_wallet(host), funded_wallet(host)
    job_id = make_job(
        sessions, requester=requester.address, reward_wei=10**17, status=JobStatus.SUBMITTED
    )
    with session_scope(sessions) as session:  # what funding_request does for a wallet
        register_job_key(session, escrow, job_id)
    deadline = host.evm.head_timestamp() + 7200
    escrow.fund(requester, job_id, amount_wei=10**17, deadline=deadline, challenge_window=60)
    bind_and_submit(host, provider, job_id)
    host.evm.time_travel(host.evm.head_timestamp() + 120)  # challenge window over

    with session_scope(sessions) as session:  # the state change and its outbox row, together
        job = session.get(Job, job_id)
        record_event(session, job, "finalize_requested", "challenge window over")
        enqueue(
            session,
            dedupe_key=f"finalize:{job_id}",
            action="finalize",
            job_id=job_id,
            function="finalize",
            args=["0x" + escrow.job_key(job_id).hex()],
        )
    print(f"{job_id} {provider.address}", flush=True)
    if mode == "after_sign":
        sender = OutboxSender(host, sessions)
        sender.after_sign_hook = lambda row_id: os.kill(os.getpid(), signal.SIGKILL)
        sender.process()
    os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    main(*sys.argv[1:4])
