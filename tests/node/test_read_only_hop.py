"""`in_thread(..., read_only=True)` runs a read route's statements outside a transaction:
on PostgreSQL on an autocommit connection (no BEGIN/COMMIT round trips), which goes back
to the pool as it came, so the next request that writes through it is in a transaction
again; on SQLite on the connection as it is, whose driver begins no transaction for a
read (switching its isolation level cost more than the reads, `node.db`)."""

from __future__ import annotations

from typing import Any

import anyio
from sqlalchemy import text
from sqlalchemy.orm import Session

from node.db import make_engine, make_sessionmaker
from node.deps import in_thread


def _dbapi(session: Session) -> Any:
    return session.connection().connection.dbapi_connection


def _autocommit(session: Session) -> bool:
    dbapi = _dbapi(session)
    if hasattr(dbapi, "autocommit"):  # psycopg
        return bool(dbapi.autocommit)
    return dbapi.isolation_level is None  # sqlite3: no implicit BEGIN at all


def _is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def test_reads_run_in_autocommit_and_the_connection_returns_as_it_came(
    database_url: str,
) -> None:
    engine = make_engine(database_url, pool_size=1, max_overflow=0)  # one connection
    sessions = make_sessionmaker(engine)
    seen: list[tuple[str, bool, bool]] = []

    def work(label: str, session: Session) -> None:
        session.execute(text("SELECT 1"))
        seen.append((label, _autocommit(session), session.in_transaction()))

    async def main() -> None:
        for label, read_only in (("read", True), ("write", False), ("read again", True)):
            with sessions() as session:
                await in_thread(session, work, label, session, read_only=read_only)

    try:
        anyio.run(main)
    finally:
        engine.dispose()
    if _is_sqlite(database_url):  # the driver's default level throughout, no switch
        assert seen == [("read", False, True), ("write", False, True), ("read again", False, True)]
    else:
        assert seen == [
            ("read", True, True),
            ("write", False, True),
            ("read again", True, True),
        ]


def test_a_read_holds_no_transaction_on_the_database(database_url: str) -> None:
    """What the rule is for, on either database: after a read route's statement, the
    driver holds no open transaction (no BEGIN was sent, none waits for a COMMIT)."""
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    seen: list[bool] = []

    def work(session: Session) -> None:
        session.execute(text("SELECT 1"))
        dbapi = _dbapi(session)
        if hasattr(dbapi, "autocommit"):  # psycopg: a transaction iff not autocommit
            seen.append(dbapi.info.transaction_status != 0 or not dbapi.autocommit)
        else:
            seen.append(dbapi.in_transaction)

    async def main() -> None:
        with sessions() as session:
            await in_thread(session, work, session, read_only=True)

    try:
        anyio.run(main)
    finally:
        engine.dispose()
    assert seen == [False]


def test_a_session_already_in_a_transaction_stays_in_it(database_url: str) -> None:
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    seen: list[bool] = []

    async def main() -> None:
        with sessions() as session:
            session.execute(text("SELECT 1"))  # a dependency read first, in a transaction
            await in_thread(session, lambda: seen.append(_autocommit(session)), read_only=True)

    try:
        anyio.run(main)
    finally:
        engine.dispose()
    assert seen == [False]
