"""Rendering of errors in the envelope of the dialect that was called.

| prefix              | envelope                                                     |
|---------------------|--------------------------------------------------------------|
| /v1                 | {"error": {"code", "message", "details"}}                    |
| /api/plugin-core    | {"success": false, "error": {"code", "message", "details"}}  |
| /api/jobs           | {"status": "error", "error": {"code", "message"}}            |
| /api/v0 (Kubo RPC)  | {"Message", "Code": 0, "Type": "error", "ErrorCode": code}   |
| /chain/rpc          | {"jsonrpc": "2.0", "id": null, "error": {"code": -32600,     |
|                     |   "message", "data": {"code"}}}  (JSON-RPC 2.0)              |
| everything else     | {"detail": message, "code": code}  (seed 000/001 style)      |

Validation failures are 422 with the field path; on `/v1` they are 400 (`INVALID_QUERY` for
a query/path parameter, `INVALID_BODY` for the body), as seed 002 documents. On
`/api/plugin-core` they are 400 `VALIDATION_ERROR` naming the field, and every code is one
of seed 003's table by status (`PLUGIN_CORE_CODES`: 409 `PROVIDER_CONFLICT`, 503
`PROVIDER_UNAVAILABLE`...), the domain's own code kept in `details.reason`.

Each envelope is also a pydantic model below (`envelope_model(path)`), which the OpenAPI
document (`node.openapi`) declares on every error response of that dialect's routes.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from marketplace.errors import InsufficientStorage, MarketplaceError

log = logging.getLogger("dcm.errors")

_HTTP_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    408: "REQUEST_TIMEOUT",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "VALIDATION_ERROR",
    429: "RATE_LIMIT_EXCEEDED",
}


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: Any = None


class V1ErrorEnvelope(BaseModel):
    """`/v1` (seed 002)."""

    error: ErrorDetail


class PluginCoreErrorEnvelope(BaseModel):
    """`/api/plugin-core` (seed 003)."""

    success: Literal[False]
    error: ErrorDetail


class JobsApiErrorEnvelope(BaseModel):
    """`/api/jobs` (seed 004)."""

    status: Literal["error"]
    error: ErrorDetail


class KuboErrorEnvelope(BaseModel):
    """`/api/v0`, as Kubo answers, plus the stable code (`ErrorCode`) clients rebuild
    the domain error from."""

    Message: str
    Code: int
    Type: Literal["error"]
    ErrorCode: str


class JsonRpcErrorData(BaseModel):
    code: str
    details: Any = None


class JsonRpcErrorObject(BaseModel):
    code: int
    message: str
    data: JsonRpcErrorData


class JsonRpcErrorEnvelope(BaseModel):
    """`/chain/rpc` refusing a request before reading it (size, depth, rate): JSON-RPC 2.0
    with `id` null and the stable code in `error.data.code`."""

    jsonrpc: Literal["2.0"]
    id: None
    error: JsonRpcErrorObject


class ErrorEnvelope(BaseModel):
    """Every other route (seed 000/001 style): `detail` is the message, or the details
    (e.g. the validation errors) with the message in `message`."""

    detail: Any
    code: str
    message: str | None = None


_ENVELOPES: tuple[tuple[str, type[BaseModel]], ...] = (
    ("/v1", V1ErrorEnvelope),
    ("/api/plugin-core", PluginCoreErrorEnvelope),
    ("/api/jobs", JobsApiErrorEnvelope),
    ("/api/v0", KuboErrorEnvelope),
    ("/chain/rpc", JsonRpcErrorEnvelope),
)


# Seed 003's error table: the code a plugin-core client switches on, by HTTP status.
PLUGIN_CORE_CODES = {
    400: "VALIDATION_ERROR",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "JOB_NOT_FOUND",
    409: "PROVIDER_CONFLICT",
    422: "VALIDATION_ERROR",
    429: "RATE_LIMIT_EXCEEDED",
    500: "INTERNAL_ERROR",
    503: "PROVIDER_UNAVAILABLE",
}
PLUGIN_CORE = "/api/plugin-core"


def plugin_core_error(status: int, code: str, details: Any) -> tuple[int, str, Any]:
    """(status, code, details) as seed 003 tells them: its code for the status (a 404 of
    something else than a job keeps its own `*_NOT_FOUND`), the domain code in
    `details.reason` when it differs; a 422 is a 400 there."""
    status = 400 if status == 422 else status
    seed_code = PLUGIN_CORE_CODES.get(status)
    if seed_code is None or seed_code == code:
        return status, code, details
    if status == 404 and code.endswith("_NOT_FOUND"):
        return status, code, details
    if isinstance(details, dict):
        details = {**details, "reason": code}
    elif details is None:
        details = {"reason": code}
    else:
        details = {"reason": code, "errors": details}
    return status, seed_code, details


def envelope_model(path: str) -> type[BaseModel]:
    """The model of the error body `error_body` renders for `path`."""
    return next((model for prefix, model in _ENVELOPES if path.startswith(prefix)), ErrorEnvelope)


def validation_status(path: str) -> int:
    """The status of a request that fails validation: 400 on `/v1` (seed 002) and
    `/api/plugin-core` (seed 003), else 422."""
    return 400 if path.startswith(("/v1", PLUGIN_CORE)) else 422


def error_body(path: str, code: str, message: str, details: Any = None) -> dict[str, Any]:
    if path.startswith("/v1"):
        err: dict[str, Any] = {"code": code, "message": message}
        if details is not None:
            err["details"] = details
        return {"error": err}
    if path.startswith("/api/plugin-core"):
        return {"success": False, "error": {"code": code, "message": message, "details": details}}
    if path.startswith("/api/jobs"):
        return {"status": "error", "error": {"code": code, "message": message, "details": details}}
    if path.startswith("/api/v0"):
        # Kubo's own three fields, plus the stable code (Kubo clients ignore extra keys).
        return {"Message": message, "Code": 0, "Type": "error", "ErrorCode": code}
    if path == "/chain/rpc":  # refused before any JSON-RPC request was read: id null
        data = {"code": code} if details is None else {"code": code, "details": details}
        return {
            "jsonrpc": "2.0",
            "id": None,
            "error": {"code": -32600, "message": message, "data": data},
        }
    body: dict[str, Any] = {"detail": message if details is None else details, "code": code}
    if details is not None:
        body["message"] = message
    return body


def error_response(
    request: Request,
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    if request.url.path.startswith(PLUGIN_CORE):
        status, code, details = plugin_core_error(status, code, details)
    hdrs = dict(headers or {})
    request_id = getattr(request.state, "request_id", None)
    if request_id:
        hdrs["X-Request-ID"] = request_id
    if status == 401:
        hdrs.setdefault("WWW-Authenticate", "Bearer")
    return JSONResponse(error_body(request.url.path, code, message, details), status, hdrs)


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for e in exc.errors():
        out.append({"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")})
    return out


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(MarketplaceError)
    async def _domain(request: Request, exc: MarketplaceError) -> JSONResponse:
        headers = getattr(exc, "headers", None)  # e.g. Retry-After of a RetryLater
        return error_response(request, exc.status, exc.code, exc.message, exc.details, headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = _validation_details(exc)
        in_query = all(d["loc"] and d["loc"][0] in ("query", "path") for d in details)
        # Seed 002 documents 400 for bad query parameters and for invalid input bodies.
        status = validation_status(request.url.path)
        if (
            request.url.path.startswith("/jobs/")
            or request.url.path.startswith("/workspace")
            or request.url.path.startswith("/auth")
            or request.url.path == "/jobs"
        ):
            return error_response(request, 422, "VALIDATION_ERROR", "Validation error", details)
        code = (
            "VALIDATION_ERROR" if status == 422 else "INVALID_QUERY" if in_query else "INVALID_BODY"
        )
        first = details[0] if details else {"loc": [], "msg": "invalid"}
        loc = list(first["loc"])
        if request.url.path.startswith(PLUGIN_CORE):
            # seed 003: one code; the message names the field as the client wrote it
            code = "VALIDATION_ERROR"
            loc = loc[1:] if loc and loc[0] in ("body", "query", "path") else loc
        message = f"{'.'.join(str(p) for p in loc)}: {first['msg']}"
        return error_response(request, status, code, message, details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "HTTP_ERROR")
        return error_response(
            request, exc.status_code, code, str(exc.detail), headers=getattr(exc, "headers", None)
        )

    @app.exception_handler(DBAPIError)
    async def _database(request: Request, exc: DBAPIError) -> JSONResponse:
        if not database_disk_full(exc):
            raise exc  # any other database failure is unexpected (500 below)
        # The transaction rolled back: nothing was written, the same request may succeed.
        log.error("database disk full request_id=%s", getattr(request.state, "request_id", "-"))
        full = InsufficientStorage("The node's database has no space left; retry later")
        return error_response(request, full.status, full.code, full.message)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error request_id=%s", getattr(request.state, "request_id", "-"))
        return error_response(request, 500, "INTERNAL_ERROR", "Internal server error")


def database_disk_full(exc: BaseException) -> bool:
    """Whether a database error says its disk is full: SQLite's SQLITE_FULL ("database or
    disk is full") or PostgreSQL's SQLSTATE 53100 (disk_full)."""
    if not isinstance(exc, DBAPIError):
        return False
    original = exc.orig
    if getattr(original, "sqlstate", None) == "53100":
        return True
    return "database or disk is full" in str(original)
