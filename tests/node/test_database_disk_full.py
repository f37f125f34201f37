"""A database whose disk is full is the node's trouble, not the client's: 507
INSUFFICIENT_STORAGE (retryable), the transaction rolled back, nothing half-written.
SQLite's own size cap (`PRAGMA max_page_count`) makes SQLite answer exactly as on a full
disk (SQLITE_FULL, "database or disk is full")."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, func, select
from sqlalchemy.engine import Engine

from node.config import NodeSettings
from node.db import session_scope
from node.models.jobs import Job
from tests.fixtures.app import create_app
from tests.fixtures.factories import auth_headers, make_user


@pytest.fixture
def capped(settings: NodeSettings) -> Iterator[list[int]]:
    """Every new SQLite connection gets the page cap in `cap[0]` (0: no cap)."""
    cap = [0]

    def on_connect(dbapi_connection, _record) -> None:
        if cap[0]:
            dbapi_connection.execute(f"PRAGMA max_page_count = {cap[0]}")

    event.listen(Engine, "connect", on_connect)
    yield cap
    event.remove(Engine, "connect", on_connect)


def test_a_full_database_answers_507_and_stores_nothing(settings, capped) -> None:
    if not settings.database_url.startswith("sqlite"):
        pytest.skip("SQLite's page cap stands in for a full disk; PostgreSQL: SQLSTATE 53100")
    with TestClient(create_app(settings)) as client:
        make_user(client.app, username="filler")
        headers = auth_headers(client, "filler")
        first = client.post("/v1/jobs", json={"type": "x", "payload": {}}, headers=headers)
        assert first.status_code == 201, first.text
        with session_scope(client.app.state.runtime.sessionmaker) as session:
            jobs = session.execute(select(func.count()).select_from(Job)).scalar_one()
            used = session.connection().exec_driver_sql("PRAGMA page_count").scalar_one()
        assert jobs == 1
        capped[0] = used  # no page left to grow into
        client.app.state.runtime.engine.dispose()  # new connections take the cap
        big = {"type": "x", "payload": {"blob": "x" * 200_000}}
        resp = client.post("/v1/jobs", json=big, headers=headers)
        assert resp.status_code == 507, resp.text
        assert resp.json()["error"]["code"] == "INSUFFICIENT_STORAGE"
        capped[0] = 0
        client.app.state.runtime.engine.dispose()
        with session_scope(client.app.state.runtime.sessionmaker) as session:
            assert session.execute(select(func.count()).select_from(Job)).scalar_one() == 1
        again = client.post("/v1/jobs", json=big, headers=headers)
        assert again.status_code == 201, again.text  # space back: the same request succeeds
