"""Provider and node under faults (issue 19), with real processes: a node stopped while
providers long-poll, a full node disk, a provider that cannot write its workdir, a provider
frozen past its lease, and a node outage exactly when training ends."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from web3 import Web3

from marketplace.errors import InsufficientStorage
from marketplace.sdk.client import NodeClient
from marketplace.sdk.http import siwe_payload
from tests.e2e.conftest import (
    escrow_of,
    job_events,
    key_of,
    new_provider,
    provider_process,
    run_provider,
    upload_funded_job,
    wait_status,
)
from tests.fixtures import web
from tests.fixtures.served import Served
from worker.api import NodeAPI


def _epochs(node: Served, requester: Any, job_id: int) -> list[str]:
    return [
        e.message
        for e in job_events(node, requester, job_id)
        if e.type == "progress" and (e.message or "").startswith("Epoch")
    ]


def _wait_for(what: str, check: Any, timeout: float = 180, proc: Any = None) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if proc is not None:
            assert proc.poll() is None, f"provider exited before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _transactions_of(node: Served, address: str) -> int:
    info = web.get(node.url + "/chain/info").json()
    return Web3(Web3.HTTPProvider(info["rpc_url"])).eth.get_transaction_count(address)


def _stop(proc: subprocess.Popen, log: Any) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    log.close()


# -- item 6: shutdown while providers long-poll ---------------------------------------------


def _long_poller(url: str, started: threading.Event, answers: list[int]) -> None:
    account = Account.create()
    with httpx.Client(base_url=url, timeout=60) as http:
        nonce = http.get("/auth/nonce").json()
        token = http.post("/auth/siwe", json=siwe_payload(nonce, account, "poll")).json()
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        assert http.post("/v1/providers", json={}, headers=headers).status_code == 201
        started.set()
        try:
            resp = http.post("/v1/providers/claim", json={"wait_seconds": 30}, headers=headers)
            answers.append(resp.status_code)
        except httpx.HTTPError:
            answers.append(0)


@pytest.mark.both_databases
def test_serve_stops_within_2s_while_providers_long_poll(tmp_path, database_url):
    node = Served(tmp_path / "node", database_url)
    try:
        answers: list[int] = []
        pollers = []
        for _ in range(2):
            started = threading.Event()
            poller = threading.Thread(target=_long_poller, args=(node.url, started, answers))
            poller.start()
            assert started.wait(30)
            pollers.append(poller)
        time.sleep(1.0)  # both are inside their 30 s wait now
        began = time.monotonic()
        node.proc.send_signal(signal.SIGTERM)
        node.proc.wait(30)
        stopped_in = time.monotonic() - began
        for poller in pollers:
            poller.join(10)
    finally:
        node.stop()
    print(f"dcm serve stopped in {stopped_in:.2f}s with 2 open long-polls")
    assert stopped_in < 2.0, node.log()[-2000:]
    assert answers == [204, 204]  # "no work": the providers retry elsewhere


# -- item 5: a full node disk ---------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Any:
    """Mount a 2 MiB tmpfs at a path (root only); unmounted at the end."""
    mounted: list[Path] = []

    def mount(path: Path) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(path)], capture_output=True
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode()[:200]}")
        mounted.append(path)
        return path

    yield mount
    for path in mounted:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_full_disk_answers_507_and_nothing_is_half_written(tmp_path, database_url, small_disk):
    node = Served(tmp_path / "node", database_url)
    try:
        scratch = small_disk(node.data_dir / "tmp")  # where uploads are spooled
        out = tmp_path / "result"
        out.mkdir()
        (out / "weights.bin").write_bytes(b"\x01" * (3 * 1024 * 1024))  # more than the disk
        (out / "metrics.json").write_text("{}")

        async def upload() -> Any:
            api = NodeAPI(node.url)
            try:
                await api.sign_in(Account.create())
                resp = await api.http.post(
                    "/api/v0/add",
                    headers={"Authorization": f"Bearer {api._token}"},
                    files=[("file", ("weights.bin", (out / "weights.bin").read_bytes()))],
                )
                with pytest.raises(InsufficientStorage):
                    await api.add_directory(out)
                return resp
            finally:
                await api.aclose()

        resp = asyncio.run(upload())
        assert resp.status_code == 507, resp.text
        assert resp.json()["ErrorCode"] == "INSUFFICIENT_STORAGE"
        assert list(scratch.iterdir()) == []  # the spooled parts are gone
        pins = web.post(f"{node.url}/api/v0/pin/ls").json()
        assert pins.get("Keys", {}) == {}  # nothing pinned
        assert "malformed" not in resp.text
    finally:
        node.stop()


# -- item 3: a provider that cannot write its workdir ----------------------------------------


def test_unwritable_workdir_leaves_the_job_to_another_provider(
    node, requester, dataset, tmp_path, training_available
):
    job_id = upload_funded_job(node, requester, dataset, epochs=1)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "jobs").write_text("not a directory")  # job folders cannot be made
    proc, log, broken = provider_process(node, tmp_path, "broken")
    try:
        _wait_for(
            "the broken provider's failure",
            lambda: any(e.type == "requeued" for e in job_events(node, requester, job_id)),
            proc=proc,
        )
        time.sleep(3)  # it must not re-claim the job (backoff, self-check, exclusion)
        healthy = new_provider(node)
        done = run_provider(node, healthy, tmp_path / "healthy")
        assert [d["attempt"] for d in done] == [2]
        wait_status(node, job_id, {"submitted", "completed"}, timeout=60)
        claims = [e for e in job_events(node, requester, job_id) if e.type == "claimed"]
        assert [c.data["provider"] for c in claims] == [broken.address, healthy.address]
    finally:
        _stop(proc, log)
    text = (tmp_path / "broken.log").read_text(errors="replace")
    assert "self-check failed" in text and "is not writable" in text


# -- item 1: a lease lost mid-training publishes nothing --------------------------------------


@pytest.mark.both_databases
def test_a_provider_frozen_past_its_lease_publishes_nothing_and_a_successor_finishes(
    node, requester, dataset, tmp_path, training_available
):
    job_id = upload_funded_job(node, requester, dataset, epochs=3)
    proc, log, frozen = provider_process(node, tmp_path, "frozen", "--once")
    try:
        _wait_for("an epoch", lambda: _epochs(node, requester, job_id), proc=proc)
        proc.send_signal(signal.SIGSTOP)  # no heartbeat: the 10 s lease runs out
        wait_status(node, job_id, {"pending"}, timeout=30)
        successor = new_provider(node)
        done = run_provider(node, successor, tmp_path / "successor")
        assert [d["attempt"] for d in done] == [2]
        wait_status(node, job_id, {"submitted", "completed"}, timeout=60)
        proc.send_signal(signal.SIGCONT)  # it wakes up with a lost lease
        proc.wait(120)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
        _stop(proc, log)
    escrow = escrow_of(node).get_job(key_of(node, job_id))
    assert escrow.provider == successor.address
    assert _transactions_of(node, frozen.address) == 0  # no submit, not even a reverted one
    text = (tmp_path / "frozen.log").read_text(errors="replace")
    assert "lease lost" in text or "nothing published" in text
    assert "submitted:" not in text and "result digest submitted" not in text


@pytest.mark.both_databases
def test_a_lone_provider_frozen_past_its_lease_finishes_the_job_on_a_new_lease(
    node, requester, dataset, tmp_path, training_available
):
    job_id = upload_funded_job(node, requester, dataset, epochs=3)
    proc, log, lone = provider_process(node, tmp_path, "lone")
    try:
        _wait_for("an epoch", lambda: _epochs(node, requester, job_id), proc=proc)
        proc.send_signal(signal.SIGSTOP)
        wait_status(node, job_id, {"pending"}, timeout=30)
        proc.send_signal(signal.SIGCONT)
        detail = wait_status(node, job_id, {"submitted", "completed"}, timeout=240)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
        _stop(proc, log)
    events = job_events(node, requester, job_id)
    assert [e.type for e in events].count("lease_expired") == 1
    assert escrow_of(node).get_job(key_of(node, job_id)).attempt == 2
    assert _transactions_of(node, lone.address) == 1  # one submit: the new lease's
    assert detail["dcm_status"] in {"submitted", "completed"}


# -- item 4: a node outage exactly when training ends -----------------------------------------


@pytest.mark.both_databases
def test_a_node_outage_at_the_end_of_training_loses_no_result_and_no_progress(
    tmp_path, database_url, dataset, training_available
):
    from tests.e2e.conftest import faucet

    env = {"DCM_LEASES__LEASE_SECONDS": "10", "DCM_LEASES__REAPER_INTERVAL_SECONDS": "0.5"}
    node = Served(tmp_path / "node", database_url, **env)
    proc = log = None
    try:
        requester = Account.create()
        faucet(node, requester.address, "1")
        epochs = 3
        job_id = upload_funded_job(node, requester, dataset, epochs=epochs)
        proc, log, _provider = provider_process(node, tmp_path, "steady", "--once")
        last = f"Epoch {epochs}/{epochs}"
        _wait_for(
            "the last epoch",
            lambda: any(m.startswith(last) for m in _epochs(node, requester, job_id)),
            proc=proc,
        )
        node.stop()
        time.sleep(8)  # the node is away exactly while the provider uploads and reports
        node = node.restart()
        detail = wait_status(node, job_id, {"submitted", "completed"}, timeout=120)
        proc.wait(60)
        events = job_events(node, requester, job_id)
        got = _epochs(node, requester, job_id)
    finally:
        if proc is not None:
            _stop(proc, log)
        node.stop()
    assert detail["dcm_status"] in {"submitted", "completed"}
    assert not any(e.type == "lease_expired" for e in events)
    assert [e.type for e in events].count("claimed") == 1  # no rerun
    assert [m.split(" ")[1] for m in got] == [f"{i}/{epochs}" for i in range(1, epochs + 1)]


# -- item 2: short leases, no fault ------------------------------------------------------------


def test_an_8s_lease_run_with_no_fault_completes_and_pays_once(
    tmp_path, database_url, dataset, training_available
):
    from tests.e2e.conftest import faucet

    env = {"DCM_LEASES__LEASE_SECONDS": "8", "DCM_LEASES__REAPER_INTERVAL_SECONDS": "0.5"}
    node = Served(tmp_path / "node", database_url, **env)
    proc = log = None
    try:
        requester = Account.create()
        faucet(node, requester.address, "1")
        job_id = upload_funded_job(node, requester, dataset, epochs=3)
        proc, log, provider = provider_process(node, tmp_path, "short", "--once")
        wait_status(node, job_id, {"submitted"}, timeout=240)
        proc.wait(60)
        escrow = escrow_of(node)
        key = key_of(node, job_id)
        before = escrow.w3.eth.get_balance(provider.address)
        escrow.accept(requester, key)
        paid = escrow.w3.eth.get_balance(provider.address) - before
        wait_status(node, job_id, {"completed"}, timeout=30)
        events = job_events(node, requester, job_id)
        client = NodeClient(node.url)
        client.sign_in(requester)
        payouts = client.payouts(requester=requester.address)
    finally:
        if proc is not None:
            _stop(proc, log)
        node.stop()
    assert not any(e.type == "lease_expired" for e in events)
    assert [e.type for e in events].count("claimed") == 1
    assert paid == 10**16
    [payout] = payouts  # one settlement, to the provider
    assert payout.recipient == provider.address and payout.amount_wei == 10**16
    text = (tmp_path / "short.log").read_text(errors="replace")
    assert "leases for" in text  # it warned that 8 s is short for reliable renewal
