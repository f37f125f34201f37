"""The baseline of `bench/api.py`: a bare Starlette app that answers each benchmarked path
with the exact bytes the node answered (status, content type, body), under the same server
settings as `dcm serve`. Responses come from the JSON file named by `DCM_BARE_RESPONSES`:
`{"GET /v1/jobs/job_1": {"status": 200, "content_type": "...", "body": "..."}, ...}`;
the query string is part of the key.

    DCM_BARE_RESPONSES=responses.json python -m bench._bare PORT

A benchmark starts it with `start(responses, workdir, probe)`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from node.server import server_config


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


def spawn(module: str, variable: str, data: Any, path: Path) -> tuple[subprocess.Popen, int]:
    """`python -m module PORT` in a child process, on a free port, given `data` as the JSON
    file `path` that the environment variable `variable` names: the process and its port."""
    from tests.fixtures.ports import free_port

    path.write_text(json.dumps(data))
    port = free_port()
    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", module, str(port)],
        env={**os.environ, variable: str(path), "PYTHONPATH": str(repo)},
        cwd=repo,
    )
    return proc, port


def start(responses: dict[str, Any], workdir: Path, probe: str) -> tuple[subprocess.Popen, str]:
    """Serve `responses` from a bare app in a child process; return it and its URL once
    `probe` (one of the responses' paths) answers. The caller terminates it."""
    import httpx

    proc, port = spawn("bench._bare", "DCM_BARE_RESPONSES", responses, workdir / "responses.json")
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            httpx.get(url + probe, timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.05)
    return proc, url


if __name__ == "__main__":
    with open(os.environ["DCM_BARE_RESPONSES"], encoding="utf-8") as fh:
        app = make_app(json.load(fh))
    # the same server settings as `dcm serve` (node/server.py)
    uvicorn.Server(server_config(app, "127.0.0.1", int(sys.argv[1]))).run()
