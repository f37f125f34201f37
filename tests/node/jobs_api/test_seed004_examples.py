"""Seed 004's curl examples, as written (host and `YOUR_API_KEY` substituted), against the
node: envelopes, status words, errors, batches, archives, templates, and the same job seen
through seed 001 and `/v1`."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from node.db import session_scope
from node.models.jobs import Job
from tests.node.jobs_api.conftest import Caller

# The seed's request bodies, verbatim.
CREATE = """{
    "job_type": "pdf",
    "parameters": {
      "filename": "/path/to/file.pdf",
      "extraction_method": "combined"
    }
  }"""
BATCH = """{
  "batch_name": "My Batch",
  "jobs": [
    {
      "job_type": "pdf",
      "parameters": {
        "filename": "/path/to/file1.pdf"
      }
    },
    {
      "job_type": "pdf",
      "parameters": {
        "filename": "/path/to/file2.pdf"
      }
    }
  ]
}"""
JSON = {"Content-Type": "application/json"}


def _post(client: TestClient, path: str, body: str | dict, headers: dict[str, str]):
    data = body if isinstance(body, str) else json.dumps(body)
    return client.post(path, content=data, headers={**headers, **JSON})


def test_create_job_as_written_then_it_fails_with_file_not_found(
    client: TestClient, caller: Caller
) -> None:
    resp = _post(client, "/api/jobs/", CREATE, caller.key)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["status"] == "success"
    data = body["data"]
    job = data["job"]
    assert data["job_id"] == job["job_id"] and job["job_id"].startswith("job_")
    assert job["job_type"] == "pdf"
    assert job["parameters"] == {"filename": "/path/to/file.pdf", "extraction_method": "combined"}
    assert job["created_at"].endswith("Z")

    got = client.get(f"/api/jobs/{job['job_id']}", headers=caller.key)
    assert got.status_code == 200, got.text
    view = got.json()["data"]
    assert view["status"] == "failed"
    assert "file not found: /path/to/file.pdf" in view["progress"]["message"]
    assert view["progress"]["step"] == "failed"
    assert view["results"] is None
    assert {"timestamp", "level", "message"} <= set(view["logs"][0])
    assert any("file not found" in line["message"] for line in view["logs"])
    assert view["updated_at"].endswith("Z")


def test_without_trailing_slash_and_with_a_user_token(client: TestClient, caller: Caller) -> None:
    resp = _post(client, "/api/jobs", CREATE, caller.user)
    assert resp.status_code == 200, resp.text
    assert resp.json()["data"]["job"]["job_type"] == "pdf"


def test_batch_as_written_with_counts(client: TestClient, caller: Caller) -> None:
    resp = _post(client, "/api/jobs/batch", BATCH, caller.key)
    assert resp.status_code == 200, resp.text
    data = resp.json()["data"]
    batch = data["batch"]
    assert batch["batch_id"] == data["batch_id"] and batch["batch_name"] == "My Batch"
    assert batch["job_count"] == 2 and len(batch["jobs"]) == 2
    got = client.get(f"/api/jobs/batch/{data['batch_id']}", headers=caller.key)
    assert got.status_code == 200, got.text
    view = got.json()["data"]
    assert view["job_count"] == 2 and view["failed_count"] == 2 and view["completed_count"] == 0
    assert view["status"] == "failed"
    assert [set(j) for j in view["jobs"]] == [{"job_id", "status"}] * 2


def test_errors_use_the_seed_envelope(client: TestClient, caller: Caller) -> None:
    missing = client.get("/api/jobs/job_999999", headers=caller.key)
    assert missing.status_code == 404
    assert missing.json()["status"] == "error"
    assert missing.json()["error"]["code"] == "JOB_NOT_FOUND"
    anonymous = client.get("/api/jobs/job_1")
    assert anonymous.status_code == 401 and anonymous.json()["status"] == "error"
    no_batch = client.get("/api/jobs/batch/batch_nope", headers=caller.key)
    assert no_batch.status_code == 404 and no_batch.json()["error"]["code"] == "BATCH_NOT_FOUND"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"job_type": "pdf", "parameters": {}}, "parameters.filename"),
        (
            {"job_type": "pdf", "parameters": {"filename": "a.pdf", "extraction_method": "magic"}},
            "parameters.extraction_method",
        ),
        ({"job_type": "pdf", "parameters": {"filename": "a.pdf", "dpi": 5}}, "parameters.dpi"),
        ({"job_type": "pdf", "parameters": {"filename": "a", "bogus": 1}}, "parameters.bogus"),
        ({"job_type": "video", "parameters": {}}, "job_type"),
        ({"job_type": "transformer", "parameters": {"text": "x"}}, "parameters.template"),
        (
            {"job_type": "transformer", "parameters": {"template": "Nope", "text": "x"}},
            "parameters.template",
        ),
        (
            {"job_type": "transformer", "parameters": {"template_source": "{% if %}", "text": "x"}},
            "parameters.template_source",
        ),
        ({"job_type": "session", "parameters": {"documents": []}}, "parameters.documents"),
        (
            {"job_type": "pdf", "parameters": {"filename": "a", "webhook": {"token": "t"}}},
            "parameters.webhook.url",
        ),
    ],
)
def test_bad_parameters_are_422_naming_the_field(
    client: TestClient, caller: Caller, body: dict, field: str
) -> None:
    resp = _post(client, "/api/jobs/", body, caller.key)
    assert resp.status_code == 422, resp.text
    err = resp.json()["error"]
    assert resp.json()["status"] == "error" and err["code"] == "INVALID_FIELD"
    assert err["details"]["field"] == field and field in err["message"]


def test_mistral_ocr_is_refused_at_submit_with_a_clear_message(
    client: TestClient, caller: Caller
) -> None:
    body = {
        "job_type": "pdf",
        "parameters": {
            "filename": "/path/to/file.pdf",
            "extraction_method": "mistral_ocr_with_pages",
        },
    }
    resp = _post(client, "/api/jobs/", body, caller.key)
    assert resp.status_code == 422
    err = resp.json()["error"]
    assert err["details"]["field"] == "parameters.extraction_method"
    assert "Mistral" in err["message"] and "native, ocr or combined" in err["message"]


def test_a_bad_job_in_a_batch_names_its_index_and_creates_nothing(
    app: FastAPI, client: TestClient, caller: Caller
) -> None:
    body = json.loads(BATCH)
    body["jobs"][1]["parameters"] = {}
    resp = _post(client, "/api/jobs/batch", body, caller.key)
    assert resp.status_code == 422
    assert resp.json()["error"]["details"]["field"] == "jobs[1].parameters.filename"
    with session_scope(app.state.runtime.sessionmaker) as session:
        assert session.query(Job).count() == 0


def _ipfs_pdf(app: FastAPI) -> str:
    store = app.state.runtime.content
    with store.hold():  # the block collector may run meanwhile (as the node's own adds do)
        cid = store.add_bytes(b"%PDF-1.4 not really", pin=True)
    return f"ipfs://{cid}"


def test_a_job_no_provider_runs_stays_pending_saying_so_and_shows_in_every_dialect(
    app: FastAPI, client: TestClient, caller: Caller
) -> None:
    body = {"job_type": "pdf", "parameters": {"filename": _ipfs_pdf(app)}}
    resp = _post(client, "/api/jobs/", body, caller.key)
    assert resp.status_code == 200, resp.text
    job = resp.json()["data"]["job"]
    assert job["status"] == "pending"
    view = client.get(f"/api/jobs/{job['job_id']}", headers=caller.key).json()["data"]
    assert view["status"] == "pending" and view["progress"]["step"] == "pending"
    assert "No registered provider runs job type 'pdf'" in view["progress"]["message"]

    v1 = client.get(f"/v1/jobs/{job['job_id']}", headers=caller.user)
    assert v1.status_code == 200 and v1.json()["data"]["status"] == "pending"
    assert v1.json()["data"]["type"] == "pdf"
    s001 = client.get(f"/workspace/{caller.workspace_id}/jobs/{job['job_id']}", headers=caller.user)
    assert s001.status_code == 200 and s001.json()["status"] == "pending"
    events = client.get(f"/v1/jobs/{job['job_id']}/events", headers=caller.user)
    assert events.status_code == 200, events.text


def _complete(app: FastAPI, job_id: str, tmp_path: Path) -> str:
    """Give the job a result directory in the store, as a provider would."""
    out = tmp_path / "result"
    (out / "pages").mkdir(parents=True)
    (out / "result.json").write_text('{"extracted_text": "Hello"}')
    (out / "pages" / "page-001.png").write_bytes(b"\x89PNG fake")
    store = app.state.runtime.content
    with store.hold():
        cid = store.add_path(out, pin=True, cid_version=1, raw_leaves=True)
    with session_scope(app.state.runtime.sessionmaker) as session:
        job = session.get(Job, int(job_id.removeprefix("job_")))
        assert job is not None
        job.status = "completed"
        job.result_cid = cid
        job.result = {
            "structured_data": {"extracted_text": "Hello", "metadata": {"pages": 1}},
            "assets": ["pages/page-001.png"],
        }
    return cid


def test_archive_is_a_deterministic_zip_and_use_cache_reuses_the_result(
    app: FastAPI, client: TestClient, caller: Caller, tmp_path: Path
) -> None:
    ref = _ipfs_pdf(app)
    body = {"job_type": "pdf", "parameters": {"filename": ref, "extraction_method": "native"}}
    first = _post(client, "/api/jobs/", body, caller.key).json()["data"]["job_id"]
    early = client.get(f"/api/jobs/{first}/download-archive", headers=caller.key)
    assert early.status_code == 404 and early.json()["error"]["code"] == "ARCHIVE_NOT_FOUND"
    cid = _complete(app, first, tmp_path)

    view = client.get(f"/api/jobs/{first}", headers=caller.key).json()["data"]
    assert view["status"] == "completed" and view["progress"]["percent"] == 100
    assert view["results"]["structured_data"]["extracted_text"] == "Hello"
    assert view["results"]["assets"] == [f"/ipfs/{cid}/pages/page-001.png"]
    assert view["results"]["target_dir"] == f"/ipfs/{cid}"

    one = client.get(f"/api/jobs/{first}/download-archive", headers=caller.key)
    two = client.get(f"/api/jobs/{first}/download-archive", headers=caller.key)
    assert one.status_code == 200 and one.headers["content-type"] == "application/zip"
    assert one.content == two.content
    names = zipfile.ZipFile(io.BytesIO(one.content)).namelist()
    assert names == ["pages/", "pages/page-001.png", "result.json"]

    cached = _post(
        client,
        "/api/jobs/",
        {**body, "parameters": {**body["parameters"], "use_cache": True}},
        caller.key,
    )
    job = cached.json()["data"]["job"]
    assert job["status"] == "completed"
    again = client.get(f"/api/jobs/{job['job_id']}", headers=caller.key).json()["data"]
    assert (
        again["results"]["cached_from"] == first
        and again["results"]["target_dir"] == f"/ipfs/{cid}"
    )
    other = {**body["parameters"], "extraction_method": "ocr", "use_cache": True}
    fresh = _post(client, "/api/jobs/", {"job_type": "pdf", "parameters": other}, caller.key)
    assert fresh.json()["data"]["job"]["status"] == "pending"  # other parameters: no reuse


def test_templates_are_stored_and_a_transformer_needs_a_completed_source(
    app: FastAPI, client: TestClient, caller: Caller, tmp_path: Path
) -> None:
    bad = _post(client, "/api/jobs/templates", {"name": "X", "source": "{{ "}, caller.key)
    assert bad.status_code == 422 and bad.json()["error"]["details"]["field"] == "source"
    ok = _post(
        client,
        "/api/jobs/templates",
        {"name": "MeetingMinutes", "source": "# Minutes\n{{ data.extracted_text }}"},
        caller.key,
    )
    assert ok.status_code == 200, ok.text
    listed = client.get("/api/jobs/templates", headers=caller.key).json()["data"]
    assert [t["name"] for t in listed] == ["MeetingMinutes"]

    ref = _ipfs_pdf(app)
    src = _post(
        client, "/api/jobs/", {"job_type": "pdf", "parameters": {"filename": ref}}, caller.key
    )
    src_id = src.json()["data"]["job_id"]
    body = {
        "job_type": "transformer",
        "parameters": {"template": "MeetingMinutes", "source_job_id": src_id},
    }
    early = _post(client, "/api/jobs/", body, caller.key)
    assert early.status_code == 422
    assert early.json()["error"]["details"]["field"] == "parameters.source_job_id"
    _complete(app, src_id, tmp_path)
    later = _post(client, "/api/jobs/", body, caller.key)
    assert later.status_code == 200, later.text
    with session_scope(app.state.runtime.sessionmaker) as session:
        job = session.get(Job, int(later.json()["data"]["job_id"].removeprefix("job_")))
        assert job is not None
        assert job.spec["input_data"]["extracted_text"] == "Hello"
        assert job.spec["template_source"].startswith("# Minutes")


def test_a_webhook_token_is_never_echoed(client: TestClient, caller: Caller) -> None:
    body = {
        "job_type": "pdf",
        "parameters": {
            "filename": "/path/to/file.pdf",
            "webhook": {"url": "http://127.0.0.1:9/hook", "token": "s3cr3t", "jobId": "client-1"},
        },
    }
    resp = _post(client, "/api/jobs/", body, caller.key)
    assert resp.status_code == 200, resp.text
    assert "s3cr3t" not in resp.text
    assert resp.json()["data"]["job"]["parameters"]["webhook"] == {
        "url": "http://127.0.0.1:9/hook",
        "jobId": "client-1",
    }


def test_inputs_under_the_operators_directory_are_pinned_and_nothing_else_is_read(
    settings, tmp_path: Path
) -> None:
    from tests.fixtures.app import create_app
    from tests.fixtures.factories import auth_headers, make_user

    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "a.pdf").write_bytes(b"%PDF-1.4 input")
    secret = tmp_path / "secret.pdf"
    secret.write_bytes(b"%PDF-1.4 not yours")
    (inputs / "escape.pdf").symlink_to(secret)
    app = create_app(settings.model_copy(update={"jobs_input_dir": inputs}))
    with TestClient(app) as client:
        user = make_user(app)
        assert user.username is not None
        headers = auth_headers(client, user.username)
        cases = {
            str(inputs / "a.pdf"): "pending",
            str(inputs / "escape.pdf"): "failed",
            str(secret): "failed",
            str(inputs / ".." / "secret.pdf"): "failed",
            "a.pdf": "failed",
        }
        for ref, word in cases.items():
            body = {"job_type": "pdf", "parameters": {"filename": ref}}
            resp = _post(client, "/api/jobs/", body, headers)
            assert resp.status_code == 200, resp.text
            assert resp.json()["data"]["job"]["status"] == word, ref
        with session_scope(app.state.runtime.sessionmaker) as session:
            first = session.query(Job).order_by(Job.id).first()
            assert first is not None and first.folder_cid
            assert app.state.runtime.content.is_pinned(first.folder_cid)
            names = [e.name for e in app.state.runtime.content.ls(first.folder_cid)]
            assert names == ["00-a.pdf"]


def test_a_per_job_webhook_hears_the_end_with_its_token_and_no_other_job(
    settings, tmp_path: Path
) -> None:
    from node.config import EventSettings
    from tests.fixtures.app import create_app
    from tests.fixtures.factories import auth_headers, make_user
    from tests.fixtures.receiver import Receiver

    fast = EventSettings(webhook_backoff_base_seconds=0.05, webhook_backoff_max_seconds=0.1)
    app = create_app(settings.model_copy(update={"events": fast}))
    receiver = Receiver([503])  # the first try fails: the outbox retries
    try:
        with TestClient(app) as client:
            user = make_user(app)
            assert user.username is not None
            headers = auth_headers(client, user.username)
            hook = {"url": receiver.url, "token": "tok-1", "jobId": "client-9"}
            body = {"job_type": "pdf", "parameters": {"filename": "/nope.pdf", "webhook": hook}}
            job_id = _post(client, "/api/jobs/", body, headers).json()["data"]["job_id"]
            other = {"job_type": "pdf", "parameters": {"filename": "/other.pdf"}}
            assert _post(client, "/api/jobs/", other, headers).status_code == 200
            calls = receiver.wait_for(2)
            assert len({c["headers"]["X-DCM-Delivery"] for c in calls}) == 1  # one, retried
            for call in calls:
                assert call["headers"]["Authorization"] == "Bearer tok-1"
                payload = json.loads(call["body"])
                assert payload["phase"] == "failed" and payload["jobId"] == "client-9"
                assert "file not found: /nope.pdf" in payload["message"]
                assert payload["data"] is None
            listed = client.get("/v1/webhooks", headers=headers).json()["data"]
            assert listed == []  # a per-job webhook is not a subscription
            assert job_id.startswith("job_")
    finally:
        receiver.close()


def test_a_per_job_webhook_into_a_private_range_is_refused_outside_development(
    settings,
) -> None:
    from node.config import EventSettings
    from tests.fixtures.app import create_app
    from tests.fixtures.factories import auth_headers, make_user

    strict = EventSettings(webhook_allow_private_targets=False)
    app = create_app(settings.model_copy(update={"events": strict}))
    with TestClient(app) as client:
        user = make_user(app)
        assert user.username is not None
        headers = auth_headers(client, user.username)
        hook = {"url": "http://10.0.0.7/hook", "token": "t"}
        body = {"job_type": "pdf", "parameters": {"filename": "/x.pdf", "webhook": hook}}
        resp = _post(client, "/api/jobs/", body, headers)
        assert resp.status_code >= 400 and resp.status_code < 500
        assert resp.json()["error"]["code"] == "WEBHOOK_TARGET_REFUSED"
        with session_scope(app.state.runtime.sessionmaker) as session:
            assert session.query(Job).count() == 0  # nothing created


def test_inputs_the_node_cannot_find_fail_the_job_never_the_request(
    app: FastAPI, client: TestClient, caller: Caller
) -> None:
    store = app.state.runtime.content
    folder = Path(str(app.state.runtime.settings.data_dir)) / "in"
    folder.mkdir(parents=True)
    (folder / "a.pdf").write_bytes(b"%PDF-1.4 a")
    with store.hold():
        root = store.add_path(folder, pin=True, cid_version=1, raw_leaves=True)
    refs = {
        f"/ipfs/{root}/a.pdf": "pending",
        f"ipfs://{root}/a.pdf": "pending",
        f"ipfs://{root}/missing.pdf": "failed",
        f"/ipfs/{root}": "failed",  # a directory is not a file
        "ipfs://" + "Q" * 46 + "/a.pdf": "failed",  # not a CID
        "ipfs://bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy/x": "failed",
        "relative/file.pdf": "failed",
    }
    for ref, word in refs.items():
        resp = _post(
            client, "/api/jobs/", {"job_type": "pdf", "parameters": {"filename": ref}}, caller.key
        )
        assert resp.status_code == 200, (ref, resp.text)
        job = resp.json()["data"]["job"]
        assert job["status"] == word, (ref, job)
        if word == "failed":
            assert job["error"]["message"].startswith("file not found"), job
