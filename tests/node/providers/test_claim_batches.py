"""Claim attempts that arrive together go in one transaction (`node.providers.claims`):
each provider is still told its own outcome, no job is handed out twice within a batch
or across batches, a refusal is never another's, and a batch that fails is claimed again
one attempt at a time (nothing lost, nothing twice)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from node.db import session_scope
from node.models.jobs import Job, JobEvent
from node.models.providers import Provider
from tests.fixtures.group_commit import Held, count_rows, hold_first_batch, together
from tests.node.providers.test_leases import _job, _provider, _wallet_headers


@pytest.fixture
def held(app: FastAPI, client: TestClient, monkeypatch: pytest.MonkeyPatch) -> Iterator[Held]:
    hold = hold_first_batch(monkeypatch, app.state.runtime.claims)
    yield hold
    hold.go.set()


def _together(
    client: TestClient, held: Held, headers: list[dict[str, str]]
) -> list[httpx.Response]:
    return together(
        held, [lambda h=h: client.post("/v1/providers/claim", json={}, headers=h) for h in headers]
    )


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
    assert count_rows(app, JobEvent, type="claimed") == 6


def test_one_provider_twice_in_a_batch_gets_no_more_than_its_max_concurrent(
    app: FastAPI, client: TestClient, held: Held
) -> None:
    headers = _provider(app, client, "single", max_concurrent=1)
    jobs = [_job(app) for _ in range(3)]
    answers = _together(client, held, [headers] * 3)
    assert held.sizes == [1, 2]
    assert sorted(a.status_code for a in answers) == [200, 204, 204]
    assert count_rows(app, Job, status="claimed") == 1
    assert count_rows(app, Job, status="pending") == len(jobs) - 1


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
    assert count_rows(app, Job, status="claimed") == 3
    assert count_rows(app, JobEvent, type="claimed") == 3


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
    assert count_rows(app, Job, status="claimed") == 5
    assert count_rows(app, JobEvent, type="claimed") == 5
    assert count_rows(app, Job, attempt=1) == 5  # the rolled-back leases left no attempt behind


def test_a_batchs_providers_are_seen_in_one_statement(
    app: FastAPI, client: TestClient, held: Held
) -> None:
    providers = [_provider(app, client, f"p{i}") for i in range(4)]
    stranger = _wallet_headers(app, client, "stranger")
    for _ in range(5):
        _job(app)
    with session_scope(app.state.runtime.sessionmaker) as session:
        before = dict(session.execute(select(Provider.address, Provider.last_seen_at)).all())
    updates: list[str] = []

    def note(conn, cursor, statement: str, *args) -> None:
        if statement.lstrip().upper().startswith("UPDATE PROVIDERS"):
            updates.append(statement)

    engine = app.state.runtime.engine
    event.listen(engine, "before_cursor_execute", note)
    try:
        # the second batch: three providers (one of them twice) and a wallet that is none
        answers = _together(
            client, held, [providers[0], providers[1], stranger, providers[2], providers[1]]
        )
    finally:
        event.remove(engine, "before_cursor_execute", note)
    assert held.sizes == [1, 4]
    # providers[1] runs one job at most (max_concurrent 1): of its two attempts, the one
    # that came second in the batch got none
    codes = [a.status_code for a in answers]
    assert [codes[0], codes[2], codes[3]] == [200, 403, 200]
    assert sorted([codes[1], codes[4]]) == [200, 204]
    assert len(set(_leased(answers))) == 3
    assert len(updates) == 2  # the first batch's one attempt, then the second batch's four
    with session_scope(app.state.runtime.sessionmaker) as session:
        after = dict(session.execute(select(Provider.address, Provider.last_seen_at)).all())
    seen = {address for address in after if after[address] > before[address]}
    assert len(seen) == 3  # the three that asked; the fourth provider did not
