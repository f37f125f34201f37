"""Structured logs for the node and the provider daemon: one JSON object per line, with the
request id and, on every line about a job, its job id and attempt.

The ids live in context variables, so they follow the work wherever it goes: through
`await`, into `asyncio.to_thread` and Starlette's threadpool (both copy the context), and
not into unrelated tasks. `job_context(job_id, attempt)` scopes a block of work to a job;
`JsonFormatter` adds whatever is set to each record (`configure_logging` installs it).
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import time
from collections.abc import Iterator
from typing import Any

from pydantic_core import to_json

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "dcm_request_id", default=None
)
JOB: contextvars.ContextVar[tuple[str, int | None] | None] = contextvars.ContextVar(
    "dcm_job", default=None
)


@contextlib.contextmanager
def job_context(job_id: Any, attempt: int | None = None) -> Iterator[None]:
    """Log lines inside the block carry `job_id` (as `job_<n>`) and `attempt`."""
    text = str(job_id)
    if text.isdigit():
        text = f"job_{text}"
    token = JOB.set((text, attempt))
    try:
        yield
    finally:
        JOB.reset(token)


def set_job(job_id: Any, attempt: int | None = None) -> None:
    """Mark the rest of the current context (one request, one pass) as about a job."""
    text = str(job_id)
    JOB.set((f"job_{text}" if text.isdigit() else text, attempt))


class Fields(dict[str, Any]):
    """A log message that is a JSON object: `log.info(Fields(path=..., status=...))`.
    `JsonFormatter` merges its fields into the line as they are; any other handler shows
    the object as JSON text (`str`), made only if a handler asks for it."""

    def __str__(self) -> str:
        return _json_text(self)


def _json_text(value: dict[str, Any]) -> str:
    """JSON text of a log line's fields: pydantic-core's encoder (about a third of
    `json.dumps`'s time here, and every request writes a line); a value JSON cannot
    hold is written as its `str`."""
    return to_json(value, fallback=str).decode()


class JsonFormatter(logging.Formatter):
    """One JSON object per record (`_json_text`), with a timestamp whose date and time of
    day are formatted once a second: every request writes one (the access log)."""

    def __init__(self) -> None:
        super().__init__()
        self._second: tuple[int, str] = (-1, "")  # a second, and its text up to the seconds

    def timestamp(self, created: float) -> str:
        """`created` as ISO 8601 in UTC, to the millisecond: `2026-11-29T16:40:00.123+00:00`."""
        second, ms = divmod(int(created * 1000), 1000)
        cached, text = self._second
        if cached != second:
            text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = (second, text)
        return f"{text}.{ms:03d}+00:00"

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": self.timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
        }
        if isinstance(record.msg, Fields) and not record.args:
            entry.update(record.msg)  # the access log: its fields, not a message
        else:
            entry["message"] = record.getMessage()
        request_id = REQUEST_ID.get()
        if request_id is not None:
            entry.setdefault("request_id", request_id)
        job = JOB.get()
        if job is not None:
            entry.setdefault("job_id", job[0])
            if job[1] is not None:
                entry.setdefault("attempt", job[1])
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return _json_text(entry)


def configure_logging(level: str | int = "INFO") -> None:
    """JSON lines on stderr for the whole process (`dcm serve`, `dcm provider run`)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # What JsonFormatter never writes, not gathered for every record: the caller's file
    # and line (a walk up the stack, `_srcfile` is the logging module's own switch for it),
    # the thread's and process's names.
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
