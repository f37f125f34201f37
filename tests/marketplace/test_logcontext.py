"""Structured logs (`marketplace.logcontext`): JSON lines with the request id and, on
every line about a job, its id and attempt, following the work into threads."""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import json
import logging
from pathlib import Path

from marketplace.logcontext import REQUEST_ID, Fields, JsonFormatter, job_context, set_job


def _capture() -> tuple[logging.Logger, list[str]]:
    lines: list[str] = []

    class Sink(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    sink = Sink()
    sink.setFormatter(JsonFormatter())
    logger = logging.getLogger("dcm.test.logcontext")
    logger.handlers = [sink]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger, lines


def test_job_lines_carry_job_id_and_attempt_into_threads_and_not_beyond() -> None:
    logger, lines = _capture()

    async def job(n: int) -> None:
        set_job(n, 2)
        logger.info("running")
        await asyncio.to_thread(logger.info, "in a worker thread")

    async def main() -> None:
        await asyncio.gather(job(5), job(6))
        logger.info("not about a job")

    contextvars.Context().run(asyncio.run, main())  # as a process starts: nothing set
    entries = [json.loads(line) for line in lines]
    about = sorted((e["job_id"], e["attempt"], e["message"]) for e in entries if "job_id" in e)
    assert about == [
        ("job_5", 2, "in a worker thread"),
        ("job_5", 2, "running"),
        ("job_6", 2, "in a worker thread"),
        ("job_6", 2, "running"),
    ]
    assert entries[-1]["message"] == "not about a job" and "job_id" not in entries[-1]


def test_request_id_and_scoped_job_context() -> None:
    contextvars.Context().run(_request_and_job)


def _request_and_job() -> None:
    logger, lines = _capture()
    token = REQUEST_ID.set("r-42")
    try:
        with job_context("job_9", 1):
            logger.info("claimed")
        logger.info("after")
    finally:
        REQUEST_ID.reset(token)
    first, second = (json.loads(x) for x in lines)
    assert (first["request_id"], first["job_id"], first["attempt"]) == ("r-42", "job_9", 1)
    assert second["request_id"] == "r-42" and "job_id" not in second
    assert first["level"] == "INFO" and first["logger"] == "dcm.test.logcontext"


def test_fields_are_merged_into_the_line_and_read_as_json_elsewhere() -> None:
    logger, lines = _capture()
    fields = Fields(path="/healthz", status=200, user_id=None)
    logger.info(fields)
    entry = json.loads(lines[-1])
    assert (entry["path"], entry["status"], entry["user_id"]) == ("/healthz", 200, None)
    assert "message" not in entry and entry["level"] == "INFO"
    # a handler without JsonFormatter (pytest's caplog, a plain StreamHandler) gets JSON text
    assert json.loads(logging.makeLogRecord({"msg": fields}).getMessage()) == dict(fields)


def test_the_timestamp_is_utc_iso_8601_to_the_millisecond_across_seconds() -> None:
    formatter = JsonFormatter()
    # in turn: the cached second is reused, then replaced (also going back in time)
    for created in (1764434400.0, 1764434400.999, 1764434401.0005, 0.0, 1700000000.5):
        expected = dt.datetime.fromtimestamp(created, dt.UTC).isoformat(timespec="milliseconds")
        assert formatter.timestamp(created) == expected


def test_values_json_cannot_write_are_written_as_text() -> None:
    logger, lines = _capture()
    logger.info(Fields(at=dt.datetime(2026, 11, 29, tzinfo=dt.UTC), obj=Path("a/b"), word="é"))
    entry = json.loads(lines[-1])
    assert entry["at"].startswith("2026-11-29T00:00:00")
    assert (entry["obj"], entry["word"]) == ("a/b", "é")
