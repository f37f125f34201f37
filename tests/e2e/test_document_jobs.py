"""Seed 004's document jobs end to end: a real `dcm serve`, the real provider daemon with the
document handlers (pypdf, Tesseract, pdftoppm, Jinja2), a PDF made in the test (a text page
and a scanned page), per-job webhooks to a loopback receiver, and curl as the seed writes it."""

from __future__ import annotations

import asyncio
import io
import json
import shutil
import subprocess
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account

from tests.fixtures import web
from tests.fixtures.documents import SCANNED_TEXT, TEXT_PAGE_LINES, mixed_pdf, words
from tests.fixtures.engines import require_engine
from tests.fixtures.jobflow import signed_in
from tests.fixtures.receiver import Receiver
from tests.fixtures.served import Served
from tests.node.jobs_api.test_seed004_examples import BATCH
from worker.daemon import DaemonConfig, ProviderDaemon
from worker.executors.documents import HANDLERS, document_executors

pytestmark = pytest.mark.slow


class DaemonThread:
    """The provider daemon on its own thread and event loop, until `stop()`."""

    def __init__(self, url: str, workdir: Path, job_types: list[str], key: str) -> None:
        self.config = DaemonConfig(
            node_url=url,
            workdir=workdir,
            job_types=job_types,
            api_keys=[key],
            claim_wait_seconds=2,
            grace_seconds=30,
            max_concurrent=2,
            name=f"docs-{'-'.join(job_types)}",
        )
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._main, daemon=True)
        self.thread.start()
        assert self.ready.wait(60), "provider daemon did not start"
        if self.error is not None:
            raise self.error

    def _main(self) -> None:
        async def run() -> None:
            executors = document_executors()
            async with ProviderDaemon(self.config, Account.create(), executors) as daemon:
                self.daemon = daemon
                self.loop = asyncio.get_running_loop()
                self.ready.set()
                await daemon.run()

        try:
            asyncio.run(run())
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            self.error = exc
            self.ready.set()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.daemon.request_stop)
        self.thread.join(60)


def _add(url: str, headers: dict[str, str], name: str, data: bytes) -> str:
    """Add a file wrapped in a directory through the Kubo RPC dialect: `/ipfs/<dir>/<name>`."""
    resp = web.post(
        f"{url}/api/v0/add",
        params={"wrap-with-directory": "true"},
        files={"file": (name, data)},
        headers=headers,
        timeout=60,
    )
    assert resp.status_code == 200, resp.text
    lines = [json.loads(x) for x in resp.text.splitlines() if x.strip()]
    root = next(x["Hash"] for x in lines if x["Name"] == "")
    return f"/ipfs/{root}/{name}"


def _submit(url: str, headers: dict[str, str], job_type: str, params: dict[str, Any]) -> str:
    resp = web.post(
        f"{url}/api/jobs/", json={"job_type": job_type, "parameters": params}, headers=headers
    )
    assert resp.status_code == 200, resp.text
    return resp.json()["data"]["job_id"]


def _view(url: str, headers: dict[str, str], job_id: str) -> dict[str, Any]:
    resp = web.get(f"{url}/api/jobs/{job_id}", headers=headers)
    assert resp.status_code == 200, resp.text
    return resp.json()["data"]


def _wait(url: str, headers: dict[str, str], job_id: str, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        view = _view(url, headers, job_id)
        if view["status"] in ("completed", "failed"):
            return view
        assert time.monotonic() < deadline, f"{job_id} still {view['status']}: {view['progress']}"
        time.sleep(0.3)


@pytest.fixture
def world(tmp_path: Path, database_url: str) -> Iterator[dict[str, Any]]:
    for handler in HANDLERS:
        problem = handler().missing()
        require_engine(problem is None, problem or "")
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    node = Served(
        tmp_path / "node",
        database_url,
        DCM_JOBS_INPUT_DIR=str(inputs),
        DCM_LEASES__LEASE_SECONDS="20",
    )
    try:
        user, _account = signed_in(node.url)
        spaces = web.get(f"{node.url}/workspaces", headers=user).json()
        rows = spaces["data"] if isinstance(spaces, dict) else spaces
        if not rows:  # the personal workspace is made on first use (any seed 004 call)
            assert web.get(f"{node.url}/api/jobs/templates", headers=user).status_code == 200
            spaces = web.get(f"{node.url}/workspaces", headers=user).json()
            rows = spaces["data"] if isinstance(spaces, dict) else spaces
        ws = rows[0]["id"]
        keys = {}
        for role in ("member", "provider"):
            resp = web.post(
                f"{node.url}/workspaces/{ws}/api-keys",
                json={"name": role, "role": role},
                headers=user,
            )
            assert resp.status_code == 201, resp.text
            keys[role] = resp.json()["key"]
        yield {
            "node": node,
            "url": node.url,
            "user": user,
            "key": {"Authorization": f"Bearer {keys['member']}"},
            "provider_key": keys["provider"],
            "workspace": ws,
            "inputs": inputs,
            "tmp": tmp_path,
        }
    finally:
        node.stop()


def test_documents_through_a_real_provider(world: dict[str, Any]) -> None:
    url, key, tmp = world["url"], world["key"], world["tmp"]
    pdf_bytes = mixed_pdf(tmp / "minutes.pdf").read_bytes()
    ref = _add(url, world["user"], "minutes.pdf", pdf_bytes)

    # A provider for pdf and transformer only: a session job waits, saying why.
    first = DaemonThread(url, tmp / "p1", ["pdf", "transformer"], world["provider_key"])
    receiver = Receiver()
    try:
        local = world["inputs"] / "annex.pdf"
        mixed_pdf(local, lines=("Annex one",), scanned=("ROOF 2026",))
        notes = _add(url, world["user"], "notes.txt", b"Speaker notes: thank the volunteers")
        session_id = _submit(
            url,
            key,
            "session",
            {"documents": [ref, str(local), notes], "session_name": "Board 2026"},
        )
        time.sleep(3)  # several claim polls of the running provider
        waiting = _view(url, key, session_id)
        assert waiting["status"] == "pending"
        assert "No registered provider runs job type 'session'" in waiting["progress"]["message"]

        # pdf with each extraction method; the combined one with a per-job webhook.
        hook = {"url": receiver.url, "token": "hook-token", "jobId": "client-7"}
        ids = {
            m: _submit(
                url,
                key,
                "pdf",
                {
                    "filename": ref,
                    "extraction_method": m,
                    **({"webhook": hook} if m == "combined" else {}),
                },
            )
            for m in ("native", "ocr", "combined")
        }
        views = {m: _wait(url, key, job_id) for m, job_id in ids.items()}
        for m, view in views.items():
            assert view["status"] == "completed", (m, view["progress"], view["logs"][-5:])
        native = views["native"]["results"]["structured_data"]
        assert TEXT_PAGE_LINES[0] in native["extracted_text"]
        assert not words(SCANNED_TEXT[0]) <= words(native["extracted_text"])
        for m in ("ocr", "combined"):
            text = views[m]["results"]["structured_data"]["extracted_text"]
            for line in SCANNED_TEXT:  # OCR text checked against what was drawn
                assert words(line) <= words(text), (m, text)
        combined = views["combined"]
        assert combined["results"]["structured_data"]["metadata"]["title"] == "Board minutes"
        assert len(combined["results"]["assets"]) == 2
        assert any("[ocr]" in line["message"] for line in combined["logs"])

        # The per-job webhook: progress, then completion with the data, with the token.
        calls = receiver.wait_for(2, timeout=60)
        deadline = time.monotonic() + 60
        while not any(json.loads(c["body"])["phase"] == "completed" for c in receiver.calls):
            assert time.monotonic() < deadline, [c["body"] for c in receiver.calls]
            time.sleep(0.2)
        calls = list(receiver.calls)
        bodies = [json.loads(c["body"]) for c in calls]
        assert all(c["headers"]["Authorization"] == "Bearer hook-token" for c in calls)
        progress = [b for b in bodies if b["phase"] == "processing"]
        assert progress and all(b["process"]["id"] == ids["combined"] for b in progress)
        assert all(set(b) >= {"phase", "progress", "message", "process"} for b in progress)
        (done,) = [b for b in bodies if b["phase"] == "completed"]
        assert done["message"] == "Processing completed" and done["jobId"] == "client-7"
        assert words(SCANNED_TEXT[1]) <= words(done["data"]["extracted_text"])

        # The archive: a zip of the results, the same bytes twice.
        arch = web.get(f"{url}/api/jobs/{ids['combined']}/download-archive", headers=key)
        assert arch.status_code == 200 and arch.headers["content-type"] == "application/zip"
        assert (
            arch.content
            == web.get(f"{url}/api/jobs/{ids['combined']}/download-archive", headers=key).content
        )
        archive = zipfile.ZipFile(io.BytesIO(arch.content))
        assert {"result.json", "text.md", "pages/page-001.png", "pages/page-002.png"} <= set(
            archive.namelist()
        )
        assert json.loads(archive.read("result.json")) == combined["results"]["structured_data"]

        # transformer with a stored template over the pdf job's result.
        saved = web.post(
            f"{url}/api/jobs/templates",
            json={
                "name": "MeetingMinutes",
                "source": (
                    "# {{ data.metadata.title }}\n{{ data.pages | length }} pages\n{{ text }}"
                ),
            },
            headers=key,
        )
        assert saved.status_code == 200, saved.text
        t_id = _submit(
            url,
            key,
            "transformer",
            {"template": "MeetingMinutes", "source_job_id": ids["combined"]},
        )
        t_view = _wait(url, key, t_id)
        assert t_view["status"] == "completed", t_view["logs"][-5:]
        out = t_view["results"]["structured_data"]["output"]
        assert out.startswith("# Board minutes\n2 pages\n") and TEXT_PAGE_LINES[1] in out

        # The same jobs in /v1 and seed 001, with their words; logs through the stream.
        v1 = web.get(f"{url}/v1/jobs/{ids['ocr']}", headers=world["user"]).json()["data"]
        assert v1["status"] == "completed" and v1["type"] == "pdf"
        s001 = web.get(
            f"{url}/workspace/{world['workspace']}/jobs/{ids['ocr']}", headers=world["user"]
        ).json()
        assert s001["status"] == "success"
        logs = web.get(f"{url}/v1/jobs/{ids['ocr']}/logs", headers=world["user"]).json()
        assert any("[ocr]" in (e.get("message") or "") for e in logs["data"])

        # A batch of five, with counts.
        batch = web.post(
            f"{url}/api/jobs/batch",
            json={
                "batch_name": "Five",
                "jobs": [
                    {"job_type": "pdf", "parameters": {"filename": ref, "page_images": False}}
                    for _ in range(5)
                ],
            },
            headers=key,
        )
        assert batch.status_code == 200, batch.text
        batch_id = batch.json()["data"]["batch_id"]
        assert batch.json()["data"]["batch"]["job_count"] == 5
        deadline = time.monotonic() + 180
        while True:
            b = web.get(f"{url}/api/jobs/batch/{batch_id}", headers=key).json()["data"]
            if b["completed_count"] + b["failed_count"] == 5:
                break
            assert time.monotonic() < deadline, b
            time.sleep(0.5)
        assert b["completed_count"] == 5 and b["failed_count"] == 0 and b["status"] == "completed"
    finally:
        first.stop()
        receiver.close()

    # A provider that runs sessions too arrives: the waiting session runs, step by step.
    second = DaemonThread(url, tmp / "p2", ["pdf", "transformer", "session"], world["provider_key"])
    try:
        s_view = _wait(url, key, session_id, timeout=240)
        assert s_view["status"] == "completed", s_view["logs"][-5:]
        data = s_view["results"]["structured_data"]
        assert data["document_count"] == 3
        assert [d["kind"] for d in data["documents"]] == ["pdf", "pdf", "text"]
        assert words("ROOF 2026") <= words(data["documents"][1]["extracted_text"])
        assert "thank the volunteers" in data["extracted_text"]
        steps = {
            line["message"].split("]")[0]
            for line in s_view["logs"]
            if line["message"].startswith("[")
        }
        assert {"[doc1:native", "[doc1:ocr", "[doc2:ocr", "[doc3:text"} <= steps
    finally:
        second.stop()


# Seed 004's curl examples, copied verbatim (the tests never read the seeds' folder).
SEED_CURLS = {
    "create": r"""curl -X POST "http://localhost:5001/api/jobs/" \
  -H "Authorization: Bearer YOUR_API_KEY" \
  -H "Content-Type: application/json" \
  -d '{
    "job_type": "pdf",
    "parameters": {
      "filename": "/path/to/file.pdf",
      "extraction_method": "combined"
    }
  }'""",
    "get": r'''curl -X GET "http://localhost:5001/api/jobs/job-id-123" \
  -H "Authorization: Bearer YOUR_API_KEY"''',
    "batch": r'''curl -X GET "http://localhost:5001/api/jobs/batch/batch-id-123" \
  -H "Authorization: Bearer YOUR_API_KEY"''',
    "archive": r"""curl -X GET "http://localhost:5001/api/jobs/job-id-123/download-archive" \
  -H "Authorization: Bearer YOUR_API_KEY" \
  -o archive.zip""",
}


def test_the_seed_curl_examples_as_written(world: dict[str, Any]) -> None:
    """Each curl of seed 004 as its text reads, run by bash; only the host, the key and the
    example ids are substituted. The archive is downloaded from a job a provider finished."""
    require_engine(shutil.which("curl") is not None, "curl is not installed")
    url, key, tmp = world["url"], world["key"], world["tmp"]
    api_key = key["Authorization"].removeprefix("Bearer ")

    def curl(name: str, **ids: str) -> tuple[int, bytes]:
        command = SEED_CURLS[name].replace("http://localhost:5001", url)
        command = command.replace("YOUR_API_KEY", api_key)
        for example, real in ids.items():
            command = command.replace(example.replace("_", "-"), real)
        out = subprocess.run(
            ["bash", "-c", command + " -s -w '\\n%{http_code}'"],
            capture_output=True,
            check=True,
            timeout=60,
            cwd=tmp,
        ).stdout
        body, _, code = out.rpartition(b"\n")
        return int(code), body

    code, body = curl("create")
    assert code == 200, body
    job_id = json.loads(body)["data"]["job_id"]
    code, body = curl("get", job_id_123=job_id)
    assert code == 200
    view = json.loads(body)["data"]
    assert view["status"] == "failed" and "file not found" in view["progress"]["message"]

    headers = {**key, "Content-Type": "application/json"}
    resp = web.post(f"{url}/api/jobs/batch", content=BATCH, headers=headers)  # the seed's body
    assert resp.status_code == 200, resp.text
    code, body = curl("batch", batch_id_123=resp.json()["data"]["batch_id"])
    assert code == 200 and json.loads(body)["data"]["failed_count"] == 2

    code, _ = curl("archive", job_id_123=job_id)
    assert code == 404  # a failed job has no archive: the seed's error envelope
    assert json.loads((tmp / "archive.zip").read_bytes())["status"] == "error"

    mixed_pdf(world["inputs"] / "file.pdf")
    provider = DaemonThread(url, tmp / "p-curl", ["pdf"], world["provider_key"])
    try:
        done = _submit(url, key, "pdf", {"filename": str(world["inputs"] / "file.pdf")})
        assert _wait(url, key, done)["status"] == "completed"
    finally:
        provider.stop()
    code, _ = curl("archive", job_id_123=done)
    assert code == 200
    with zipfile.ZipFile(tmp / "archive.zip") as archive:
        names = set(archive.namelist())
        assert {"result.json", "text.md"} <= names
        assert TEXT_PAGE_LINES[0] in archive.read("text.md").decode()
