"""The node's PostgreSQL cursor describes a result shape once (`node.pgcursor`): what it
describes is what psycopg's own cursor does, a shape that differs in a column's name,
type or modifier gets its own description, and the node's engine uses it."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import text

from node import pgcursor
from node.db import make_engine
from node.pgcursor import DescribedOnceCursor
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
        psycopg.connect(url, cursor_factory=DescribedOnceCursor) as cached,
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
            assert isinstance(cursor, DescribedOnceCursor)
            for _ in range(2):
                row = conn.execute(text("SELECT 1 AS a, 'x' AS b")).mappings().one()
                assert dict(row) == {"a": 1, "b": "x"}
    finally:
        engine.dispose()
