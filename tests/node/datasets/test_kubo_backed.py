"""Seed 000 on the production content path: the node configured with `DCM_IPFS_API_URL`
stores and serves datasets through a real IPFS RPC daemon (js-ipfs, loopback, offline)."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from marketplace.content.importer import import_path
from marketplace.datasets.synthetic import write_detection_dataset
from node.config import NodeSettings
from node.content.kubo import KuboStore
from tests.fixtures.app import create_app
from tests.fixtures.datasets import files_of, form
from tests.fixtures.engines import require_engine
from tests.fixtures.jsipfs import jsipfs_bin, jsipfs_daemon


@pytest.fixture(scope="module")
def ipfs_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = jsipfs_bin()
    require_engine(binary is not None, "js-ipfs not installed (npm ci --prefix tools/ipfs)")
    assert binary is not None
    with jsipfs_daemon(tmp_path_factory.mktemp("jsipfs"), binary) as url:
        yield url


def test_upload_and_zip_round_trip_through_the_daemon(ipfs_url, tmp_path, database_url):
    settings = NodeSettings(
        data_dir=tmp_path / "node", database_url=database_url, ipfs_api_url=ipfs_url
    )
    app = create_app(settings)
    assert isinstance(app.state.runtime.content, KuboStore)
    dataset = write_detection_dataset(tmp_path / "dataset", seed=11)
    with TestClient(app) as client:
        pins_before = app.state.runtime.content.pins()
        refused = client.post(
            "/jobs/image_processing/upload", data=form(epochs="0"), files=files_of(dataset)
        )
        assert refused.status_code == 422
        assert app.state.runtime.content.pins() == pins_before
        resp = client.post("/jobs/image_processing/upload", data=form(), files=files_of(dataset))
        assert resp.status_code == 200, resp.text
        job = resp.json()["job"]
        assert job["folder_cid"] == str(import_path(dataset).cid)
        assert app.state.runtime.content.is_pinned(job["folder_cid"])
        assert app.state.runtime.content.is_pinned(job["metadata_cid"])
        first = client.get(f"/jobs/get-dataset/{job['id']}").content
        assert client.get(f"/jobs/get-dataset/{job['id']}").content == first
    out = tmp_path / "unpacked"
    zipfile.ZipFile(io.BytesIO(first)).extractall(out)
    assert str(import_path(out).cid) == job["folder_cid"]
    assert not (settings.data_dir / "blocks").exists()
