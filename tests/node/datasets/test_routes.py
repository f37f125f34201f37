"""GET routes of seed 000: dataset zip, open jobs, job detail."""

from __future__ import annotations

import io
import zipfile

import pytest

from marketplace.content.importer import import_path
from marketplace.datasets.synthetic import write_classification_dataset, write_detection_dataset
from marketplace.jobs.states import JobStatus
from node.db import session_scope
from node.jobs.service import create_job, transition
from tests.fixtures.datasets import files_of, form
from tests.fixtures.factories import auth_headers, make_user, make_workspace

UPLOAD = "/jobs/image_processing/upload"


@pytest.fixture
def job(client, tmp_path):
    root = write_detection_dataset(tmp_path / "dataset", train=5, val=3)
    resp = client.post(UPLOAD, data=form(), files=files_of(root))
    assert resp.status_code == 200, resp.text
    return resp.json()["job"]


def test_dataset_zip_unpacks_to_exactly_the_folder_cid(client, job, tmp_path):
    resp = client.get(f"/jobs/get-dataset/{job['id']}")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/zip"
    assert resp.headers["content-disposition"] == f'attachment; filename="dataset_{job["id"]}.zip"'
    assert int(resp.headers["content-length"]) == len(resp.content)
    out = tmp_path / "unpacked"
    with zipfile.ZipFile(io.BytesIO(resp.content)) as zf:
        assert zf.testzip() is None
        zf.extractall(out)
    assert str(import_path(out).cid) == job["folder_cid"]


def test_dataset_zip_is_identical_every_time(client, job):
    first = client.get(f"/jobs/get-dataset/{job['id']}").content
    second = client.get(f"/jobs/get-dataset/job_{job['id']}").content
    assert first == second


def test_same_dataset_in_two_jobs_gives_the_same_zip_bytes(client, job, tmp_path):
    root = write_detection_dataset(tmp_path / "again", train=5, val=3)
    other = client.post(UPLOAD, data=form(reward="2"), files=files_of(root)).json()["job"]
    assert other["folder_cid"] == job["folder_cid"]
    a = client.get(f"/jobs/get-dataset/{job['id']}").content
    b = client.get(f"/jobs/get-dataset/{other['id']}").content
    assert a == b


def test_classification_dataset_round_trips(client, tmp_path):
    root = write_classification_dataset(tmp_path / "cls", classes=("cat", "dog"))
    job = client.post(UPLOAD, data=form(model="yolov8n-cls"), files=files_of(root)).json()["job"]
    data = client.get(f"/jobs/get-dataset/{job['id']}").content
    out = tmp_path / "unpacked"
    zipfile.ZipFile(io.BytesIO(data)).extractall(out)
    assert str(import_path(out).cid) == job["folder_cid"] == str(import_path(root).cid)


@pytest.mark.parametrize("raw", ["999", "job_999", "abc", "0", "-1"])
def test_unknown_job_is_404(client, raw):
    for url in (f"/jobs/get-dataset/{raw}", f"/jobs/image_processing/get-job/{raw}"):
        resp = client.get(url)
        assert resp.status_code == 404
        assert resp.json() == {"detail": "Job not found", "code": "JOB_NOT_FOUND"}


def _plain_job(app, job_type="container", status=JobStatus.PENDING, **kw):
    with session_scope(app.state.runtime.sessionmaker) as session:
        job_id = create_job(session, job_type=job_type, status=status, **kw).id
    return job_id


def test_job_without_a_dataset_is_404(client, app):
    # escrowed (open market): seed 000 shows no private job at all
    job_id = _plain_job(app, job_type="image_processing", reward_wei=10**15)
    resp = client.get(f"/jobs/get-dataset/{job_id}")
    assert resp.status_code == 404 and resp.json()["code"] == "DATASET_NOT_FOUND"


def test_detail_of_another_job_type_is_404(client, app):
    job_id = _plain_job(app)
    assert client.get(f"/jobs/image_processing/get-job/{job_id}").status_code == 404


def test_detail_accepts_both_id_spellings(client, job):
    a = client.get(f"/jobs/image_processing/get-job/{job['id']}").json()
    b = client.get(f"/jobs/image_processing/get-job/job_{job['id']}").json()
    assert a == b == job


def test_get_jobs_lists_pending_image_jobs_oldest_first(client, app, job, tmp_path):
    root = write_detection_dataset(tmp_path / "second", seed=3)
    second = client.post(UPLOAD, data=form(), files=files_of(root)).json()["job"]
    _plain_job(app)  # a pending container job: not for seed-000 providers
    with session_scope(app.state.runtime.sessionmaker) as session:
        from node.models.jobs import Job

        # funded (what the chain watcher does: tests/node/chain/test_settle.py), claimed
        for opened in (job, second):
            transition(session, session.get(Job, opened["id"]), JobStatus.PENDING)
        transition(session, session.get(Job, second["id"]), JobStatus.CLAIMED)
    third = client.post(UPLOAD, data=form(reward="1"), files=files_of(root)).json()["job"]
    assert client.get("/jobs/get-jobs").json()[-1]["id"] == job["id"]  # third: not funded
    with session_scope(app.state.runtime.sessionmaker) as session:
        transition(session, session.get(Job, third["id"]), JobStatus.PENDING)
    listed = client.get("/jobs/get-jobs").json()
    assert [j["id"] for j in listed] == [job["id"], third["id"]]
    expected = {k: v for k, v in job.items() if k != "funding"}
    assert listed[0] == {**expected, "status": "pending", "dcm_status": "pending"}
    assert {"id", "job_type", "requester_address", "status", "created_at"} <= set(listed[0])


def test_get_jobs_is_an_empty_array_when_nothing_is_open(client):
    resp = client.get("/jobs/get-jobs")
    assert resp.status_code == 200 and resp.json() == []


def test_routes_need_no_credentials(client, job):
    assert client.get("/jobs/get-jobs").status_code == 200
    assert client.get(f"/jobs/image_processing/get-job/{job['id']}").status_code == 200


def test_dataset_whose_blocks_are_gone_is_404(client, app, job):
    for block in (app.state.runtime.settings.data_dir / "blocks").rglob("*"):
        if block.is_file():
            block.unlink()
    resp = client.get(f"/jobs/get-dataset/{job['id']}")
    assert resp.status_code == 404 and resp.json()["code"] == "DATASET_NOT_FOUND"


def test_public_listing_and_detail_show_no_private_job(client, app, job):
    owner = make_user(app, username="owner")
    ws = make_workspace(app, owner)
    private = _plain_job(
        app,
        job_type="image_processing",
        workspace_id=ws,
        folder_cid=job["folder_cid"],
        spec={"model": "yolov8n", "secret": "private spec"},
    )
    with session_scope(app.state.runtime.sessionmaker) as session:
        from node.models.jobs import Job

        transition(session, session.get(Job, job["id"]), JobStatus.PENDING)  # funded
    listed = client.get("/jobs/get-jobs").json()
    assert [j["id"] for j in listed] == [job["id"]]
    for url in (
        f"/jobs/image_processing/get-job/{private}",
        f"/jobs/get-dataset/{private}",
        f"/jobs/{private}/funding",
    ):
        resp = client.get(url)
        assert resp.status_code == 404, url
        assert "private spec" not in resp.text
    # Its members still read it, through their own dialects.
    headers = auth_headers(client, "owner")
    assert client.get(f"/workspace/{ws}/jobs/job_{private}", headers=headers).status_code == 200
