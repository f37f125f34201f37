"""Database plumbing shared by every domain: declarative base, portable column types,
engine and session factories, and the per-request session (migrations: `node.schema`).

One request, one transaction: services `flush()`, the request's session dependency
commits on success and rolls back on error. SQLite is the embedded default, PostgreSQL
the production engine; both run the same Alembic migrations.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import pydantic_core
from sqlalchemy import JSON, DateTime, Engine, MetaData, Numeric, String, create_engine, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

M = TypeVar("M")  # a mapped class


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class Wei(TypeDecorator[int]):
    """An amount in wei as an exact integer: NUMERIC(78,0) on PostgreSQL, a decimal string
    on SQLite (whose NUMERIC would go through float)."""

    impl = String(80)
    cache_ok = True

    def load_dialect_impl(self, dialect: Any) -> Any:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(Numeric(78, 0))
        return dialect.type_descriptor(String(80))

    def process_bind_param(self, value: int | None, dialect: Any) -> Any:
        if value is None:
            return None
        value = int(value)
        if value < 0:
            raise ValueError("wei amounts are never negative")
        return Decimal(value) if dialect.name == "postgresql" else str(value)

    def process_result_value(self, value: Any, dialect: Any) -> int | None:
        return None if value is None else int(value)


SQLITE_BUSY_SECONDS = 30
# Connections an engine keeps open: as many as the worker threads that run requests
# (anyio's default limiter, 40), so that under load a request never opens a connection
# of its own. With SQLAlchemy's defaults (5 + 10 on SQLite, 10 + 20 set here before on
# PostgreSQL) 32 concurrent readers kept opening and closing overflow connections, each
# with its PRAGMAs or a PostgreSQL backend to start (issue 12's profile). The overflow
# is for the loop services' sessions on top.
POOL_SIZE = 40
POOL_OVERFLOW = 10
_WRITES = ("insert", "update", "delete", "replace")


class _WriteTurnCursor(sqlite3.Cursor):
    """Takes its connection's write turn before a statement that opens a write
    transaction (the driver's implicit BEGIN before INSERT/UPDATE/DELETE/REPLACE)."""

    connection: _WriteTurnConnection

    def execute(self, sql: str, parameters: Any = (), /) -> _WriteTurnCursor:
        self.connection.take_turn(sql)
        try:
            return super().execute(sql, parameters)
        finally:
            self.connection.end_turn_if_idle()

    def executemany(self, sql: str, seq_of_parameters: Any, /) -> _WriteTurnCursor:
        self.connection.take_turn(sql)
        try:
            return super().executemany(sql, seq_of_parameters)
        finally:
            self.connection.end_turn_if_idle()


class _WriteTurnConnection(sqlite3.Connection):
    """A SQLite connection whose write transactions take turns through one in-process lock
    per database (`turns`, set per engine by `make_engine`).

    SQLite has one writer at a time. Without the lock, the writers of a busy node meet at
    the database lock and wait in SQLite's busy handler, which sleeps and retries (up to
    100 ms a sleep) while the lock is released and taken again by others: under 32
    concurrent creates most of the time went to those sleeps (a profile of issue 12).
    With it, a writer waits on a Python lock and starts the moment the previous write
    transaction has committed or rolled back. Reads never take it (WAL: readers do not
    block the writer). The busy timeout stays the bound (and, for other processes on the
    same file, the mechanism): a turn not had within it is SQLite's own
    "database is locked"."""

    turns: threading.Lock
    _has_turn = False

    def cursor(self, factory: Any = _WriteTurnCursor) -> Any:
        return super().cursor(factory)

    def take_turn(self, sql: str) -> None:
        if self._has_turn or self.in_transaction:
            return
        if sql.lstrip()[:7].lower().startswith(_WRITES):
            if not self.turns.acquire(timeout=SQLITE_BUSY_SECONDS):
                raise sqlite3.OperationalError("database is locked")
            self._has_turn = True

    def end_turn_if_idle(self) -> None:
        if self._has_turn and not self.in_transaction:
            self._has_turn = False
            self.turns.release()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self.end_turn_if_idle()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.end_turn_if_idle()

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self._has_turn:
                self._has_turn = False
                self.turns.release()


def json_loads(text: str | bytes) -> Any:
    """A JSON column's value. pydantic-core's parser (already a dependency, through
    pydantic) reads a job's payload in 2.4 us where `json.loads` took 5.6, and a list of
    50 jobs reads 100 such columns; what it refuses and Python's encoder writes, a lone
    surrogate escape (`"\\ud800"`), `json.loads` reads as before."""
    try:
        return pydantic_core.from_json(text)
    except ValueError:
        return json.loads(text)


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine; SQLite gets WAL, foreign keys, a busy timeout and in-process
    turns for its write transactions (`_WriteTurnConnection`), PostgreSQL (psycopg) a
    cursor that sends statements unparsed and describes each result shape once
    (`node.pgcursor`). JSON columns are read by `json_loads`."""
    kwargs.setdefault("json_deserializer", json_loads)
    if url.startswith("sqlite"):
        if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
            Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
        connection_class = type(
            "WriteTurnConnection", (_WriteTurnConnection,), {"turns": threading.Lock()}
        )
        kwargs.setdefault("pool_size", POOL_SIZE)
        kwargs.setdefault("max_overflow", POOL_OVERFLOW)
        kwargs.setdefault(
            "connect_args",
            {
                "check_same_thread": False,
                "timeout": SQLITE_BUSY_SECONDS,
                "factory": connection_class,
            },
        )
        engine = create_engine(url, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    kwargs.setdefault("pool_size", POOL_SIZE)
    kwargs.setdefault("max_overflow", POOL_OVERFLOW)
    if url.startswith("postgresql+psycopg:"):
        from node.pgcursor import NodeCursor  # psycopg only where it is used

        # statements in the server's own `$1` form, which NodeCursor sends unparsed
        kwargs.setdefault("paramstyle", "numeric_dollar")
        kwargs["connect_args"] = {"cursor_factory": NodeCursor, **kwargs.get("connect_args", {})}
    engine = create_engine(url, **kwargs)
    if not kwargs.get("pool_pre_ping"):
        _ping_idle_connections(engine)
    return engine


# A pooled server connection idle at least this long is pinged before it is handed out.
PING_IDLE_SECONDS = 1.0


def _ping_idle_connections(engine: Engine) -> None:
    """SQLAlchemy's pessimistic disconnect handling (`pool_pre_ping`), for connections
    that sat idle only: one that a server restart or an idle timeout closed is replaced
    before a request uses it, while a busy node's connections, back in the pool for a
    fraction of a second, skip the round trip. `pool_pre_ping` pinged on every checkout:
    one of a by-id read's five round trips on PostgreSQL and 12 % of its worker-thread
    time (issue 12). A connection lost mid-use still fails its request, and SQLAlchemy
    then invalidates the rest of the pool, as with `pool_pre_ping`."""

    @event.listens_for(engine, "checkin")
    def _idle_from(_dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < PING_IDLE_SECONDS:
            return  # a new connection, or one in use a moment ago
        dialect = engine.dialect
        try:
            dialect.do_ping(dbapi_conn)
        except dialect.loaded_dbapi.Error as err:
            if dialect.is_disconnect(err, dbapi_conn, None):
                raise DisconnectionError() from err  # the pool connects anew and retries
            raise


_AUTOCOMMIT = {"isolation_level": "AUTOCOMMIT"}


def read_outside_transaction(session: Session) -> None:
    """Run the session's next statements outside a transaction, for work that only reads:
    on PostgreSQL that saves each request the BEGIN and COMMIT round trips (a by-id read
    in-process: 1,856 -> 1,700 us); under READ COMMITTED, the node's level, each statement
    takes its own snapshot either way. SQLite's driver never begins a transaction for a
    read, and switching its isolation level there and back (SQLAlchemy's PRAGMAs on
    checkout and check-in) cost more than the reads: three by-id statements and their
    commit took 658 us with the switch, 326 without (issue 12). A session already in a
    transaction stays in it."""
    if session.in_transaction() or session.get_bind().dialect.name == "sqlite":
        return
    session.connection(execution_options=_AUTOCOMMIT)


def make_sessionmaker(engine: Engine, info: dict[str, Any] | None = None) -> sessionmaker[Session]:
    """`info`: each session's `Session.info` starts as a copy of it (its values shared)."""
    return sessionmaker(engine, expire_on_commit=False, autoflush=True, info=info)


# --------------------------------------------------------------------------- new rows

# What follows a new row (a wake-up after the commit, a webhook's outbox row) follows it
# whether the ORM's unit of work inserted it or a Core INSERT did (`inserted`): the hooks
# are `on_new`'s, kept in each session's `info` (its values shared with the factory's).
NewRowsHook = Callable[[Session, Sequence[Any]], None]
_NEW_ROWS_HOOKS = "dcm_new_rows_hooks"


def on_new(factory: sessionmaker[Session], hook: NewRowsHook) -> None:
    """Call `hook(session, objects)` with the objects each flush of `factory`'s sessions
    inserts, and with those `inserted` reports."""
    info = dict(factory.kw.get("info") or {})
    info[_NEW_ROWS_HOOKS] = [*info.get(_NEW_ROWS_HOOKS, ()), hook]
    factory.configure(info=info)

    @event.listens_for(factory, "after_flush")
    def _after_flush(session: Session, _ctx: Any) -> None:
        if session.new:
            hook(session, list(session.new))


def as_loaded(cls: type[M], values: dict[str, Any]) -> M:
    """A new instance of the mapped `cls` holding `values` as a row loaded from the
    database would: set without the attribute events and history its constructor records
    (a job and its event took 94 us that way, 13 this one). For rows a Core INSERT writes
    (`column_values`, then `inserted`), never for a flush: a flush would not see them."""
    obj = cls.__mapper__.class_manager.new_instance()  # type: ignore[attr-defined]
    obj.__dict__.update(values)
    return obj  # type: ignore[no-any-return]


def column_values(obj: Any) -> dict[str, Any]:
    """The row a new ORM object makes, for a Core INSERT: each column's value, its
    Python default where it was not set, which is then set on `obj` too, as a flush
    would (the object then holds its whole row, what the new-row hooks and the answer
    read, without a read back). The primary key is left out while it is None (the
    database numbers it)."""
    state = obj.__dict__
    row: dict[str, Any] = {}
    for key, column_key, default, primary in _columns(type(obj)):
        value = state.get(key)
        if key not in state and not primary:
            if default is None:
                raise ValueError(f"{type(obj).__name__}.{key}: not set, and no Python default")
            value = state[key] = default()  # as loaded: `inserted` commits the whole row
        if value is not None or not primary:
            row[column_key] = value
    return row


def insert_rows(objects: Sequence[Any]) -> list[dict[str, Any]]:
    """The rows of new ORM objects of one class (`column_values`) for one Core INSERT. A
    column that is None in every row, and that the database fills with NULL when no value
    is given, is left out, as the ORM's flush leaves out an attribute never set: the
    statement is shorter (a new job leaves out 19 of its 37 columns, whose parameters
    psycopg wrote one by one), and a JSON column holds SQL NULL there, not JSON `null`."""
    rows = [column_values(obj) for obj in objects]
    if rows:
        nullable = [k for _, k, default, _ in _columns(type(objects[0])) if default is _null]
        unset = [key for key in nullable if all(row[key] is None for row in rows)]
        for row in rows:
            for key in unset:
                del row[key]
    return rows


def _null() -> None:
    """The default of a column the database fills with NULL when an INSERT gives none."""
    return None


@functools.cache
def _columns(cls: type) -> tuple[tuple[str, str, Callable[[], Any] | None, bool], ...]:
    """(attribute, column key, its Python default, is it the primary key) of each column
    of `cls`'s table. A nullable column defaults to NULL; a column with only a server
    default has none here, and must be set (its value would need the row read back)."""
    out = []
    for attr in cls.__mapper__.column_attrs:  # type: ignore[attr-defined]
        (column,) = attr.columns
        default: Callable[[], Any] | None = None
        if column.default is not None and column.default.is_callable:
            # SQLAlchemy wraps the function to take an execution context: it needs none
            default = functools.partial(column.default.arg, None)
        elif column.default is not None and column.default.is_scalar:
            default = lambda value=column.default.arg: value  # noqa: E731
        elif column.default is None and column.server_default is None and column.nullable:
            default = None if column.primary_key else _null
        out.append((attr.key, column.key, default, column.primary_key))
    return tuple(out)


def inserted(session: Session, objects: Sequence[Any]) -> None:
    """Tell `on_new`'s hooks of `objects`, whose rows a Core INSERT in `session`'s
    transaction wrote (keys set, `column_values`), as its flush would have. They are not
    made the session's: nothing reads them through it (a webhook's outbox row finds an
    event's job on the event), and attaching them as persistent (the save cascade over
    each relationship, the identity map) cost 31 us a job and its event, a third of what
    writing them cost in-process on PostgreSQL."""
    for hook in session.info.get(_NEW_ROWS_HOOKS, ()):
        hook(session, objects)


def recordset(table: Any, rows: Sequence[dict[str, Any]], dialect: Any) -> str:
    """`rows` of `table` (`insert_rows`) as one JSON array, for PostgreSQL's
    `json_populate_recordset` (read back by `recordset_columns`): one parameter for the
    whole batch, rendered by pydantic-core's encoder, where a multi-row INSERT's
    parameters (a job's 18 columns each) were dumped one by one. A column of a decorated
    type holds what its `process_bind_param` gives (`UTCDateTime`, `Wei` as a decimal
    string); a JSON column its document's text, as a string: nested as a value, the
    function would take its strings apart, and refuse a NUL (`\\u0000`) that a JSON
    column holds."""
    converters = _recordset_converters(table)
    converted = [(key, converters[key]) for key in rows[0] if key in converters]
    if converted:
        rows = [dict(row) for row in rows]
        for row in rows:
            for key, convert in converted:
                row[key] = convert(row[key], dialect)
    return pydantic_core.to_json(rows).decode()


@functools.cache
def _recordset_converters(table: Any) -> dict[str, Callable[[Any, Any], Any]]:
    """What `recordset` does to a value (and the dialect) of each column it converts."""
    out: dict[str, Callable[[Any, Any], Any]] = {}
    for column in table.columns:
        if column.key in _json_columns(table):
            out[column.key] = _json_text
        elif isinstance(column.type, TypeDecorator):
            out[column.key] = column.type.process_bind_param
    return out


def _json_text(value: Any, _dialect: Any) -> str | None:
    return None if value is None else pydantic_core.to_json(value).decode()


@functools.cache
def _json_columns(table: Any) -> frozenset[str]:
    return frozenset(c.key for c in table.columns if isinstance(c.type, JSON))


def recordset_columns(table: Any, columns: Sequence[str]) -> str:
    """The SELECT list reading `columns` of `table` from its `json_populate_recordset`
    rows (`recordset`): a JSON column from the text it carries."""
    json_columns = _json_columns(table)
    return ", ".join(
        f"({name} #>> '{{}}')::json" if name in json_columns else name for name in columns
    )


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """Yield a session that commits on success and rolls back on error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
