"""A provider that starts draining ends its open claim long-poll (`POST
/v1/providers/claim/end`): the poll answers 204 and is handed no job, even one that
became claimable while it waited (issue 11: a draining provider's poll was granted a
lease and bound on chain, and the job sat claimed until the lease expired)."""

from __future__ import annotations

import threading

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from node.config import NodeSettings
from node.db import make_engine, make_sessionmaker, session_scope
from node.jobs.service import create_job
from tests.node.providers.test_leases import _get, _pool, _provider


@pytest.fixture
def settings(settings: NodeSettings) -> NodeSettings:
    # no fallback re-check while a poll waits: only a wake-up makes it look again
    leases = settings.leases.model_copy(update={"claim_poll_seconds": 60.0})
    return settings.model_copy(update={"leases": leases})


def _job_without_waking_anyone(app: FastAPI, settings: NodeSettings) -> int:
    """A claimable job written through sessions the node's notifier does not watch (as
    another replica's would be)."""
    engine = make_engine(settings.sqlalchemy_url)
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            job = create_job(session, job_type="image_processing", workspace_id=_pool(app)[0])
            return job.id
    finally:
        engine.dispose()


def test_an_ended_poll_is_handed_no_job(app: FastAPI, client: TestClient, settings) -> None:
    headers = _provider(app, client, "drainer")
    answers: list[httpx.Response] = []
    polling = threading.Thread(
        target=lambda: answers.append(
            client.post("/v1/providers/claim", json={"wait_seconds": 20}, headers=headers)
        )
    )
    polling.start()
    threading.Event().wait(0.5)  # the poll has looked once and waits for a wake-up
    job_id = _job_without_waking_anyone(app, settings)
    ended = client.post("/v1/providers/claim/end", headers=headers)
    assert ended.status_code == 204
    polling.join(timeout=20)
    assert answers and answers[0].status_code == 204
    assert _get(app, job_id).status == "pending"  # left for providers still listening
    again = client.post("/v1/providers/claim", json={"wait_seconds": 1}, headers=headers)
    assert again.status_code == 200  # a new poll is not ended
