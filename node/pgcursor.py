"""The node's psycopg cursor (`NodeCursor`): statements go to the server as SQLAlchemy
wrote them, and a result's description is built once per result shape.

Sent as written: psycopg's default cursor takes `%(name)s` placeholders and rewrites each
statement to the server's `$1` form, parsing its text in Python; it keeps the parse only
of statements under 4,096 bytes and 50 parameters. A batch of creates' INSERT (16 jobs of
38 columns) is longer, so it was parsed afresh every time: 21 % of `POST /v1/jobs`' CPU
on PostgreSQL under py-spy (issue 12). The engine has SQLAlchemy write the `$1` form
itself (the `numeric_dollar` paramstyle, `node.db.make_engine`), and this cursor, a
`psycopg.RawCursor`, sends it unparsed.

Described once: SQLAlchemy reads `cursor.description` for every statement that returns
rows, and psycopg builds it afresh each time, a `Column` object per column and its type
looked up in the connection's type registry (31 us for a job row). A result's columns are
known by their names, type OIDs and type modifiers, which cost 4 us to read off the
result; a shape seen before gets the `Column` objects built the first time. They hold no
reference to a cursor or a connection, only what was read off the result and the type's
registry entry.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import Column

# Result shapes kept (the node's statements make a few hundred); past it, all are dropped.
MAX_SHAPES = 1024
_described: dict[tuple[Any, ...], list[Column]] = {}


class NodeCursor(psycopg.RawCursor[Any]):
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
