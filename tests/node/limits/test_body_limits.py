"""Request bodies are bounded on the bytes received and on JSON depth, on every route and
dialect, with a 4xx in that dialect's envelope (node.limits.body)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from node.config import NodeSettings
from tests.fixtures.app import create_app
from tests.fixtures.asgi import http_scope
from tests.fixtures.factories import auth_headers, make_user, make_workspace

DEEP = "[" * 100_000 + "]" * 100_000
JSON = {"content-type": "application/json"}


def error_code(resp: Any) -> str:
    """The stable code, wherever the dialect's envelope puts it."""
    body = resp.json()
    if "jsonrpc" in body:
        return body["error"]["data"]["code"]
    if isinstance(body.get("error"), dict):
        return body["error"]["code"]
    if "Type" in body:  # Kubo RPC: no code field; the status and message carry it
        assert body["Type"] == "error" and body["Message"]
        return {400: "JSON_TOO_DEEP", 413: "PAYLOAD_TOO_LARGE", 408: "REQUEST_TIMEOUT"}[
            resp.status_code
        ]
    return body["code"]


@pytest.fixture
def owner(app: FastAPI, client: TestClient) -> dict[str, str]:
    user = make_user(app, username="owner")
    make_workspace(app, user)
    return auth_headers(client, "owner")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/auth/login"),
        ("POST", "/auth/siwe"),
        ("POST", "/v1/jobs"),
        ("PATCH", "/workspace/1/jobs/job_1"),
        ("POST", "/v1/providers/claim"),
        ("POST", "/chain/rpc"),
        ("POST", "/api/v0/pin/add"),
        ("POST", "/jobs/image_processing/get-job/1"),
    ],
)
def test_json_nested_100000_deep_is_refused_and_the_node_lives(
    client: TestClient, owner: dict[str, str], method: str, path: str
) -> None:
    resp = client.request(method, path, content=DEEP, headers={**JSON, **owner})
    assert resp.status_code == 400, resp.text
    assert error_code(resp) == "JSON_TOO_DEEP"
    assert client.get("/healthz").status_code == 200


def test_the_jsonrpc_dialect_answers_in_a_jsonrpc_envelope(client: TestClient) -> None:
    body = client.post("/chain/rpc", content=DEEP, headers=JSON).json()
    assert body["jsonrpc"] == "2.0" and body["id"] is None
    assert body["error"]["code"] == -32600


@pytest.mark.parametrize(("method", "path"), [("POST", "/v1/jobs"), ("PATCH", None)])
def test_a_thousand_levels_on_an_authenticated_write_is_a_4xx(
    client: TestClient, owner: dict[str, str], method: str, path: str | None
) -> None:
    """The issue's 500s at depth 1,000-5,000 on POST /v1/jobs and the seed 001 PATCH."""
    if path is None:
        job = client.post(
            "/workspace/1/jobs",
            json={"job_type": "data_processing", "workspace_id": 1},
            headers=owner,
        )
        assert job.status_code == 201, job.text
        path = f"/workspace/1/jobs/{job.json()['job_id']}"
    nested: Any = "leaf"
    for _ in range(1000):
        nested = {"n": nested}
    body = {"type": "t", "payload": nested} if method == "POST" else {"result": nested}
    resp = client.request(method, path, content=json.dumps(body), headers={**JSON, **owner})
    assert resp.status_code == 400, resp.text[:300]
    assert error_code(resp) == "JSON_TOO_DEEP"


def test_json_within_the_depth_bound_is_served(client: TestClient, owner: dict[str, str]) -> None:
    nested: Any = "leaf"
    for _ in range(30):
        nested = {"n": nested}
    resp = client.post("/v1/jobs", json={"type": "t", "payload": nested}, headers=owner)
    assert resp.status_code == 201, resp.text


def _chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    yield b'{"type": "t", "payload": {"pad": "'
    sent = 0
    while sent < total:
        yield b"x" * size
        sent += size
    yield b'"}}'


def test_chunked_json_over_the_limit_is_413_and_stores_nothing(
    client: TestClient, owner: dict[str, str]
) -> None:
    """The issue's 5 MiB chunked body that was stored as a job: no Content-Length, so only
    counting the received bytes can stop it."""
    resp = client.post("/v1/jobs", content=_chunks(5 * 1024 * 1024), headers={**JSON, **owner})
    assert resp.status_code == 413, resp.text
    assert error_code(resp) == "PAYLOAD_TOO_LARGE"
    assert resp.headers["connection"] == "close"
    listed = client.get("/v1/jobs", params={"limit": 10}, headers=owner).json()
    assert listed["data"] == []


def test_declared_content_length_over_the_limit_is_refused(client: TestClient) -> None:
    resp = client.post("/auth/login", content=b" " * (1024 * 1024 + 1), headers=JSON)
    assert resp.status_code == 413
    assert resp.json()["code"] == "PAYLOAD_TOO_LARGE"


def test_each_kind_has_its_own_limit(settings: NodeSettings) -> None:
    settings.upload.max_json_bytes = 2048
    settings.body.max_rpc_bytes = 4096
    settings.body.max_kubo_add_bytes = 8192
    with TestClient(create_app(settings)) as client:
        rpc = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": [], "pad": "x" * 3000}
        assert client.post("/chain/rpc", json=rpc).status_code == 200  # over JSON, under RPC
        rpc["pad"] = "x" * 5000
        assert client.post("/chain/rpc", json=rpc).status_code == 413
        make_user(client.app, username="adder")
        headers = auth_headers(client, "adder")
        files = {"file": ("a.bin", b"x" * 9000, "application/octet-stream")}
        big_add = client.post("/api/v0/add", files=files, headers=headers)
        assert big_add.status_code == 413 and big_add.json()["Type"] == "error"
        small = {"file": ("a.bin", b"x" * 3000, "application/octet-stream")}
        assert client.post("/api/v0/add", files=small, headers=headers).status_code == 200


def test_a_seed000_upload_is_counted_as_it_streams(settings: NodeSettings) -> None:
    settings.upload.max_bytes = 100_000
    with TestClient(create_app(settings)) as client:

        def body() -> Iterator[bytes]:
            yield b'--B\r\nContent-Disposition: form-data; name="files"; filename="a.png"\r\n\r\n'
            for _ in range(40):
                yield b"x" * 4096

        resp = client.post(
            "/jobs/image_processing/upload",
            content=body(),
            headers={"content-type": "multipart/form-data; boundary=B"},
        )
        assert resp.status_code == 413
        assert resp.json()["code"] == "PAYLOAD_TOO_LARGE"
        assert not any((settings.data_dir / "tmp").rglob("*.png"))


def test_a_deep_classes_field_in_a_multipart_upload_is_refused(client: TestClient) -> None:
    """Seed 000's `classes` is JSON inside a form field: the bound holds there too."""
    fields = {
        "folderName": "d",
        "model": "yolov8n",
        "epochs": "1",
        "imgsz": "64",
        "exportFormat": "onnx",
        "numClasses": "1",
        "classes": "[" * 100_000 + "]" * 100_000,
        "reward": "0.01",
        "requesterAddress": "0xe003212E9A5b41a923566b3E093fe1c3D1c68A5A",
    }
    files = {"files": ("images/a.png", b"\x89PNG", "image/png")}
    resp = client.post("/jobs/image_processing/upload", data=fields, files=files)
    assert resp.status_code == 422, resp.text
    assert resp.json()["code"] == "INVALID_FIELD"
    assert client.get("/healthz").status_code == 200


async def _asgi(
    app: FastAPI, path: str, content_type: str, first: bytes
) -> tuple[int, dict[str, Any]]:
    """Send a request whose body sends `first` and then nothing, straight to the ASGI
    app (no client library buffers it)."""
    calls = 0

    async def receive() -> dict[str, Any]:
        nonlocal calls
        calls += 1
        if calls == 1:
            return {"type": "http.request", "body": first, "more_body": True}
        await anyio.sleep(3600)
        raise AssertionError("the stall was not cut")

    messages: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    headers = [(b"content-type", content_type.encode()), (b"transfer-encoding", b"chunked")]
    scope = http_scope("POST", path, headers)
    with anyio.fail_after(10):
        await app(scope, receive, send)
    start = next(m for m in messages if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    return start["status"], json.loads(body)


@pytest.mark.parametrize(
    ("path", "content_type", "first"),
    [
        ("/auth/login", "application/json", b'{"username": '),  # buffered by the limit layer
        (  # streamed through to the upload route
            "/jobs/image_processing/upload",
            "multipart/form-data; boundary=B",
            b'--B\r\nContent-Disposition: form-data; name="files"; filename="a.png"\r\n\r\nxx',
        ),
    ],
)
def test_a_stalled_body_is_cut_with_408(
    settings: NodeSettings, path: str, content_type: str, first: bytes
) -> None:
    settings.body.stall_seconds = 0.3
    app = create_app(settings)
    status, body = anyio.run(_asgi, app, path, content_type, first)
    assert status == 408
    assert body["code"] == "REQUEST_TIMEOUT"


def test_waiting_for_a_disconnect_after_a_streamed_body_is_not_a_stall(
    settings: NodeSettings,
) -> None:
    """Past the body, an app may listen for the client leaving (as streaming responses
    do): that wait is not a stalled body."""
    from node.limits.body import BodyLimitMiddleware

    settings.body.stall_seconds = 0.1
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        while (await receive()).get("more_body"):
            pass
        seen.append((await receive())["type"])  # blocks until the client leaves
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def scenario() -> int:
        messages = [
            {"type": "http.request", "body": b"a", "more_body": True},
            {"type": "http.request", "body": b"b", "more_body": False},
        ]

        async def receive() -> dict[str, Any]:
            if messages:
                return messages.pop(0)
            await anyio.sleep(0.5)  # five stall periods, then the client leaves
            return {"type": "http.disconnect"}

        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {"type": "http", "path": "/api/v0/add", "headers": [(b"content-length", b"2")]}
        await BodyLimitMiddleware(app, settings)(scope, receive, send)
        return sent[0]["status"]

    assert anyio.run(scenario) == 200
    assert seen == ["http.disconnect"]


@pytest.mark.parametrize(
    "value",
    [
        "NaN",
        "Infinity",
        "-Infinity",
        "1e999",
        "1E400",
        "-1" + "0" * 400 + ".5",
        '"\\ud800"',
        '"\\uDFFF"',
        b'"\xed\xa0\x80"',  # a surrogate's own UTF-8 bytes
    ],
)
def test_json_that_is_not_interchange_json_is_refused(
    client: TestClient, owner: dict[str, str], value: str | bytes
) -> None:
    """Python parses these; PostgreSQL refuses NaN in a JSON column and no response can
    encode a lone surrogate: each was a 500 (and NaN silently became null on SQLite)."""
    raw = value if isinstance(value, bytes) else value.encode()
    body = b'{"type": "t", "payload": {"x": ' + raw + b"}}"
    resp = client.post("/v1/jobs", content=body, headers={**JSON, **owner})
    assert resp.status_code == 400, resp.text
    assert error_code(resp) == "INVALID_JSON"
    assert client.get("/v1/jobs", params={"limit": 5}, headers=owner).json()["data"] == []


def test_unicode_beyond_the_bmp_escaped_as_a_surrogate_pair_is_accepted(
    client: TestClient, owner: dict[str, str]
) -> None:
    body = '{"type": "t", "payload": {"x": "\\ud83d\\ude00", "y": 1.5e300}}'
    resp = client.post("/v1/jobs", content=body, headers={**JSON, **owner})
    assert resp.status_code == 201, resp.text
    assert resp.json()["data"]["payload"] == {"x": "\U0001f600", "y": 1.5e300}
