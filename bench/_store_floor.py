"""A second baseline of `bench/datasets_upload.py`: the least an upload could cost a server
that keeps the bytes as the node's block store does, under the same server settings as
`dcm serve`. It parses nothing (no multipart, no zip): the event loop takes each chunk of
the body and CRCs it (a zip entry's check), and one thread cuts the bytes into 256 KiB
blocks, SHA-256s each (its CID's digest) and writes it as a file of its own; the answer
waits for one `syncfs`, as the node's import does. What issue 12 calls the limit ("one
write of the bytes plus hashing"), measured on this machine, where a disk copy is not.

Blocks go under FOLDER, emptied at each request.

    python -m bench._store_floor PORT FOLDER
"""

from __future__ import annotations

import hashlib
import os
import queue
import shutil
import sys
import threading
import zlib
from pathlib import Path
from typing import Any

import uvicorn

from marketplace.content.nodes import CHUNK_SIZE as BLOCK
from node.content.blockstore import _syncfs
from node.server import server_config


def write_blocks(chunks: queue.Queue, root: Path) -> None:
    """Cut what comes through `chunks` (None ends it) into blocks, each hashed and written
    as its own file."""
    pending = bytearray()

    def put(block: memoryview) -> None:
        fd = os.open(root / hashlib.sha256(block).hexdigest(), os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        try:
            os.write(fd, block)
        finally:
            os.close(fd)

    while (chunk := chunks.get()) is not None:
        pending += chunk
        whole = len(pending) - len(pending) % BLOCK
        view = memoryview(pending)
        for at in range(0, whole, BLOCK):
            put(view[at : at + BLOCK])
        view.release()
        del pending[:whole]
    if pending:
        put(memoryview(pending))


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    root = Path(sys.argv[2])
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    chunks: queue.Queue = queue.Queue(maxsize=64)
    writer = threading.Thread(target=write_blocks, args=(chunks, root))
    writer.start()
    crc = 0
    more = True
    while more:
        message = await receive()
        body = message.get("body", b"")
        crc = zlib.crc32(body, crc)
        chunks.put(body)  # blocks the loop while the thread is behind: one request to serve
        more = message.get("more_body", False)
    chunks.put(None)
    writer.join()
    _syncfs(root)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


if __name__ == "__main__":
    uvicorn.Server(server_config(app, "127.0.0.1", int(sys.argv[1]))).run()
