"""The Kubo RPC dialect (`/api/v0`) and the gateway, driven with raw multipart bodies as
curl and Kubo's clients send them."""

from __future__ import annotations

import io
import json
import tarfile
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from marketplace.content import car, dag
from marketplace.content.cid import parse_cid
from marketplace.content.importer import import_path
from marketplace.content.memory import MemoryBlocks
from node.config import NodeSettings
from tests.fixtures.app import create_app
from tests.fixtures.content import content, make_vector_tree, vectors
from tests.fixtures.factories import signed_in

V = vectors()
HELLO = V["more"]["hello world\\n"]


def multipart(parts: list[tuple[str | None, str, bytes]]) -> tuple[bytes, str]:
    """(filename, content type, data) parts, encoded like kubo-rpc-client does."""
    boundary = uuid.uuid4().hex
    out = io.BytesIO()
    for filename, ctype, data in parts:
        out.write(f"--{boundary}\r\n".encode())
        disp = 'form-data; name="file"'
        if filename is not None:
            disp += f'; filename="{filename}"'
        out.write(f"Content-Disposition: {disp}\r\n".encode())
        if filename is not None:
            out.write(f"Abspath: /home/u/{filename}\r\n".encode())
        out.write(f"Content-Type: {ctype}\r\n\r\n".encode())
        out.write(data)
        out.write(b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def tree_parts(root: Path) -> list[tuple[str | None, str, bytes]]:
    parts: list[tuple[str | None, str, bytes]] = []
    for path in sorted([root, *root.rglob("*")]):
        rel = path.relative_to(root.parent).as_posix().replace("/", "%2F")
        if path.is_dir():
            parts.append((rel, "application/x-directory", b""))
        else:
            parts.append((rel, "application/octet-stream", path.read_bytes()))
    return parts


def post_add(client: TestClient, parts, **params):  # type: ignore[no-untyped-def]
    body, ctype = multipart(parts)
    return client.post("/api/v0/add", params=params, content=body, headers={"content-type": ctype})


def lines(resp) -> list[dict]:  # type: ignore[no-untyped-def]
    return [json.loads(x) for x in resp.text.splitlines() if x]


def test_add_one_file_as_curl_sends_it(client: TestClient) -> None:
    resp = client.post("/api/v0/add", files={"file": ("hello.txt", b"hello world\n")})
    assert resp.status_code == 200, resp.text
    assert lines(resp) == [{"Name": "hello.txt", "Hash": HELLO, "Size": "20"}]
    assert client.post("/api/v0/cat", params={"arg": HELLO}).content == b"hello world\n"


def test_add_directory_tree_matches_kubo_vector(client: TestClient, tmp_path: Path) -> None:
    ds = make_vector_tree(tmp_path)
    resp = post_add(client, tree_parts(ds))
    assert resp.status_code == 200, resp.text
    out = lines(resp)
    assert out[-1] == {
        "Name": "ds",
        "Hash": V["directory"]["cidv0"],
        "Size": str(import_path(ds).tsize),
    }
    by_name = {o["Name"]: o["Hash"] for o in out}
    assert by_name["ds/images"] == V["directory"]["subdir_images_cidv0"]
    assert set(by_name) >= {"ds/data.yaml", "ds/labels/train/img0.txt", "ds/images/train"}
    names = [o["Name"] for o in out]
    assert names.index("ds/images/train/img0.png") < names.index("ds/images/train")
    pins = client.post("/api/v0/pin/ls").json()["Keys"]
    assert pins == {V["directory"]["cidv0"]: {"Type": "recursive"}}


def test_add_cid_v1_raw_leaves_and_wrap(client: TestClient) -> None:
    resp = post_add(client, [("hello.txt", "text/plain", b"hello world\n")], **{"cid-version": 1})
    assert lines(resp)[0]["Hash"] == V["more"]["cidv1_raw_leaves_of_hello_world_newline"]
    resp = post_add(
        client,
        [("a.txt", "text/plain", b"a"), ("b.txt", "text/plain", b"b")],
        **{"wrap-with-directory": "true", "pin": "false"},
    )
    out = lines(resp)
    assert [o["Name"] for o in out] == ["a.txt", "b.txt", ""]
    wrapper = out[-1]["Hash"]
    listing = client.post("/api/v0/ls", params={"arg": wrapper}).json()
    assert [(x["Name"], x["Size"], x["Type"]) for x in listing["Objects"][0]["Links"]] == [
        ("a.txt", 1, 2),
        ("b.txt", 1, 2),
    ]
    assert wrapper not in client.post("/api/v0/pin/ls").json()["Keys"]


def test_cat_offset_length_and_missing_content(client: TestClient) -> None:
    data = content(600000)
    cid = lines(post_add(client, [("f", "application/octet-stream", data)]))[0]["Hash"]
    got = client.post("/api/v0/cat", params={"arg": cid, "offset": 262000, "length": 1000})
    assert got.content == data[262000:263000]
    missing = client.post("/api/v0/cat", params={"arg": V["files"][6]["cidv0"]})
    assert missing.status_code == 404
    assert missing.json()["Type"] == "error" and missing.json()["Code"] == 0
    bad = client.post("/api/v0/cat", params={"arg": "not-a-cid"})
    assert bad.status_code == 400 and "invalid CID" in bad.json()["Message"]
    assert client.get("/api/v0/cat", params={"arg": cid}).status_code == 405


def test_get_returns_a_tar_of_the_tree(client: TestClient, tmp_path: Path) -> None:
    ds = make_vector_tree(tmp_path)
    root = lines(post_add(client, tree_parts(ds)))[-1]["Hash"]
    resp = client.post("/api/v0/get", params={"arg": root})
    assert resp.status_code == 200
    out = tmp_path / "out"
    with tarfile.open(fileobj=io.BytesIO(resp.content)) as tar:
        tar.extractall(out, filter="data")
    assert str(import_path(out / root).cid) == root
    assert (out / root / "images/train/img2.png").read_bytes() == content(601000)


def test_pins_add_ls_rm(client: TestClient) -> None:
    cid = lines(post_add(client, [("f", "text/plain", b"x")], pin="false"))[0]["Hash"]
    assert client.post("/api/v0/pin/ls", params={"arg": cid}).status_code == 404
    assert client.post("/api/v0/pin/add", params={"arg": cid}).json() == {"Pins": [cid]}
    assert client.post("/api/v0/pin/ls", params={"arg": cid}).json()["Keys"] == {
        cid: {"Type": "recursive"}
    }
    assert client.post("/api/v0/pin/rm", params={"arg": cid}).json() == {"Pins": [cid]}
    assert client.post("/api/v0/pin/rm", params={"arg": cid}).status_code == 404
    missing = client.post("/api/v0/pin/add", params={"arg": V["files"][5]["cidv0"]})
    assert missing.status_code == 404


def test_version_and_dag_export(client: TestClient) -> None:
    assert client.post("/api/v0/version").json()["Version"]
    data = content(700000)
    cid = lines(post_add(client, [("f", "application/octet-stream", data)]))[0]["Hash"]
    resp = client.post("/api/v0/dag/export", params={"arg": cid})
    assert resp.headers["content-type"] == "application/vnd.ipld.car"
    roots, blocks = car.read_car(io.BytesIO(resp.content))
    mem = MemoryBlocks()
    for c, b in blocks:
        mem.put(c, (b,))
    assert [str(r) for r in roots] == [cid]
    assert b"".join(dag.cat(mem.get, roots[0])) == data


def test_dag_export_of_a_cid_the_node_lacks_is_an_error_not_an_empty_car(
    client: TestClient,
) -> None:
    """Kubo answers an error for a block it does not have; the node used to send 200 and
    a 57-byte CAR holding only the header."""
    missing = "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"
    resp = client.post("/api/v0/dag/export", params={"arg": missing})
    assert resp.status_code == 404
    assert resp.json()["Type"] == "error" and missing in resp.json()["Message"]
    gateway = client.get(f"/ipfs/{missing}", params={"format": "car"})
    assert gateway.status_code == 404
    assert gateway.json()["code"] == "CONTENT_NOT_FOUND"


def test_gateway_file_range_raw_car_and_listing(client: TestClient, tmp_path: Path) -> None:
    ds = make_vector_tree(tmp_path)
    root = lines(post_add(client, tree_parts(ds)))[-1]["Hash"]
    url = f"/ipfs/{root}/images/train/img1.png"
    full = client.get(url)
    assert full.status_code == 200 and full.content == content(301000)
    assert full.headers["content-type"] == "image/png"
    part = client.get(url, headers={"Range": "bytes=262140-262149"})
    assert part.status_code == 206 and part.content == content(301000)[262140:262150]
    assert part.headers["content-range"] == "bytes 262140-262149/301000"
    raw = client.get(f"/ipfs/{root}?format=raw")
    assert parse_cid(root).verify(raw.content)
    listing = client.get(f"/ipfs/{root}/images")
    assert "train" in listing.text
    car_resp = client.get(url, headers={"Accept": "application/vnd.ipld.car"})
    roots, blocks = car.read_car(io.BytesIO(car_resp.content))
    mem = MemoryBlocks()
    for c, b in blocks:
        mem.put(c, (b,))
    # the CAR alone verifies the path from the root to the file and the file itself
    target = dag.resolve(mem.get, f"{root}/images/train/img1.png")
    assert b"".join(dag.cat(mem.get, target)) == content(301000)
    assert [str(r) for r in roots] == [root]
    head = client.head(url)
    assert head.status_code == 200 and head.headers["content-length"] == "301000"
    assert head.content == b""
    assert client.get(url, headers={"Range": "bytes=400000-"}).status_code == 416
    assert client.get(f"/ipfs/{root}/nope").status_code == 404
    assert client.get(f"/ipfs/{root}?format=zip").status_code == 400


def _stored_state(app) -> tuple[int, list[str]]:  # type: ignore[no-untyped-def]
    store = app.state.runtime.content
    return len(list(store.blocks.keys())), store.pins()


@pytest.mark.parametrize(
    "filename", ["..%2Fescape.txt", "%2Fetc%2Fpasswd", "ds%2F..%2F..%2Fx", "a%00b"]
)
def test_unsafe_paths_are_refused_and_nothing_is_stored(client: TestClient, filename: str) -> None:
    before = _stored_state(client.app)
    resp = post_add(client, [("ok.txt", "text/plain", b"fine"), (filename, "text/plain", b"evil")])
    assert resp.status_code == 400, resp.text
    assert resp.json()["Type"] == "error"
    assert _stored_state(client.app) == before


def test_duplicate_paths_and_bad_bodies_are_refused(client: TestClient) -> None:
    resp = post_add(client, [("a.txt", "text/plain", b"1"), ("a.txt", "text/plain", b"2")])
    assert resp.status_code == 400
    resp = client.post(
        "/api/v0/add", content=b"hello", headers={"content-type": "application/octet-stream"}
    )
    assert resp.status_code == 400
    resp = post_add(client, [("a.txt", "text/plain", b"1")], chunker="rabin")
    assert resp.status_code == 400
    assert _stored_state(client.app) == (0, [])


def test_upload_limits_answer_413_and_store_nothing(tmp_path: Path, database_url: str) -> None:
    settings = NodeSettings(
        data_dir=tmp_path / "node",
        database_url=database_url,
        upload={"max_bytes": 100_000, "max_files": 3},  # type: ignore[arg-type]
    )
    with TestClient(create_app(settings)) as client:
        client.headers.update(signed_in(client.app, client))
        big = post_add(client, [("big.bin", "application/octet-stream", b"x" * 100_001)])
        assert big.status_code == 413
        many = post_add(client, [(f"f{i}", "text/plain", b"x") for i in range(4)])
        assert many.status_code == 413
        assert _stored_state(client.app) == (0, [])
        assert not any((settings.data_dir / "tmp").iterdir())
        ok = post_add(client, [(f"f{i}", "text/plain", b"x") for i in range(3)])
        assert ok.status_code == 200
