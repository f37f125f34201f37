"""The HTTP server settings of `dcm serve`: uvicorn with httptools (llhttp, in C) and
uvloop, instead of the pure-Python h11 and asyncio's default loop.

On 2 cores that took `/healthz` from about 4,100 to 6,950 requests a second (issue 12).
httptools keeps no bound on a request's head, where h11 refuses one over 16 KiB: uvicorn
appends each piece of the URL (and httptools each piece of a header) to the last, so one
200 MiB URL grew the process by 380 MiB. `BoundedHttpToolsProtocol` keeps h11's answer
(a 400 and the connection closed) for a head over `HEAD_LIMIT`.
"""

from __future__ import annotations

from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# The most bytes a request's line and headers may take. h11's is 16 KiB; the node's paths,
# cursors and tokens are far shorter, and a proxy may add a few headers.
HEAD_LIMIT = 64 * 1024


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, refusing a request head over `HEAD_LIMIT` bytes.

    Each read that ends inside a head counts whole (a read that also ended a request
    counts from the next one), so a head is cut within one read of the limit, and
    pipelined requests with small heads are never refused for their sum."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True  # reading a request line and headers, or waiting for one
        self._head_bytes = 0
        self._request_ended = False  # a request ended during the current read

    def data_received(self, data: bytes) -> None:
        self._request_ended = False
        super().data_received(data)
        if not self._in_head or self._request_ended or self.transport.is_closing():
            return
        self._head_bytes += len(data)
        if self._head_bytes > HEAD_LIMIT:
            self.logger.warning("Request head over %d bytes refused.", HEAD_LIMIT)
            self.send_400_response("Request head too large.")

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_head = True  # the next request's head starts here
        self._head_bytes = 0
        self._request_ended = True
        super().on_message_complete()


def server_config(app: Any, host: str, port: int, **options: Any) -> uvicorn.Config:
    """The uvicorn settings of a served node (and of the benchmarks' bare baseline)."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=BoundedHttpToolsProtocol,
        loop="uvloop",
        log_level="warning",
        # the node logs each request itself (`node.app`); uvicorn's access line would be
        # dropped at this level, yet its arguments were built for every response
        access_log=False,
        **options,
    )
