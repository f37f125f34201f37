"""Opaque keyset cursors for `/v1/jobs`.

A cursor is URL-safe base64 (no padding) of a small JSON object naming the sort field,
the order, and the sort value and id of the last row served. The next page is everything
strictly after `(value, id)` in that order, so rows inserted or deleted elsewhere while a
client walks the pages never shift it (no row is served twice or skipped, unlike
OFFSET). A cursor is only valid with the sort and order it was issued for; anything
else is `InvalidCursor` (400).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from marketplace.errors import InvalidCursor
from marketplace.jobs.ids import MAX_JOB_ID
from marketplace.jsondepth import loads_bounded

DATETIME_FIELDS = frozenset({"created_at", "updated_at"})
INT_FIELDS = frozenset({"priority"})
STR_FIELDS = frozenset({"status", "type"})
MAX_CURSOR_CHARS = 512


@dataclass(frozen=True)
class Cursor:
    sort: str
    order: str
    value: Any  # datetime, int or str, per the sort field
    id: int


def encode_cursor(cursor: Cursor) -> str:
    value = cursor.value
    if isinstance(value, dt.datetime):
        value = value.astimezone(dt.UTC).isoformat()
    raw = json.dumps(
        {"s": cursor.sort, "o": cursor.order, "v": value, "i": cursor.id}, separators=(",", ":")
    )
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(token: str, *, sort: str, order: str) -> Cursor:
    """Parse a cursor issued for `sort`/`order`; raise InvalidCursor on anything else."""
    if not token or len(token) > MAX_CURSOR_CHARS:
        raise InvalidCursor("Malformed cursor")
    try:
        padded = token + "=" * (-len(token) % 4)
        # Accept both alphabets: a client may have re-encoded `-_` as `+/`.
        raw = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
        obj = loads_bounded(raw, max_depth=2)  # a flat object; never parse deeper
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise InvalidCursor("Malformed cursor") from exc
    if not isinstance(obj, dict) or set(obj) != {"s", "o", "v", "i"}:
        raise InvalidCursor("Malformed cursor")
    if obj["s"] != sort or obj["o"] != order:
        raise InvalidCursor(
            "Cursor was issued for another sort or order",
            details={"cursor_sort": str(obj["s"])[:32], "cursor_order": str(obj["o"])[:8]},
        )
    last_id = obj["i"]
    if isinstance(last_id, bool) or not isinstance(last_id, int) or not 0 < last_id <= MAX_JOB_ID:
        raise InvalidCursor("Malformed cursor")
    return Cursor(sort=sort, order=order, value=_parse_value(sort, obj["v"]), id=last_id)


def _parse_value(sort: str, value: Any) -> Any:
    if sort in DATETIME_FIELDS:
        if not isinstance(value, str):
            raise InvalidCursor("Malformed cursor")
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError as exc:
            raise InvalidCursor("Malformed cursor") from exc
        if parsed.tzinfo is None:
            raise InvalidCursor("Malformed cursor")
        return parsed.astimezone(dt.UTC)
    if sort in INT_FIELDS:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 3:
            raise InvalidCursor("Malformed cursor")
        return value
    if sort in STR_FIELDS:
        if not isinstance(value, str) or len(value) > 64:
            raise InvalidCursor("Malformed cursor")
        return value
    raise InvalidCursor("Malformed cursor")
