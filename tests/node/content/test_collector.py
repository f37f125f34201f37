"""The block collector deletes blocks no pin reaches and never races an import: what an
import added stays until it pins it or gives up (node.content.collector)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from marketplace.datasets.synthetic import write_detection_dataset
from node.config import NodeSettings
from node.content.collector import BlockCollector
from node.content.store import EmbeddedStore
from tests.fixtures.app import create_app
from tests.fixtures.datasets import files_of, form


@pytest.fixture
def store(app: FastAPI) -> EmbeddedStore:
    return app.state.runtime.content


@pytest.fixture
def collector(store: EmbeddedStore) -> BlockCollector:
    return BlockCollector(store, loop_seconds=3600)


def test_a_pass_deletes_unpinned_blocks_and_keeps_pinned_ones(
    store: EmbeddedStore, collector: BlockCollector
) -> None:
    kept = store.add_bytes(b"kept" * 100_000, pin=True)  # several blocks
    dropped = store.add_bytes(b"dropped" * 100_000, pin=False)
    assert collector.run_once() > 0
    assert store.has(kept) and not store.has(dropped)
    assert collector.run_once() == 0


def test_an_import_awaiting_its_pin_survives_a_pass(
    store: EmbeddedStore, collector: BlockCollector, tmp_path: Path
) -> None:
    root = write_detection_dataset(tmp_path / "dataset")
    with store.hold():
        cid = store.add_path(root, pin=False)
        assert collector.run_once() == 0
        store.pin(cid)
    assert collector.run_once() == 0 and store.has(cid)


def test_an_import_given_up_is_collected_once_its_hold_ends(
    store: EmbeddedStore, collector: BlockCollector
) -> None:
    with store.hold():
        cid = store.add_bytes(b"abandoned" * 100_000, pin=False)
    assert collector.run_once() > 0
    assert not store.has(cid)


def test_an_upload_with_a_pass_between_its_add_and_its_pin_keeps_its_dataset(
    app: FastAPI,
    client: TestClient,
    store: EmbeddedStore,
    collector: BlockCollector,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    passes: list[int] = []
    pin = store.pin

    def collect_then_pin(cid: str) -> None:
        passes.append(collector.run_once())  # the worst moment for a collection
        pin(cid)

    monkeypatch.setattr(store, "pin", collect_then_pin)
    dataset = write_detection_dataset(tmp_path / "dataset")
    resp = client.post("/jobs/image_processing/upload", data=form(), files=files_of(dataset))
    assert resp.status_code == 200, resp.text
    job = resp.json()["job"]
    assert passes and passes == [0] * len(passes)
    assert store.has(job["folder_cid"]) and store.is_pinned(job["folder_cid"])
    assert client.get(f"/jobs/get-dataset/{job['id']}").status_code == 200


def test_the_collector_runs_with_the_node_at_its_interval(settings: NodeSettings) -> None:
    settings.block_gc_interval_seconds = 0.2
    with TestClient(create_app(settings)) as node:
        store = node.app.state.runtime.content
        cid = store.add_bytes(b"leftover" * 100_000, pin=False)
        deadline = time.monotonic() + 20
        while store.has(cid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not store.has(cid)


def test_an_interval_of_zero_runs_no_collector(settings: NodeSettings) -> None:
    settings.block_gc_interval_seconds = 0
    with TestClient(create_app(settings)) as node:
        assert node.app.state.runtime.block_collector is None
