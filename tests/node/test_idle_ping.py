"""PostgreSQL connections are pinged before use only after sitting idle in the pool
(`node.db.PING_IDLE_SECONDS`): one the server closed meanwhile is replaced, not handed to
a request, and a connection back in the pool a moment ago costs no round trip."""

from __future__ import annotations

import time

import psycopg
import pytest
from sqlalchemy import text

from node import db
from node.db import make_engine
from node.replicas import libpq_url

pytestmark = pytest.mark.postgres


def _backend_pid(engine: db.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def test_a_connection_closed_while_idle_is_replaced_before_use(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "PING_IDLE_SECONDS", 0.05)
    engine = make_engine(database_url, pool_size=1, max_overflow=0)
    try:
        pid = _backend_pid(engine)
        with psycopg.connect(libpq_url(database_url), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        time.sleep(0.1)
        assert _backend_pid(engine) != pid  # no OperationalError: a new connection
    finally:
        engine.dispose()


def test_a_connection_used_a_moment_ago_is_not_pinged(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(database_url, pool_size=1, max_overflow=0)
    pings: list[object] = []
    real_ping = engine.dialect.do_ping
    monkeypatch.setattr(engine.dialect, "do_ping", lambda c: pings.append(c) or real_ping(c))
    try:
        first = _backend_pid(engine)
        for _ in range(5):
            assert _backend_pid(engine) == first
        assert pings == []
        monkeypatch.setattr(db, "PING_IDLE_SECONDS", 0.05)
        time.sleep(0.1)
        assert _backend_pid(engine) == first
        assert len(pings) == 1
    finally:
        engine.dispose()
