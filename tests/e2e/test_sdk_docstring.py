"""The SDK's documented notebook flow (the module docstring of `marketplace.sdk.client`),
run line for line against a served node and a real provider (issue 11: the documented
flow broke in three places)."""

from __future__ import annotations

import contextlib
import io
import textwrap
import threading
from decimal import Decimal
from pathlib import Path

import marketplace.sdk.client as sdk
from marketplace.datasets.synthetic import write_shapes_dataset
from marketplace.sdk.models import Event, Job
from tests.e2e.conftest import new_provider, run_provider


def documented_flow() -> str:
    """The indented code block at the top of the module docstring."""
    doc = sdk.__doc__ or ""
    block = doc.split("\n\n")[1]
    assert "NodeClient(" in block and "download_result" in block, block
    return textwrap.dedent(block)


def test_the_docstring_flow_runs(node, requester, tmp_path, monkeypatch, training_available):
    write_shapes_dataset(tmp_path / "ds", train=6, val=3, size=32)
    monkeypatch.chdir(tmp_path)
    provider = new_provider(node)
    done: list[dict] = []
    worker = threading.Thread(
        target=lambda: done.extend(run_provider(node, provider, tmp_path / "provider")),
        daemon=True,
    )
    worker.start()
    code = documented_flow().replace("http://127.0.0.1:8000", node.url)
    printed = io.StringIO()
    scope = {"NodeClient": sdk.NodeClient, "Path": Path, "account": requester}
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "marketplace/sdk/client.py docstring", "exec"), scope)  # noqa: S102
    worker.join(timeout=120)

    client, job = scope["client"], scope["job"]
    assert [d["job_id"] for d in done] == [job.id]
    assert (tmp_path / "out" / "metrics.json").is_file()  # the verified result tree
    lines = printed.getvalue().splitlines()
    assert any(line.startswith("submitted") for line in lines)  # watch reached it, then stopped
    settled = lines[-1]
    assert settled.startswith(f"<Settlement {job.id} accepted 10000000000000000 wei to 0x")
    assert provider.address.lower() in settled.lower()
    assert client.job(job.id).status == "completed"
    assert repr(client).startswith(f"NodeClient({node.url!r}, signed in as 0x")
    assert repr(client.jobs(status="completed")[0]).startswith(
        f"<Job {job.id} image_processing completed reward=0.01 ETH result=Qm"
    )


def test_submit_and_wait_returns_the_submitted_job_and_its_result(
    node, requester, tmp_path, training_available
):
    """One call uploads, funds, follows the job to its result and downloads it; the job
    then shows in the requester's filtered listing."""
    write_shapes_dataset(tmp_path / "ds", train=6, val=3, size=32)
    provider = new_provider(node)
    done: list[dict] = []
    worker = threading.Thread(
        target=lambda: done.extend(run_provider(node, provider, tmp_path / "provider")),
        daemon=True,
    )
    worker.start()
    client = sdk.NodeClient(node.url)
    seen: list[Event] = []
    job = client.submit_and_wait(
        tmp_path / "ds",
        requester,
        model="yolov8n-cls",
        epochs=1,
        imgsz=32,
        classes=["circle", "square", "triangle"],
        reward="0.01",
        out=tmp_path / "out",
        timeout=300,
        on_event=seen.append,
    )
    worker.join(timeout=120)

    assert isinstance(job, Job) and job.status == "submitted"
    assert [d["job_id"] for d in done] == [job.id]
    assert job.result_cid and (tmp_path / "out" / "metrics.json").is_file()
    assert job.requester_address == requester.address and job.reward == Decimal("0.01")
    statuses = [e.to_status for e in seen if e.to_status]
    assert statuses[0] == "awaiting_funding" and statuses[-1] == "submitted"
    assert "pending" in statuses and "running" in statuses
    assert [j.id for j in client.jobs(status="submitted")] == [job.id]
    either = client.jobs(status=["completed", "submitted"], type="image_processing")
    assert [j.id for j in either] == [job.id]
    assert client.jobs(status="completed") == [] and client.jobs(type="other") == []
