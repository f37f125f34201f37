"""`dcm serve`'s uvicorn settings (`node/server.py`)."""

from __future__ import annotations

import logging

from node.server import server_config


async def _app(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
    pass


def test_uvicorn_builds_no_access_line_beside_the_nodes_own() -> None:
    root = logging.getLogger()
    handler = logging.NullHandler()  # as the node's JSON logging installs one
    root.addHandler(handler)
    try:
        server_config(_app, "127.0.0.1", 0)
        # uvicorn's protocol asks this of each connection: were it true, every response
        # would build the access line's arguments, for a line dropped at WARNING, and
        # the node logs each request itself
        assert not logging.getLogger("uvicorn.access").hasHandlers()
    finally:
        root.removeHandler(handler)
