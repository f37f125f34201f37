"""Job templates: save a configuration, list it, create jobs from it with overrides."""

from __future__ import annotations

from tests.node.plugin_core.conftest import BASE, job_row, make_team

SEED_TEMPLATE = {
    "name": "Web Server",
    "description": "Basic nginx web server",
    "config": {
        "provider": "akash",
        "image": "nginx:alpine",
        "cpu": 1000,
        "memory": "512Mi",
        "storage": "1Gi",
        "duration": 3600,
        "ports": [{"port": 80, "expose": True}],
    },
}
SEED_OVERRIDES = {"overrides": {"cpu": 2000, "memory": "1Gi"}}


def _template(client, headers, body=SEED_TEMPLATE) -> dict:
    resp = client.post(f"{BASE}/jobs/templates", json=body, headers=headers)
    assert resp.status_code == 201, resp.text
    return resp.json()["data"]


def test_seed_template_is_saved_and_listed(client, team):
    template = _template(client, team.headers)
    assert template["name"] == "Web Server" and template["config"] == SEED_TEMPLATE["config"]
    listed = client.get(f"{BASE}/jobs/templates", headers=team.headers).json()
    assert listed["success"] is True and [t["id"] for t in listed["data"]] == [template["id"]]
    # the workspace's owner reads its templates too
    assert [
        t["id"] for t in client.get(f"{BASE}/jobs/templates", headers=team.owner).json()["data"]
    ] == [template["id"]]


def test_job_from_template_merges_the_overrides(app, client, team):
    template = _template(
        client,
        team.headers,
        {**SEED_TEMPLATE, "config": {**SEED_TEMPLATE["config"], "env": {"A": "1", "B": "2"}}},
    )
    resp = client.post(
        f"{BASE}/jobs/from-template/{template['id']}",
        json={"overrides": {**SEED_OVERRIDES["overrides"], "env": {"B": "3"}}},
        headers=team.headers,
    )
    assert resp.status_code == 201, resp.text
    job = resp.json()["data"]
    assert (job["cpu"], job["memory"], job["storage"], job["image"]) == (
        2000,
        "1Gi",
        "1Gi",
        "nginx:alpine",
    )
    spec = job_row(app, job["id"]).spec
    assert spec["env"] == {"A": "1", "B": "3"} and spec["ports"] == [{"port": 80, "expose": True}]
    # the seed's own overrides body, as written
    resp = client.post(
        f"{BASE}/jobs/from-template/{template['id']}", json=SEED_OVERRIDES, headers=team.headers
    )
    assert resp.status_code == 201 and resp.json()["data"]["cpu"] == 2000


def test_bad_template_config_and_bad_overrides_are_400(client, team):
    resp = client.post(
        f"{BASE}/jobs/templates",
        json={**SEED_TEMPLATE, "config": {**SEED_TEMPLATE["config"], "cpu": -5}},
        headers=team.headers,
    )
    assert resp.status_code == 400 and resp.json()["error"]["message"].startswith("config.cpu")
    template = _template(client, team.headers)
    resp = client.post(
        f"{BASE}/jobs/from-template/{template['id']}",
        json={"overrides": {"memory": "huge"}},
        headers=team.headers,
    )
    assert resp.status_code == 400
    assert resp.json()["error"]["message"].startswith("overrides.memory")


def test_unknown_and_foreign_templates_are_404(app, client, team):
    other = make_team(app, client, "other")
    foreign = _template(client, other.headers)
    assert client.get(f"{BASE}/jobs/templates", headers=team.headers).json()["data"] == []
    for raw in [foreign["id"], "tpl_999", "nope", "tpl_-1"]:
        resp = client.post(f"{BASE}/jobs/from-template/{raw}", json={}, headers=team.headers)
        assert resp.status_code == 404, resp.text
        assert resp.json()["error"]["code"] == "TEMPLATE_NOT_FOUND"
