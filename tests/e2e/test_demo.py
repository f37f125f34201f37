"""`dcm demo`, the README's main job, runs end to end, prints its summary and shows a model
that learned: the validation top-1 accuracy of the shape classifier goes from chance after
the first epoch to at least 0.9 after the last (1.0 on the fixed seed at the time of
writing: 0.33 -> 0.98, the margin is for other CPUs' floating point)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from dcm.demo import EPOCHS
from tests.fixtures.served import REPO, dcm_env

THRESHOLD = 0.9


def test_dcm_demo_learns_from_upload_to_payout(tmp_path, training_available):
    done = subprocess.run(
        [sys.executable, "-m", "dcm.cli", "demo", "--workdir", str(tmp_path / "demo")],
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
        "learned",
        "payout_tx",
        "provider_balance_change_eth",
    ):
        assert f"    {field}" in out, out[-2000:]
    assert f"Epoch {EPOCHS}/{EPOCHS}" in out
    change = float(out.split("provider_balance_change_eth", 1)[1].split()[0])
    assert 0.0099 < change <= 0.01  # the 0.01 ETH reward, less the provider's gas

    learned = re.search(r"learned\s+top1 ([\d.]+) after epoch 1, ([\d.]+) after epoch (\d+)", out)
    assert learned, out[-2000:]
    first, last, last_epoch = float(learned[1]), float(learned[2]), int(learned[3])
    assert last_epoch == EPOCHS
    assert last >= THRESHOLD, out[-2000:]
    assert first <= 0.6, out[-2000:]  # three classes: the first epoch is near chance

    metrics = json.loads((tmp_path / "demo" / "result" / "metrics.json").read_text())
    assert metrics["task"] == "classify"
    assert metrics["classes"] == ["circle", "square", "triangle"]
    assert [e["top1"] for e in (metrics["per_epoch"][0], metrics["per_epoch"][-1])] == [
        first,
        last,
    ]
    assert metrics["final"]["top1"] >= THRESHOLD
