"""The floor of `bench/chain_rpc.py`'s HTTP mode: a bare Starlette app that answers each
JSON-RPC method with one recorded result, doing no chain work at all, under the same
server settings as `dcm serve`. A web3 client's transfers against it cost what the client
and the HTTP exchange cost, and nothing else: what no server could take away.

Results come from the JSON file named by `DCM_NULL_RPC_RESULTS`: `{"eth_chainId":
"0x...", ...}`, the `result` of each method as the embedded chain answered it.

    DCM_NULL_RPC_RESULTS=results.json python -m bench._null_rpc PORT

A benchmark starts it with `start(results, workdir)`.
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

PATH = "/chain/rpc"


def make_app(results: dict[str, Any]) -> Starlette:
    # each answer's text around its id, rendered once
    rendered = {method: json.dumps(result) for method, result in results.items()}

    async def answer(request: Request) -> Response:
        call = json.loads(await request.body())  # the least a server reads of a call
        result = rendered[call["method"]]
        body = f'{{"jsonrpc":"2.0","id":{json.dumps(call["id"])},"result":{result}}}'
        return Response(body, media_type="application/json")

    return Starlette(routes=[Route(PATH, answer, methods=["POST"])])


def start(results: dict[str, Any], workdir: Path) -> tuple[subprocess.Popen, str]:
    """Serve `results` in a child process; return it and its JSON-RPC URL once it
    answers. The caller terminates it."""
    import httpx

    from bench._bare import spawn

    proc, port = spawn(
        "bench._null_rpc", "DCM_NULL_RPC_RESULTS", results, workdir / "null-rpc-results.json"
    )
    url = f"http://127.0.0.1:{port}{PATH}"
    probe = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            httpx.post(url, json=probe, timeout=1).raise_for_status()
            return proc, url
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the null JSON-RPC server did not start")


if __name__ == "__main__":
    with open(os.environ["DCM_NULL_RPC_RESULTS"], encoding="utf-8") as fh:
        app = make_app(json.load(fh))
    uvicorn.Server(server_config(app, "127.0.0.1", int(sys.argv[1]))).run()
