"""One id scheme for every dialect: an integer, written `job_<n>` outside seed 000."""

from __future__ import annotations

import re

from marketplace.errors import JobNotFound

_ID = re.compile(r"^(?:job_)?([1-9][0-9]{0,17})$")


def format_job_id(job_id: int) -> str:
    return f"job_{job_id}"


def parse_job_id(raw: str | int) -> int:
    """Accept `5`, `"5"` or `"job_5"`; anything else is a job that cannot exist (404)."""
    if isinstance(raw, int):
        if raw > 0:
            return raw
        raise JobNotFound()
    match = _ID.match(raw.strip())
    if not match:
        raise JobNotFound(f"Job not found: {raw[:80]!r}")
    return int(match.group(1))
