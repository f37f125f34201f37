"""The job's event log as a store (issue 13, scope 1-2): sequence numbers, log levels and
streams, the line and per-job limits with their marker, retention, and the non-streaming
reads of `GET /v1/jobs/{id}/events|logs` (tail, since, after, authorization)."""

from __future__ import annotations

import datetime as dt

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from node.config import EventSettings, NodeSettings
from node.db import session_scope
from node.jobs.events import LogLine, prune_logs
from node.jobs.service import append_log_lines, create_job, record_event
from node.models.jobs import Job, JobEvent
from tests.fixtures.app import create_app
from tests.fixtures.factories import auth_headers, make_user, make_workspace


def _owned_job(app: FastAPI, client: TestClient) -> tuple[int, dict[str, str]]:
    owner = make_user(app)
    workspace_id = make_workspace(app, owner)
    with session_scope(app.state.runtime.sessionmaker) as session:
        job_id = create_job(session, job_type="image_processing", workspace_id=workspace_id).id
    return job_id, auth_headers(client, owner.username or "")


def _limited(settings: NodeSettings) -> FastAPI:
    limits = EventSettings(max_line_chars=100, max_log_lines_per_job=3)
    return create_app(settings.model_copy(update={"events": limits}))


def test_entries_are_numbered_per_job_and_logs_keep_level_stream_and_limits(
    settings: NodeSettings,
) -> None:
    app = _limited(settings)
    with TestClient(app) as client:
        job_id, headers = _owned_job(app, client)
        with session_scope(app.state.runtime.sessionmaker) as session:
            job = session.get(Job, job_id)
            kept = append_log_lines(
                session,
                job,
                [
                    LogLine("epoch 1", "info", "stdout"),
                    LogLine("x" * 500, "error", "stderr"),
                ],
                app.state.runtime.settings.events,
                attempt=1,
            )
            assert kept == 2
            record_event(session, job, "progress", "half", data={"percent": 50})
            kept = append_log_lines(
                session,
                job,
                [LogLine(f"line {i}") for i in range(4)],
                app.state.runtime.settings.events,
                attempt=1,
            )
            assert kept == 1  # the limit is 3 lines

        logs = client.get(f"/v1/jobs/job_{job_id}/logs", headers=headers).json()
        events = client.get(f"/v1/jobs/job_{job_id}/events", headers=headers).json()

    entries = sorted(logs["data"] + events["data"], key=lambda e: e["seq"])
    assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))
    assert logs["lastSeq"] == events["lastSeq"] == len(entries)
    assert [e["type"] for e in events["data"]] == ["created", "progress"]
    first, long, third, marker = logs["data"]
    assert (first["message"], first["level"], first["stream"]) == ("epoch 1", "info", "stdout")
    assert (long["level"], long["stream"]) == ("error", "stderr")
    assert long["message"].startswith("x" * 100) and "400 more characters cut" in long["message"]
    assert third["message"] == "line 0"
    assert marker["level"] == "warning" and "3 log line(s) dropped" in marker["message"]
    assert marker["data"] == {"dropped": 3, "dropped_total": 3}


def test_tail_after_and_since_select_entries(client: TestClient, app: FastAPI) -> None:
    job_id, headers = _owned_job(app, client)
    with session_scope(app.state.runtime.sessionmaker) as session:
        job = session.get(Job, job_id)
        append_log_lines(
            session,
            job,
            [LogLine(f"l{i}") for i in range(6)],
            app.state.runtime.settings.events,
            attempt=None,
        )
        old = session.scalars(select(JobEvent).where(JobEvent.message == "l0")).one()
        old.created_at = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    url = f"/v1/jobs/job_{job_id}/logs"

    def messages(**params: object) -> list[str]:
        resp = client.get(url, params=params, headers=headers)
        assert resp.status_code == 200, resp.text
        return [e["message"] for e in resp.json()["data"]]

    assert messages() == [f"l{i}" for i in range(6)]
    assert messages(tail=2) == ["l4", "l5"]
    assert messages(after=5) == ["l4", "l5"]  # seq 1 is `created`; l4 is seq 6
    assert messages(since="2021-01-01T00:00:00Z") == [f"l{i}" for i in range(1, 6)]
    bad = client.get(url, params={"after": "x"}, headers=headers)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "INVALID_QUERY"


def test_only_who_may_read_the_job_reads_its_log(client: TestClient, app: FastAPI) -> None:
    job_id, _ = _owned_job(app, client)
    stranger = make_user(app)
    for kind in ("events", "logs"):
        for follow in ("false", "true"):
            resp = client.get(
                f"/v1/jobs/job_{job_id}/{kind}",
                params={"follow": follow},
                headers=auth_headers(client, stranger.username or ""),
            )
            assert resp.status_code == 404, resp.text
            assert client.get(f"/v1/jobs/job_{job_id}/{kind}").status_code == 401


def test_retention_deletes_old_log_lines_only(app: FastAPI, client: TestClient) -> None:
    job_id, _ = _owned_job(app, client)
    factory = app.state.runtime.sessionmaker
    with session_scope(factory) as session:
        job = session.get(Job, job_id)
        append_log_lines(session, job, [LogLine("old"), LogLine("new")], EventSettings(), None)
        for ev in session.scalars(select(JobEvent).where(JobEvent.job_id == job_id)):
            if ev.message in ("old", "Job created"):
                ev.created_at = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    with session_scope(factory) as session:
        assert prune_logs(session, EventSettings(log_retention_days=1)) == 1
        left = session.scalars(select(JobEvent.message).where(JobEvent.job_id == job_id)).all()
    assert sorted(left) == ["Job created", "new"]


def test_a_batch_of_log_lines_takes_its_numbers_in_one_update(settings: NodeSettings) -> None:
    """A provider's batch of lines reserves its sequence numbers with one UPDATE of the job
    row (not one per line), and the numbers are consecutive, after what came before."""
    from sqlalchemy import event

    app = create_app(settings)
    with TestClient(app) as client:
        job_id, _headers = _owned_job(app, client)
        updates: list[str] = []

        def count(_conn, _cursor, statement, _params, _ctx, _many) -> None:  # noqa: ANN001
            if statement.lstrip().upper().startswith("UPDATE JOBS") and "event_seq" in statement:
                updates.append(statement)

        engine = app.state.runtime.engine
        with session_scope(app.state.runtime.sessionmaker) as session:
            job = session.get(Job, job_id)
            before = job.event_seq
            event.listen(engine, "before_cursor_execute", count)
            try:
                kept = append_log_lines(
                    session,
                    job,
                    [LogLine(f"line {i}") for i in range(50)],
                    app.state.runtime.settings.events,
                    attempt=1,
                )
            finally:
                event.remove(engine, "before_cursor_execute", count)
        assert kept == 50
        assert len(updates) == 1, updates
        with session_scope(app.state.runtime.sessionmaker) as session:
            seqs = session.scalars(
                select(JobEvent.seq).where(JobEvent.job_id == job_id, JobEvent.type == "log")
            ).all()
        assert sorted(seqs) == list(range(before + 1, before + 51))
