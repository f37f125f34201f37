"""The provider daemon's shutdown signals and the requester's `dcm job submit`, as
processes a user would run."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

from marketplace.sdk.client import NodeClient
from tests.e2e.conftest import (
    job_events,
    new_provider,
    provider_process,
    run_provider,
    upload_funded_job,
    wait_for_epoch,
    wait_status,
)
from tests.fixtures.keystores import keystore_json
from tests.fixtures.served import REPO, dcm_env


def test_first_sigterm_drains_the_running_job(
    node, requester, dataset, tmp_path, training_available
):
    job_id = upload_funded_job(node, requester, dataset, epochs=4)
    proc, log, _ = provider_process(node, tmp_path, "drain")
    try:
        wait_for_epoch(node, requester, job_id, proc)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(120) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    assert wait_status(node, job_id, {"submitted"}, timeout=10)["dcm_status"] == "submitted"


def test_second_sigterm_hands_the_job_back_at_once(
    node, requester, dataset, tmp_path, training_available
):
    job_id = upload_funded_job(node, requester, dataset, epochs=30)
    proc, log, _ = provider_process(node, tmp_path, "abort")
    try:
        wait_for_epoch(node, requester, job_id, proc)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    # released, not left to the reaper: pending again at once, with a `released` event
    assert wait_status(node, job_id, {"pending"}, timeout=5)["dcm_status"] == "pending"
    assert any(e.type == "released" for e in job_events(node, requester, job_id))


def test_dcm_job_submit_uploads_funds_follows_and_downloads(
    node, requester, dataset, tmp_path, training_available
):
    keyfile = tmp_path / "requester.json"
    keyfile.write_text(keystore_json(requester.key, "pw"))
    provider = new_provider(node)
    done: list = []
    worker = threading.Thread(
        target=lambda: done.append(run_provider(node, provider, tmp_path / "provider"))
    )
    worker.start()
    out = tmp_path / "model"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "dcm.cli",
            "job",
            "submit",
            str(dataset),
            "--model",
            "yolov8n",
            "--epochs",
            "2",
            "--imgsz",
            "64",
            "--classes",
            "cat,dog",
            "--reward",
            "0.01",
            "--export-format",
            "pt",
            "--node",
            node.url,
            "--keyfile",
            str(keyfile),
            "--out",
            str(out),
        ],
        env=dcm_env(tmp_path / "unused", None, DCM_WALLET_PASSWORD="pw"),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    worker.join(120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "funding 0.01 ETH" in result.stdout and "is submitted" in result.stdout
    assert "Epoch 2/2" in result.stdout
    assert (out / "weights" / "best.pt").is_file() and (out / "metrics.json").is_file()
    job_id = result.stdout.split("job ", 1)[1].split(":", 1)[0]
    client = NodeClient(node.url)
    client.sign_in(requester)
    assert client.job(job_id).status == "submitted"
