"""Fixtures of the job API tests: the seed's own account ("your_username" /
"your_password") owning workspace 1, and helpers to put jobs into a given state."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from node.db import session_scope
from node.models.jobs import Job
from tests.fixtures.factories import auth_headers, make_user, make_workspace

SEED_USER = "your_username"
SEED_PASSWORD = "your_password"


@dataclass
class Seed:
    """The seed's caller: a user, their workspace 1 and their bearer headers."""

    user_id: int
    workspace_id: int
    headers: dict[str, str]


@pytest.fixture
def seed(app: FastAPI, client: TestClient) -> Seed:
    user = make_user(app, username=SEED_USER, password=SEED_PASSWORD)
    ws = make_workspace(app, user, name="Seed workspace")
    assert ws == 1  # the seed's URLs say /workspace/1
    return Seed(user.id, ws, auth_headers(client, SEED_USER, SEED_PASSWORD))


@pytest.fixture
def set_job(app: FastAPI) -> Callable[..., None]:
    """Force columns of a job directly (test setup for states only providers reach)."""

    def _set(job_id: str | int, **columns: Any) -> None:
        num = int(str(job_id).removeprefix("job_"))
        with session_scope(app.state.runtime.sessionmaker) as session:
            job = session.get(Job, num)
            assert job is not None
            for key, value in columns.items():
                setattr(job, key, value)

    return _set
