"""Claim attempts that arrive together go in one transaction (`node.providers.claims`):
each provider is still told its own outcome, no job is handed out twice within a batch
or across batches, a refusal is never another's, and a batch that fails is claimed again
one attempt at a time (nothing lost, nothing twice)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from node.db import session_scope
from node.models.jobs import Job, JobEvent
from node.providers.claims import ClaimQueue
from tests.node.providers.test_leases import _job, _provider, _wallet_headers


class Held:
    """The first batch's worker thread held until `go`, so that the claims sent
    meanwhile wait together; `sizes` are the batches' sizes as written."""

    def __init__(self, queue: ClaimQueue) -> None:
        self.queue = queue
        self.entered = threading.Event()
        self.go = threading.Event()
        self.sizes: list[int] = []

    def waiting(self) -> int:
        return len(self.queue._waiting)


@pytest.fixture
def held(app: FastAPI, client: TestClient, monkeypatch: pytest.MonkeyPatch) -> Iterator[Held]:
    queue: ClaimQueue = app.state.runtime.claims
    hold = Held(queue)
    write = ClaimQueue._write

    def held_write(self: ClaimQueue, batch: list[Any]) -> None:
        hold.sizes.append(len(batch))
        if len(hold.sizes) == 1:
            hold.entered.set()
            assert hold.go.wait(30)
        write(self, batch)

    monkeypatch.setattr(ClaimQueue, "_write", held_write)
    yield hold
    hold.go.set()


def _together(
    client: TestClient, held: Held, headers: list[dict[str, str]]
) -> list[httpx.Response]:
    """The first claim alone (its batch held), then the rest sent while it is held: they
    make one batch."""
    answers: list[httpx.Response | None] = [None] * len(headers)

    def send(i: int) -> None:
        answers[i] = client.post("/v1/providers/claim", json={}, headers=headers[i])

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(headers))]
    threads[0].start()
    assert held.entered.wait(30)
    for t in threads[1:]:
        t.start()
    for _ in range(3000):
        if held.waiting() == len(headers) - 1:
            break
        threading.Event().wait(0.01)
    assert held.waiting() == len(headers) - 1
    held.go.set()
    for t in threads:
        t.join(30)
    assert all(a is not None for a in answers)
    return [a for a in answers if a is not None]


def _count(app: FastAPI, model: type, **where: Any) -> int:
    with session_scope(app.state.runtime.sessionmaker) as session:
        query = select(func.count()).select_from(model).filter_by(**where)
        return int(session.scalar(query) or 0)


def _leased(answers: list[httpx.Response]) -> list[str]:
    return [a.json()["data"]["lease"]["job_id"] for a in answers if a.status_code == 200]


def test_claims_that_arrive_together_go_in_one_transaction(
    app: FastAPI, client: TestClient, held: Held
) -> None:
    providers = [_provider(app, client, f"p{i}") for i in range(8)]
    jobs = [_job(app) for _ in range(6)]
    answers = _together(client, held, providers)
    assert held.sizes == [1, 7]
    assert sorted(a.status_code for a in answers) == [200] * 6 + [204] * 2
    leased = _leased(answers)
    assert sorted(leased) == sorted(f"job_{j}" for j in jobs)  # each job once
    assert {a.json()["data"]["lease"]["attempt"] for a in answers if a.status_code == 200} == {1}
    holders = set()
    for job_id in jobs:
        with session_scope(app.state.runtime.sessionmaker) as session:
            job = session.get(Job, job_id)
            assert job.status == "claimed"
            holders.add(job.lease_holder)
    assert len(holders) == 6  # six providers, one job each
    assert _count(app, JobEvent, type="claimed") == 6


def test_one_provider_twice_in_a_batch_gets_no_more_than_its_max_concurrent(
    app: FastAPI, client: TestClient, held: Held
) -> None:
    headers = _provider(app, client, "single", max_concurrent=1)
    jobs = [_job(app) for _ in range(3)]
    answers = _together(client, held, [headers] * 3)
    assert held.sizes == [1, 2]
    assert sorted(a.status_code for a in answers) == [200, 204, 204]
    assert _count(app, Job, status="claimed") == 1
    assert _count(app, Job, status="pending") == len(jobs) - 1


def test_a_refused_attempt_is_told_so_and_the_rest_of_its_batch_claims(
    app: FastAPI, client: TestClient, held: Held
) -> None:
    providers = [_provider(app, client, f"p{i}") for i in range(3)]
    stranger = _wallet_headers(app, client, "stranger")  # signed in, never registered
    forged = {"Authorization": "Bearer nope"}
    for _ in range(4):
        _job(app)
    answers = _together(client, held, [providers[0], stranger, providers[1], forged, providers[2]])
    assert held.sizes == [1, 4]
    assert [a.status_code for a in answers] == [200, 403, 200, 401, 200]
    assert answers[1].json()["error"]["code"] == "PROVIDER_NOT_REGISTERED"
    assert answers[3].json()["error"]["code"] == "INVALID_TOKEN"
    assert len(set(_leased(answers))) == 3
    assert _count(app, Job, status="claimed") == 3
    assert _count(app, JobEvent, type="claimed") == 3


def test_a_batch_whose_transaction_fails_is_claimed_again_one_by_one(
    app: FastAPI, client: TestClient, held: Held
) -> None:
    providers = [_provider(app, client, f"p{i}") for i in range(5)]
    for _ in range(5):
        _job(app)
    failed: list[int] = []

    def fail_once(session: Session) -> None:  # after the batch's leases were written
        claimed = [
            o for o in session.identity_map.values() if isinstance(o, Job) and o.status == "claimed"
        ]
        if len(claimed) > 1 and not failed:
            failed.append(len(claimed))
            raise RuntimeError("the batch's commit fails")

    sessions = app.state.runtime.sessionmaker
    event.listen(sessions, "before_commit", fail_once)
    try:
        answers = _together(client, held, providers)
    finally:
        event.remove(sessions, "before_commit", fail_once)
    assert failed == [4]
    assert [a.status_code for a in answers] == [200] * 5
    assert len(set(_leased(answers))) == 5  # none lost, none twice
    assert _count(app, Job, status="claimed") == 5
    assert _count(app, JobEvent, type="claimed") == 5
    assert _count(app, Job, attempt=1) == 5  # the rolled-back leases left no attempt behind
