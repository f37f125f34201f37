"""`POST /v1/jobs` writes the creates that arrive together in one transaction
(`node.jobs.creates`), and answers the plain ones in front of routing
(`node.app.FAST_PATHS`): each request is still told its own outcome, a refusal is never
another's, a batch that fails is written again one by one (nothing lost, nothing twice),
and the fast path answers exactly as the route does."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Table, event, func, select
from sqlalchemy.orm import Session

from node.auth import deps as auth_deps
from node.db import on_new, session_scope
from node.jobs import service
from node.models.jobs import Job, JobEvent
from node.notifier import CLAIMABLE, EVENTS, job_topic
from tests.fixtures.factories import make_user, make_workspace
from tests.fixtures.group_commit import Held, count_rows, hold_first_batch, together
from tests.node.jobs.conftest import Seed

BODY = {"type": "yolo_training", "payload": {"epochs": 1}}


@pytest.fixture
def held(app: FastAPI, client: TestClient, monkeypatch: pytest.MonkeyPatch) -> Iterator[Held]:
    hold = hold_first_batch(monkeypatch, app.state.runtime.creates)
    yield hold
    hold.go.set()


def _together(
    client: TestClient, held: Held, bodies: list[dict[str, Any]], headers: dict[str, str]
) -> list[httpx.Response]:
    return together(
        held, [lambda b=b: client.post("/v1/jobs", json=b, headers=headers) for b in bodies]
    )


def test_creates_that_arrive_together_go_in_one_transaction(
    app: FastAPI, client: TestClient, seed: Seed, held: Held
) -> None:
    answers = _together(client, held, [BODY] * 12, seed.headers)
    assert [a.status_code for a in answers] == [201] * 12
    assert held.sizes == [1, 11]
    ids = {a.json()["data"]["id"] for a in answers}
    assert len(ids) == 12
    for job_id in ids:
        got = client.get(f"/v1/jobs/{job_id}", headers=seed.headers).json()["data"]
        assert got["status"] == "pending"
        assert [e["type"] for e in got["events"]] == ["created"]
    assert count_rows(app, Job) == 12
    assert count_rows(app, JobEvent, type="created") == 12


def test_a_refused_create_is_told_so_and_the_rest_of_its_batch_goes_in(
    app: FastAPI, client: TestClient, seed: Seed, held: Held
) -> None:
    stranger = make_user(app, username="stranger")
    theirs = make_workspace(app, stranger, name="Not yours")
    bodies = [BODY] * 4 + [{**BODY, "workspaceId": theirs}] + [BODY] * 3
    answers = _together(client, held, bodies, seed.headers)
    assert held.sizes == [1, 7]
    assert [a.status_code for a in answers] == [201] * 4 + [403] + [201] * 3
    assert answers[4].json()["error"]["code"] == "FORBIDDEN"
    assert count_rows(app, Job) == 7
    assert count_rows(app, Job, workspace_id=theirs) == 0


def test_a_batch_whose_transaction_fails_is_written_again_one_by_one(
    app: FastAPI, client: TestClient, seed: Seed, held: Held
) -> None:
    failed: list[int] = []
    sessions = app.state.runtime.sessionmaker

    def count_new(session: Session, new: Sequence[Any]) -> None:  # the rows a batch sent
        jobs = sum(isinstance(o, Job) for o in new)
        session.info["new_jobs"] = session.info.get("new_jobs", 0) + jobs

    on_new(sessions, count_new)

    def fail_once(session: Session) -> None:  # after the batch's rows were sent
        jobs = session.info.get("new_jobs", 0)
        if jobs > 1 and not failed:
            failed.append(jobs)
            raise RuntimeError("the batch's commit fails")

    event.listen(sessions, "before_commit", fail_once)
    try:
        answers = _together(client, held, [BODY] * 6, seed.headers)
    finally:
        event.remove(sessions, "before_commit", fail_once)
    assert failed == [5]
    assert [a.status_code for a in answers] == [201] * 6
    assert len({a.json()["data"]["id"] for a in answers}) == 6
    assert count_rows(app, Job) == 6  # none lost, none twice
    assert count_rows(app, JobEvent, type="created") == 6


def _without_times(job: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in job.items() if k not in ("id", "createdAt", "updatedAt")}
    out["events"] = [
        {k: v for k, v in e.items() if k not in ("id", "createdAt")} for e in job["events"]
    ]
    return out


@pytest.fixture
def routed(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """One entry per `POST /v1/jobs` the route answered (its principal dependency ran);
    the fast path answers without it."""
    seen: list[bool] = []
    authenticate = auth_deps.authenticate_request_async

    async def watched(request: Any, settings: Any) -> Any:
        if (request.method, request.url.path) == ("POST", "/v1/jobs"):
            seen.append(True)
        return await authenticate(request, settings)

    monkeypatch.setattr(auth_deps, "authenticate_request_async", watched)
    return seen


def test_the_fast_path_and_the_route_answer_alike(
    client: TestClient, routed: list[bool], seed: Seed
) -> None:
    client.get("/v1/jobs?limit=1", headers=seed.headers)  # the caller is known now
    fast = client.post("/v1/jobs", json=BODY, headers=seed.headers)
    assert routed == []
    by_route = client.post(  # a JSON type FastAPI reads and the fast path leaves to it
        "/v1/jobs",
        content=b'{"type": "yolo_training", "payload": {"epochs": 1}}',
        headers={**seed.headers, "Content-Type": "application/merge-patch+json"},
    )
    assert routed == [True]
    assert fast.status_code == by_route.status_code == 201
    assert fast.headers["content-type"] == by_route.headers["content-type"]
    assert fast.json()["data"]["id"] != by_route.json()["data"]["id"]
    assert _without_times(fast.json()["data"]) == _without_times(by_route.json()["data"])
    assert {k: v for k, v in fast.json().items() if k != "data"} == {
        k: v for k, v in by_route.json().items() if k != "data"
    }


def test_what_the_fast_path_declines_the_route_decides_with_its_body(
    app: FastAPI, client: TestClient, routed: list[bool], seed: Seed
) -> None:
    client.get("/v1/jobs?limit=1", headers=seed.headers)  # the caller is known now
    bad = [
        ({"type": 5, "payload": {}}, seed.headers, 400, "INVALID_BODY"),
        ({"type": "x", "payload": {}, "extra": 1}, seed.headers, 400, "INVALID_BODY"),
        ([BODY], seed.headers, 400, "INVALID_BODY"),
        (BODY, {}, 401, "UNAUTHORIZED"),
        (BODY, {"Authorization": "Bearer nope"}, 401, "INVALID_TOKEN"),
    ]
    for body, headers, code, error in bad:
        resp = client.post("/v1/jobs", json=body, headers=headers)
        assert resp.status_code == code, resp.text
        assert resp.json()["error"]["code"] == error
    # declined for its content type (the route reads it): the body it reads is the one sent
    ok = client.post(
        "/v1/jobs",
        content=b'{"type": "yolo_training", "payload": {"epochs": 1}}',
        headers={**seed.headers, "Content-Type": "application/vnd.dcm+json"},
    )
    assert ok.status_code == 201, ok.text
    assert ok.json()["data"]["payload"] == {"epochs": 1}
    assert len(routed) == len(bad) + 1  # each declined, and decided by the route
    assert count_rows(app, Job) == 1


def test_each_create_of_a_batch_answers_its_job_as_it_reads_back(
    app: FastAPI, client: TestClient, seed: Seed, held: Held
) -> None:
    """The rows go in by Core INSERTs (`creates._insert`), the first of a batch alone on
    SQLite and the rest numbered after it: each answer is its own job, whole, as the
    database then holds it (every column default the answer shows is the stored one)."""
    bodies = [{**BODY, "payload": {"n": n}, "priority": "high"} for n in range(5)]
    answers = _together(client, held, bodies, seed.headers)
    assert held.sizes == [1, 4]
    for n, answer in enumerate(answers):
        assert answer.status_code == 201, answer.text
        created = answer.json()["data"]
        assert created["payload"] == {"n": n}
        read = client.get(f"/v1/jobs/{created['id']}", headers=seed.headers).json()["data"]
        assert created == read
    assert count_rows(app, JobEvent, type="created") == 5


def test_a_batch_writes_the_rows_a_flush_writes(
    app: FastAPI, client: TestClient, seed: Seed, held: Held
) -> None:
    """The Core INSERTs leave out the columns a create does not set, as the ORM's flush
    leaves out attributes never set: each column of a batch's job and event is NULL, or
    not, as in a job the flush wrote (`service.create_job`); a JSON column set to None
    would hold JSON `null` instead of SQL NULL."""
    answers = _together(client, held, [BODY] * 3, seed.headers)
    assert [a.status_code for a in answers] == [201] * 3
    first = answers[0].json()["data"]
    with session_scope(app.state.runtime.sessionmaker) as session:
        flushed = service.create_job(
            session,
            job_type="yolo_training",
            spec={"epochs": 1},
            created_by=first["createdBy"],
            workspace_id=first["workspaceId"],
            requester_address=first["requesterAddress"],
        )
        reference = flushed.id

    def nulls(table: Table, key: str, value: int) -> list[tuple[str, bool]]:
        cols = [c.name for c in table.columns]
        query = select(*[table.c[c].is_(None) for c in cols]).where(table.c[key] == value)
        with app.state.runtime.engine.connect() as conn:
            return list(zip(cols, conn.execute(query).one(), strict=True))

    jobs, events = Job.__table__, JobEvent.__table__
    for answer in answers:
        job_id = int(answer.json()["data"]["id"].removeprefix("job_"))
        assert nulls(jobs, "id", job_id) == nulls(jobs, "id", reference)
        assert nulls(events, "job_id", job_id) == nulls(events, "job_id", reference)
    with app.state.runtime.engine.connect() as conn:  # the JSON columns, in SQL
        assert conn.scalar(select(func.count()).where(jobs.c.result.is_(None))) == 4
        assert conn.scalar(select(func.count()).where(events.c.data.is_(None))) == 4


def test_a_batch_of_creates_wakes_claimers_and_each_jobs_followers(
    app: FastAPI, client: TestClient, seed: Seed, held: Held, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a new job wakes after the commit (waiting claims, the job's event followers,
    the webhook sender's `EVENTS`) it wakes when a batch of creates wrote it: the Core
    INSERTs tell the new-row hooks, as a flush would (`node.db.inserted`)."""
    notified: list[object] = []
    notifier = app.state.runtime.notifier
    notify = notifier.notify

    def watched(*topics: object) -> None:
        notified.extend(topics)
        notify(*topics)

    monkeypatch.setattr(notifier, "notify", watched)
    answers = _together(client, held, [BODY] * 3, seed.headers)
    ids = [int(a.json()["data"]["id"].removeprefix("job_")) for a in answers]
    assert CLAIMABLE in notified and EVENTS in notified
    assert {job_topic(i) for i in ids} <= set(notified)


def test_a_batch_keeps_each_payload_as_sent(client: TestClient, seed: Seed, held: Held) -> None:
    """A batch's rows go to the database in one JSON document per table on PostgreSQL
    (`creates._insert_recordsets`): what JSON can say in a payload comes back as sent, in
    the answer and when read again."""
    payloads: list[dict[str, Any]] = [
        {"s": 'nul \u0000, quote ", backslash \\, tab \t, é, 𝄞, \u2028'},
        {"n": [0, -1, 2**63, 2**70, -(2**70), 1.5, -0.0, 5e-324, 1.7976931348623157e308]},
        {"nested": {"a": [{"b": None}, [], {}], "t": True, "f": False}, "": "empty key"},
        {},
    ]
    answers = _together(client, held, [{**BODY, "payload": p} for p in payloads], seed.headers)
    for payload, answer in zip(payloads, answers, strict=True):
        assert answer.status_code == 201, answer.text
        created = answer.json()["data"]
        assert created["payload"] == payload
        read = client.get(f"/v1/jobs/{created['id']}", headers=seed.headers).json()["data"]
        assert read["payload"] == payload
