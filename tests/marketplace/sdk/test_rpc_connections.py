"""The SDK's calls to an outside JSON-RPC URL (`rpc_url=`, a wallet's own Hardhat or chain
node) share one kept-alive connection: a transaction costs five calls or more, and each
used to open a connection and build a TLS context of its own (37 ms of CPU a call)."""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from marketplace.sdk.client import NodeClient
from marketplace.sdk.http import tls_context


class _Rpc:
    """A JSON-RPC server on loopback answering `eth_chainId`, recording the client port of
    every call (one port per TCP connection)."""

    def __init__(self) -> None:
        self.ports: list[int] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as any node's RPC

            def do_POST(self) -> None:  # noqa: N802
                call = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                owner.ports.append(self.client_address[1])
                body = json.dumps({"jsonrpc": "2.0", "id": call["id"], "result": "0x539"})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def rpc() -> Iterator[_Rpc]:
    server = _Rpc()
    yield server
    server.server.shutdown()
    server.server.server_close()


def test_calls_to_an_outside_rpc_url_share_one_connection(rpc: _Rpc) -> None:
    client = NodeClient("http://127.0.0.1:9")  # the node itself is never asked
    for _ in range(5):
        assert client.rpc("eth_chainId", [], rpc.url) == "0x539"
    assert len(rpc.ports) == 5
    assert len(set(rpc.ports)) == 1
    client.close()
    # a closed client's next call opens a new connection rather than failing
    assert client.rpc("eth_chainId", [], rpc.url) == "0x539"
    assert len(set(rpc.ports)) == 2
    client.close()


def test_clients_build_no_tls_context_of_their_own(monkeypatch: pytest.MonkeyPatch) -> None:
    built = []
    real = ssl.create_default_context

    def counted(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        built.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(ssl, "create_default_context", counted)
    tls_context.cache_clear()
    clients = [NodeClient(url) for url in ("https://node.example", "http://127.0.0.1:9")]
    clients += [NodeClient("http://127.0.0.1:9") for _ in range(3)]
    try:
        assert len(built) == 1  # the shared context, built by the first client
    finally:
        for client in clients:
            client.close()
