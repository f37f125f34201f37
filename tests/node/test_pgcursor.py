"""The node's PostgreSQL cursor (`node.pgcursor`): it describes a result shape once, as
psycopg's own cursor describes it (a shape that differs in a column's name, type or
modifier gets its own description), and the node's engine sends its statements through
it in the server's `$1` form, values with `%` and expanded lists included."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select, text

from node import pgcursor
from node.db import make_engine
from node.pgcursor import NodeCursor
from node.replicas import libpq_url

pytestmark = pytest.mark.postgres

SHAPES = [
    "SELECT 1 AS a, 'x'::text AS b",
    "SELECT 1 AS a, 'x'::text AS b",  # the same shape again: from the cache
    "SELECT 1::bigint AS a, 'x'::text AS b",  # a type changed
    "SELECT 1 AS a, 'x'::text AS c",  # a name changed
    "SELECT 'x'::varchar(3) AS a",
    "SELECT 'x'::varchar(5) AS a",  # a modifier changed
    "SELECT 1.5::numeric(6, 2) AS n, 'epoch'::timestamptz AS t, '{}'::jsonb AS j",
]


def _described(cursor: psycopg.Cursor) -> list[tuple]:
    assert cursor.description is not None
    return [(*column, column.type_display) for column in cursor.description]


def test_each_shape_is_described_as_psycopg_describes_it(database_url: str) -> None:
    pgcursor._described.clear()
    url = libpq_url(database_url)
    with (
        psycopg.connect(url) as plain,
        psycopg.connect(url, cursor_factory=NodeCursor) as cached,
    ):
        for sql in SHAPES:
            expected, got = plain.execute(sql), cached.execute(sql)
            assert _described(got) == _described(expected), sql
            assert got.fetchall() == expected.fetchall()
        assert len(pgcursor._described) == len(set(SHAPES))
        # a statement without rows has no description, as with psycopg's cursor
        assert cached.execute("SET application_name = 'test'").description is None
        assert cached.execute("SELECT").description == []


def test_the_node_engine_reads_through_it(database_url: str) -> None:
    engine = make_engine(database_url, pool_size=1, max_overflow=0)
    try:
        with engine.connect() as conn:
            cursor = conn.connection.dbapi_connection.cursor()
            assert isinstance(cursor, NodeCursor)
            for _ in range(2):
                row = conn.execute(text("SELECT 1 AS a, 'x' AS b")).mappings().one()
                assert dict(row) == {"a": 1, "b": "x"}
    finally:
        engine.dispose()


def test_the_node_engine_binds_values_in_the_servers_form(database_url: str) -> None:
    engine = make_engine(database_url, pool_size=1, max_overflow=0)
    table = Table(
        "cursor_probe",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("name", String(20)),
        Column("note", String(20)),
    )
    try:
        with engine.begin() as conn:
            table.create(conn)
            rows = [{"name": f"n{i}", "note": "100% %s %(x)s"} for i in range(40)]
            ids = conn.execute(insert(table).returning(table.c.id), rows).scalars().all()
            assert len(set(ids)) == 40
            found = conn.execute(
                select(table.c.name, table.c.note)
                .where(table.c.name.in_(["n1", "n7", "nope"]))
                .where(table.c.note.like("100%"))
                .order_by(table.c.name)
            ).all()
            assert found == [("n1", "100% %s %(x)s"), ("n7", "100% %s %(x)s")]
            got = conn.execute(text("SELECT CAST(:a AS int) + 1, '50%', :b"), {"a": 41, "b": "%"})
            assert got.one() == (42, "50%", "%")
            table.drop(conn)
    finally:
        engine.dispose()
