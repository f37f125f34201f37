"""POST /jobs/image_processing/upload: accepted uploads and every refusal, each refusal
checked to leave no job, no pin, no block and no temp file behind."""

from __future__ import annotations

import io
import json
import os
import re
import warnings
import zipfile

import pytest

from marketplace.content.importer import import_path
from marketplace.datasets.layout import find_layout, stored_layout
from marketplace.datasets.params import canonical_json
from marketplace.datasets.synthetic import (
    png_bytes,
    write_classification_dataset,
    write_detection_dataset,
)
from marketplace.exports import FORMATS
from node.config import NodeSettings
from node.db import session_scope
from node.models.jobs import Job
from tests.fixtures.asgi import http_scope
from tests.fixtures.datasets import ADDRESS, assert_nothing_stored, files_of, form, stored, zip_of

URL = "/jobs/image_processing/upload"


@pytest.fixture
def dataset(tmp_path):
    return write_detection_dataset(tmp_path / "dataset")


def _refused(client, app, status, code, *, data=None, files=None, **kw):
    resp = client.post(URL, data=data, files=files, **kw)
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["code"] == code, body
    assert_nothing_stored(app)
    return body


# -- accepted ------------------------------------------------------------------------


def test_files_upload_creates_a_job_awaiting_funding(client, app, dataset):
    resp = client.post(URL, data=form(), files=files_of(dataset))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["message"] == "Job uploaded successfully"
    job = body["job"]
    assert job["folder_cid"] == str(import_path(dataset).cid)
    assert job == {
        "id": job["id"],
        "job_id": job["id"],
        "model": "yolov8n",
        "epochs": 3,
        "imgsz": "640",
        "export_format": "onnx",
        "num_classes": 2,
        "classes": "cat, dog",
        "job_type": "image_processing",
        "requester_address": ADDRESS,
        "folder_cid": job["folder_cid"],
        "metadata_cid": job["metadata_cid"],
        "reward": "0.500000",
        "status": "unconfirmed",  # TrainChain's word for awaiting_funding
        "created_at": job["created_at"],
        "dcm_status": "awaiting_funding",
        "model_cid": None,
        "contributor_address": None,
        "funding": job["funding"],
    }
    funding = job["funding"]  # what the requester's wallet signs (node.chain)
    assert funding["to"] == app.state.runtime.chain.escrow_address
    assert funding["value"] == str(5 * 10**17) and funding["data"].startswith("0x")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", job["created_at"])
    store = app.state.runtime.content
    assert store.is_pinned(job["folder_cid"]) and store.is_pinned(job["metadata_cid"])
    assert stored(app).temp_files == 0


def test_metadata_cid_holds_the_sorted_job_metadata(client, app, dataset):
    job = client.post(URL, data=form(), files=files_of(dataset)).json()["job"]
    raw = b"".join(app.state.runtime.content.cat(job["metadata_cid"]))
    meta = json.loads(raw)
    assert raw == canonical_json(meta)
    assert meta == {
        "classes": ["cat", "dog"],
        "epochs": 3,
        "exportFormat": "onnx",
        "folderName": "dataset",
        "folder_cid": job["folder_cid"],
        "imgsz": "640",
        "model": "yolov8n",
        "numClasses": 2,
        "requesterAddress": ADDRESS,
        "reward": "0.5",
    }


def test_zip_upload_strips_the_wrapper_folder(client, app, dataset):
    archive = zip_of(dataset, wrap="my-dataset")
    resp = client.post(URL, data=form(), files=[("files", ("ds.zip", archive, "application/zip"))])
    assert resp.status_code == 200, resp.text
    assert resp.json()["job"]["folder_cid"] == str(import_path(dataset).cid)


def test_browser_folder_upload_with_wrapper_gives_the_same_cid(client, dataset):
    a = client.post(URL, data=form(), files=files_of(dataset)).json()["job"]
    b = client.post(URL, data=form(), files=files_of(dataset, prefix="dataset/")).json()["job"]
    assert a["folder_cid"] == b["folder_cid"] and a["id"] != b["id"]


def test_comma_classes_and_long_reward_keep_every_wei(client, app, dataset):
    data = form(classes="cat, dog", reward="0.1234567", model="yolo v11", imgsz="1024")
    job = client.post(URL, data=data, files=files_of(dataset)).json()["job"]
    assert job["reward"] == "0.1234567"
    assert job["classes"] == "cat, dog" and job["model"] == "yolo v11" and job["imgsz"] == "1024"
    detail = client.get(f"/jobs/image_processing/get-job/{job['id']}").json()
    assert detail == job


def test_upload_stores_the_detected_layout_for_the_provider(client, app, dataset):
    archive = zip_of(dataset, wrap="my-dataset")
    resp = client.post(URL, data=form(), files=[("files", ("ds.zip", archive, "application/zip"))])
    assert resp.status_code == 200, resp.text
    with session_scope(app.state.runtime.sessionmaker) as session:
        spec = session.get(Job, resp.json()["job"]["id"]).spec
    assert stored_layout(spec) == find_layout(dataset)  # the wrapper is not part of it
    assert spec["dataset"]["splits"]["train"] == {"images": 6, "labels": 6}


def test_classification_upload_is_accepted(client, tmp_path):
    root = write_classification_dataset(tmp_path / "cls", classes=("cat", "dog"))
    resp = client.post(URL, data=form(model="yolov8n-cls"), files=files_of(root))
    assert resp.status_code == 200, resp.text


def test_os_clutter_is_dropped(client, dataset):
    clean = client.post(URL, data=form(), files=files_of(dataset)).json()["job"]
    files = files_of(dataset) + [
        ("files", (".DS_Store", b"junk", "application/octet-stream")),
        ("files", ("images/train/._train_0000.png", b"junk", "application/octet-stream")),
    ]
    cluttered = client.post(URL, data=form(), files=files).json()["job"]
    assert cluttered["folder_cid"] == clean["folder_cid"]


def test_refused_upload_after_an_accepted_one_changes_nothing(client, app, dataset):
    assert client.post(URL, data=form(), files=files_of(dataset)).status_code == 200
    before = stored(app)
    resp = client.post(URL, data=form(epochs="0"), files=files_of(dataset))
    assert resp.status_code == 422
    assert_nothing_stored(app, before)


# -- refusals: fields ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"requesterAddress": ADDRESS[:-1] + "a"}, "INVALID_ADDRESS"),
        ({"requesterAddress": "0x123"}, "INVALID_ADDRESS"),
        ({"requesterAddress": "0x" + "0" * 40}, "INVALID_ADDRESS"),  # nobody can sign for it
        ({"requesterAddress": ADDRESS + "00"}, "INVALID_ADDRESS"),
        ({"reward": "0"}, "INVALID_REWARD"),
        ({"reward": "0.0000000000000000001"}, "INVALID_REWARD"),
        ({"reward": "-1"}, "INVALID_REWARD"),
        ({"epochs": "0"}, "INVALID_FIELD"),
        ({"imgsz": "650"}, "INVALID_FIELD"),
        ({"numClasses": "3"}, "INVALID_FIELD"),
        ({"classes": '["cat","cat"]'}, "INVALID_FIELD"),
        ({"model": "resnet"}, "UNSUPPORTED_MODEL"),
        ({"folderName": None}, "INVALID_FIELD"),
        ({"extra": "1"}, "INVALID_FIELD"),
    ],
)
def test_bad_fields_are_refused(client, app, dataset, overrides, code):
    _refused(client, app, 422, code, data=form(**overrides), files=files_of(dataset))


def test_unknown_export_format_lists_the_ones_ultralytics_names(client, app, dataset):
    body = _refused(
        client,
        app,
        422,
        "UNSUPPORTED_EXPORT_FORMAT",
        data=form(exportFormat="gif"),
        files=files_of(dataset),
    )
    assert body["detail"]["supported"] == list(FORMATS)
    assert "openvino" in body["message"]


@pytest.mark.parametrize(
    ("asked", "stored"),
    [("tfjs", "litert"), ("OpenVINO", "openvino"), ("ncnn", "ncnn"), ("pb", "pb")],
)
def test_any_ultralytics_export_format_is_accepted(client, app, dataset, asked, stored):
    resp = client.post(URL, data=form(exportFormat=asked), files=files_of(dataset))
    assert resp.status_code == 200, resp.text
    assert resp.json()["job"]["export_format"] == stored


def test_missing_files_are_refused(client, app):
    _refused(client, app, 422, "INVALID_FIELD", data=form(), files=[("other", ("x", b"x"))])
    body = _refused(
        client,
        app,
        422,
        "INVALID_FIELD",
        data={**form(), "files": "images/a.png"},
        files=[("files", ("images/a.png", b"\x89PNG\r\n\x1a\n", "image/png"))],
    )
    assert "must be files" in body["message"]
    _refused(
        client,
        app,
        422,
        "INVALID_FIELD",
        data=form(),
        files=[("files", ("", b"", "application/octet-stream"))],
    )


# -- refusals: dataset ---------------------------------------------------------------


def test_label_with_class_id_out_of_range_is_refused(client, app, dataset):
    (dataset / "labels" / "train" / "train_0001.txt").write_text("5 0.5 0.5 0.2 0.2\n")
    body = _refused(client, app, 422, "INVALID_DATASET", data=form(), files=files_of(dataset))
    assert "numClasses=2" in body["message"]


def test_label_without_image_is_refused(client, app, dataset):
    (dataset / "images" / "val" / "val_0000.png").unlink()
    _refused(client, app, 422, "INVALID_DATASET", data=form(), files=files_of(dataset))


def test_unreadable_image_is_refused(client, app, dataset):
    (dataset / "images" / "val" / "val_0000.png").write_bytes(b"<html>not an image</html>")
    _refused(client, app, 422, "INVALID_DATASET", data=form(), files=files_of(dataset))


def test_classification_folders_not_matching_classes_are_refused(client, app, tmp_path):
    root = write_classification_dataset(tmp_path / "cls", classes=("cat", "bird"))
    data = form(model="yolo11n-cls")
    _refused(client, app, 422, "INVALID_DATASET", data=data, files=files_of(root))


def test_detection_files_for_a_classification_model_are_refused(client, app, dataset):
    data = form(model="yolov8n-cls")
    _refused(client, app, 422, "INVALID_DATASET", data=data, files=files_of(dataset))


@pytest.mark.parametrize(
    "name", ["/etc/passwd", "../escape.png", "images/../../escape.png", "images//a.png"]
)
def test_unsafe_file_names_are_refused(client, app, dataset, name):
    files = [*files_of(dataset), ("files", (name, png_bytes(1, 1, [b"\0\0\0"]), "image/png"))]
    _refused(client, app, 400, "UNSAFE_FILENAME", data=form(), files=files)


def test_repeated_file_name_is_refused(client, app, dataset):
    files = files_of(dataset)
    _refused(client, app, 400, "UNSAFE_FILENAME", data=form(), files=[*files, files[0]])


def test_zip_with_other_files_is_refused(client, app, dataset):
    files = [*files_of(dataset), ("files", ("ds.zip", zip_of(dataset), "application/zip"))]
    _refused(client, app, 422, "INVALID_DATASET", data=form(), files=files)


# -- refusals: archives --------------------------------------------------------------


def _zip_with(dataset, extra):
    buf = io.BytesIO(zip_of(dataset))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with zipfile.ZipFile(buf, "a") as zf:
            for entry, data in extra:
                zf.writestr(entry, data, compress_type=zipfile.ZIP_DEFLATED)
    return [("files", ("dataset.zip", buf.getvalue(), "application/zip"))]


def _symlink_entry():
    info = zipfile.ZipInfo("images/train/link.png")
    info.create_system = 3
    info.external_attr = (0o120777 << 16) & 0xFFFFFFFF
    return info


@pytest.mark.parametrize(
    "extra",
    [
        [("../evil.png", b"x")],
        [("/abs.png", b"x")],
        [(_symlink_entry(), b"/etc/passwd")],
        [("images/train/train_0000.png", b"dup")],
        [("images/train/zeros.png", b"\0" * 1_000_000)],
    ],
    ids=["dotdot", "absolute", "symlink", "duplicate", "ratio"],
)
def test_unsafe_archives_are_refused(client, app, dataset, extra):
    _refused(client, app, 400, "UNSAFE_ARCHIVE", data=form(), files=_zip_with(dataset, extra))


def test_corrupt_archive_is_refused(client, app):
    files = [("files", ("dataset.zip", b"PK\x03\x04garbage", "application/zip"))]
    _refused(client, app, 400, "INVALID_ARCHIVE", data=form(), files=files)


# -- refusals: limits and transport --------------------------------------------------


@pytest.fixture
def small_settings(tmp_path, database_url):
    return NodeSettings(
        data_dir=tmp_path / "node",
        database_url=database_url,
        upload={"max_bytes": 64 * 1024, "max_files": 10, "max_compression_ratio": 200},
    )


@pytest.fixture
def small_app(small_settings):
    from tests.fixtures.app import create_app

    return create_app(small_settings)


@pytest.fixture
def small_client(small_app):
    from fastapi.testclient import TestClient

    with TestClient(small_app) as c:
        yield c


def test_too_many_files_is_413(small_client, small_app, dataset):
    body = _refused(
        small_client, small_app, 413, "PAYLOAD_TOO_LARGE", data=form(), files=files_of(dataset)
    )
    assert body["detail"]["limit"] == "max_files"


def test_archive_expanding_past_the_limit_is_413(small_client, small_app, tmp_path):
    root = write_detection_dataset(tmp_path / "big", train=3, val=0, size=160)
    big = root / "images" / "train" / "train_0000.png"
    big.write_bytes(big.read_bytes() + bytes(range(256)) * 300)  # ~77 KB of noise-ish tail
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(root.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(root).as_posix())
    assert len(buf.getvalue()) < 64 * 1024
    files = [("files", ("d.zip", buf.getvalue(), "application/zip"))]
    _refused(small_client, small_app, 413, "ARCHIVE_TOO_LARGE", data=form(), files=files)


def test_body_over_the_limit_is_413_from_content_length(small_client, small_app):
    files = [("files", ("images/a.png", b"\0" * 100_000, "image/png"))]
    _refused(small_client, small_app, 413, "PAYLOAD_TOO_LARGE", data=form(), files=files)


def test_body_over_the_limit_is_413_while_streaming(small_client, small_app):
    boundary = "xYzBoundary"

    def body():
        yield f'--{boundary}\r\nContent-Disposition: form-data; name="files"; '.encode()
        yield b'filename="images/a.png"\r\n\r\n'
        for _ in range(20):
            yield b"\0" * 8192
        yield f"\r\n--{boundary}--\r\n".encode()

    resp = small_client.post(
        URL, content=body(), headers={"content-type": f"multipart/form-data; boundary={boundary}"}
    )
    assert "content-length" not in {k.lower() for k in resp.request.headers}
    assert resp.status_code == 413, resp.text
    assert resp.json()["code"] == "PAYLOAD_TOO_LARGE"
    assert_nothing_stored(small_app)


def test_huge_text_field_is_413(client, app, dataset):
    data = form(folderName="x" * (1024 * 1024 + 1))
    _refused(client, app, 413, "PAYLOAD_TOO_LARGE", data=data, files=files_of(dataset))


def test_malformed_multipart_is_400(client, app):
    headers = {"content-type": "multipart/form-data; boundary=abc"}
    _refused(
        client, app, 400, "MALFORMED_MULTIPART", content=b"--abc\r\nno headers", headers=headers
    )
    _refused(client, app, 400, "MALFORMED_MULTIPART", content=b"garbage", headers=headers)
    _refused(
        client,
        app,
        400,
        "MALFORMED_MULTIPART",
        content=b"x",
        headers={"content-type": "multipart/form-data"},
    )


def _big_dataset_body(dataset, as_zip: bool) -> tuple[bytes, str]:
    """A multipart body whose dataset is a few MiB, so that the staging threads are
    still busy wherever it is cut."""
    import httpx

    big = b"\x89PNG\r\n\x1a\n" + os.urandom(6 << 20)
    (dataset / "images" / "train" / "big.png").write_bytes(big)
    (dataset / "labels" / "train" / "big.txt").write_bytes(b"0 0.5 0.5 0.1 0.1\n")
    files = (
        [("files", ("ds.zip", zip_of(dataset), "application/zip"))] if as_zip else files_of(dataset)
    )
    request = httpx.Request("POST", "http://t" + URL, data=form(), files=files)
    return request.read(), request.headers["content-type"]


def _staging_threads() -> list:
    import threading

    return [t for t in threading.enumerate() if t.name.startswith("dcm-stage")]


@pytest.mark.parametrize("as_zip", [False, True], ids=["files", "zip"])
def test_truncated_multipart_is_400(client, app, dataset, as_zip):
    raw, ctype = _big_dataset_body(dataset, as_zip)
    cut = raw[: len(raw) // 2]  # in the middle of the big image (of the archive's entry)
    _refused(client, app, 400, "MALFORMED_MULTIPART", content=cut, headers={"content-type": ctype})
    assert not _staging_threads()


@pytest.mark.parametrize("as_zip", [False, True], ids=["files", "zip"])
def test_a_client_gone_mid_upload_leaves_no_thread_and_nothing_staged(client, app, dataset, as_zip):
    raw, ctype = _big_dataset_body(dataset, as_zip)
    messages = [
        {"type": "http.request", "body": raw[i : i + 65536], "more_body": True}
        for i in range(0, len(raw) // 2, 65536)
    ] + [{"type": "http.disconnect"}]
    sent: list[dict] = []

    async def call() -> None:
        async def receive() -> dict:
            return messages.pop(0)

        async def send(message: dict) -> None:
            sent.append(message)

        headers = [
            (b"host", b"testserver"),
            (b"content-type", ctype.encode()),
            (b"content-length", str(len(raw)).encode()),
        ]
        scope = http_scope("POST", URL, headers)
        await app(scope, receive, send)

    client.portal.call(call)  # in the app's own event loop, as a server runs it
    assert not messages  # it read up to the disconnect
    statuses = [m["status"] for m in sent if m["type"] == "http.response.start"]
    assert statuses in ([], [400])
    assert_nothing_stored(app)
    assert not _staging_threads()


def test_json_body_is_415(client, app):
    _refused(client, app, 415, "UNSUPPORTED_MEDIA_TYPE", json=form())


# -- a failure after pinning ---------------------------------------------------------


def _break_job_creation(monkeypatch):
    import node.datasets.service as service

    def boom(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(service, "create_job", boom)


def test_failure_after_pinning_removes_the_new_pins(app, dataset, monkeypatch):
    from fastapi.testclient import TestClient

    _break_job_creation(monkeypatch)
    with TestClient(app, raise_server_exceptions=False) as client:
        resp = client.post(URL, data=form(), files=files_of(dataset))
    assert resp.status_code == 500 and resp.json()["code"] == "INTERNAL_ERROR"
    snapshot = stored(app)
    assert (snapshot.jobs, snapshot.pins, snapshot.temp_files) == (0, (), 0)
    assert snapshot.blocks > 0
    app.state.runtime.content.gc()  # the unpinned blocks are garbage the collector removes
    assert_nothing_stored(app)


def test_failure_keeps_pins_that_existed_before(app, dataset, monkeypatch):
    from fastapi.testclient import TestClient

    with TestClient(app, raise_server_exceptions=False) as client:
        first = client.post(URL, data=form(), files=files_of(dataset)).json()["job"]
        before = stored(app)
        _break_job_creation(monkeypatch)
        assert client.post(URL, data=form(), files=files_of(dataset)).status_code == 500
    assert_nothing_stored(app, before)
    assert app.state.runtime.content.is_pinned(first["folder_cid"])


def test_staging_left_by_a_killed_process_is_purged(client, app, dataset):
    import os
    import time

    uploads = app.state.runtime.settings.data_dir / "tmp" / "uploads"
    stale = uploads / "deadbeef"
    (stale / "tree").mkdir(parents=True)
    (stale / "tree" / "half.png").write_bytes(b"\x89PNG")
    old = time.time() - 2 * 24 * 3600
    os.utime(stale, (old, old))
    fresh = uploads / "inflight"
    fresh.mkdir()
    assert client.post(URL, data=form(), files=files_of(dataset)).status_code == 200
    assert not stale.exists() and fresh.exists()


# -- a full disk -----------------------------------------------------------------------


@pytest.fixture
def full_uploads_disk(app):
    """A 2 MiB tmpfs where uploads are staged (root only; skipped otherwise)."""
    import subprocess

    uploads = app.state.runtime.settings.data_dir / "tmp" / "uploads"
    uploads.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(uploads)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode()[:200]}")
    yield uploads
    subprocess.run(["umount", "-l", str(uploads)], check=False)


@pytest.mark.parametrize("as_zip", [False, True])
def test_upload_onto_a_full_disk_is_507_and_leaves_nothing(
    client, app, dataset, full_uploads_disk, as_zip
):
    big = b"\x89PNG\r\n\x1a\n" + os.urandom(3 << 20)  # more than the disk holds
    (dataset / "images" / "train" / "big.png").write_bytes(big)
    files = (
        [("files", ("ds.zip", zip_of(dataset), "application/zip"))] if as_zip else files_of(dataset)
    )
    _refused(client, app, 507, "INSUFFICIENT_STORAGE", data=form(), files=files)
    assert list(full_uploads_disk.iterdir()) == []
