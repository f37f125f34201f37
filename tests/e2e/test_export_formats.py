"""Export formats end to end: a real daemon advertises the formats its trial export made
here, and passes over a funded job asking for one it cannot make (seed 000's own `tfjs`,
a LiteRT job), which then says in its status message that nobody can make it."""

from __future__ import annotations

import asyncio

import pytest

from marketplace.exports import BASE_FORMATS
from marketplace.sdk.client import NodeClient
from node.providers.service import NO_MAKER
from tests.e2e.conftest import fund, new_provider, wait_status


def test_a_daemon_advertises_its_formats_and_passes_over_one_it_cannot_make(
    node, requester, dataset, tmp_path, training_available, monkeypatch
):
    from worker.daemon import DaemonConfig, ProviderDaemon
    from worker.executors import default_executors
    from worker.executors.yolo.exports import candidates
    from worker.hardware import detect_hardware

    if "litert" in candidates(cuda=False):
        pytest.skip("this installation has the export-litert extra: it can make the job")
    monkeypatch.delenv("DCM_EXPORT_FORMATS", raising=False)
    client = NodeClient(node.url)
    job = client.upload_dataset_job(
        dataset,
        model="yolov8n",
        epochs=1,
        imgsz=64,
        classes=["cat", "dog"],
        reward="0.01",
        requester_address=requester.address,
        export_format="tfjs",
    )
    assert job.payload["export_format"] == "litert"
    fund(node, job.number, requester)
    wait_status(node, job.number, {"pending"}, timeout=30)

    account = new_provider(node)
    cfg = DaemonConfig(node_url=node.url, workdir=tmp_path / "provider", claim_wait_seconds=1)

    async def main():
        async with ProviderDaemon(
            cfg, account, default_executors(), hardware=detect_hardware
        ) as daemon:
            registry = (await daemon.api._call("GET", "/v1/providers")).json()["data"]
            return registry, await daemon.api.claim(0)

    registry, claimed = asyncio.run(main())
    mine = next(p for p in registry if p["address"] == account.address)
    formats = set(mine["capabilities"]["export_formats"])
    assert formats >= BASE_FORMATS and "litert" not in formats
    assert mine["capabilities"]["cpu_cores"] >= 1  # the hardware is still there
    assert claimed is None

    client.sign_in(requester)
    message = client.job(job.id).progress_message or ""
    assert message.startswith(NO_MAKER + "'litert'"), message
    assert wait_status(node, job.number, {"pending"})["dcm_status"] == "pending"
