"""Request bodies bounded on the bytes actually received, whatever the headers say.

`BodyLimitMiddleware` is a pure ASGI layer, outermost in the app, so it sees the raw
`receive` stream (Content-Length and chunked bodies alike) and costs a request without a
body one header scan. Each request falls in one kind, by path:

| kind   | paths                                            | limit                    | body     |
|--------|--------------------------------------------------|--------------------------|----------|
| upload | `/jobs/image_processing/upload` (seed 000)       | `upload.max_bytes`       | streamed |
| kubo   | `/api/v0/add`, `/api/v0/dag/import`, `block/put` | `body.max_kubo_add_bytes`| streamed |
| rpc    | `/chain/rpc`                                     | `body.max_rpc_bytes`     | buffered |
| json   | everything else                                  | `upload.max_json_bytes`  | buffered |

- A declared Content-Length over the limit is answered 413 before a byte is read.
- Buffered kinds are read here, counted chunk by chunk, and handed to the app in one
  piece only once complete and no deeper than `body.max_json_depth` (400
  `JSON_TOO_DEEP`): no JSON parser ever sees a deeper document (see
  `marketplace.jsondepth` for why that matters). A body that parses as JSON must also
  be interchange JSON (400 `INVALID_JSON`: no NaN, Infinity, out-of-range number or
  unpaired surrogate, which PostgreSQL or the response encoder would turn into a 500).
- Streamed kinds pass through chunk by chunk (memory stays at one chunk); the count
  stops them at the limit, and whatever the app answers then is replaced by the 413.
- A body that sends nothing for `body.stall_seconds` is answered 408 `REQUEST_TIMEOUT`.

Refusals are 413 `PAYLOAD_TOO_LARGE`, 408 `REQUEST_TIMEOUT`, 400 `JSON_TOO_DEEP` or 400
`INVALID_JSON` in the envelope of the dialect that was called (`node.errors.error_body`),
with `Connection: close`: the rest of a refused body is never read.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from dataclasses import dataclass

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from marketplace.errors import (
    InvalidJson,
    JsonTooDeep,
    MarketplaceError,
    PayloadTooLarge,
    RequestTimeout,
)
from marketplace.jsondepth import exceeds_depth, interchange_problem
from node.config import NodeSettings
from node.errors import error_body

log = logging.getLogger("dcm.limits")

UPLOAD_PATHS = frozenset({"/jobs/image_processing/upload"})
KUBO_WRITE_PATHS = frozenset({"/api/v0/add", "/api/v0/dag/import", "/api/v0/block/put"})
RPC_PATH = "/chain/rpc"
# Bodies larger than this are checked on a worker thread, off the event loop.
_INLINE_CHECK_BYTES = 64 * 1024


@dataclass(frozen=True)
class BodyKind:
    name: str
    limit: int
    buffered: bool


class _Refused(Exception):
    """Internal: the body was refused; `error` is what the client is told."""

    def __init__(self, error: MarketplaceError) -> None:
        super().__init__(error.message)
        self.error = error


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"Request body over {limit} bytes", details={"limit": "body_bytes", "max_bytes": limit}
    )


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, settings: NodeSettings) -> None:
        self.app = app
        self.stall_seconds = settings.body.stall_seconds
        self.max_depth = settings.body.max_json_depth
        self.kinds = {
            "upload": BodyKind("upload", settings.upload.max_bytes, buffered=False),
            "kubo": BodyKind("kubo", settings.body.max_kubo_add_bytes, buffered=False),
            "rpc": BodyKind("rpc", settings.body.max_rpc_bytes, buffered=True),
            "json": BodyKind("json", settings.upload.max_json_bytes, buffered=True),
        }

    def kind_of(self, path: str) -> BodyKind:
        if path in UPLOAD_PATHS:
            return self.kinds["upload"]
        if path in KUBO_WRITE_PATHS:
            return self.kinds["kubo"]
        if path == RPC_PATH:
            return self.kinds["rpc"]
        return self.kinds["json"]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared: int | None = None
        chunked = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared = int(value) if value.isdigit() else None
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
        if not chunked and not declared:
            await self.app(scope, receive, send)  # no body: nothing to bound
            return
        kind = self.kind_of(scope["path"])
        try:
            if declared is not None and declared > kind.limit:
                raise _Refused(_too_large(kind.limit))
            if kind.buffered:
                replay = await self._read_whole(receive, kind)
                if replay is None:
                    return  # the client left before its body was complete
                await self.app(scope, replay, send)
            else:
                await self._stream(scope, receive, send, kind)
        except _Refused as refused:
            await _refuse(scope, send, refused.error)

    async def _receive(self, receive: Receive) -> Message:
        # asyncio's own timeout: anyio's cancel scope cost twice as much (9.4 us against
        # 4.7 a request, on the event loop of every request with a body)
        try:
            async with asyncio.timeout(self.stall_seconds):
                return await receive()
        except TimeoutError:
            raise _Refused(
                RequestTimeout(
                    f"No request body bytes for {self.stall_seconds:g} seconds",
                    details={"limit": "stall_seconds", "stall_seconds": self.stall_seconds},
                )
            ) from None

    async def _read_whole(self, receive: Receive, kind: BodyKind) -> Receive | None:
        chunks: list[bytes] = []
        total = 0
        while True:
            message = await self._receive(receive)
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > kind.limit:
                raise _Refused(_too_large(kind.limit))
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if len(body) > _INLINE_CHECK_BYTES:
            refusal = await anyio.to_thread.run_sync(self._check, body)
        else:
            refusal = self._check(body)
        if refusal is not None:
            raise _Refused(refusal)
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: only a disconnect can come

        return replay

    def _check(self, body: bytes) -> MarketplaceError | None:
        """Depth first (a deeper document must never reach a parser), then whether what
        parses as JSON is interchange JSON."""
        if exceeds_depth(body, self.max_depth):
            return JsonTooDeep(
                f"JSON body nested deeper than {self.max_depth} levels",
                details={"limit": "max_json_depth", "max_depth": self.max_depth},
            )
        problem = interchange_problem(body)
        if problem is not None:
            return InvalidJson(f"JSON body refused: {problem}")
        return None

    async def _stream(self, scope: Scope, receive: Receive, send: Send, kind: BodyKind) -> None:
        refused: MarketplaceError | None = None
        total = 0
        started = False
        body_done = False

        async def counted() -> Message:
            nonlocal refused, total, body_done
            if body_done:  # past the body only a disconnect can come: no stall to time
                return await receive()
            try:
                message = await self._receive(receive)
            except _Refused as exc:
                refused = exc.error
                raise exc.error from None
            if message["type"] == "http.request":
                total += len(message.get("body", b""))
                if total > kind.limit:
                    refused = _too_large(kind.limit)
                    raise refused
                body_done = not message.get("more_body", False)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused is not None:  # whatever the app answers now, the client gets the refusal
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await _refuse(scope, send, refused)
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, guarded_send)
        except Exception:
            if refused is None:
                raise
            if not started:
                await _refuse(scope, send, refused)


async def _refuse(scope: Scope, send: Send, error: MarketplaceError) -> None:
    path = scope["path"]
    request_id = (
        next((v.decode("latin-1")[:64] for k, v in scope["headers"] if k == b"x-request-id"), None)
        or uuid.uuid4().hex
    )
    body = json.dumps(error_body(path, error.code, error.message, error.details)).encode()
    headers: list[tuple[bytes, bytes]] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        (b"x-request-id", request_id.encode("latin-1")),
    ]
    log.warning(
        json.dumps(
            {
                "request_id": request_id,
                "method": scope.get("method"),
                "path": path,
                "status": error.status,
                "code": error.code,
                "client": (scope.get("client") or ["-"])[0],
            }
        )
    )
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
