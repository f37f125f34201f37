"""The body limits on a real `dcm serve` (uvicorn, raw sockets): what a client library would
buffer or refuse to send (a 50 MiB chunked body, a body that stops) reaches the node as
an attacker sends it, and the process lives on."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.served import Served


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    s = Served(
        Path(tmp_path_factory.mktemp("limits")) / "node",
        DCM_BODY__STALL_SECONDS="1",
    )
    yield s
    s.stop()


def _send_chunked(
    port: int, path: str, chunks: Iterator[bytes], *, stop_early: bool = False
) -> tuple[int, str]:
    """POST a chunked body; read the answer while still sending, as a client must when
    the server may answer (and close) before the body is complete."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    ).encode()

    def writer() -> None:
        try:
            sock.sendall(head)
            for chunk in chunks:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            if not stop_early:
                sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server answered and closed: expected past the limit

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    data = b""
    try:
        while not _complete(data):
            piece = sock.recv(65536)
            if not piece:
                break
            data += piece
    finally:
        sock.close()
        thread.join(30)
    status_line = data.split(b"\r\n", 1)[0].decode()
    return int(status_line.split()[1]), data.decode("latin-1")


def _complete(data: bytes) -> bool:
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return False


def test_a_50_mib_chunked_body_is_cut_at_the_limit(served: Served) -> None:
    chunks = (b" " * 65536 for _ in range(800))  # 50 MiB of whitespace: valid JSON padding
    status, raw = _send_chunked(served.port, "/auth/login", chunks)
    assert status == 413
    assert "PAYLOAD_TOO_LARGE" in raw
    assert httpx.get(served.url + "/healthz").status_code == 200


def test_a_body_that_stops_is_answered_408(served: Served) -> None:
    status, raw = _send_chunked(
        served.port, "/v1/jobs", iter([b'{"type": "t", "payload": {']), stop_early=True
    )
    assert status == 408
    assert "REQUEST_TIMEOUT" in raw
    assert httpx.get(served.url + "/healthz").status_code == 200


def test_json_100000_deep_does_not_kill_the_process(served: Served) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    for path in ("/auth/login", "/chain/rpc", "/v1/jobs"):
        resp = httpx.post(
            served.url + path, content=deep, headers={"content-type": "application/json"}
        )
        assert resp.status_code == 400, (path, resp.text)
    assert served.proc.poll() is None
    assert httpx.get(served.url + "/healthz").status_code == 200
