"""A dataset download from a node that stops sending (frozen: no FIN, no RST) fails after
the transfer timeout with UpstreamUnavailable; it used to wait forever (`timeout=None`),
and the provider with it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

import worker.api
from marketplace.errors import UpstreamUnavailable
from worker.api import NodeAPI


async def _frozen_node(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers the headers and the first bytes of a CAR, then never another byte."""
    await reader.readuntil(b"\r\n\r\n")
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.ipld.car\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n4\r\nCAR!\r\n"
    )
    await writer.drain()
    await asyncio.sleep(3600)


def test_a_download_from_a_frozen_node_fails_instead_of_waiting_forever(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker.api, "TRANSFER_TIMEOUT", httpx.Timeout(1.0))

    async def main() -> None:
        server = await asyncio.start_server(_frozen_node, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        api = NodeAPI(f"http://127.0.0.1:{port}")
        try:
            download = api.download_car("bafy", tmp_path / "ds.car", max_bytes=1 << 20)
            with pytest.raises(UpstreamUnavailable, match="dataset download"):
                await asyncio.wait_for(download, 20)  # TimeoutError here: it hung
        finally:
            await api.aclose()
            server.close()

    asyncio.run(main())
    assert not (tmp_path / "ds.car").exists()
