"""Answers of repeated reads, served again while the database is unchanged.

A requester polls its job (`GET /v1/jobs/{id}`) far more often than the job changes, and
each poll cost a worker thread hop, four statements, the rendering of the job and its
event log, and FastAPI's dependency solving around them (issue 12's profile: with the
statements gone, routing and dependency solving were still three quarters of the event
loop's time). `CachedReads` keeps the answer a route marked as made of database rows only
(`answer_version` before its statements, `keep_answer` after) under its path, query and
caller, and answers the same request from it, in front of routing, for as long as
nothing was committed to the database since the route's statements ran.

The database's version is read on a connection of the cache's own, before the route's
statements run, and kept with its answer; the answer is served while the version read
at the request is the same. A commit between the two reads makes the answer stale, never
a stale answer valid, so an answer from the cache is the one the route would give now.
- SQLite: `PRAGMA data_version`, which changes whenever any other connection commits
  (this node's pool, a `dcm` command, another process); a look at the WAL index in
  shared memory, no file I/O.
- PostgreSQL: `pg_current_snapshot()`, the same twice only if no transaction began to
  write or ended in between, on any replica or client of the server (so a busy server
  serves few answers twice). A round trip, but one shared by every request that asks
  while another is under way, and made only for a request that has an answer kept.

The caller is the principal its bearer credential names, found without the database
(`principal_of`; None sends the request to its route, which authenticates it in full and
counts a refusal). A caller found here is `request.state.principal` for the route, whose
authentication takes it as it is: the token is verified once per request. An answer
that also depends on the chain or the clock (a funding call, with its deadline) must not
be kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from marketplace.lru import Lru
from node.replicas import PG_CONNECT_OPTIONS, is_postgres, libpq_url

log = logging.getLogger(__name__)

MAX_ENTRIES = 4096  # answers kept, least recently used first out; a job detail is a few KiB
KEEP = "kept_answer_version"  # `request.state`: set by `keep_answer`
CACHE = "dcm.read_cache"  # the scope's `ReadCache`, for `answer_version`
KEY = "dcm.read_key"  # the scope's key in the cache: (path and query, caller)
FLIGHT = "dcm.read_flight"  # set by `answer_version`: this request leads its key's flight


async def answer_version(request: Request) -> Hashable | None:
    """From a route whose answer may be kept, before its statements run: the database's
    version now, for `keep_answer` (None: the cache is off or the version unknown). From
    here until its answer is kept, requests of the same caller for the same resource wait
    for it (`ReadCache.get`)."""
    cache = request.scope.get(CACHE)
    if cache is None:
        return None
    key = request.scope.get(KEY)
    if key is not None and FLIGHT not in request.scope:
        request.scope[FLIGHT] = cache.lead(key)
    return await cache.version()


def keep_answer(request: Request, version: Hashable | None) -> None:
    """From a route: this request's answer (if it is a 200) is made of database rows
    only, as they were at `version` (`answer_version`, read before its statements): the
    same for the same path, query and caller until the next commit."""
    if version is not None:
        setattr(request.state, KEEP, version)


class _SqliteVersion:
    """`PRAGMA data_version` on a connection of its own (it never writes), used from the
    event loop only (a test client may run its loops on one thread after another)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._db: sqlite3.Connection | None = None

    async def read(self) -> int:
        if self._db is None:  # one loop at a time, on whichever thread runs it
            self._db = sqlite3.connect(self._path, check_same_thread=False)
        return self._db.execute("PRAGMA data_version").fetchone()[0]

    async def close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            db.close()


class _PgSnapshot:
    """`pg_current_snapshot()` on an autocommit connection of its own, as text: equal
    twice only if no transaction got a transaction id (a write began) or ended in between,
    so no commit. Every caller gets the answer of a query sent after it asked; callers
    that ask while one is under way share the next one (one round trip for all of them)."""

    def __init__(self, database_url: str) -> None:
        self._url = database_url
        self._conn: Any = None
        self._next: asyncio.Future[str | None] | None = None
        self._pump: asyncio.Task[None] | None = None

    async def read(self) -> str | None:
        """The snapshot now; None when the server could not be asked (a miss)."""
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
        waiting = self._next
        if self._pump is None or self._pump.done():
            self._pump = asyncio.create_task(self._ask())
        return await asyncio.shield(waiting)

    async def _ask(self) -> None:
        while self._next is not None:
            waiting, self._next = self._next, None
            snapshot = None
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = await _pg_connect(self._url)
                cursor = await self._conn.execute("SELECT pg_current_snapshot()::text")
                snapshot = (await cursor.fetchone())[0]
            except Exception:  # asked again on the next read, on a new connection
                log.warning("read cache: no snapshot from the database", exc_info=True)
                await self.close()
            if not waiting.done():
                waiting.set_result(snapshot)

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()


async def _pg_connect(sqlalchemy_url: str) -> Any:
    import psycopg

    return await psycopg.AsyncConnection.connect(
        libpq_url(sqlalchemy_url), application_name="dcm-read-cache", **PG_CONNECT_OPTIONS
    )


class ReadCache:
    """Used from the event loop only (`CachedReads` and the routes' `answer_version`)."""

    def __init__(self, database_url: str, max_entries: int = MAX_ENTRIES) -> None:
        self._source: _SqliteVersion | _PgSnapshot | None = None
        if max_entries > 0:
            if database_url.startswith("sqlite:///") and database_url != "sqlite:///:memory:":
                self._source = _SqliteVersion(Path(database_url[len("sqlite:///") :]))
            elif is_postgres(database_url):
                self._source = _PgSnapshot(database_url)
        self._entries: Lru[Hashable, tuple[Hashable, Any]] = Lru(max_entries)
        self._flights: dict[Hashable, asyncio.Event] = {}  # keys a route is answering now

    @property
    def enabled(self) -> bool:
        return self._source is not None

    async def version(self) -> Hashable | None:
        """The database's version now (None: unknown, or the cache is off). Read it
        before the statements of an answer to `put` run."""
        return None if self._source is None else await self._source.read()

    async def get(self, key: Hashable) -> Any:
        """The answer put under `key` if nothing was committed since its version. While a
        route is answering `key` for another request (`lead`), wait for it: its
        answer serves this request too if no commit came between the two requests'
        version reads (after a commit, the callers polling one resource ask at once, and
        the route answers them once instead of once each)."""
        entry = self._entries.get(key)
        if entry is None and key not in self._flights:
            return None
        version = await self.version()
        if entry is not None:
            if entry[0] == version:
                return entry[1]
            self._entries.discard(key, entry)  # unless put again while the version was read
        flight = self._flights.get(key)
        if flight is None or version is None:
            return None
        await flight.wait()
        entry = self._entries.get(key)
        return entry[1] if entry is not None and entry[0] == version else None

    def lead(self, key: Hashable) -> asyncio.Event | None:
        """A route is answering `key` and will `put` what it keeps: until `land`, the
        requests for `key` wait for it in `get`. None if another request leads already."""
        if key in self._flights:
            return None
        flight = self._flights[key] = asyncio.Event()
        return flight

    def land(self, key: Hashable, flight: asyncio.Event | None) -> None:
        """The end of `lead`'s flight (its answer put or not): its waiters go on."""
        if flight is not None:
            if self._flights.get(key) is flight:
                del self._flights[key]
            flight.set()

    def put(self, key: Hashable, version: Hashable | None, answer: Any) -> None:
        """Keep `answer`, made from statements that ran after `version` was read."""
        if version is not None:
            self._entries.put(key, (version, answer))

    async def close(self) -> None:
        self._entries.clear()
        if self._source is not None:
            await self._source.close()

    def __len__(self) -> int:
        return len(self._entries)


class CachedReads:
    """ASGI layer: a GET whose answer a route kept (`keep_answer`) is answered from
    `cache` while it is fresh; any other request goes on to `app`, and a kept 200
    answer is stored on its way out. Routing's outcome is kept with the answer
    (`scope["route"]`, the path parameters), so metrics and the request's log line read
    the same whichever way it was answered."""

    def __init__(
        self,
        app: ASGIApp,
        cache: ReadCache,
        principal_of: Callable[[Request], Hashable | None],
    ) -> None:
        self.app = app
        self.cache = cache
        self.principal_of = principal_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        cache = self.cache
        if scope["type"] != "http" or scope["method"] != "GET" or not cache.enabled:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        principal = self.principal_of(request)
        resource = (scope["path"], scope["query_string"])
        if principal is None:  # the route authenticates it: its answer is kept if it can be
            await self._answer(scope, receive, send, request, resource, None)
            return
        answer = await cache.get((resource, principal))
        if answer is not None:
            route, path_params, start, body = answer
            scope["route"], scope["path_params"] = route, path_params
            request.state.principal = principal
            await send({**start, "headers": list(start["headers"])})  # sent as is
            await send({"type": "http.response.body", "body": body})
            return
        request.state.principal = principal  # verified: the route takes it as it is
        key = scope[KEY] = (resource, principal)
        try:
            await self._answer(scope, receive, send, request, resource, principal)
        finally:
            cache.land(key, scope.pop(FLIGHT, None))

    async def _answer(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        request: Request,
        resource: Hashable,
        principal: Hashable | None,
    ) -> None:
        """The route's answer, sent on and kept if the route said so (`keep_answer`)."""
        scope[CACHE] = self.cache
        start: Message | None = None
        chunks: list[bytes] = []

        async def keep(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = {**message, "headers": list(message["headers"])}  # as the app sent it
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, keep)
        version = scope["state"].get(KEEP)
        if start is None or start["status"] != 200 or version is None:
            return
        if principal is None:  # a user the route looked up may be known now
            principal = self.principal_of(request)
        if principal is not None:
            answer = (scope.get("route"), scope.get("path_params"), start, b"".join(chunks))
            self.cache.put((resource, principal), version, answer)
