"""The node's FastAPI application factory.

`create_app(settings)` builds the node's runtime (`node.runtime`: engine, content store,
chain host, loop services), checks the schema is current (`dcm db upgrade` migrates it),
mounts one router per API dialect and installs error rendering, request ids and
structured request logs. It is the composition root: it may import every package.
"""

from __future__ import annotations

import hmac
import inspect
import itertools
import logging
import os
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from prometheus_client import CollectorRegistry
from sqlalchemy import text
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from marketplace.logcontext import REQUEST_ID, Fields
from node.auth.deps import known_principal
from node.chain.router import faucet_router
from node.config import NodeSettings
from node.errors import install_error_handlers
from node.jobs.router_v1 import create_job_at_once
from node.limits.body import BodyLimitMiddleware
from node.metrics import RuntimeCollector, observe_request, render, route_of
from node.openapi import install_openapi
from node.providers.router import claim_at_once
from node.readcache import CachedReads
from node.routers import ROUTERS
from node.routing import index_routes, routes_of
from node.runtime import build_runtime
from node.schema import require_current_schema

log = logging.getLogger("dcm.access")

_HEALTHY = b'{"status":"ok"}'
_HEALTHZ_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The process answers",
        "content": {"application/json": {"example": {"status": "ok"}}},
    }
}


def create_app(settings: NodeSettings | None = None) -> FastAPI:
    settings = settings or NodeSettings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    runtime = build_runtime(settings)
    engine = runtime.engine
    try:
        require_current_schema(engine)  # `dcm db upgrade` migrates; a booting node never does
    except Exception:
        engine.dispose()
        raise

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()
            engine.dispose()

    app = FastAPI(
        title="dcm node",
        version="0.1.0",
        description="Decentralized compute marketplace node",
        lifespan=lifespan,
        # The node's metrics are Prometheus (node.metrics) and its logs structured lines;
        # FastAPI's native OpenTelemetry asked the global OTel providers whether anyone
        # listens on every request (15 us of a 100 us /healthz, in-process).
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.runtime = runtime  # read by the typed dependencies only (node.runtime)

    install_error_handlers(app)
    install_openapi(app)

    # The probes first: routes match in order, and these answer load balancers many times
    # a second (after the dialects' hundreds of routes, matching cost /healthz 40 % of it).
    @app.get("/healthz", tags=["ops"], response_class=Response, responses=_HEALTHZ_DOC)
    async def healthz() -> Response:  # async: answers even when every worker thread is busy
        return Response(_HEALTHY, media_type="application/json")

    # Middleware added first is innermost: the direct routes (`DIRECT_ROUTES`) are
    # answered inside the request context (so they have a request id, a log line and
    # their metrics) and ahead of the exception layers, routing and dependency solving.
    # Then the polled reads' answers while the database is unchanged (`node.readcache`).
    app.add_middleware(CachedReads, cache=runtime.reads, principal_of=known_principal)
    app.add_middleware(DirectRoutes, router=app.router, handlers=app.exception_handlers)
    app.add_middleware(RequestContextMiddleware)
    # Added last, so outermost: it must see the raw body stream (node.limits.body).
    app.add_middleware(BodyLimitMiddleware, settings=settings)

    @app.get(
        "/readyz",
        tags=["ops"],
        responses={503: {"description": "The database is down, or the disk is nearly full"}},
    )
    def readyz() -> JSONResponse:
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:  # readiness reports, it does not raise
            return JSONResponse({"status": "unavailable", "database": str(exc)[:200]}, 503)
        disk = disk_report(settings.data_dir, settings.upload.min_free_disk_bytes)
        if disk["low"]:
            return JSONResponse({"status": "unavailable", "database": "ok", "disk": disk}, 503)
        # leader: whether this replica runs the singleton loop services now (node.replicas)
        return JSONResponse(
            {"status": "ready", "database": "ok", "disk": disk, "leader": runtime.is_leader}
        )

    registry = CollectorRegistry(auto_describe=False)
    registry.register(
        RuntimeCollector(
            runtime.sessionmaker,
            runtime.chain_head,
            lambda: runtime.is_leader,
            runtime.content.repo_stat if hasattr(runtime.content, "repo_stat") else None,
        )
    )
    metrics_token = settings.metrics_token.get_secret_value() if settings.metrics_token else None
    metrics_public = settings.is_dev if settings.metrics_public is None else settings.metrics_public

    @app.get("/metrics", tags=["ops"], include_in_schema=False)
    def metrics(request: Request) -> Response:
        """Prometheus text format (node.metrics). Not public in production unless
        `metrics_public`; a scraper may always present `metrics_token`."""
        presented = request.headers.get("authorization", "")
        allowed = metrics_public or (
            metrics_token is not None
            and hmac.compare_digest(presented.encode(), f"Bearer {metrics_token}".encode())
        )
        if not allowed:
            return JSONResponse({"error": {"code": "NOT_FOUND", "message": "Not Found"}}, 404)
        body, content_type = render(registry)
        return Response(body, media_type=content_type)

    for router in ROUTERS:
        app.include_router(router)
    if settings.is_dev and not settings.chain_rpc_url:
        app.include_router(faucet_router)  # development only: absent (404) in production
    index_routes(app)
    return app


def disk_report(path: Path, min_free_bytes: int) -> dict[str, Any]:
    """Free space under the data directory, and whether it is below the threshold."""
    try:
        free = shutil.disk_usage(path).free
    except OSError:
        return {"free_bytes": None, "min_free_bytes": min_free_bytes, "low": True}
    return {"free_bytes": free, "min_free_bytes": min_free_bytes, "low": free < min_free_bytes}


# Request ids this process makes: a random 64-bit prefix (one per process) and a counter,
# 32 hex digits like a UUID's; `uuid4()` read the OS's random source on every request.
_ID_PREFIX = os.urandom(8).hex()
_ID_COUNTER = itertools.count()


def _new_request_id() -> str:
    return f"{_ID_PREFIX}{next(_ID_COUNTER) & 0xFFFFFFFFFFFFFFFF:016x}"


# A fast path: a `Response` for the request, or None (go on to the route).
Answer = Callable[[Request], Awaitable[Response | None]]
# How `DirectRoutes` calls what answers a route.
BARE, REQUEST, FAST = "bare", "request", "fast"
# Routes answered by their endpoint straight from the middleware stack (`DirectRoutes`):
# the liveness probe, which load balancers ask many times a second, and the embedded
# chain's JSON-RPC, a wallet's every call. Their endpoints take nothing or the request,
# read no dependency and return their `Response`.
DIRECT_ROUTES = frozenset({("GET", "/healthz"), ("POST", "/chain/rpc")})
# Routes with a fast path of their own, called the same way: it answers a request that
# holds no surprise and declines (None) any other, which goes on to the route, body and
# all. The job create, many a second from a busy requester, and the claim, every
# provider's poll: FastAPI's request handling (dependency solving, body reading, response
# validation) was half the create's event loop time, a quarter of the claim's.
FAST_PATHS: dict[tuple[str, str], Answer] = {
    ("POST", "/v1/jobs"): create_job_at_once,
    ("POST", "/v1/providers/claim"): claim_at_once,
}


class DirectRoutes:
    """Calls the endpoints of `DIRECT_ROUTES`, and the fast paths of `FAST_PATHS`,
    straight from the middleware stack for their method and exact path, skipping what a
    request goes through after the request context: the exception layers, route lookup
    and FastAPI's dependency solving and response serialization. FastAPI's request
    handler alone was 205 of 453 ms of 2,000 `/healthz` calls under cProfile, and a
    quarter of the node's event loop time on `/chain/rpc` (issue 12). Each route stays
    the one definition (its endpoint answers, or its fast path or it; its OpenAPI entry
    stays), `scope["route"]` is set as routing sets it (metrics label the request by it),
    and an error the endpoint raises is rendered by the app's own exception handlers
    (`handlers`), as the exception layers would."""

    def __init__(self, app: ASGIApp, router: Any, handlers: dict[Any, Callable[..., Any]]) -> None:
        self.app = app
        self.router = router
        self.handlers = handlers
        self._routes: dict[tuple[str, str], tuple[APIRoute, Callable[..., Any], str]] | None = None

    def _direct(self) -> dict[tuple[str, str], tuple[APIRoute, Callable[..., Any], str]]:
        """(method, path) -> (route, what answers it, how it is called: `FAST` a fast
        path, given the request with its body read; `REQUEST` an endpoint given the
        request; `BARE` an endpoint given nothing, the liveness probe, for which even
        building a `Request` counts); read from the router on the first request, when
        every router is included."""
        if self._routes is None:
            found: dict[tuple[str, str], tuple[APIRoute, Callable[..., Any], str]] = {}
            for path, route in _api_routes(self.router):
                for method in route.methods:
                    key = (method, path)
                    if key in FAST_PATHS:
                        found[key] = (route, FAST_PATHS[key], FAST)
                    elif key in DIRECT_ROUTES:
                        endpoint = route.endpoint
                        if not inspect.iscoroutinefunction(endpoint):
                            raise TypeError(f"direct route {path}: not async")
                        takes = bool(inspect.signature(endpoint).parameters)
                        found[key] = (route, endpoint, REQUEST if takes else BARE)
            self._routes = found
        return self._routes

    async def _rendered(self, request: Request, exc: Exception) -> Response:
        """`exc` as the exception layers render it: the handler of its nearest class;
        an unexpected error (a handler for `Exception` only) goes on up to the server
        error layer, which logs it and answers 500."""
        for cls in type(exc).__mro__:
            if cls is Exception:
                break
            handler = self.handlers.get(cls)
            if handler is not None:
                response = handler(request, exc)
                return await response if inspect.isawaitable(response) else response
        raise exc

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            direct = self._direct().get((scope["method"], scope["path"]))
            if direct is not None:
                route, answer, how = direct
                scope["route"] = route
                body = None
                try:
                    if how == BARE:
                        response = await answer()
                    else:
                        request = Request(scope, receive)
                        if how == FAST:
                            body = await request.body()
                        response = await answer(request)
                except Exception as exc:
                    response = await self._rendered(Request(scope, receive), exc)
                if response is not None:
                    await response(scope, receive, send)
                    return
                if body is not None:  # declined: the route reads the body once more
                    receive = _replaying(body, receive)
        await self.app(scope, receive, send)


def _replaying(body: bytes, receive: Receive) -> Receive:
    """`receive`, after one message holding `body` (read already)."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _api_routes(router: Any) -> Iterator[tuple[str, APIRoute]]:
    """The app's FastAPI routes with the path each answers: its own routes, and those of
    the routers it includes (as routing selects them: the route is the included one)."""
    for entry in router.routes:
        for path, route in routes_of(entry) or ():
            if isinstance(route, APIRoute):
                yield path, route


# The liveness and readiness probes (`RequestContextMiddleware` logs them quietly).
PROBES = frozenset({"/healthz", "/readyz"})


class RequestContextMiddleware:
    """Request ids (`X-Request-ID`, taken from the request or made) and one structured log
    line per request. Pure ASGI: Starlette's BaseHTTPMiddleware about doubled the cost of a
    small request (a task group and a body stream per request)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope["headers"] if k == b"x-request-id"), b"")
        request_id = given.decode("latin-1")[:64] or _new_request_id()
        state = scope.setdefault("state", {})  # what `request.state` reads and writes
        state["request_id"] = request_id
        token = REQUEST_ID.set(request_id)  # every log line of the request carries it
        started = time.perf_counter()
        status = 500  # if the app raises before answering, the server answers 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)["X-Request-ID"] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            observe_request(scope["method"], route_of(scope), status, elapsed)
            principal = state.get("principal")  # set by node.deps
            params = scope.get("path_params") or {}
            job_ref = params.get("jobId") or params.get("job_id")
            # A probe that answered 200 is logged at DEBUG: load balancers ask many times
            # a second, and its line was a sixth of a `/healthz`'s event loop time (py-spy,
            # issue 12); the request metrics count every one, and a failing probe is INFO.
            level = logging.DEBUG if status == 200 and scope["path"] in PROBES else logging.INFO
            if log.isEnabledFor(level):
                log.log(
                    level,
                    Fields(
                        request_id=request_id,
                        **({"job_id": str(job_ref)} if job_ref is not None else {}),
                        method=scope["method"],
                        path=scope["path"],
                        status=status,
                        duration_ms=round(elapsed * 1000, 2),
                        user_id=getattr(principal, "user_id", None),
                        api_key_id=getattr(principal, "api_key_id", None),
                    ),
                )
            REQUEST_ID.reset(token)
