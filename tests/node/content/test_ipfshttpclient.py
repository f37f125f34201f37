"""ipfshttpclient 0.8.0a2 (a dev-only dependency; it warns about the daemon version and
otherwise works) against a node over loopback HTTP."""

from __future__ import annotations

import warnings
from pathlib import Path
from urllib.parse import urlparse

import pytest

from marketplace.content.importer import ImportOptions, import_bytes
from tests.fixtures.content import content, make_vector_tree, vectors

ipfshttpclient = pytest.importorskip("ipfshttpclient")
V = vectors()


def connect(url: str, token: str):  # type: ignore[no-untyped-def]
    port = urlparse(url).port
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # VersionMismatch: it predates every current daemon
        return ipfshttpclient.connect(
            f"/ip4/127.0.0.1/tcp/{port}/http",
            timeout=30,
            headers={"Authorization": f"Bearer {token}"},  # the node's writes need a user
        )


def test_ipfshttpclient_add_cat_ls_pin_get(
    live_node: str, writer_token: str, tmp_path: Path
) -> None:
    f = tmp_path / "hello.txt"
    f.write_bytes(b"hello world\n")
    ds = make_vector_tree(tmp_path)
    with connect(live_node, writer_token) as client:
        assert client.version()["Version"]
        one = client.add(str(f))
        assert one["Hash"] == V["more"]["hello world\\n"] and one["Name"] == "hello.txt"
        tree = client.add(str(ds), recursive=True)
        assert tree[-1]["Name"] == "ds" and tree[-1]["Hash"] == V["directory"]["cidv0"]
        assert client.cat(one["Hash"]) == b"hello world\n"
        assert client.cat(one["Hash"], offset=6, length=5) == b"world"
        links = client.ls(V["directory"]["cidv0"])["Objects"][0]["Links"]
        assert [link["Name"] for link in links] == ["data.yaml", "images", "labels"]
        assert V["directory"]["cidv0"] in client.pin.ls(type="recursive")["Keys"]
        client.get(f"{V['directory']['cidv0']}/images", target=str(tmp_path / "out"))
        got = tmp_path / "out" / "images" / "train" / "img1.png"
        assert got.read_bytes() == content(301000)
        client.pin.rm(one["Hash"])
        assert one["Hash"] not in client.pin.ls(type="recursive")["Keys"]
        v1 = client.add(str(f), cid_version=1, raw_leaves=True)
        assert v1["Hash"] == V["more"]["cidv1_raw_leaves_of_hello_world_newline"]
        # without raw_leaves it sends raw-leaves=false explicitly; Kubo then builds dag-pb
        # leaves, and so does the node
        v1_pb = client.add(str(f), cid_version=1)
        opts = ImportOptions(cid_version=1, raw_leaves=False)
        assert v1_pb["Hash"] == str(import_bytes(b"hello world\n", opts).cid)
