"""`scheduled_at` in the future keeps a job from providers until it is due: the claim
query (`claimable_jobs`) and its Python twin (`is_claimable`) agree."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import event, text

from marketplace.jobs.states import OPEN_TO_PROVIDERS, JobStatus
from node.db import session_scope, utcnow
from node.jobs.repository import claimable_jobs
from node.jobs.service import create_job
from node.models.jobs import Job


def is_claimable(job: Job, now: dt.datetime) -> bool:
    """The rule written out in Python, against which the claim query is checked: open to
    providers, due, in time (was `node.jobs.service.is_claimable`, used by this test only)."""
    return (
        job.status in {s.value for s in OPEN_TO_PROVIDERS}
        and (job.scheduled_at is None or job.scheduled_at <= now)
        and (job.deadline_at is None or job.deadline_at > now)
    )


def test_future_jobs_wait_until_due(app: FastAPI) -> None:
    now = utcnow()
    hour = dt.timedelta(hours=1)
    with session_scope(app.state.runtime.sessionmaker) as session:
        plain = create_job(session, job_type="t")
        due = create_job(session, job_type="t", scheduled_at=now - hour)
        later = create_job(session, job_type="t", scheduled_at=now + hour)
        urgent_later = create_job(session, job_type="t", priority="urgent", scheduled_at=now + hour)
        late = create_job(session, job_type="t", deadline_at=now - hour)
        claimed = create_job(session, job_type="t")
        claimed.status = JobStatus.CLAIMED.value
        funding = create_job(session, job_type="t", status=JobStatus.AWAITING_FUNDING)
        other_type = create_job(session, job_type="u")
        every = [plain, due, later, urgent_later, late, claimed, funding, other_type]
        session.flush()

        got = claimable_jobs(session, now=now, job_types=["t"])
        assert [j.id for j in got] == [plain.id, due.id]  # same priority: oldest first
        assert {j.id for j in every if is_claimable(j, now) and j.job_type == "t"} == {
            plain.id,
            due.id,
        }

        # Two hours on, the scheduled ones are due; the urgent one comes first.
        then = now + 2 * hour
        got = claimable_jobs(session, now=then, job_types=["t"], limit=10)
        assert [j.id for j in got] == [urgent_later.id, plain.id, due.id, later.id]
        assert all(is_claimable(j, then) for j in got)
        assert not is_claimable(late, then) and not is_claimable(claimed, then)

        # No type filter; the lock clause is accepted on both engines.
        got = claimable_jobs(session, now=then, limit=10, lock=True)
        assert {j.id for j in got} == {urgent_later.id, plain.id, due.id, later.id, other_type.id}


def test_scheduled_job_created_through_the_api_is_not_claimable(app: FastAPI, client, seed) -> None:
    future = (utcnow() + dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    resp = client.post(
        "/workspace/1/jobs",
        json={"job_type": "t", "workspace_id": 1, "scheduled_at": future},
        headers=seed.headers,
    )
    assert resp.status_code == 201 and resp.json()["status"] == "pending"
    with session_scope(app.state.runtime.sessionmaker) as session:
        assert claimable_jobs(session, now=utcnow()) == []
        assert len(claimable_jobs(session, now=utcnow() + dt.timedelta(days=2))) == 1


@pytest.mark.postgres
def test_a_claim_skips_the_job_another_replica_is_claiming(app: FastAPI) -> None:
    """`FOR UPDATE SKIP LOCKED`: while one transaction holds the oldest claimable job, a
    second claim query (another replica) gets the next one at once, neither waiting nor
    handing the same job out twice. SQLite has no row locks: PostgreSQL only."""
    sessions = app.state.runtime.sessionmaker
    with session_scope(sessions) as session:
        first_id = create_job(session, job_type="t").id
        second_id = create_job(session, job_type="t").id
    now = utcnow()
    holder, other = sessions(), sessions()
    try:
        held = claimable_jobs(holder, now=now, limit=1, job_types=["t"], lock=True)
        other.execute(text("SET LOCAL lock_timeout = '2s'"))  # a wait would fail, not hang
        got = claimable_jobs(other, now=now, limit=1, job_types=["t"], lock=True)
        assert [j.id for j in held] == [first_id]
        assert [j.id for j in got] == [second_id]
    finally:
        holder.rollback()
        other.rollback()
        holder.close()
        other.close()


def test_the_claim_query_reads_pending_jobs_in_its_index_order(app: FastAPI) -> None:
    """The claim's statement, as it runs, is planned as a walk of `ix_jobs_claim_order`
    with no sort: it stops at the first jobs it may take, whatever the queue's length. An
    index in one direction (priority ascending) made PostgreSQL sort every pending job for
    each claim, since the claim's order mixes descending priority with ascending age."""
    engine = app.state.runtime.sessionmaker.kw["bind"]
    seen: list[tuple[str, Any]] = []

    def grab(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "ORDER BY jobs.priority_rank DESC" in statement:
            seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", grab)
    try:
        with session_scope(app.state.runtime.sessionmaker) as session:
            claimable_jobs(session, now=utcnow(), limit=1, job_types=["t"], lock=True)
    finally:
        event.remove(engine, "before_cursor_execute", grab)
    [(statement, parameters)] = seen

    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
            plan = "\n".join(str(row[-1]) for row in rows)
            assert "USING INDEX ix_jobs_claim_order" in plan, plan
            assert "TEMP B-TREE" not in plan, plan
        else:
            # on a near-empty table a scan would win; the question is whether an index
            # can give the order at all
            conn.exec_driver_sql("SET enable_seqscan = off")
            conn.exec_driver_sql("SET enable_bitmapscan = off")
            plan = "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + statement, parameters))
            assert "ix_jobs_claim_order" in plan, plan
            assert "Sort" not in plan, plan
        conn.rollback()
