"""The seed-000 example sent with the real `curl` binary to a real `dcm serve` process
(uvicorn on a free loopback port, temporary data dir): upload as multipart -F fields and
files, then download the zip and check it re-adds to exactly `folder_cid`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from marketplace.content.importer import import_path
from marketplace.datasets.synthetic import write_detection_dataset
from tests.fixtures.datasets import ADDRESS
from tests.fixtures.served import Served

ROOT = Path(__file__).resolve().parents[3]

# The seed's example values: model "yolov5", imgsz "640", exportFormat "ONNX",
# classes ["cat","dog"], reward 0.5.
SEED_FIELDS = [
    "folderName=dataset",
    "model=yolov5",
    "epochs=3",
    "imgsz=640",
    "exportFormat=ONNX",
    "numClasses=2",
    'classes=["cat","dog"]',
    "reward=0.5",
    f"requesterAddress={ADDRESS}",
]


@pytest.fixture
def node_url(tmp_path):
    if shutil.which("curl") is None:
        pytest.skip("curl not installed")
    node = Served(tmp_path / "node", None, DCM_UPLOAD__MAX_BYTES=str(4 * 1024 * 1024))
    try:
        yield node.url
    finally:
        node.stop()


def _curl(*args: str) -> tuple[int, bytes]:
    result = subprocess.run(
        ["curl", "-sS", "-w", "\n%{http_code}", *args], capture_output=True, timeout=60
    )
    assert result.returncode == 0, result.stderr.decode()
    body, _, status = result.stdout.rpartition(b"\n")
    return int(status), body


def _form_args() -> list[str]:
    return [arg for field in SEED_FIELDS for arg in ("-F", field)]


def test_seed_example_with_curl_creates_a_job_and_the_zip_round_trips(node_url, tmp_path):
    dataset = write_detection_dataset(tmp_path / "dataset", train=4, val=2)
    file_args = []
    for path in sorted(p for p in dataset.rglob("*") if p.is_file()):
        rel = path.relative_to(dataset).as_posix()
        file_args += ["-F", f"files=@{path};filename={rel}"]
    status, body = _curl(
        "-X", "POST", node_url + "/jobs/image_processing/upload", *_form_args(), *file_args
    )
    assert status == 200, body
    answer = json.loads(body)
    assert answer["message"] == "Job uploaded successfully"
    job = answer["job"]
    assert job["model"] == "yolov5" and job["imgsz"] == "640" and job["reward"] == "0.500000"
    assert job["folder_cid"] == str(import_path(dataset).cid)

    # the job waits for its escrow deposit (tests/node/chain/test_settle.py funds one)
    assert job["dcm_status"] == "awaiting_funding" and job["funding"]["value"] == str(5 * 10**17)
    status, body = _curl(node_url + "/jobs/get-jobs")
    assert status == 200 and json.loads(body) == []

    out_zip = tmp_path / "download.zip"
    status, _ = _curl("-o", str(out_zip), f"{node_url}/jobs/get-dataset/{job['id']}")
    assert status == 200
    unpacked = tmp_path / "unpacked"
    with zipfile.ZipFile(out_zip) as zf:
        zf.extractall(unpacked)
    assert str(import_path(unpacked).cid) == job["folder_cid"]

    # The same zip, uploaded back with curl as one file, gives the same dataset CID.
    status, body = _curl(
        "-X",
        "POST",
        node_url + "/jobs/image_processing/upload",
        *_form_args(),
        "-F",
        f"files=@{out_zip}",
    )
    assert status == 200, body
    assert json.loads(body)["job"]["folder_cid"] == job["folder_cid"]


def test_curl_refusal_is_a_clear_4xx(node_url, tmp_path):
    bad = tmp_path / "evil.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n")
    status, body = _curl(
        "-X",
        "POST",
        node_url + "/jobs/image_processing/upload",
        *_form_args(),
        "-F",
        f"files=@{bad};filename=../../evil.png",
    )
    assert status == 400 and json.loads(body)["code"] == "UNSAFE_FILENAME"


def test_chunked_upload_over_the_limit_is_413_while_streaming(node_url, tmp_path):
    big = tmp_path / "big.png"
    with open(big, "wb") as fh:
        fh.write(b"\x89PNG\r\n\x1a\n" + os.urandom(6 * 1024 * 1024))
    status, body = _curl(
        "-X",
        "POST",
        node_url + "/jobs/image_processing/upload",
        "-H",
        "Transfer-Encoding: chunked",  # no Content-Length: the limit must hold mid-stream
        *_form_args(),
        "-F",
        f"files=@{big};filename=images/big.png",
    )
    assert status == 413 and json.loads(body)["code"] == "PAYLOAD_TOO_LARGE"
    uploads = tmp_path / "node" / "tmp" / "uploads"
    assert list(uploads.iterdir()) == []
    assert not any(p.is_file() for p in (tmp_path / "node" / "blocks").rglob("*"))
