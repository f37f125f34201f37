"""`dcm demo`, the README's main job, runs end to end and prints its summary."""

from __future__ import annotations

import subprocess
import sys

from tests.fixtures.served import REPO, dcm_env


def test_dcm_demo_runs_from_upload_to_payout(tmp_path, training_available):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "dcm.cli",
            "demo",
            "--epochs",
            "1",
            "--workdir",
            str(tmp_path / "demo"),
        ],
        env=dcm_env(tmp_path / "unused", None),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    for field in (
        "job_id",
        "dataset_cid",
        "result_cid",
        "final_metrics",
        "payout_tx",
        "provider_balance_change_eth",
    ):
        assert f"    {field}" in out, out[-2000:]
    assert "Epoch 1/1" in out
    change = float(out.split("provider_balance_change_eth", 1)[1].split()[0])
    assert 0.0099 < change <= 0.01  # the 0.01 ETH reward, less the provider's gas
    assert (tmp_path / "demo" / "result" / "metrics.json").is_file()
