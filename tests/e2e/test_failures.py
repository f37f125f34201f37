"""What must not go wrong: a provider killed mid-training, bytes altered in transit."""

from __future__ import annotations

import io
import signal
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from marketplace.errors import StaleAttempt
from marketplace.sdk.client import NodeClient
from tests.e2e.conftest import (
    REWARD_WEI,
    escrow_of,
    fund,
    job_events,
    new_provider,
    provider_process,
    run_provider,
    wait_for_epoch,
    wait_status,
)
from worker.api import NodeAPI


def _upload(node, requester, dataset, epochs: int) -> int:
    job = NodeClient(node.url).upload_dataset_job(
        dataset,
        model="yolov8n",
        epochs=epochs,
        imgsz=64,
        classes=["cat", "dog"],
        reward="0.01",
        requester_address=requester.address,
        export_format="pt",
    )
    fund(node, job["id"], requester)
    wait_status(node, job["id"], {"pending"}, timeout=30)
    return job["id"]


def test_killed_provider_loses_its_lease_and_a_second_one_finishes(
    node, requester, dataset, tmp_path, training_available
):
    job_id = _upload(node, requester, dataset, epochs=4)
    proc, log, victim = provider_process(node, tmp_path, "victim", "--once")
    try:
        wait_for_epoch(node, requester, job_id, proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()

    wait_status(node, job_id, {"pending"}, timeout=30)  # the reaper took the lease back
    assert any(e["type"] == "lease_expired" for e in job_events(node, requester, job_id))

    successor = new_provider(node)
    done = run_provider(node, successor, tmp_path / "successor")
    assert [d["attempt"] for d in done] == [2]
    wait_status(node, job_id, {"submitted"}, timeout=30)
    assert escrow_of(node).get_job(job_id).provider == successor.address

    async def late_submission() -> None:
        api = NodeAPI(node.url)
        try:
            await api.sign_in(victim)
            await api.job_write(f"job_{job_id}", "result", 1, result_cid="Qm" + "z" * 44)
        finally:
            await api.aclose()

    import asyncio

    with pytest.raises(StaleAttempt):
        asyncio.run(late_submission())
    escrow = escrow_of(node)
    with pytest.raises(Exception, match="NotProvider|WrongStatus"):
        escrow.submit(victim, job_id, b"\x01" * 32)


def test_altered_dataset_is_refused_before_training(
    node, requester, dataset, tmp_path, monkeypatch, training_available
):
    job_id = _upload(node, requester, dataset, epochs=2)
    original = NodeAPI.download_dataset

    async def tampered(self, job_ref: str, dest: Path) -> Path:
        await original(self, job_ref, dest)
        with zipfile.ZipFile(dest) as zf:
            entries = [(info, zf.read(info)) for info in zf.infolist()]
        buf = io.BytesIO()
        flipped = False
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as out:
            for info, data in entries:
                if not flipped and data:
                    data = bytes([data[0] ^ 0xFF]) + data[1:]  # one flipped byte
                    flipped = True
                out.writestr(info, data)
        assert flipped
        dest.write_bytes(buf.getvalue())
        return dest

    monkeypatch.setattr(NodeAPI, "download_dataset", tampered)
    run_provider(node, new_provider(node), tmp_path / "provider")
    detail = wait_status(node, job_id, {"failed"}, timeout=30)
    assert detail["status"] == "failed"
    events = job_events(node, requester, job_id)
    assert not any(
        e["type"] == "progress" and (e.get("message") or "").startswith("Epoch") for e in events
    )
    failure = [e for e in events if e["type"] == "failed"][-1]
    assert "does not match its CID" in failure["message"]
    assert httpx.get(f"{node.url}/jobs/get-jobs").json() == []


def test_cancel_mid_training_stops_at_an_epoch_boundary_and_refunds(
    node, requester, dataset, tmp_path, training_available
):
    import threading

    job_id = _upload(node, requester, dataset, epochs=8)
    client = NodeClient(node.url)
    client.sign_in(requester)
    provider = new_provider(node)
    finished: list[list[dict]] = []
    runner = threading.Thread(
        target=lambda: finished.append(run_provider(node, provider, tmp_path / "provider"))
    )
    runner.start()
    deadline = time.monotonic() + 120
    while not any(
        e["type"] == "progress" and (e.get("message") or "").startswith("Epoch")
        for e in client.job(job_id)["events"]
    ):
        assert time.monotonic() < deadline, "no epoch reported"
        time.sleep(0.3)

    resp = client.request("POST", f"/v1/jobs/job_{job_id}/cancel")
    assert resp.json()["data"]["status"] == "cancelled"
    runner.join(120)
    assert not runner.is_alive() and finished == [[]]  # the daemon ran nothing to the end

    epochs = [
        e
        for e in client.job(job_id)["events"]
        if e["type"] == "progress" and (e.get("message") or "").startswith("Epoch")
    ]
    assert 1 <= len(epochs) < 8
    escrow = escrow_of(node)
    record = escrow.get_job(job_id)
    assert record.provider in (provider.address, "0x" + "0" * 40)

    before = escrow.w3.eth.get_balance(requester.address)
    client.cancel(job_id, requester)  # the requester's own escrow cancel: the refund
    refund_gas = before - escrow.w3.eth.get_balance(requester.address) + REWARD_WEI
    assert 0 < refund_gas < 10**15  # got the reward back, paid only gas
    assert client.job(job_id)["status"] == "cancelled"
