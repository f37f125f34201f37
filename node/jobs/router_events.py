"""`GET /v1/jobs/{jobId}/events` and `/logs`: a job's stored event log, read or followed.

Without `follow` the answer is `{"success": true, "data": [event...], "lastSeq": N}` (the
/v1 event shape, `seq` being the job's event number). With `follow=true` it is
`text/event-stream`: one frame per entry (`id:` its seq, `event:` its type, `data:` its
JSON), a comment every `events.stream_heartbeat_seconds` while idle, and, once the job has
reached a final state and every entry was sent, a last `event: end` frame (data: the
status) before the stream closes. A client reconnecting with `Last-Event-ID: N` (or
`after=N`) gets the entries after N exactly once, in order: the state is in the database,
so this holds across a node restart too. Followers sleep on the node's notifier
(`node.notifier`, the job's topic), woken after the commit of a new entry.

`/events` holds every entry but log lines (state changes, progress); `/logs` the log
lines. `tail=N` starts from the last N entries, `since=` (ISO-8601) from that time,
`after=` after that sequence number. Who may read the job may read these (404 otherwise).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from marketplace.errors import (
    BadQuery,
    Forbidden,
    InvalidApiKey,
    InvalidToken,
    JobNotFound,
    RateLimited,
    TokenExpired,
    Unauthorized,
)
from node.auth.deps import authenticate_request
from node.config import NodeSettings
from node.db import session_scope
from node.deps import BearerDoc, SettingsDep, notifier_of, sessions_of
from node.jobs import events, service
from node.jobs.schemas import JobEventListV1, JobEventV1
from node.models.jobs import JobEvent
from node.notifier import Notifier, job_topic
from node.openapi import raises

router = APIRouter(prefix="/v1/jobs", tags=["jobs (seed 002: canonical /v1)"])

PAGE = 500


def _frame(ev: dict[str, Any]) -> bytes:
    data = json.dumps(ev, separators=(",", ":"), ensure_ascii=False)
    return f"id: {ev['seq']}\nevent: {ev['type']}\ndata: {data}\n\n".encode()


def v1_frame(row: JobEvent) -> bytes:
    """One entry as the /v1 stream sends it (`event:` its type, `data:` the /v1 event)."""
    return _frame(events.event_view(row))


# How a stream renders one entry (another dialect passes its own, e.g. seed 003's
# `data: {"timestamp", "line"}` frames without an `event:` line, for `onmessage`).
Render = Callable[[JobEvent], bytes]


def _parse_after(after: int | None, last_event_id: str | None) -> int | None:
    if last_event_id is not None and last_event_id.strip():
        try:
            return int(last_event_id.strip())
        except ValueError:
            raise BadQuery("Last-Event-ID must be an event number") from None
    return after


def _read_page(
    factory: sessionmaker[Session],
    job_id: int,
    kind: str,
    after: int | None,
    since: dt.datetime | None,
    tail: int | None,
    render: Render = v1_frame,
) -> tuple[list[tuple[int, bytes]], tuple[str, int] | None]:
    """(seq, frame) of the entries, and the job's (status, last seq)."""
    with session_scope(factory) as session:
        state = events.job_state(session, job_id)  # first: a final status seen here has
        rows = events.read_events(  # its entry among the rows read after it
            session, job_id, kind, after=after, since=since, tail=tail, limit=PAGE
        )
        return [(r.seq, render(r)) for r in rows], state


# Followers of one job woken by one commit are at the same place (same last seq, same
# generation): they share one read instead of each reading the same rows. A read shared
# under generation G holds every commit before any of them read G (see `follow`).
_SHARED: dict[tuple[Any, ...], asyncio.Future[Any]] = {}


async def _shared_read(
    factory: sessionmaker[Session],
    job_id: int,
    kind: str,
    after: int | None,
    generation: int,
    render: Render = v1_frame,
) -> tuple[list[tuple[int, bytes]], tuple[str, int] | None]:
    key = (id(factory), job_id, kind, after, generation, render)
    future = _SHARED.get(key)
    if future is None:
        future = asyncio.ensure_future(
            run_in_threadpool(_read_page, factory, job_id, kind, after, None, None, render)
        )
        _SHARED[key] = future
        future.add_done_callback(lambda _f: _SHARED.pop(key, None))
    return await asyncio.shield(future)


async def follow(
    request: Request,
    factory: sessionmaker[Session],
    notifier: Notifier,
    job_id: int,
    kind: str,
    *,
    after: int | None,
    since: dt.datetime | None,
    tail: int | None,
    heartbeat: float,
    max_seconds: float,
    render: Render = v1_frame,
) -> AsyncIterator[bytes]:
    """The event stream of one job (see the module's docstring)."""
    topic = job_topic(job_id)
    deadline = time.monotonic() + max_seconds
    with notifier.watching(topic):
        yield b"retry: 1000\n\n"
        last = after
        first = True
        while True:
            seen = notifier.generation_of(topic)
            if first and (since is not None or tail is not None):
                rows, state = await run_in_threadpool(
                    _read_page, factory, job_id, kind, last, since, tail, render
                )
            else:
                rows, state = await _shared_read(factory, job_id, kind, last, seen, render)
            first = False
            for seq, frame in rows:
                yield frame
                last = seq
            if len(rows) >= PAGE:
                continue
            if state is None or state[0] in events.FINAL:
                status = state[0] if state is not None else "deleted"
                yield f"event: end\ndata: {json.dumps({'status': status})}\n\n".encode()
                return
            remaining = deadline - time.monotonic()
            if notifier.closed or remaining <= 0:
                return  # the node is stopping, or the stream's time is up: the client resumes
            await notifier.wait(seen, min(heartbeat, remaining), topic)
            if notifier.generation_of(topic) == seen and not notifier.closed:
                yield b": keep-alive\n\n"
            if await request.is_disconnected():
                return


def _answer(
    kind: str,
    job_id: str,
    request: Request,
    settings: NodeSettings,
    *,
    follow_: bool,
    after: int | None,
    since: dt.datetime | None,
    tail: int | None,
    last_event_id: str | None,
) -> Any:
    """Runs on a worker thread with its own session, closed before any stream starts: a
    follower holds no database connection while it waits."""
    after = _parse_after(after, last_event_id)
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=dt.UTC)
    factory = sessions_of(request)
    with session_scope(factory) as session:
        principal = authenticate_request(request, session, settings)
        job = service.get_owned_job(session, principal, job_id, with_events=False)
        if not follow_:
            rows = events.read_events(
                session, job.id, kind, after=after, since=since, tail=tail, limit=10_000
            )
            return JobEventListV1(
                data=[JobEventV1.from_event(r) for r in rows], last_seq=job.event_seq
            ).model_dump(mode="json", by_alias=True)
        job_pk = job.id
    return StreamingResponse(
        follow(
            request,
            factory,
            notifier_of(request),
            job_pk,
            kind,
            after=after,
            since=since,
            tail=tail,
            heartbeat=settings.events.stream_heartbeat_seconds,
            max_seconds=settings.events.stream_max_seconds,
        ),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


JobIdPath = Annotated[str, Path(alias="jobId", description="e.g. job_5")]
FollowQ = Annotated[bool, Query(alias="follow", description="Answer text/event-stream")]
AfterQ = Annotated[int | None, Query(ge=0, description="Entries after this sequence number")]
SinceQ = Annotated[dt.datetime | None, Query(description="Entries at or after (ISO-8601)")]
TailQ = Annotated[int | None, Query(ge=1, le=10_000, description="The last N entries")]
LastEventId = Annotated[str | None, Header(alias="Last-Event-ID")]

_ERRORS = (
    BadQuery,
    JobNotFound,
    Unauthorized,
    InvalidToken,
    TokenExpired,
    InvalidApiKey,
    Forbidden,
    RateLimited,
)
_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/event-stream": {}}, "description": "JSON, or a stream (follow)"}
}


@router.get("/{jobId}/events", response_model=JobEventListV1, responses=_RESPONSES)
@raises(*_ERRORS)
def job_events(
    job_id: JobIdPath,
    request: Request,
    settings: SettingsDep,
    _doc: BearerDoc = None,
    follow_: FollowQ = False,
    after: AfterQ = None,
    since: SinceQ = None,
    tail: TailQ = None,
    last_event_id: LastEventId = None,
) -> Any:
    """The job's state changes and progress reports; `follow=true` streams them."""
    return _answer(
        events.EVENTS_KIND,
        job_id,
        request,
        settings,
        follow_=follow_,
        after=after,
        since=since,
        tail=tail,
        last_event_id=last_event_id,
    )


@router.get("/{jobId}/logs", response_model=JobEventListV1, responses=_RESPONSES)
@raises(*_ERRORS)
def job_logs(
    job_id: JobIdPath,
    request: Request,
    settings: SettingsDep,
    _doc: BearerDoc = None,
    follow_: FollowQ = False,
    after: AfterQ = None,
    since: SinceQ = None,
    tail: TailQ = None,
    last_event_id: LastEventId = None,
) -> Any:
    """The job's log lines (level, stream); `follow=true` streams them."""
    return _answer(
        events.LOGS_KIND,
        job_id,
        request,
        settings,
        follow_=follow_,
        after=after,
        since=since,
        tail=tail,
        last_event_id=last_event_id,
    )
