"""The one transition table, walked pair by pair through `transition()`: every legal
move happens and is logged, every illegal one is 409 INVALID_TRANSITION and changes
nothing."""

from __future__ import annotations

import itertools

import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from marketplace.errors import InvalidTransition
from marketplace.jobs.dialects import SEED001_WORD, SEED001_WORDS, seed001_filter
from marketplace.jobs.states import TRANSITIONS, JobStatus, can_transition
from node.db import session_scope
from node.jobs.service import create_job, transition
from node.models.jobs import Job, JobEvent


def test_table_covers_every_state() -> None:
    assert set(TRANSITIONS) == set(JobStatus)
    assert set(SEED001_WORD) == set(JobStatus)
    assert set(SEED001_WORD.values()) == set(SEED001_WORDS)
    # Filtering by every seed word selects every canonical state exactly once.
    selected = [seed001_filter([w]) for w in SEED001_WORDS]
    assert sorted(s for group in selected for s in group) == sorted(s.value for s in JobStatus)


def test_every_pair_of_states_through_transition(app: FastAPI) -> None:
    legal = illegal = 0
    with session_scope(app.state.runtime.sessionmaker) as session:
        for current, target in itertools.product(JobStatus, JobStatus):
            job = create_job(session, job_type="walk")
            job.status = current.value  # setup: place the job in `current`
            session.flush()
            events_before = session.scalar(select(func.count()).where(JobEvent.job_id == job.id))
            if can_transition(current, target):
                legal += 1
                transition(session, job, target, message="walk")
                assert job.status == target.value
                last = session.scalars(
                    select(JobEvent).where(JobEvent.job_id == job.id).order_by(JobEvent.id.desc())
                ).first()
                assert last is not None
                assert (last.from_status, last.to_status) == (current.value, target.value)
                assert last.type == target.value
                expected_events = events_before + 1
            else:
                illegal += 1
                with pytest.raises(InvalidTransition) as err:
                    transition(session, job, target)
                assert err.value.status == 409 and err.value.code == "INVALID_TRANSITION"
                assert err.value.details == {"from": current.value, "to": target.value}
                assert job.status == current.value
                expected_events = events_before
            count = session.scalar(select(func.count()).where(JobEvent.job_id == job.id))
            assert count == expected_events
    assert legal == sum(len(t) for t in TRANSITIONS.values())
    assert legal + illegal == len(JobStatus) ** 2


def test_transition_sets_start_and_finish_times(app: FastAPI) -> None:
    with session_scope(app.state.runtime.sessionmaker) as session:
        job = create_job(session, job_type="t")
        assert job.started_at is None and job.completed_at is None
        transition(session, job, JobStatus.RUNNING)
        started = job.started_at
        assert started is not None and job.completed_at is None
        transition(session, job, JobStatus.COMPLETED)
        assert job.started_at == started and job.completed_at is not None
        assert [e.type for e in job.events] == ["created", "running", "completed"]
        assert session.scalar(select(Job.status).where(Job.id == job.id)) == "completed"
