"""What must not go wrong: a provider killed mid-training, bytes altered in transit."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from marketplace.errors import StaleAttempt
from marketplace.sdk.client import NodeClient
from tests.e2e.conftest import (
    REWARD_WEI,
    escrow_of,
    job_events,
    key_of,
    new_provider,
    provider_process,
    run_provider,
    upload_funded_job,
    wait_for_epoch,
    wait_status,
)
from tests.fixtures import web
from worker.api import NodeAPI


def test_killed_provider_loses_its_lease_and_a_second_one_finishes(
    node, requester, dataset, tmp_path, training_available
):
    job_id = upload_funded_job(node, requester, dataset, epochs=4)
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
    assert any(e.type == "lease_expired" for e in job_events(node, requester, job_id))

    successor = new_provider(node)
    done = run_provider(node, successor, tmp_path / "successor")
    assert [d["attempt"] for d in done] == [2]
    wait_status(node, job_id, {"submitted"}, timeout=30)
    key = key_of(node, job_id)
    assert escrow_of(node).get_job(key).provider == successor.address

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
        escrow.submit(victim, key, b"\x01" * 32)


def test_altered_dataset_is_refused_before_training(
    node, requester, dataset, tmp_path, monkeypatch, training_available
):
    job_id = upload_funded_job(node, requester, dataset, epochs=2)
    original = NodeAPI.download_car

    async def tampered(self, cid: str, dest: Path, **kw) -> Path:  # type: ignore[no-untyped-def]
        await original(self, cid, dest, **kw)
        data = bytearray(dest.read_bytes())
        data[-1] ^= 0xFF  # one flipped byte in the last block of the CAR
        dest.write_bytes(bytes(data))
        return dest

    monkeypatch.setattr(NodeAPI, "download_car", tampered)
    run_provider(node, new_provider(node), tmp_path / "provider")
    detail = wait_status(node, job_id, {"failed"}, timeout=30)
    assert detail["dcm_status"] == "failed"
    events = job_events(node, requester, job_id)
    assert not any(e.type == "progress" and (e.message or "").startswith("Epoch") for e in events)
    failure = [e for e in events if e.type == "failed"][-1]
    assert "does not match its CID" in failure.message
    assert web.get(f"{node.url}/jobs/get-jobs").json() == []


def test_cancel_mid_training_stops_at_an_epoch_boundary_and_refunds(
    node, requester, dataset, tmp_path, training_available
):
    import threading

    job_id = upload_funded_job(node, requester, dataset, epochs=8)
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
        e.type == "progress" and (e.message or "").startswith("Epoch")
        for e in client.job(job_id).events
    ):
        assert time.monotonic() < deadline, "no epoch reported"
        time.sleep(0.3)

    resp = client.request("POST", f"/v1/jobs/job_{job_id}/cancel")
    assert resp.json()["data"]["status"] == "cancelled"
    runner.join(120)
    assert not runner.is_alive() and finished == [[]]  # the daemon ran nothing to the end

    epochs = [
        e
        for e in client.job(job_id).events
        if e.type == "progress" and (e.message or "").startswith("Epoch")
    ]
    assert 1 <= len(epochs) < 8
    # the node itself released the binding and refunded the deposit (no requester action)
    escrow = escrow_of(node)
    key = key_of(node, job_id)
    deadline = time.monotonic() + 30
    while escrow.get_job(key).status.name != "NONE":
        assert time.monotonic() < deadline, "the node did not refund the cancelled job"
        time.sleep(0.2)
    # the refund is mined before the node applies its event (same tick, a poll later)
    while not client.payouts(requester=requester.address):
        assert time.monotonic() < deadline, "the node did not record the refund"
        time.sleep(0.2)
    [payout] = client.payouts(requester=requester.address)
    assert payout.outcome == "refunded" and payout.recipient == requester.address
    assert payout.amount_wei == REWARD_WEI and payout.deferred == []
    assert client.job(job_id).status == "cancelled"
