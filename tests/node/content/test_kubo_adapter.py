"""The Kubo RPC adapter against a real IPFS RPC daemon (js-ipfs 0.66.1, offline, loopback,
hardened config). Skipped locally without it; required in CI (DCM_REQUIRE_ENGINES=1)."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from marketplace.content.cid import parse_cid
from marketplace.content.errors import CidMismatch, ContentNotFound, CorruptBlock, PinNotFound
from marketplace.content.importer import ImportOptions, import_bytes, import_path
from node.config import NodeSettings
from node.content.kubo import KuboStore
from tests.fixtures import web
from tests.fixtures.app import create_app
from tests.fixtures.content import content, make_vector_tree, vectors, write_content
from tests.fixtures.engines import require_engine
from tests.fixtures.factories import signed_in
from tests.fixtures.jsipfs import jsipfs_bin, jsipfs_daemon

pytestmark = pytest.mark.engine
V = vectors()


@pytest.fixture(scope="module")
def ipfs_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = jsipfs_bin()
    require_engine(binary is not None, "js-ipfs not installed (npm ci --prefix tools/ipfs)")
    assert binary is not None
    with jsipfs_daemon(tmp_path_factory.mktemp("jsipfs"), binary) as url:
        yield url


@pytest.fixture
def store(ipfs_url: str) -> Iterator[KuboStore]:
    s = KuboStore(ipfs_url, block_timeout_seconds=2.0, timeout_seconds=5.0)
    yield s
    s.close()


@pytest.mark.parametrize("size", [0, 1, 262144, 262145, 1000000])
@pytest.mark.parametrize("cid_version,raw_leaves", [(0, None), (1, None), (1, False)])
def test_daemon_agrees_with_local_cids(
    store: KuboStore, size: int, cid_version: int, raw_leaves: bool | None
) -> None:
    data = content(size)
    cid = store.add_bytes(data, cid_version=cid_version, raw_leaves=raw_leaves)
    opts = ImportOptions(cid_version=cid_version, raw_leaves=raw_leaves)
    assert cid == str(import_bytes(data, opts).cid)
    if cid_version == 0:
        assert cid == next(c["cidv0"] for c in V["files"] if c["size"] == size)
    assert store.is_pinned(cid)
    assert b"".join(store.cat(cid)) == data


def test_deep_file_boundary_174_chunks_plus_one(store: KuboStore, tmp_path: Path) -> None:
    size = 174 * 262144 + 1
    path = write_content(tmp_path / "big", size)
    cid = store.add_path(path)
    assert cid == next(c["cidv0"] for c in V["files"] if c["size"] == size)
    assert b"".join(store.cat(cid, offset=size - 5)) == content(size)[-5:]


def test_directory_tree_through_the_daemon(store: KuboStore, tmp_path: Path) -> None:
    ds = make_vector_tree(tmp_path)
    (ds / "empty").mkdir()
    seen: list[str] = []
    root = store.add_path(ds, on_entry=lambda rel, cid, size: seen.append(rel))
    assert root == str(import_path(ds).cid)
    assert seen[-1] == "ds"
    names = [e.name for e in store.ls(root)]
    assert names == ["data.yaml", "empty", "images", "labels"]
    assert b"".join(store.cat(f"{root}/images/train/img0.png")) == content(1000)
    assert root in store.pins()
    store.unpin(root)
    assert not store.is_pinned(root)
    with pytest.raises(PinNotFound):
        store.unpin(root)
    v1 = store.add_path(ds, cid_version=1)
    assert v1 == str(import_path(ds, ImportOptions(cid_version=1)).cid)
    assert v1.startswith("bafybei")


def test_missing_content_times_out_as_not_found(store: KuboStore) -> None:
    missing = V["files"][9]["cidv0"]  # 136 MB, never added
    started = time.monotonic()
    with pytest.raises(ContentNotFound):
        b"".join(store.cat(missing))
    assert time.monotonic() - started < 10
    assert store.has(missing) is False


class _Tamper(httpx.HTTPTransport):
    """Forwards to the real daemon, changing one thing on the way."""

    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.mode == "chunker" and request.url.path.endswith("/add"):
            request.url = request.url.copy_set_param("chunker", "size-1024")
        resp = super().handle_request(request)
        if self.mode == "flip" and request.url.path.endswith("/block/get"):
            body = bytearray(resp.read())
            body[-1] ^= 1
            return httpx.Response(resp.status_code, headers=resp.headers, content=bytes(body))
        return resp


def test_cid_mismatch_is_refused_and_unpinned(ipfs_url: str) -> None:
    tampered = KuboStore(ipfs_url, transport=_Tamper("chunker"))
    plain = KuboStore(ipfs_url)
    data = content(5000) + b"mismatch"
    with pytest.raises(CidMismatch) as err:
        tampered.add_bytes(data)
    got = err.value.details["got"]
    assert got != str(import_bytes(data).cid)
    assert not plain.is_pinned(got)  # the daemon's differing DAG was unpinned


def test_block_altered_by_daemon_is_never_served(ipfs_url: str) -> None:
    plain = KuboStore(ipfs_url)
    cid = plain.add_bytes(b"trust but verify\n")
    flipping = KuboStore(ipfs_url, transport=_Tamper("flip"))
    with pytest.raises(CorruptBlock):
        flipping.get_block(cid)


def test_node_uses_the_daemon_when_configured(
    ipfs_url: str, tmp_path: Path, database_url: str
) -> None:
    settings = NodeSettings(
        data_dir=tmp_path / "node", database_url=database_url, ipfs_api_url=ipfs_url
    )
    app = create_app(settings)
    assert isinstance(app.state.runtime.content, KuboStore)
    with TestClient(app) as client:
        client.headers.update(signed_in(app, client))
        resp = client.post("/api/v0/add", files={"file": ("n.txt", b"via the daemon\n")})
        assert resp.status_code == 200, resp.text
        cid = resp.json()["Hash"]
        assert cid == str(import_bytes(b"via the daemon\n").cid)
        assert client.get(f"/ipfs/{cid}").content == b"via the daemon\n"
    # it really is in the daemon, not in the node's data dir
    assert not (settings.data_dir / "blocks").exists()
    direct = web.post(f"{ipfs_url}/api/v0/cat", params={"arg": cid}, timeout=5)
    assert direct.content == b"via the daemon\n"
    assert parse_cid(cid).version == 0


def test_js_ipfs_does_not_shard_big_directories_so_the_adapter_refuses(
    ipfs_url: str, tmp_path: Path
) -> None:
    """Where Kubo HAMT-shards a directory (links >= 256 KiB by its estimate), js-ipfs 0.66's
    HTTP add writes one flat node: the CIDs differ, and the adapter must say so and unpin."""
    big = tmp_path / "big"
    big.mkdir()
    for i in range(1121):  # 1121 * (200 + 34) >= 262144
        (big / f"{i:0200d}").write_bytes(b"x")
    store = KuboStore(ipfs_url, add_timeout_seconds=120)
    with pytest.raises(CidMismatch) as err:
        store.add_path(big)
    assert err.value.details["expected"] == str(import_path(big).cid)
    assert not store.is_pinned(err.value.details["got"])


def test_blocks_cars_and_repo_stat_through_the_daemon(store: KuboStore, tmp_path: Path) -> None:
    """What the node's block/put, dag/import and repo/stat need from a daemon."""
    from marketplace.content import car, dag
    from marketplace.content.cid import RAW, Cid
    from marketplace.content.memory import MemoryBlocks

    raw = Cid.of_block(b"one raw block", version=1, codec=RAW)
    store.put_block(str(raw), b"one raw block")
    assert store.get_block(str(raw)) == b"one raw block"

    blocks = MemoryBlocks()
    tree = make_vector_tree(tmp_path)
    root = import_path(tree, ImportOptions(), blocks).cid
    stream = io.BytesIO(b"".join(car.write_car([root], dag.walk(blocks.get, root))))
    assert store.import_car(stream) == [str(root)]
    assert store.is_pinned(str(root))
    assert store.ls(str(root))
    stat = store.repo_stat()
    assert stat.num_objects >= len(blocks) and stat.repo_size > 0
