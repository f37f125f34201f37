"""OpenAPI renders with every job route of both dialects."""

from fastapi.testclient import TestClient


def test_docs_render_with_job_routes(client: TestClient) -> None:
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger-ui" in docs.text.lower()
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    for path, methods in {
        "/workspace/{workspace_id}/jobs": {"get", "post"},
        "/workspace/{workspace_id}/jobs/{job_id}": {"get", "patch"},
        "/workspace/{workspace_id}/jobs/{job_id}/status": {"get"},
        "/workspace/{workspace_id}/jobs/{job_id}/result": {"get"},
        "/workspace/{workspace_id}/jobs/{job_id}/cancel": {"post"},
        "/workspace/{workspace_id}/jobs/{job_id}/retry": {"post"},
        "/jobs": {"get"},
        "/v1/jobs": {"get", "post"},
        "/v1/jobs/{jobId}": {"get"},
    }.items():
        assert methods <= set(paths[path]), path
    assert paths["/jobs"]["get"]["deprecated"] is True
    v1_params = {p["name"] for p in paths["/v1/jobs"]["get"]["parameters"]}
    assert {
        "limit",
        "cursor",
        "type",
        "status",
        "resultType",
        "from",
        "to",
        "sort",
        "order",
    } <= v1_params
    assert "Job001" in spec["components"]["schemas"]
