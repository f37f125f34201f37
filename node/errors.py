"""Rendering of errors in the envelope of the dialect that was called.

| prefix              | envelope                                                     |
|---------------------|--------------------------------------------------------------|
| /v1                 | {"error": {"code", "message", "details"}}                    |
| /api/plugin-core    | {"success": false, "error": {"code", "message"}}             |
| /api/jobs           | {"status": "error", "error": {"code", "message"}}            |
| /api/v0 (Kubo RPC)  | {"Message", "Code": 0, "Type": "error"}                      |
| everything else     | {"detail": message, "code": code}  (seed 000/001 style)      |

Validation failures are 422 with the field path; on `/v1` they are 400 (`INVALID_QUERY` for
a query/path parameter, `INVALID_BODY` for the body), as seed 002 documents.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from marketplace.errors import MarketplaceError

log = logging.getLogger("dcm.errors")

_HTTP_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "VALIDATION_ERROR",
    429: "RATE_LIMIT_EXCEEDED",
}


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
        return {"Message": message, "Code": 0, "Type": "error"}
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
        return error_response(request, exc.status, exc.code, exc.message, exc.details)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = _validation_details(exc)
        in_query = all(d["loc"] and d["loc"][0] in ("query", "path") for d in details)
        # Seed 002 documents 400 for bad query parameters and for invalid input bodies.
        status = 400 if request.url.path.startswith("/v1") else 422
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
        message = f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
        return error_response(request, status, code, message, details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "HTTP_ERROR")
        return error_response(
            request, exc.status_code, code, str(exc.detail), headers=getattr(exc, "headers", None)
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error request_id=%s", getattr(request.state, "request_id", "-"))
        return error_response(request, 500, "INTERNAL_ERROR", "Internal server error")
