"""The body limits on a real `dcm serve` (uvicorn, raw sockets): what a client library would
buffer or refuse to send (a 50 MiB chunked body, a body that stops) reaches the node as
an attacker sends it, and the process lives on."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.fixtures import web
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
    try:
        data = _read_until(sock, _complete)
    finally:
        sock.close()
        thread.join(30)
    status_line = data.split(b"\r\n", 1)[0].decode()
    return int(status_line.split()[1]), data.decode("latin-1")


def _read_until(sock: socket.socket, done: Callable[[bytes], bool]) -> bytes:
    """What the server sends until `done` says it is enough, or it closes (or resets the
    connection: a server that closes with unread bytes sends a reset after its answer)."""
    data = b""
    try:
        while not done(data):
            piece = sock.recv(65536)
            if not piece:
                break
            data += piece
    except ConnectionResetError:
        pass
    return data


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
    assert web.get(served.url + "/healthz").status_code == 200


def test_a_body_that_stops_is_answered_408(served: Served) -> None:
    status, raw = _send_chunked(
        served.port, "/v1/jobs", iter([b'{"type": "t", "payload": {']), stop_early=True
    )
    assert status == 408
    assert "REQUEST_TIMEOUT" in raw
    assert web.get(served.url + "/healthz").status_code == 200


def test_json_100000_deep_does_not_kill_the_process(served: Served) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    for path in ("/auth/login", "/chain/rpc", "/v1/jobs"):
        resp = web.post(
            served.url + path, content=deep, headers={"content-type": "application/json"}
        )
        assert resp.status_code == 400, (path, resp.text)
    assert served.proc.poll() is None
    assert web.get(served.url + "/healthz").status_code == 200


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _send_head(port: int, start: bytes, endless: bytes) -> tuple[bytes, int]:
    """Send `start`, then `endless` 1 MiB at a time (up to 32 MiB) until the server cuts the
    connection; return its answer and how many MiB went out."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sent = 0
    try:
        sock.sendall(start)
        piece = endless * ((1 << 20) // len(endless))
        for sent in range(32):  # noqa: B007 - the count is returned
            sock.sendall(piece)
    except OSError:
        pass  # cut: expected
    answer = _read_until(sock, lambda _: False)
    sock.close()
    return answer, sent


@pytest.mark.parametrize(
    "start, endless",
    [
        (b"GET /healthz?", b"a"),  # a URL without end
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: ", b"a"),  # one header without end
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\n", b"X-Pad: a\r\n"),  # headers without end
    ],
    ids=["url", "header", "headers"],
)
def test_an_endless_request_head_is_cut_and_the_process_does_not_grow(
    served: Served, start: bytes, endless: bytes
) -> None:
    before = _rss_kib(served.proc.pid)
    answer, sent_mib = _send_head(served.port, start, endless)
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    assert sent_mib < 32, "the node read 32 MiB of one request's head"
    assert _rss_kib(served.proc.pid) - before < 16 * 1024
    assert web.get(served.url + "/healthz").status_code == 200


def test_heads_under_the_limit_are_served_one_after_another_on_one_connection(
    served: Served,
) -> None:
    # 40 KiB of headers (over h11's 16 KiB, under the node's 64 KiB), three pipelined
    # requests: the head count starts again at each request
    pad = b"X-Pad: " + b"a" * 40_000 + b"\r\n"
    one = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + pad + b"\r\n"
    sock = socket.create_connection(("127.0.0.1", served.port), timeout=30)
    try:
        for _ in range(3):
            sock.sendall(one)
        answers = _read_until(sock, lambda data: data.count(b'{"status":"ok"}') >= 3)
    finally:
        sock.close()
    assert answers.count(b"HTTP/1.1 200 OK") == 3, answers[:300]
