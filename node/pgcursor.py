"""The node's psycopg cursor (`DescribedOnceCursor`): a result's description, built once
per result shape instead of once per statement.

SQLAlchemy reads `cursor.description` for every statement that returns rows, and psycopg
builds it afresh each time: a `Column` object per column, its type looked up in the
connection's type registry (31 us for a job row's 38 columns). Under py-spy that was 16 %
of a batch of claims' CPU on PostgreSQL (issue 12). A result's columns are known by their
names, type OIDs and type modifiers, which cost 4 us to read off the result; a shape seen
before gets the `Column` objects built the first time. They hold no reference to a cursor
or a connection, only what was read off the result and the type's registry entry.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import Column

# Result shapes kept (the node's statements make a few hundred); past it, all are dropped.
MAX_SHAPES = 1024
_described: dict[tuple[Any, ...], list[Column]] = {}


class DescribedOnceCursor(psycopg.Cursor[Any]):
    @property
    def description(self) -> list[Column] | None:
        res = self.pgresult
        n = res.nfields if res is not None else 0
        if not n:
            return super().description
        columns = range(n)
        shape = (
            tuple(map(res.ftype, columns)),
            tuple(map(res.fmod, columns)),
            tuple(map(res.fname, columns)),
        )
        described = _described.get(shape)
        if described is None:
            described = super().description
            if described is None:  # not a result with rows after all
                return None
            if len(_described) >= MAX_SHAPES:
                _described.clear()
            _described[shape] = described
        return list(described)
