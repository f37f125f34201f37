"""The OpenAPI document declares every status a route can answer, in its dialect's envelope.

Error responses are derived from what a route is made of, so a route added later is
documented without anyone listing its errors by hand:

| the route has                                     | it may answer                          |
|---------------------------------------------------|----------------------------------------|
| a dependency (or handler) marked `@raises(...)`   | what the mark names (`node.deps`: the  |
|                                                   | bearer credential gives 401 and 403)   |
| a request body                                    | `BODY_LIMIT_ERRORS` (size, stall)      |
| a body FastAPI parses (a pydantic model)          | 400 (not decodable) and the dialect's  |
|                                                   | validation status                      |
| any declared parameter                            | the dialect's validation status (422;  |
|                                                   | 400 on `/v1`, as seed 002 says)        |
| a path parameter (an id, a CID)                   | 404                                    |

What a service raises beyond that (a 409 on a transition, a 503 from an engine) is one
line on the handler: `@raises(InvalidTransition)`.

Each error response carries the envelope model of the route's dialect
(`node.errors.envelope_model`), with the stable codes named in its description when the
declaration names error classes rather than bare statuses. A 401 declares the
`WWW-Authenticate` header every 401 carries; a 429 declares `Retry-After`.

Responses declared with FastAPI's own `responses=` are kept as written: success variants
(204, 206), bodies of another shape. Routes that answer bytes (archives, CARs, gateway
files) say so with `response_class=Response` (or `StreamingResponse`) and
`responses=binary(...)`.

`install_openapi(app)` (called by the app factory) wraps FastAPI's generator; the
document is built once per route set, when first asked for.
"""

from __future__ import annotations

import http
import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel

from marketplace.errors import (
    InvalidJson,
    JsonTooDeep,
    MarketplaceError,
    PayloadTooLarge,
    RequestTimeout,
)
from node.errors import PLUGIN_CORE, envelope_model, plugin_core_error, validation_status

ErrorSpec = int | type[MarketplaceError]
F = TypeVar("F", bound=Callable[..., Any])

# What any request that carries a body may be answered by the body layer (node.limits.body):
# too large (413), stalled (408), JSON nested too deep or not interchange JSON (400).
BODY_LIMIT_ERRORS: tuple[ErrorSpec, ...] = (
    PayloadTooLarge,
    RequestTimeout,
    JsonTooDeep,
    InvalidJson,
)

_MARK = "__dcm_raises__"
_REF = "#/components/schemas/"
_FASTAPI_VALIDATION_REF = _REF + "HTTPValidationError"
_HEADERS = {
    401: {
        "WWW-Authenticate": {
            "description": "The scheme to authenticate with (`Bearer`)",
            "required": True,
            "schema": {"type": "string"},
        }
    },
    429: {
        "Retry-After": {
            "description": "Seconds to wait before trying again",
            "required": True,
            "schema": {"type": "string"},
        }
    },
}


def raises(*errors: ErrorSpec) -> Callable[[F], F]:
    """Mark a dependency (or a handler): every route that depends on it may answer these
    statuses. Name error classes to document their codes, or bare statuses."""

    def mark(fn: F) -> F:
        setattr(fn, _MARK, (*getattr(fn, _MARK, ()), *errors))
        return fn

    return mark


def binary(
    *media_types: str, status: int = 200, description: str = "The content, as bytes"
) -> dict[int | str, dict[str, Any]]:
    """`responses=` of a route that answers bytes of these media types (`*/*`: any)."""
    schema = {"type": "string", "format": "binary"}
    return {
        status: {
            "description": description,
            "content": {m: {"schema": schema} for m in media_types},
        }
    }


def install_openapi(app: FastAPI) -> None:
    """Make `app.openapi()` (and `/openapi.json`, `/docs`) declare every error response."""
    generate = app.openapi
    last: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        doc = generate()  # FastAPI's own, cached until the routes change
        if last.get("doc") is not doc:
            document_errors(doc, api_routes(app))
            last["doc"] = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]


def api_routes(app: FastAPI) -> list[Any]:
    """The app's API routes as mounted (prefixes and router settings applied)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # FastAPI before included routers kept their own context
        return [r for r in app.routes if isinstance(r, APIRoute)]
    return [c for c in iter_route_contexts(app.routes) if isinstance(c.original_route, APIRoute)]


def document_errors(doc: dict[str, Any], routes: Iterable[Any]) -> None:
    """Add each route's error responses to `doc` (idempotent)."""
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for route in routes:
        if not route.include_in_schema:
            continue
        path_item = doc["paths"].get(route.path_format, {})
        envelope = _envelope_ref(envelope_model(route.path_format), schemas)
        for method in sorted(route.methods):
            operation = path_item.get(method.lower())
            if operation is None:
                continue
            statuses = route_errors(route, operation)
            responses = operation.setdefault("responses", {})
            auto = responses.get("422")
            if auto is not None and 422 not in statuses and _is_fastapi_validation(auto):
                del responses["422"]
            for status, codes in sorted(statuses.items()):
                entry = responses.setdefault(str(status), {})
                if not entry.get("description") or _is_fastapi_validation(entry):
                    entry["description"] = _describe(status, codes)
                if not entry.get("content") or _is_fastapi_validation(entry):
                    entry["content"] = {"application/json": {"schema": {"$ref": envelope}}}
                if status in _HEADERS:
                    entry.setdefault("headers", {}).update(_HEADERS[status])
            operation["responses"] = dict(sorted(responses.items()))
    _drop_unused(doc, ("HTTPValidationError", "ValidationError"))


def route_errors(route: Any, operation: dict[str, Any]) -> dict[int, set[str]]:
    """The error statuses (with the stable codes known for each) `route` may answer;
    `operation` is its rendered OpenAPI operation (parameters, request body)."""
    found: dict[int, set[str]] = {}

    def add(status: int, *codes: str) -> None:
        found.setdefault(status, set()).update(codes)

    for status, codes in _group(_marks(route.dependant)):
        add(status, *codes)
    params = operation.get("parameters", [])
    body_parsed = route.body_field is not None
    if params or body_parsed:
        add(validation_status(route.path_format), *_validation_codes(route.path_format))
    if body_parsed:
        add(400, "BAD_REQUEST")  # bytes FastAPI cannot decode (not UTF-8)
    if body_parsed or "requestBody" in operation:
        for status, codes in _group(BODY_LIMIT_ERRORS):
            add(status, *codes)
    if any(p.get("in") == "path" for p in params):
        add(404)
    if route.path_format.startswith(PLUGIN_CORE):  # seed 003 tells its own codes
        told: dict[int, set[str]] = {}
        for status, codes in found.items():
            for code in codes or {""}:
                s, c, _ = plugin_core_error(status, code, None)
                told.setdefault(s, set()).update({c} if c else set())
        return told
    return found


def _marks(dependant: Any) -> Iterator[ErrorSpec]:
    stack = [dependant]
    while stack:
        current = stack.pop()
        yield from getattr(current.call, _MARK, ())
        stack.extend(current.dependencies)


def _group(specs: Iterable[ErrorSpec]) -> list[tuple[int, set[str]]]:
    grouped: dict[int, set[str]] = {}
    for spec in specs:
        if isinstance(spec, int):
            grouped.setdefault(spec, set())
        else:
            grouped.setdefault(spec.status, set()).add(spec.code)
    return sorted(grouped.items())


def _validation_codes(path: str) -> tuple[str, ...]:
    if path.startswith(PLUGIN_CORE):
        return ("VALIDATION_ERROR",)
    return (
        ("INVALID_QUERY", "INVALID_BODY")
        if validation_status(path) == 400
        else ("VALIDATION_ERROR",)
    )


def _describe(status: int, codes: Iterable[str]) -> str:
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = f"HTTP {status}"
    names = ", ".join(sorted(codes))
    return f"{phrase}: {names}" if names else phrase


def _is_fastapi_validation(entry: dict[str, Any]) -> bool:
    content = entry.get("content") or {}
    schema = content.get("application/json", {}).get("schema", {})
    return schema.get("$ref") == _FASTAPI_VALIDATION_REF


def _envelope_ref(model: type[BaseModel], schemas: dict[str, Any]) -> str:
    if model.__name__ not in schemas:
        schema = model.model_json_schema(ref_template=_REF + "{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    return _REF + model.__name__


def _drop_unused(doc: dict[str, Any], names: tuple[str, ...]) -> None:
    schemas = doc.get("components", {}).get("schemas", {})
    for name in names:
        if name not in schemas:
            continue
        rest = {k: v for k, v in schemas.items() if k != name}
        if f'"{_REF}{name}"' not in json.dumps({"paths": doc["paths"], "schemas": rest}):
            del schemas[name]
