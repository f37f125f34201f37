"""The OpenAPI document's error responses come from what a route is made of: a route
added later, by any router, is documented without listing its errors by hand."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import pytest
from fastapi import APIRouter, Depends, FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel

from marketplace.datasets.synthetic import write_detection_dataset
from marketplace.errors import Conflict, RateLimited
from node.auth.deps import PrincipalDep
from node.errors import envelope_model, error_body
from node.openapi import raises
from tests.fixtures.datasets import files_of, form


class Thing(BaseModel):
    name: str


@raises(RateLimited)
def rate_limited() -> None:
    """A dependency the way a rate limiter would declare itself."""


def responses(app: FastAPI, path: str, method: str) -> dict[str, Any]:
    return app.openapi()["paths"][path][method]["responses"]


def envelope(entry: dict[str, Any]) -> str:
    return entry["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]


def test_a_v1_route_added_later_declares_its_errors_in_the_v1_envelope(app: FastAPI) -> None:
    app.openapi()  # the document was already built once: it must follow the new route
    router = APIRouter(prefix="/v1/things")

    @router.put("/{thing_id}", status_code=201)
    def put_thing(thing_id: int, body: Thing, principal: PrincipalDep) -> dict[str, str]:
        return {}

    app.include_router(router)
    declared = responses(app, "/v1/things/{thing_id}", "put")
    assert sorted(declared) == ["201", "400", "401", "403", "404", "408", "413", "429"]
    assert {envelope(declared[s]) for s in declared if s != "201"} == {"V1ErrorEnvelope"}
    assert "WWW-Authenticate" in declared["401"]["headers"]
    assert "INVALID_TOKEN" in declared["401"]["description"]


def test_a_seed_style_route_answers_validation_errors_with_422(app: FastAPI) -> None:
    router = APIRouter()

    @router.get("/things/{thing_id}")
    def get_thing(thing_id: int) -> dict[str, str]:
        return {}

    app.include_router(router)
    declared = responses(app, "/things/{thing_id}", "get")
    assert sorted(declared) == ["200", "404", "422"]
    assert envelope(declared["422"]) == "ErrorEnvelope"
    assert "HTTPValidationError" not in app.openapi()["components"]["schemas"]


def test_a_marked_dependency_declares_its_status_on_every_route_using_it(app: FastAPI) -> None:
    router = APIRouter(prefix="/api/v0")

    @router.post("/thing")
    def thing(_: Annotated[None, Depends(rate_limited)]) -> dict[str, str]:
        return {}

    app.include_router(router)
    declared = responses(app, "/api/v0/thing", "post")
    assert sorted(declared) == ["200", "429"]
    assert envelope(declared["429"]) == "KuboErrorEnvelope"
    assert declared["429"]["headers"]["Retry-After"]["required"] is True


def test_a_handler_declares_what_its_service_raises_in_one_line(app: FastAPI) -> None:
    router = APIRouter()

    @router.post("/things/{thing_id}/archive")
    @raises(Conflict)
    def archive(thing_id: int) -> dict[str, str]:
        return {}

    app.include_router(router)
    assert responses(app, "/things/{thing_id}/archive", "post")["409"]["description"] == (
        "Conflict: CONFLICT"
    )


@pytest.mark.parametrize(
    "path",
    ["/v1/jobs", "/api/plugin-core/jobs", "/api/jobs", "/api/v0/cat", "/workspace/1/jobs"],
)
@pytest.mark.parametrize("details", [None, [{"loc": ["body"], "msg": "bad", "type": "x"}]])
def test_every_dialect_renders_errors_in_the_envelope_it_declares(path: str, details: Any) -> None:
    body = error_body(path, "SOME_CODE", "Something is wrong", details)
    model = envelope_model(path)
    model.model_validate(body)
    assert set(body) <= set(model.model_fields)


def _declared_media_types(app: FastAPI, path: str, method: str, status: int) -> list[str]:
    entry = responses(app, path, method)[str(status)]
    return list(entry.get("content", {}))


def _matches(media_type: str, declared: list[str]) -> bool:
    main, _, sub = media_type.split(";")[0].strip().partition("/")
    for option in declared:
        want_main, _, want_sub = option.partition("/")
        if want_main in ("*", main) and want_sub in ("*", sub):
            return True
    return False


def test_routes_answering_bytes_answer_a_media_type_they_declare(
    app: FastAPI, client: TestClient, tmp_path: Path
) -> None:
    root = write_detection_dataset(tmp_path / "dataset", train=2, val=1)
    job = client.post("/jobs/image_processing/upload", data=form(), files=files_of(root))
    assert job.status_code == 200, job.text
    job_id, folder = job.json()["job"]["id"], job.json()["job"]["folder_cid"]
    store = app.state.runtime.content
    name = ""
    while True:  # down the first folder of each level, to a file
        entry = min(store.ls(store.resolve(f"{folder}/{name}".rstrip("/"))), key=lambda e: e.name)
        name = f"{name}/{entry.name}".lstrip("/")
        if not entry.is_dir:
            break
    file_cid = store.resolve(f"{folder}/{name}")
    calls = [
        ("get", "/jobs/get-dataset/{job_id}", f"/jobs/get-dataset/{job_id}", {}),
        ("get", "/ipfs/{cid}", f"/ipfs/{folder}", {}),
        ("get", "/ipfs/{cid}/{path}", f"/ipfs/{folder}/{name}", {}),
        ("get", "/ipfs/{cid}/{path}", f"/ipfs/{folder}/{name}", {"Range": "bytes=0-3"}),
        ("get", "/ipfs/{cid}/{path}", f"/ipfs/{folder}/{name}", {"Range": "bytes=99999999-"}),
        ("get", "/ipfs/{cid}", f"/ipfs/{folder}?format=car", {}),
        ("get", "/ipfs/{cid}", f"/ipfs/{file_cid}?format=raw", {}),
        ("head", "/ipfs/{cid}/{path}", f"/ipfs/{folder}/{name}", {}),
        ("post", "/api/v0/cat", f"/api/v0/cat?arg={file_cid}", {}),
        ("post", "/api/v0/get", f"/api/v0/get?arg={folder}", {}),
        ("post", "/api/v0/dag/export", f"/api/v0/dag/export?arg={folder}", {}),
        ("post", "/api/v0/block/get", f"/api/v0/block/get?arg={folder}", {}),
    ]
    seen = set()
    for method, path, url, headers in calls:
        resp = client.request(method.upper(), url, headers=headers)
        declared = _declared_media_types(app, path, method, resp.status_code)
        seen.add(resp.status_code)
        if declared:  # a 416 (no body) declares none
            assert _matches(resp.headers["content-type"], declared), (url, resp.status_code)
    assert seen == {200, 206, 416}
