"""The baseline of `bench/api.py`: a bare Starlette app that answers each benchmarked path
with the exact bytes the node answered (status, content type, body), under the same server
settings as `dcm serve`. Responses come from the JSON file named by `DCM_BARE_RESPONSES`:
`{"GET /v1/jobs/job_1": {"status": 200, "content_type": "...", "body": "..."}, ...}`;
the query string is part of the key.

    DCM_BARE_RESPONSES=responses.json python -m bench._bare PORT
"""

from __future__ import annotations

import json
import os
import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


def make_app(responses: dict[str, dict]) -> Starlette:
    table = {
        key: (r["status"], r["content_type"], r["body"].encode()) for key, r in responses.items()
    }

    async def answer(request: Request) -> Response:
        await request.body()  # read the body, as the node does
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        status, content_type, body = table[f"{request.method} {path}"]
        return Response(body, status_code=status, media_type=content_type)

    return Starlette(routes=[Route("/{path:path}", answer, methods=["GET", "POST"])])


if __name__ == "__main__":
    with open(os.environ["DCM_BARE_RESPONSES"], encoding="utf-8") as fh:
        app = make_app(json.load(fh))
    # the same server settings as `dcm serve` (dcm/cli.py)
    uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
    ).run()
