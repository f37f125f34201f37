"""The SDK's documented notebook flow (the module docstring of `marketplace.sdk.client`),
run line for line against a served node and a real provider (issue 11: the documented
flow broke in three places)."""

from __future__ import annotations

import contextlib
import io
import textwrap
import threading
from pathlib import Path

import marketplace.sdk.client as sdk
from marketplace.datasets.synthetic import write_shapes_dataset
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
    assert [d["job_id"] for d in done] == [f"job_{job['id']}"]
    assert (tmp_path / "out" / "metrics.json").is_file()  # the verified result tree
    lines = printed.getvalue().splitlines()
    assert any(line.startswith("submitted") for line in lines)  # watch reached it, then stopped
    settled = lines[-1]
    assert provider.address.lower() in settled.lower()
    assert client.job(job["id"]).status == "completed"
    assert repr(client).startswith(f"NodeClient({node.url!r}, signed in as 0x")
    assert repr(client.jobs(status="completed")[0]).startswith(f"<Job job_{job['id']} completed")
