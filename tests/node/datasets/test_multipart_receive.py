"""`receive_upload` on its own: a chunk full of small files does not hold the event loop
for the whole of its parse."""

from __future__ import annotations

import asyncio
import io
import zipfile
from dataclasses import dataclass

import httpx
from starlette.requests import Request

from marketplace.datasets import archive_stream
from node.config import UploadLimits
from node.datasets.multipart import ReceivedUpload, _Receiver, receive_upload

LABEL = b"0 0.5 0.5 0.1 0.1\n"


@dataclass
class Ticks:
    """How often another task of the event loop ran."""

    n: int = 0


def _receive_in_one_chunk(files: list, tmp_path, ticks: Ticks, *, stage: bool) -> ReceivedUpload:
    """Receive a multipart body of `files`, all of it in one network chunk, while another
    task counts in `ticks` how often it runs."""
    request = httpx.Request("POST", "http://t/upload", data={"model": "yolov8n"}, files=files)
    body = request.read()
    assert len(body) > 256 * 1024  # many slices, all of them in one chunk
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/upload",
        "headers": [(b"content-type", request.headers["content-type"].encode())],
    }
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def ticker() -> None:
        while True:
            ticks.n += 1
            await asyncio.sleep(0)

    async def main() -> ReceivedUpload:
        other = asyncio.ensure_future(ticker())
        await asyncio.sleep(0)
        ticks.n = 0
        try:
            return await receive_upload(
                Request(scope, receive), tmp_path / "work", UploadLimits(), stage=stage
            )
        finally:
            other.cancel()

    return asyncio.run(main())


def test_a_chunk_of_many_small_files_lets_the_event_loop_run_between_slices(tmp_path):
    files = [("files", (f"labels/train/img_{i:05d}.txt", LABEL)) for i in range(3000)]
    ticks = Ticks()
    # without staging threads: every await in the receive is a slice's yield
    received = _receive_in_one_chunk(files, tmp_path, ticks, stage=False)
    assert received.file_count == 3000
    # the parse of 3,000 parts (each written as a file) takes far longer than 5 ms: other
    # tasks ran between its slices (in one piece, the ticker would not have run at all)
    assert ticks.n >= 5, ticks


def test_a_chunk_of_many_small_zip_entries_lets_the_event_loop_run_between_slices(
    tmp_path, monkeypatch
):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for i in range(3000):
            zf.writestr(f"labels/train/img_{i:05d}.txt", LABEL)
    files = [("files", ("labels.zip", buf.getvalue(), "application/zip"))]
    ticks, at_finish = Ticks(), []
    finish = archive_stream.ZipImport.finish

    def finish_counting(self):  # the archive's end: the parse of its entries is over
        at_finish.append(ticks.n)
        return finish(self)

    monkeypatch.setattr(archive_stream.ZipImport, "finish", finish_counting)
    received = _receive_in_one_chunk(files, tmp_path, ticks, stage=True)
    assert received.archive_name == "labels.zip"
    assert received.staged is not None and len(received.staged.files) == 3000
    assert at_finish[0] >= 5, at_finish  # other tasks ran while the entries were parsed


def test_zip_signatures_are_counted_only_while_an_archive_may_still_come(tmp_path):
    receiver = _Receiver(tmp_path / "work", UploadLimits(), stage=True)
    chunk = b"image bytes " + archive_stream.LOCAL + b" more " + archive_stream.LOCAL
    # before any file part: the chunk may hold the start of the one archive
    assert receiver.zip_entries_in(chunk) == 2
    receiver.on_part_begin()
    receiver.headers = {"content-disposition": b'form-data; name="files"; filename="a.png"'}
    receiver.on_headers_finished()
    # a file part came: an archive after it is refused, so none of its bytes are entries
    assert receiver.zip_entries_in(chunk) == 0
    receiver.close()
