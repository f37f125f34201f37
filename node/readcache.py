"""Answers of repeated reads, served again while the database is unchanged.

A requester polls its job (`GET /v1/jobs/{id}`) far more often than the job changes, and
each poll cost a worker thread hop, four statements, the rendering of the job and its
event log, and FastAPI's dependency solving around them (issue 12's profile: with the
statements gone, routing and dependency solving were still three quarters of the event
loop's time). `CachedReads` keeps the answer a route marked as made of database rows only
(`keep_answer`) under its path, query and caller, and answers the same request from it,
in front of routing, for as long as nothing was committed to the database since the
route's statements ran.

"Nothing was committed" is SQLite's `PRAGMA data_version`, read on a connection of the
cache's own that never writes: it changes whenever any other connection commits (this
node's pool, a `dcm` command, another process), and reading it is a look at the WAL
index in shared memory, no file I/O. The version is read before the route runs and kept
with its answer; a commit between the two makes the answer stale at once, never a stale
answer valid. So an answer from the cache is the one the route would give now.

PostgreSQL has no counter of commits that costs less than the read it would spare (the
round trip is the cost), and other replicas commit too: there the cache is off and every
request reaches its route.

The caller is the principal its bearer credential names, found without the database
(`principal_of`; None sends the request to its route, which authenticates it in full and
counts a refusal). An answer that also depends on the chain or the clock (a funding call,
with its deadline) must not be kept.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_ENTRIES = 4096  # answers kept, least recently used first out; a job detail is a few KiB
KEEP = "keep_answer"  # the `request.state` flag of `keep_answer`


def keep_answer(request: Request) -> None:
    """From a route: this request's answer (if it succeeds) is made of database rows
    only, the same for the same path, query and caller until the next commit."""
    setattr(request.state, KEEP, True)


class ReadCache:
    def __init__(self, database_url: str, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        prefix = "sqlite:///"
        path = database_url[len(prefix) :] if database_url.startswith(prefix) else None
        self._path = Path(path) if path and path != ":memory:" else None
        self._db: sqlite3.Connection | None = None
        self._entries: OrderedDict[Hashable, tuple[int, Any]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self._path is not None and self.max_entries > 0

    def version(self) -> int | None:
        """The database's version now (None: the cache is off). Read it before the
        statements of an answer to `put` run."""
        if not self.enabled:
            return None
        with self._lock:
            if self._db is None:
                self._db = sqlite3.connect(self._path, check_same_thread=False)
            return self._db.execute("PRAGMA data_version").fetchone()[0]

    def get(self, key: Hashable) -> Any:
        """The answer put under `key` if nothing was committed since its version."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        fresh = entry[0] == self.version()
        with self._lock:
            if self._entries.get(key) is entry:
                if fresh:
                    self._entries.move_to_end(key)
                else:
                    del self._entries[key]
        return entry[1] if fresh else None

    def put(self, key: Hashable, version: int | None, answer: Any) -> None:
        """Keep `answer`, made from statements that ran after `version` was read."""
        if version is None:
            return
        with self._lock:
            self._entries[key] = (version, answer)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def close(self) -> None:
        with self._lock:
            self._entries.clear()
            if self._db is not None:
                self._db.close()
                self._db = None

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
        if principal is not None:
            answer = cache.get((resource, principal))
            if answer is not None:
                route, path_params, start, body = answer
                scope["route"], scope["path_params"] = route, path_params
                scope["state"]["principal"] = principal
                await send({**start, "headers": list(start["headers"])})  # sent as is
                await send({"type": "http.response.body", "body": body})
                return
        version = cache.version()
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
        if start is None or start["status"] != 200 or not scope["state"].get(KEEP):
            return
        principal = self.principal_of(request)  # now also for a user the route looked up
        if principal is not None:
            answer = (scope.get("route"), scope.get("path_params"), start, b"".join(chunks))
            cache.put((resource, principal), version, answer)
