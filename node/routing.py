"""Route lookup by a request's first path segment.

FastAPI finds a request's route by asking every route and included router of the app in
turn, in order; an included router answers by asking each of its own routes (and, once
picked, asks them again). With the dialects' 137 routes in 31 entries, a request for a
route late in the list (seed 000's, the Kubo RPC's) spent about 300 microseconds there
before its own work began, and a 404 as much (issue 12's profile, in-process: /healthz,
first in the list, 34 us; an unknown path 359 us).

`index_routes` narrows that walk without changing its outcome: each entry of the app's
route list is filed under the first path segments its paths can start with (the literal
part of its path format), and a request walks only the entries filed under its own first
segment, plus those that can start with anything, in the app's order. An entry left out
cannot match the request's path at all, so the first full match, the first partial match
(405) and the 404 or slash redirect are the ones the whole list gives.
"""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI
from starlette.routing import BaseRoute, Host
from starlette.types import Receive, Scope, Send

ANY = "*"  # the bucket of entries whose paths may start with any segment


def first_segment(path_format: str) -> str:
    """The first segment every path of `path_format` has, or ANY."""
    literal = path_format.split("{", 1)[0]
    if not literal.startswith("/"):
        return ANY
    rest = literal[1:]
    if "/" in rest:
        return rest.split("/", 1)[0]
    return rest if literal == path_format else ANY  # a parameter inside the first segment


def routes_of(entry: BaseRoute, prefix: str = "") -> list[tuple[str, BaseRoute]] | None:
    """The routes a top-level entry of the app's route list answers, each with its path
    format (an included router: all of its routes, with the prefixes they were included
    under); None when they cannot be told (the entry is then tried for every request).

    Read from the included routers' own routes, as FastAPI files them (its
    `_IncludedRouter`: `original_router`, `include_context.prefix`), without building
    FastAPI's effective route contexts: those build every route's dependency tree, a
    quarter of a second for the node's routes, which `create_app` paid for each app (a
    test's, a node's start) and routing otherwise builds only for the routers it walks."""
    if isinstance(entry, Host):
        return None
    router = getattr(entry, "original_router", None)
    if router is None:
        path_format = getattr(entry, "path_format", None)
        return [(prefix + path_format, entry)] if isinstance(path_format, str) else None
    if getattr(router, "_low_priority_routes", None):
        return None  # answered after every other route: anywhere in the walk
    prefix += entry.include_context.prefix  # type: ignore[attr-defined]
    found: list[tuple[str, BaseRoute]] = []
    for route in router.routes:
        inner = routes_of(route, prefix)
        if inner is None:
            return None
        found += inner
    return found


def segments_of(entry: BaseRoute) -> set[str]:
    routes = routes_of(entry)
    if routes is None:
        return {ANY}
    return {first_segment(path) for path, _ in routes} or {ANY}


class IndexedRoutes:
    """The app router's own dispatch (`APIRouter.app`), run over the entries that can match
    the request's first path segment (`index_routes`)."""

    def __init__(self, router: Any) -> None:
        self.router = router
        self.full = router.app  # lifespan, and the whole walk for what is not indexed
        self._file()

    def _file(self) -> None:
        router = self.router
        entries = list(router.routes)
        self.count = len(entries)
        filed: dict[str, set[int]] = {}
        for i, entry in enumerate(entries):
            for segment in segments_of(entry):
                filed.setdefault(segment, set()).add(i)
        anywhere = filed.pop(ANY, set())

        def view(indexes: set[int]) -> Any:
            narrowed = copy.copy(router)
            narrowed.routes = [entries[i] for i in sorted(indexes | anywhere)]
            return narrowed

        self.views = {segment: view(indexes) for segment, indexes in filed.items()}
        self.elsewhere = view(set())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.full(scope, receive, send)
            return
        if len(self.router.routes) != self.count:  # a route added since: file them again
            self._file()
        path = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        narrowed = self.views.get(path[1:].split("/", 1)[0], self.elsewhere)
        scope.setdefault("router", self.router)  # url_for looks in the whole app
        await narrowed.app(scope, receive, send)


def index_routes(app: FastAPI) -> IndexedRoutes | None:
    """Dispatch `app`'s requests through an `IndexedRoutes` of its routes (filed again
    when routes are added). None, leaving the app as it was, when the router's dispatch
    is wrapped in router-level middleware."""
    router = app.router
    if router.middleware_stack != router.app:
        return None
    indexed = IndexedRoutes(router)
    router.middleware_stack = indexed
    return indexed
