"""`in_thread(..., read_only=True)` runs a read route's statements on an autocommit
connection (no BEGIN/COMMIT round trips on PostgreSQL), and the connection goes back to
the pool as it came: the next request that writes through it is in a transaction again."""

from __future__ import annotations

from typing import Any

import anyio
from sqlalchemy import text
from sqlalchemy.orm import Session

from node.db import make_engine, make_sessionmaker
from node.deps import in_thread


def _autocommit(session: Session) -> bool:
    dbapi: Any = session.connection().connection.dbapi_connection
    if hasattr(dbapi, "autocommit"):  # psycopg
        return bool(dbapi.autocommit)
    return dbapi.isolation_level is None  # sqlite3: no implicit BEGIN at all


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
    assert seen == [("read", True, True), ("write", False, True), ("read again", True, True)]


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
