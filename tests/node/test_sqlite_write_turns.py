"""SQLite write transactions take turns through one in-process lock (`node.db`): a writer
waits for the previous write transaction to end, and every way a write transaction ends
(commit, rollback, a failed statement, an autocommit write, a closed connection) hands the
turn on, so the next writer never waits out the busy timeout."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError

from node.db import make_engine


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'turns.sqlite3'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)"))
    yield engine
    engine.dispose()


def _turns(engine: Engine) -> threading.Lock:
    raw = engine.raw_connection()
    try:
        return raw.driver_connection.turns
    finally:
        raw.close()


def test_every_end_of_a_write_transaction_hands_the_turn_on(engine: Engine) -> None:
    turns = _turns(engine)
    with engine.connect() as conn:
        conn.execute(text("INSERT INTO t (v) VALUES ('a')"))
        assert turns.locked()  # held for the whole write transaction
        conn.commit()
        assert not turns.locked()

        conn.execute(text("UPDATE t SET v = 'b'"))
        conn.rollback()
        assert not turns.locked()

        with pytest.raises(IntegrityError):
            conn.execute(text("INSERT INTO t (id, v) VALUES (1, NULL)"))
        conn.rollback()
        assert not turns.locked()

        conn.execute(text("SELECT count(*) FROM t")).scalar_one()
        assert not turns.locked()  # reads never take it

    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("INSERT INTO t (v) VALUES ('c')"))
        assert not turns.locked()  # the statement was its own transaction

    raw = engine.raw_connection()
    raw.cursor().execute("DELETE FROM t WHERE v = 'c'")
    assert turns.locked()
    raw.invalidate()  # closes the driver connection with its transaction open
    assert not turns.locked()

    with engine.begin() as conn:
        # the rolled back UPDATE and the DELETE lost with its connection left no trace
        assert conn.execute(text("SELECT v FROM t ORDER BY id")).scalars().all() == ["a", "c"]


def test_a_second_writer_starts_when_the_first_commits(engine: Engine) -> None:
    first = engine.connect()
    first.execute(text("INSERT INTO t (v) VALUES ('first')"))
    started = threading.Event()
    failures: list[BaseException] = []

    def second() -> None:
        started.set()
        try:
            with engine.begin() as conn:
                conn.execute(text("INSERT INTO t (v) VALUES ('second')"))
        except BaseException as exc:  # reported below
            failures.append(exc)

    writer = threading.Thread(target=second)
    writer.start()
    started.wait()
    writer.join(0.2)
    assert writer.is_alive()  # waiting for its turn, not refused
    first.commit()
    first.close()
    writer.join(30)
    assert not writer.is_alive() and failures == []
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT v FROM t ORDER BY id")).scalars().all()
    assert rows == ["first", "second"]


def test_a_turn_not_had_within_the_busy_timeout_is_database_locked(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("node.db.SQLITE_BUSY_SECONDS", 0.1)
    holder = engine.connect()
    holder.execute(text("INSERT INTO t (v) VALUES ('held')"))
    try:
        raw = engine.raw_connection()
        with pytest.raises(sqlite3.OperationalError, match="database is locked"):
            raw.cursor().execute("INSERT INTO t (v) VALUES ('late')")
        raw.close()
    finally:
        holder.rollback()
        holder.close()
