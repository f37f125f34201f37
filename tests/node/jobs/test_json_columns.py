"""JSON columns are read with pydantic-core's parser (`node.db.json_loads`): what the node
wrote it reads back unchanged, through the API and straight from the database, including
what only Python's encoder writes (a lone surrogate escape, NaN)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from node.db import json_loads
from node.jobs import repository
from tests.node.jobs.conftest import Seed

DOCUMENTS = [
    '{"a": [1, 2.5, null, true], "b": {"c": "d"}}',
    "123456789012345678901234567890",
    '{"x": 5e-324, "y": 1.7976931348623157e308, "z": -0.0, "w": 0.1}',
    '"\\u00e9\\n\\t"',
    '{"a": 1, "a": 2}',
    '"\\ud800"',  # a lone surrogate: json.dumps writes it, pydantic-core refuses it
    '"x\\udfff y"',
]


@pytest.mark.parametrize("text", DOCUMENTS)
def test_json_loads_reads_what_json_loads_reads(text: str) -> None:
    assert json_loads(text) == json.loads(text)
    assert json_loads(text.encode()) == json.loads(text)


def test_json_loads_reads_nan_and_infinity() -> None:
    value = json_loads('{"n": NaN, "i": Infinity, "m": -Infinity}')
    assert math.isnan(value["n"]) and value["i"] == math.inf and value["m"] == -math.inf


def test_a_payload_comes_back_as_it_was_sent(client: TestClient, seed: Seed) -> None:
    """Through the by-id read and the list (both read the JSON column as rows)."""
    payload = {
        "big": 123456789012345678901234567890,
        "nested": {"list": [1, 2.5, None, False], "e": "\u00e9", "z": -0.0},
        "tiny": 5e-324,
    }
    body = {"type": "bench", "payload": payload, "workspaceId": seed.workspace_id}
    created = client.post("/v1/jobs", json=body, headers=seed.headers)
    assert created.status_code == 201, created.text
    job_id = created.json()["data"]["id"]
    got = client.get(f"/v1/jobs/{job_id}", headers=seed.headers)
    assert got.status_code == 200, got.text
    assert got.json()["data"]["payload"] == payload
    listed = client.get("/v1/jobs?limit=10", headers=seed.headers)
    assert listed.status_code == 200, listed.text
    assert [j["payload"] for j in listed.json()["data"]] == [payload]


def test_a_value_only_pythons_encoder_writes_is_read_back(
    app: FastAPI, client: TestClient, seed: Seed, set_job: Callable[..., None]
) -> None:
    """The API refuses a lone surrogate in a request (400 INVALID_JSON), but the node's
    own writes (a handler's result) go through `json.dumps`, which escapes one: the
    column still reads."""
    created = client.post(
        "/v1/jobs",
        content=b'{"type": "bench", "payload": {"t": "\\ud800"}}',
        headers={**seed.headers, "Content-Type": "application/json"},
    )
    assert created.status_code == 400 and created.json()["error"]["code"] == "INVALID_JSON"
    job = client.post("/v1/jobs", json={"type": "bench", "payload": {}}, headers=seed.headers)
    job_id = int(job.json()["data"]["id"].removeprefix("job_"))
    result = {"text": "\ud800 then \udfff", "n": 1}
    set_job(job_id, result=result)
    with app.state.runtime.sessionmaker() as session:
        row = repository.job_row(session, job_id)
    assert row is not None
    assert row.result == result
