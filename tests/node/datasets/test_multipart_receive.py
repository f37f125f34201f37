"""`receive_upload` on its own: a chunk full of small files does not hold the event loop
for the whole of its parse."""

from __future__ import annotations

import asyncio

import httpx
from starlette.requests import Request

from node.config import UploadLimits
from node.datasets.multipart import receive_upload


def test_a_chunk_of_many_small_files_lets_the_event_loop_run_between_slices(tmp_path):
    label = b"0 0.5 0.5 0.1 0.1\n"
    files = [("files", (f"labels/train/img_{i:05d}.txt", label)) for i in range(3000)]
    request = httpx.Request("POST", "http://t/upload", data={"model": "yolov8n"}, files=files)
    body = request.read()
    assert len(body) > 256 * 1024  # more than one slice, all of it in one network chunk
    ticks = 0

    async def main() -> int:
        nonlocal ticks
        sent = False

        async def receive() -> dict:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        scope = {
            "type": "http",
            "method": "POST",
            "path": "/upload",
            "headers": [(b"content-type", request.headers["content-type"].encode())],
        }

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        other = asyncio.ensure_future(ticker())
        await asyncio.sleep(0)
        before = ticks
        # without staging threads: every await in the receive is a slice's yield
        received = await receive_upload(Request(scope, receive), tmp_path / "work", UploadLimits())
        during = ticks - before
        other.cancel()
        assert received.file_count == 3000
        return during

    during = asyncio.run(main())
    # the parse of 3,000 parts (each written as a file) takes far longer than 5 ms: other
    # tasks ran between its slices (in one piece, the ticker would not have run at all)
    assert during >= 5, during


def test_a_chunk_of_many_small_zip_entries_lets_the_event_loop_run_between_slices(
    tmp_path, monkeypatch
):
    import io
    import zipfile

    from marketplace.datasets import archive_stream

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for i in range(3000):
            zf.writestr(f"labels/train/img_{i:05d}.txt", b"0 0.5 0.5 0.1 0.1\n")
    files = [("files", ("labels.zip", buf.getvalue(), "application/zip"))]
    request = httpx.Request("POST", "http://t/upload", data={"model": "yolov8n"}, files=files)
    body = request.read()
    ticks = 0
    seen: list[int] = []
    finish = archive_stream.ZipImport.finish

    def finish_counting(self):  # the archive's end: the parse of its entries is over
        seen.append(ticks)
        return finish(self)

    monkeypatch.setattr(archive_stream.ZipImport, "finish", finish_counting)

    async def main() -> None:
        nonlocal ticks
        sent = False

        async def receive() -> dict:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        scope = {
            "type": "http",
            "method": "POST",
            "path": "/upload",
            "headers": [(b"content-type", request.headers["content-type"].encode())],
        }

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        other = asyncio.ensure_future(ticker())
        await asyncio.sleep(0)
        seen.append(ticks)
        received = await receive_upload(
            Request(scope, receive), tmp_path / "work", UploadLimits(), stage=True
        )
        other.cancel()
        assert received.archive_name == "labels.zip"
        assert received.staged is not None and len(received.staged.files) == 3000

    asyncio.run(main())
    before, at_finish = seen
    assert at_finish - before >= 5, seen  # other tasks ran while the entries were parsed
