"""Run as a child process by test_outbox.py: prepare a job whose escrow can be
finalized, commit the state change and its outbox row, then die by SIGKILL either
before anything is signed (`before_sign`) or after the signed transaction is stored
but before it is sent (`after_sign`)."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from marketplace.escrow import cidv0_of_digest
from marketplace.jobs.states import JobStatus
from node.chain.startup import build_host
from node.config import NodeSettings
from node.db import session_scope
from node.escrow.deploy import escrow_deploy_hook
from node.escrow.outbox import OutboxSender, enqueue
from node.escrow.service import FundingTerms, funding_escrow
from node.escrow.watcher import ChainWatcher
from node.jobs.service import record_event
from node.models.jobs import Job
from tests.fixtures.app import create_app
from tests.node.chain.scenario import bind_and_submit, funded_wallet, make_job


def main(data_dir: str, database_url: str, mode: str) -> None:
    settings = NodeSettings(data_dir=Path(data_dir), database_url=database_url)
    app = create_app(settings)  # migrates; no lifespan, so no background watcher
    sessions = app.state.runtime.sessionmaker
    host = build_host(settings, FundingTerms.from_settings(settings))
    escrow_deploy_hook(host)
    escrow = host.escrow()
    requester, provider = funded_wallet(host), funded_wallet(host)
    job_id = make_job(sessions, requester=requester.address, reward_wei=10**17)
    with session_scope(sessions) as session:  # what funding_request does for a wallet
        key = funding_escrow(session, escrow, session.get(Job, job_id)).job_key
    deadline = host.evm.head_timestamp() + 7200
    window = 24 * 3600  # the node's terms
    escrow.fund(requester, key, amount_wei=10**17, deadline=deadline, challenge_window=window)
    ChainWatcher(host, sessions).poll_once()  # the deposit opens the job
    with session_scope(sessions) as session:  # the provider ran it and reported its result
        job = session.get(Job, job_id)
        job.status, job.attempt, job.lease_holder = JobStatus.SUBMITTED.value, 1, provider.address
        job.result_cid = cidv0_of_digest(b"\x11" * 32)
    bind_and_submit(host, provider, key)  # ... and submitted its digest on chain
    host.evm.time_travel(host.evm.head_timestamp() + window + 60)  # challenge window over

    with session_scope(sessions) as session:  # the state change and its outbox row, together
        job = session.get(Job, job_id)
        record_event(session, job, "finalize_requested", "challenge window over")
        enqueue(
            session,
            dedupe_key=f"finalize:{job_id}",
            action="finalize",
            job_id=job_id,
            function="finalize",
            args=[key],
            job_keys=[key],
        )
    print(f"{job_id} {provider.address}", flush=True)
    if mode == "after_sign":
        sender = OutboxSender(host, sessions)
        sign = sender._sign

        def sign_then_die(row_id: int) -> str:  # killed between sign (persisted) and send
            sign(row_id)
            os.kill(os.getpid(), signal.SIGKILL)
            raise AssertionError("unreachable")

        sender._sign = sign_then_die  # type: ignore[method-assign]
        sender.process()
    os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    main(*sys.argv[1:4])
