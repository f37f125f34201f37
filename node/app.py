"""The node's FastAPI application factory.

`create_app(settings)` builds the engine, migrates the schema, wires adapters into
`app.state`, mounts one router per API dialect and installs error rendering, request
ids and structured request logs.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import text

from node.config import NodeSettings
from node.content.factory import make_content_store
from node.db import make_engine, make_sessionmaker, upgrade_schema
from node.errors import error_response, install_error_handlers

log = logging.getLogger("dcm.access")


def _include_routers(app: FastAPI) -> None:
    from node.routers import ROUTERS

    for router in ROUTERS:
        app.include_router(router)


def _install_chain(app: FastAPI) -> None:
    from node.chain.startup import install_chain

    install_chain(app)


def create_app(settings: NodeSettings | None = None) -> FastAPI:
    settings = settings or NodeSettings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.sqlalchemy_url)
    upgrade_schema(engine)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for start in app.state.on_startup:
            await start(app)
        try:
            yield
        finally:
            for stop in reversed(app.state.on_shutdown):
                await stop(app)
            engine.dispose()

    app = FastAPI(
        title="dcm node",
        version="0.1.0",
        description="Decentralized compute marketplace node",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = make_sessionmaker(engine)
    app.state.content = make_content_store(settings, app.state.sessionmaker)
    app.state.on_startup = []
    app.state.on_shutdown = []

    from node.providers import runtime as providers_runtime

    providers_runtime.setup(app)

    install_error_handlers(app)
    _install_middleware(app, settings)
    _include_routers(app)
    _install_chain(app)

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"])
    def readyz() -> JSONResponse:
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:  # readiness reports, it does not raise
            return JSONResponse({"status": "unavailable", "database": str(exc)[:200]}, 503)
        return JSONResponse({"status": "ready", "database": "ok"})

    return app


def _install_middleware(app: FastAPI, settings: NodeSettings) -> None:
    json_limit = settings.upload.max_json_bytes

    @app.middleware("http")
    async def request_context(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        request.state.request_id = request_id[:64]
        started = time.perf_counter()
        ctype = request.headers.get("content-type", "")
        length = request.headers.get("content-length")
        if (
            ctype.startswith("application/json")
            and length
            and length.isdigit()
            and int(length) > json_limit
        ):
            response: Response = error_response(
                request, 413, "PAYLOAD_TOO_LARGE", f"JSON body over {json_limit} bytes"
            )
        else:
            response = await call_next(request)
        response.headers["X-Request-ID"] = request.state.request_id
        principal = getattr(request.state, "principal", None)  # set by node.deps
        log.info(
            json.dumps(
                {
                    "request_id": request.state.request_id,
                    "method": request.method,
                    "path": request.url.path,
                    "status": response.status_code,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    "user_id": getattr(principal, "user_id", None),
                    "api_key_id": getattr(principal, "api_key_id", None),
                }
            )
        )
        return response
