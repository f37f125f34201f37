"""The embedded block store: imports, verified reads, pins in the database, gc, restarts."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from marketplace.content.cid import parse_cid
from marketplace.content.dagpb import decode_node
from marketplace.content.errors import ContentNotFound, CorruptBlock, PinNotFound
from node.config import NodeSettings
from node.content import repository
from node.content.store import EmbeddedStore
from tests.fixtures.app import create_app
from tests.fixtures.content import content, make_vector_tree, vectors

V = vectors()


def make_store(settings: NodeSettings) -> EmbeddedStore:
    store = create_app(settings).state.runtime.content
    assert isinstance(store, EmbeddedStore)
    return store


def test_app_wires_the_embedded_store(settings: NodeSettings) -> None:
    store = make_store(settings)
    assert store.blocks.root == settings.data_dir / "blocks"


def test_add_bytes_cat_and_ranges(settings: NodeSettings) -> None:
    store = make_store(settings)
    data = content(1000000)
    cid = store.add_bytes(data)
    assert cid == next(c["cidv0"] for c in V["files"] if c["size"] == 1000000)
    assert b"".join(store.cat(cid)) == data
    assert b"".join(store.cat(cid, offset=262140, length=10)) == data[262140:262150]
    assert b"".join(store.cat(cid, offset=999990)) == data[999990:]
    assert b"".join(store.cat(cid, offset=2000000)) == b""
    assert store.is_pinned(cid) and store.has(cid)


def test_add_directory_ls_resolve_and_restart(settings: NodeSettings, tmp_path: Path) -> None:
    ds = make_vector_tree(tmp_path)
    store = make_store(settings)
    root = store.add_path(ds)
    assert root == V["directory"]["cidv0"]
    entries = store.ls(root)
    assert [(e.name, e.is_dir) for e in entries] == [
        ("data.yaml", False),
        ("images", True),
        ("labels", True),
    ]
    assert entries[0].size == len("names:\n  0: cat\n  1: dog\n")
    assert store.resolve(f"/ipfs/{root}/images") == V["directory"]["subdir_images_cidv0"]
    img = b"".join(store.cat(f"{root}/images/train/img1.png"))
    assert img == content(301000)

    restarted = make_store(settings)  # same data dir and database: a new process
    assert restarted.pins() == [root]
    assert b"".join(restarted.cat(f"{root}/images/train/img1.png")) == img
    assert restarted.gc() == 0


def test_corrupt_block_is_never_served(settings: NodeSettings) -> None:
    store = make_store(settings)
    data = content(300000)
    cid = store.add_bytes(data)
    # corrupt the second leaf on disk
    second = decode_node(store.get_block(cid)).links[1].cid
    path = store.blocks.path(second)
    raw = bytearray(path.read_bytes())
    raw[-5] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(CorruptBlock):
        store.get_block(str(second))
    out = store.cat(cid)
    assert len(next(out)) == 262144  # the first, intact block
    with pytest.raises(CorruptBlock):
        next(out)


def test_gc_removes_only_unpinned_blocks(settings: NodeSettings) -> None:
    store = make_store(settings)
    kept = store.add_bytes(content(600000))
    dropped = store.add_bytes(b"x" * 700000, pin=False)
    shared = store.add_bytes(content(262144), pin=False)  # its block is also kept's 1st leaf
    removed = store.gc()
    # the unpinned file: its root, the 262144 x's (twice in the file, stored once), its tail
    assert removed == 3
    assert store.has(kept) and not store.has(dropped)
    assert store.has(shared)
    store.unpin(kept)
    # content() repeats every 65536 bytes, so both full leaves of `kept` are one block
    assert store.gc() == 3 and not store.has(kept)
    with pytest.raises(PinNotFound):
        store.unpin(kept)


def test_pin_of_missing_content_is_refused(settings: NodeSettings) -> None:
    store = make_store(settings)
    cid = str(parse_cid(V["files"][3]["cidv0"]))
    with pytest.raises(ContentNotFound):
        store.pin(cid)
    assert store.pins() == []


def test_hamt_sharded_directory_is_stored_listed_and_resolved(
    settings: NodeSettings, tmp_path: Path
) -> None:
    big = tmp_path / "big"
    big.mkdir()
    for i in range(1121):  # 1121 * (200 + 34) bytes of links: Kubo shards this directory
        (big / f"{i:0200d}").write_bytes(str(i).encode())
    store = make_store(settings)
    root = store.add_path(big)
    assert store.stat(root).type == 5  # HAMTShard
    assert b"".join(store.cat(f"{root}/{500:0200d}")) == b"500"
    assert len(store.ls(root)) == 1121
    assert store.gc() == 0 and store.has(root)


def test_adding_again_repairs_a_truncated_block(settings: NodeSettings) -> None:
    store = make_store(settings)
    data = content(300000)
    cid = store.add_bytes(data)
    leaf = decode_node(store.get_block(cid)).links[0].cid
    path = store.blocks.path(leaf)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CorruptBlock):
        b"".join(store.cat(cid))
    assert store.add_bytes(data) == cid
    assert b"".join(store.cat(cid)) == data


def test_car_import_stores_verified_blocks_and_pins_roots(
    settings: NodeSettings, tmp_path: Path
) -> None:
    import io

    ds = make_vector_tree(tmp_path)
    source = make_store(settings)
    root = source.add_path(ds)
    car_bytes = b"".join(source.export_car(root))
    other = NodeSettings(data_dir=tmp_path / "other", database_url=f"sqlite:///{tmp_path}/o.db")
    target = make_store(other)
    assert target.import_car(io.BytesIO(car_bytes)) == [root]
    assert target.pins() == [root] and target.has(root)
    assert b"".join(target.cat(f"{root}/data.yaml")) == b"names:\n  0: cat\n  1: dog\n"


def test_one_cid_pinned_by_two_replicas_at_once_is_pinned_once_and_neither_fails(
    settings: NodeSettings,
) -> None:
    """Two uploads of the same bytes through two replicas (or two threads) pin one CID at
    the same moment: the second insert waits on the first's row (PostgreSQL) or write turn
    (SQLite), then finds it there. It used to read "not pinned" first and then fail on the
    primary key: a 500 for an upload that had stored everything."""
    sessions = create_app(settings).state.runtime.sessionmaker
    cid = V["directory"]["cidv0"]
    first = sessions()
    repository.add(first, cid)  # inserted, not committed yet
    outcome: list[object] = []

    def second() -> None:
        try:
            with sessions.begin() as session:
                repository.add(session, cid)
            outcome.append("pinned")
        except Exception as exc:  # the assertion below shows it
            outcome.append(exc)

    thread = threading.Thread(target=second)
    thread.start()
    time.sleep(0.5)  # the second has read, and waits for the first to end
    first.commit()
    first.close()
    thread.join(30)
    assert outcome == ["pinned"]
    with sessions() as session:
        assert repository.all_cids(session) == [cid]
