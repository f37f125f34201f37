"""One id scheme for every dialect: an integer, written `job_<n>` outside seed 000."""

from __future__ import annotations

import re

from marketplace.errors import JobNotFound

_ID = re.compile(r"^(?:job_)?([1-9][0-9]{0,9})$")
# Ids are a 32-bit INTEGER column: a larger number names no job (and must not reach SQL,
# where PostgreSQL would refuse to compare it with an int4 column).
MAX_JOB_ID = 2**31 - 1


def format_job_id(job_id: int) -> str:
    return f"job_{job_id}"


def parse_job_id(raw: str | int) -> int:
    """Accept `5`, `"5"` or `"job_5"`; anything else is a job that cannot exist (404)."""
    if isinstance(raw, int):
        if 0 < raw <= MAX_JOB_ID:
            return raw
        raise JobNotFound()
    match = _ID.match(raw.strip())
    if not match or int(match.group(1)) > MAX_JOB_ID:
        raise JobNotFound(f"Job not found: {raw[:80]!r}")
    return int(match.group(1))
