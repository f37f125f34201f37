"""The clients of job metrics: the SDK's `metrics(id, period, resolution)` and
`dcm job metrics ID`, against a node served over HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi import FastAPI

from dcm.cli import main
from marketplace.errors import BadQuery
from marketplace.sdk.client import NodeClient
from tests.fixtures.jobflow import leased_job
from tests.fixtures.keystores import keystore_json
from tests.fixtures.live import served_in_thread


def test_sdk_and_cli_read_a_jobs_metrics(app: FastAPI, tmp_path: Path) -> None:
    with served_in_thread(app) as url:
        leased = leased_job(url)
        body = {
            "attempt": leased.attempt,
            "samples": [
                {"cpu_millicores": 1500, "memory_bytes": 512 * 2**20, "network_rx_bytes": 4096}
            ],
            "training": [{"epoch": 1, "metrics": {"loss": 0.5, "mAP50": 0.25}}],
        }
        resp = leased.http.post(
            f"/v1/jobs/{leased.job_id}/metrics", json=body, headers=leased.provider
        )
        assert resp.status_code == 200, resp.text

        token = leased.requester["Authorization"].removeprefix("Bearer ")
        with NodeClient(url, token=token) as client:
            data = client.metrics(leased.job_id, period="6h", resolution="5m")
            with pytest.raises(BadQuery):
                client.metrics(leased.job_id, period="6 hours")
        assert [p.value for p in data.cpu] == [1500]
        assert [p.value for p in data.network.rx] == [4096]
        assert data.training[0].metrics == {"loss": 0.5, "mAP50": 0.25}
        assert data.cpu[0].timestamp.tzinfo is not None
        assert repr(data).startswith("<JobMetrics 6h/5m: 1 cpu, 1 memory points, 1 epochs")

        keyfile = tmp_path / "wallet.json"
        keyfile.write_text(keystore_json(leased.account.key, "pw"))
        args = ["--node", url, "--keyfile", str(keyfile), "--password-stdin"]
        out = CliRunner().invoke(main, ["job", "metrics", leased.job_id, *args], input="pw\n")
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert lines[0].startswith("1h at 1m, ")
    assert lines[1].split() == ["time", "cpu_m", "mem_MiB", "rx_KiB", "tx_KiB", "gpu_%"]
    assert lines[2].split()[1:] == ["1500.0", "512.0", "4.0", "-", "-"]
    assert lines[3] == "epoch 1: loss=0.5 mAP50=0.25"
