"""The Kubo RPC routes issue 11 added or fixed, over raw HTTP as curl and other clients
send them: bare adds (`filename=""`), streamed progress, `dag get`, `block put`, `refs`,
`dag import`, `name/*` refused, and MFS (one tree per caller, kept by the collector)."""

from __future__ import annotations

import base64
import json

from fastapi import FastAPI
from fastapi.testclient import TestClient

from marketplace.content import car, dag
from marketplace.content.cid import DAG_PB, Cid
from marketplace.content.importer import ImportOptions, import_bytes, import_path
from marketplace.content.memory import MemoryBlocks
from tests.fixtures.factories import signed_in
from tests.node.content.test_kubo_api import multipart, post_add, tree_parts


def _lines(body: bytes) -> list[dict]:
    return [json.loads(line) for line in body.splitlines() if line.strip()]


def test_an_empty_filename_is_a_bare_add(client: TestClient) -> None:
    """kubo-rpc-client's `add("hello")` sends `filename=""`: named by its CID, as Kubo does."""
    resp = post_add(client, [("", "application/octet-stream", b"hello")])
    assert resp.status_code == 200, resp.text
    cid = str(import_bytes(b"hello").cid)
    assert _lines(resp.content) == [{"Name": cid, "Hash": cid, "Size": "13"}]


def test_progress_lines_come_before_each_files_entry(client: TestClient, tmp_path) -> None:
    root = tmp_path / "t"
    (root / "d").mkdir(parents=True)
    (root / "a.txt").write_bytes(b"a" * 10)
    (root / "d" / "b.txt").write_bytes(b"b" * 300_000)
    resp = post_add(client, tree_parts(root), progress="true")
    assert resp.status_code == 200
    lines = _lines(resp.content)
    assert lines[0] == {"Name": "t/a.txt", "Bytes": 10}
    assert lines[1]["Name"] == "t/a.txt" and "Hash" in lines[1]
    assert lines[2] == {"Name": "t/d/b.txt", "Bytes": 300_000}
    assert [x["Name"] for x in lines if "Hash" in x] == ["t/a.txt", "t/d/b.txt", "t/d", "t"]
    assert lines[-1]["Hash"] == str(import_path(root).cid)


def test_dag_get_prints_dag_json(client: TestClient, tmp_path) -> None:
    root = tmp_path / "t"
    root.mkdir()
    (root / "x").write_bytes(b"x")
    cid = client.app.state.runtime.content.add_path(root)  # type: ignore[attr-defined]
    got = client.post("/api/v0/dag/get", params={"arg": cid}).json()
    assert got["Data"] == {"/": {"bytes": base64.b64encode(b"\x08\x01").decode().rstrip("=")}}
    assert got["Links"] == [{"Hash": {"/": str(import_bytes(b"x").cid)}, "Name": "x", "Tsize": 9}]
    raw = client.post("/api/v0/dag/get", params={"arg": cid, "output-codec": "dag-pb"})
    assert Cid.of_block(raw.content).encode() == cid


def test_block_put_raw_dag_pb_and_refused_codecs(client: TestClient) -> None:
    put = client.post("/api/v0/block/put", files={"file": ("b", b"raw bytes")})
    assert put.status_code == 200 and put.json()["Size"] == 9
    assert put.json()["Key"].startswith("bafkrei")
    node = b"\x0a\x02\x08\x01"  # a dag-pb node: an empty UnixFS directory
    v0 = client.post("/api/v0/block/put", params={"format": "v0"}, files={"file": ("b", node)})
    assert v0.json()["Key"] == str(Cid.of_block(node, version=0, codec=DAG_PB))
    cbor = client.post(
        "/api/v0/block/put", params={"cid-codec": "dag-cbor"}, files={"file": ("b", b"\xa0")}
    )
    assert cbor.status_code == 400 and "dag-cbor" in cbor.json()["Message"]
    assert cbor.json()["Type"] == "error" and cbor.json()["ErrorCode"] == "INVALID_QUERY"
    stat = client.post("/api/v0/block/stat", params={"arg": put.json()["Key"]}).json()
    assert stat == {"Key": put.json()["Key"], "Size": 9}


def test_refs_direct_recursive_unique_and_edges(client: TestClient, tmp_path) -> None:
    root = tmp_path / "t"
    (root / "d").mkdir(parents=True)
    (root / "a").write_bytes(b"same")
    (root / "d" / "b").write_bytes(b"same")
    cid = client.app.state.runtime.content.add_path(root)  # type: ignore[attr-defined]
    same = str(import_bytes(b"same").cid)

    def refs(**params: str) -> list[str]:
        resp = client.post("/api/v0/refs", params={"arg": cid, **params})
        return [x["Ref"] for x in _lines(resp.content)]

    assert len(refs()) == 2
    assert refs(recursive="true").count(same) == 2
    assert refs(recursive="true", unique="true").count(same) == 1
    assert refs(edges="true")[0] == f"{cid} -> {same}"


def test_dag_import_verifies_every_block(client: TestClient, app: FastAPI) -> None:
    blocks = MemoryBlocks()
    root = import_bytes(b"in a car\n", ImportOptions(), blocks).cid
    good = b"".join(car.write_car([root], dag.walk(blocks.get, root)))
    body, ctype = multipart([("x.car", "application/octet-stream", good)])
    resp = client.post(
        "/api/v0/dag/import",
        params={"stats": "true"},
        content=body,
        headers={"content-type": ctype},
    )
    assert resp.status_code == 200, resp.text
    lines = _lines(resp.content)
    assert lines[0] == {"Root": {"Cid": {"/": str(root)}, "PinErrorMsg": ""}}
    assert lines[1] == {"Stats": {"BlockCount": 1, "BlockBytesCount": len(blocks.get(root))}}
    assert str(root) in app.state.runtime.content.pins()
    bad = bytearray(good)
    bad[-2] ^= 0xFF  # one flipped byte in the data
    body, ctype = multipart([("x.car", "application/octet-stream", bytes(bad))])
    refused = client.post("/api/v0/dag/import", content=body, headers={"content-type": ctype})
    assert refused.status_code == 400 and refused.json()["ErrorCode"] == "INVALID_BLOCK"


def test_ipns_is_refused_in_kubos_words(client: TestClient) -> None:
    for command in ("name/publish", "name/resolve"):
        resp = client.post(f"/api/v0/{command}", params={"arg": "/ipfs/x"})
        assert resp.status_code == 501
        body = resp.json()
        assert body["Code"] == 0 and body["Type"] == "error"
        assert "IPNS is not supported" in body["Message"]


def _write(client: TestClient, path: str, data: bytes, **params: str):  # type: ignore[no-untyped-def]
    body, ctype = multipart([("arg", "application/octet-stream", data)])
    return client.post(
        "/api/v0/files/write",
        params={"arg": path, **params},
        content=body,
        headers={"content-type": ctype},
    )


def test_mfs_write_offsets_mv_and_rm(client: TestClient) -> None:
    assert _write(client, "/a/b.txt", b"hello world", create="true", parents="true").is_success
    assert _write(client, "/a/b.txt", b"WORLD", offset="6").is_success
    read = client.post("/api/v0/files/read", params={"arg": "/a/b.txt"})
    assert read.content == b"hello WORLD"
    partial = client.post("/api/v0/files/read", params={"arg": "/a/b.txt", "offset": 6, "count": 2})
    assert partial.content == b"WO"
    assert _write(client, "/a/b.txt", b"bye", truncate="true").is_success
    assert client.post("/api/v0/files/read", params={"arg": "/a/b.txt"}).content == b"bye"
    missing = _write(client, "/a/none.txt", b"x")
    assert missing.status_code == 404  # no `create`
    moved = client.post("/api/v0/files/mv", params=[("arg", "/a/b.txt"), ("arg", "/c.txt")])
    assert moved.is_success
    names = [e["Name"] for e in client.post("/api/v0/files/ls").json()["Entries"]]
    assert names == ["a", "c.txt"]
    assert client.post("/api/v0/files/rm", params={"arg": "/a"}).status_code == 400
    assert client.post("/api/v0/files/rm", params={"arg": "/a", "recursive": "true"}).is_success
    stat = client.post("/api/v0/files/stat", params={"arg": "/c.txt"}).json()
    assert stat["Hash"] == str(import_bytes(b"bye").cid) and stat["Type"] == "file"
    exists = client.post("/api/v0/files/mkdir", params={"arg": "/c.txt"})
    assert exists.status_code == 409


def test_each_caller_has_a_tree_of_their_own_which_the_collector_keeps(
    app: FastAPI, client: TestClient
) -> None:
    assert _write(client, "/mine.txt", b"only mine", create="true").is_success
    other = TestClient(app)  # a second caller of the running node (not a second start)
    other.headers.update(signed_in(app, other))
    assert other.post("/api/v0/files/ls").json()["Entries"] == []
    assert other.post("/api/v0/files/stat", params={"arg": "/mine.txt"}).status_code == 404
    assert app.state.runtime.content.gc() >= 0  # a collection pass
    read = client.post("/api/v0/files/read", params={"arg": "/mine.txt"})
    assert read.content == b"only mine"


def test_id_names_a_stable_peer_and_the_public_http_address(client: TestClient) -> None:
    first = client.post("/api/v0/id").json()
    assert first == client.post("/api/v0/id").json()
    assert first["ID"].startswith("12D3KooW")
    # the suite's node is public at http://testserver
    assert first["Addresses"] == [f"/dns/testserver/tcp/80/http/p2p/{first['ID']}"]
