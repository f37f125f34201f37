"""A job goes only to a provider that can make its export format (the formats it advertised
at registration, `capabilities.export_formats`), and a job nobody can make says so."""

from __future__ import annotations

from node.providers.service import NO_MAKER
from tests.node.providers.test_leases import _get, _job, _provider


def _claim(client, headers):
    return client.post("/v1/providers/claim", json={}, headers=headers)


def test_a_format_only_one_of_two_providers_makes_goes_to_that_one(app, client):
    job = _job(app, spec={"model": "yolov8n", "epochs": 1, "export_format": "openvino"})
    plain = _provider(app, client, "plain", capabilities={"export_formats": ["pt", "onnx"]})
    vino = _provider(
        app, client, "vino", capabilities={"export_formats": ["pt", "onnx", "openvino"]}
    )
    assert _claim(client, plain).status_code == 204  # first in line, but cannot make it
    resp = _claim(client, vino)
    assert resp.status_code == 200, resp.text
    assert resp.json()["data"]["lease"]["job_id"] == f"job_{job}"
    assert _get(app, job).progress_message is None  # somebody could make it all along


def test_each_provider_gets_the_job_it_can_make(app, client):
    ncnn_job = _job(app, spec={"export_format": "ncnn"})
    onnx_job = _job(app, spec={"export_format": "onnx"})
    ncnn = _provider(app, client, "ncnn", capabilities={"export_formats": ["ncnn"]})
    resp = _claim(client, ncnn)  # skips nothing it could make: the older job is its own
    assert resp.json()["data"]["lease"]["job_id"] == f"job_{ncnn_job}"
    assert _claim(client, ncnn).status_code == 204  # onnx is not among its formats
    old = _provider(app, client, "old")  # advertises nothing: pt, torchscript, onnx
    assert _claim(client, old).json()["data"]["lease"]["job_id"] == f"job_{onnx_job}"


def test_a_job_nobody_can_make_says_so_until_someone_can(app, client):
    job = _job(app, spec={"export_format": "mnn"})
    plain = _provider(app, client, "plain", capabilities={"export_formats": ["onnx"]})
    assert _claim(client, plain).status_code == 204
    message = _get(app, job).progress_message
    assert message is not None and message.startswith(NO_MAKER)
    assert "'mnn'" in message and "onnx" in message

    mnn = _provider(app, client, "mnn", capabilities={"export_formats": ["mnn"]})
    assert _claim(client, mnn).json()["data"]["lease"]["job_id"] == f"job_{job}"
    assert _get(app, job).progress_message is None


def test_formats_are_matched_by_their_canonical_names(app, client):
    job = _job(app, spec={"export_format": "tfjs"})  # stored before names were canonical
    lite = _provider(app, client, "lite", capabilities={"export_formats": ["tflite"]})
    assert _claim(client, lite).json()["data"]["lease"]["job_id"] == f"job_{job}"


def test_jobs_without_an_export_format_go_to_anyone(app, client):
    job = _job(app, spec={})
    only = _provider(app, client, "only", capabilities={"export_formats": ["ncnn"]})
    assert _claim(client, only).json()["data"]["lease"]["job_id"] == f"job_{job}"
