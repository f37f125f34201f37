"""The route index (node.routing) picks, for every path the node serves, the route the
whole route list picks: the same full match, the same 405 and the same 404."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from starlette.routing import Match

from node.routing import ANY, IndexedRoutes, first_segment, routes_of


def _scope(method: str, path: str) -> dict[str, Any]:
    return {
        "type": "http",
        "method": method,
        "path": path,
        "root_path": "",
        "headers": [],
        "query_string": b"",
    }


def _pick(entries: list[Any], method: str, path: str) -> tuple[str, int | None]:
    """What `APIRouter.app` selects: the first full match, else the first partial one."""
    partial = None
    for entry in entries:
        match, _ = entry.matches(_scope(method, path))
        if match == Match.FULL:
            return "full", id(entry)
        if match == Match.PARTIAL and partial is None:
            partial = id(entry)
    return ("partial", partial) if partial is not None else ("none", None)


def _served_paths(app: FastAPI) -> list[tuple[str, str]]:
    """(method, a concrete path) for every route of the app: parameters filled in."""
    out = []
    for route in app.routes:
        contexts = getattr(route, "effective_route_contexts", None)
        for context in contexts() if contexts is not None else [route]:
            path_format = getattr(context, "path_format", None)
            if not path_format:
                continue
            methods = getattr(context, "methods", None) or getattr(
                getattr(context, "original_route", None), "methods", None
            )
            path = re.sub(r"\{[^}:]+:path\}", "a/b", path_format)
            path = re.sub(r"\{[^}]+\}", "7", path)
            out += [(m, path) for m in sorted(methods or {"GET"})]
    return out


def test_every_served_path_picks_the_route_the_whole_list_picks(app: FastAPI) -> None:
    indexed = app.router.middleware_stack
    assert isinstance(indexed, IndexedRoutes)  # a FastAPI upgrade must not turn it off
    every = list(app.router.routes)
    paths = _served_paths(app)
    assert len(paths) > 130
    odd = [("GET", "/nowhere"), ("GET", "/"), ("PATCH", "/v1/jobs"), ("DELETE", "/healthz")]
    odd += [("GET", "/v1/jobs/"), ("GET", "/api/v0"), ("GET", "/jobs"), ("GET", "//x")]
    for method, path in paths + odd:
        narrowed = indexed.views.get(path[1:].split("/", 1)[0], indexed.elsewhere)
        assert _pick(narrowed.routes, method, path) == _pick(every, method, path), (method, path)
    # and it narrows: a by-id read walks 6 of the 31 entries
    assert len(indexed.views["v1"].routes) < len(every) / 3


@pytest.mark.parametrize(
    ("path_format", "segment"),
    [
        ("/v1/jobs/{jobId}", "v1"),
        ("/healthz", "healthz"),
        ("/v1", "v1"),
        ("/{anything}", ANY),
        ("/v{version}/jobs", ANY),
        ("", ANY),
        ("/", ""),
    ],
)
def test_first_segment(path_format: str, segment: str) -> None:
    assert first_segment(path_format) == segment


def test_routes_added_later_are_served_and_misses_answer_as_before(
    app: FastAPI, client: TestClient
) -> None:
    router = APIRouter(prefix="/later")

    @router.get("/{thing}")
    def thing(thing: str) -> dict[str, str]:
        return {"thing": thing}

    app.include_router(router)
    assert client.get("/later/x").json() == {"thing": "x"}
    assert client.get("/nowhere").status_code == 404
    assert client.delete("/healthz").status_code == 405


def test_routes_are_read_as_fastapi_files_them(app: FastAPI) -> None:
    """`routes_of` reads FastAPI's included routers without building their effective
    route contexts: it must give the very (path, route) pairs those contexts give, nested
    routers and prefixes included, or the index would file a route wrongly."""
    nested = APIRouter(prefix="/outer")
    inner = APIRouter(prefix="/inner")
    inner.add_api_route("/{x}", lambda x: x)
    nested.include_router(inner, prefix="/mid")
    app.include_router(nested, prefix="/top")
    mine, fastapi = [], []
    for entry in app.router.routes:
        routes = routes_of(entry)
        assert routes is not None, entry
        mine += routes
        contexts = getattr(entry, "effective_route_contexts", None)
        if contexts is None:
            fastapi.append((entry.path_format, entry))
        else:
            fastapi += [(c.path_format, c.original_route) for c in contexts()]
    assert len(mine) > 100 and mine == fastapi
    assert mine[-1][0] == "/top/outer/mid/inner/{x}"
