"""Staging folders of uploads a killed process left behind are removed at start, and a
second process on the same data dir never removes uploads the first has in flight
(node.staging)."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

from fastapi.testclient import TestClient

from node.config import NodeSettings
from node.staging import claim_staging
from tests.fixtures.app import create_app
from tests.fixtures.served import Served


def _leftovers(data_dir: Path) -> list[Path]:
    upload = data_dir / "tmp" / "uploads" / "deadbeef" / "tree" / "images"
    upload.mkdir(parents=True)
    (upload / "half.png").write_bytes(b"\x89PNG" + b"\0" * 1000)
    add = data_dir / "tmp" / "add-0123" / "root"
    add.mkdir(parents=True)
    (add / "part.bin").write_bytes(b"x" * 1000)
    return [upload.parents[1], add.parent]


def test_staging_left_behind_is_removed_when_the_node_starts(settings: NodeSettings) -> None:
    leftovers = _leftovers(settings.data_dir)
    with TestClient(create_app(settings)):
        assert not any(p.exists() for p in leftovers)
        assert not any((settings.data_dir / "tmp").iterdir())


def test_a_second_process_keeps_the_first_ones_uploads_in_flight(tmp_path: Path) -> None:
    data_dir = tmp_path / "node"
    first = claim_staging(data_dir)  # a live process holding the data dir
    try:
        in_flight = data_dir / "tmp" / "uploads" / "inflight"
        in_flight.mkdir(parents=True)
        stale = data_dir / "tmp" / "add-stale"
        stale.mkdir()
        old = time.time() - 2 * 24 * 3600
        os.utime(stale, (old, old))
        second = claim_staging(data_dir)
        second.close()
        assert in_flight.exists() and not stale.exists()
    finally:
        first.close()


def test_a_node_killed_mid_upload_starts_with_no_staging(tmp_path: Path) -> None:
    data_dir = tmp_path / "node"
    served = Served(data_dir)
    sock = socket.create_connection(("127.0.0.1", served.port))
    try:
        sock.sendall(
            b"POST /jobs/image_processing/upload HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: multipart/form-data; boundary=B\r\nContent-Length: 10000000\r\n\r\n"
            b'--B\r\nContent-Disposition: form-data; name="files"; filename="images/a.png"\r\n\r\n'
            + b"x"
            * 600_000  # more than two 256 KiB chunks: staged as blocks while it streams
        )
        staging = data_dir / "tmp" / "uploads"

        def written() -> bool:
            return any(p.is_file() for p in staging.rglob("*"))

        deadline = time.monotonic() + 20
        while not written() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert written()  # the upload is being written
        served.stop(signal.SIGKILL)
    finally:
        sock.close()
    assert written()  # what a killed process leaves
    restarted = Served(data_dir)
    try:
        assert not any((data_dir / "tmp").iterdir())
    finally:
        restarted.stop()
