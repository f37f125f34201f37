"""The floor of `bench/chain_rpc.py`'s HTTP mode: a bare Starlette app that answers each
JSON-RPC method with one recorded result, doing no chain work at all, under the same
server settings as `dcm serve`. A web3 client's transfers against it cost what the client
and the HTTP exchange cost, and nothing else: what no server could take away.

Results come from the JSON file named by `DCM_NULL_RPC_RESULTS`: `{"eth_chainId":
"0x...", ...}`, the `result` of each method as the embedded chain answered it.

    DCM_NULL_RPC_RESULTS=results.json python -m bench._null_rpc PORT

A benchmark starts it with `start(results, workdir)`. With `raw=True` the server is no
web framework at all but an asyncio protocol that reads each request's head and body and
writes its answer (`RawRpc`): the least any Python server could cost, so that what is left
is the client's own HTTP cost and the machine's (`bench/chain_rpc.py`'s `null_raw`).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import uvicorn
import uvloop
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


class RawRpc(asyncio.Protocol):
    """HTTP/1.1 keep-alive, one JSON-RPC call a request, answered with its recorded result:
    the head read for its Content-Length, the body parsed for the method and id."""

    def __init__(self, rendered: dict[str, str]) -> None:
        self.rendered = rendered
        self.buffer = b""
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            length = 0
            for line in self.buffer[:end].split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return  # the rest of the body is still coming
            call = json.loads(self.buffer[end + 4 : end + 4 + length])
            self.buffer = self.buffer[end + 4 + length :]
            result = self.rendered[call["method"]]
            body = f'{{"jsonrpc":"2.0","id":{json.dumps(call["id"])},"result":{result}}}'.encode()
            head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
            self.transport.write(head + str(len(body)).encode() + b"\r\n\r\n" + body)


def serve_raw(results: dict[str, Any], port: int) -> None:
    rendered = {method: json.dumps(result) for method, result in results.items()}
    loop = uvloop.new_event_loop()  # as `dcm serve` runs (node.server)
    server = loop.run_until_complete(
        loop.create_server(lambda: RawRpc(rendered), "127.0.0.1", port)
    )
    loop.run_until_complete(server.serve_forever())


def start(
    results: dict[str, Any], workdir: Path, raw: bool = False
) -> tuple[subprocess.Popen, str]:
    """Serve `results` in a child process (`raw`: by `RawRpc`, else the bare app); return
    it and its JSON-RPC URL once it answers. The caller terminates it."""
    import httpx

    from bench._bare import spawn

    name = "null-rpc-raw.json" if raw else "null-rpc-results.json"
    variable = "DCM_NULL_RPC_RAW" if raw else "DCM_NULL_RPC_RESULTS"
    proc, port = spawn("bench._null_rpc", variable, results, workdir / name)
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
    if "DCM_NULL_RPC_RAW" in os.environ:
        with open(os.environ["DCM_NULL_RPC_RAW"], encoding="utf-8") as fh:
            serve_raw(json.load(fh), int(sys.argv[1]))
    else:
        with open(os.environ["DCM_NULL_RPC_RESULTS"], encoding="utf-8") as fh:
            app = make_app(json.load(fh))
        uvicorn.Server(server_config(app, "127.0.0.1", int(sys.argv[1]))).run()
