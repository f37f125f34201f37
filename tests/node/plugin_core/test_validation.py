"""Bad create bodies: 400 VALIDATION_ERROR in the seed's envelope, the message naming the
field, and no job created."""

from __future__ import annotations

from tests.node.plugin_core.conftest import BASE, CREATE, job_row

CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"

BAD = [
    ("cpu", {"cpu": -1}),
    ("cpu", {"cpu": 0}),
    ("cpu", {"cpu": "1000"}),
    ("cpu", {"cpu": 1.5}),
    ("cpu", {"cpu": True}),
    ("cpu", {"cpu": 10**12}),
    ("duration", {"duration": 10**9}),
    ("duration", {"duration": 0}),
    ("duration", {"duration": "3600"}),
    ("memory", {"memory": "512Xi"}),
    ("memory", {"memory": "1.5Gi"}),
    ("memory", {"memory": "-512Mi"}),
    ("memory", {"memory": "1Mi"}),
    ("memory", {"memory": "99999Ti"}),
    ("memory", {"memory": 512}),
    ("memory", {"memory": ""}),
    ("storage", {"storage": "lots"}),
    ("storage", {"storage": 1024}),
    ("storage", {"storage": "512Ki"}),
    ("image", {"image": "nginx alpine"}),
    ("image", {"image": ""}),
    ("image", {"image": "ipfs://not-a-cid"}),
    ("image", {"image": 42}),
    ("provider", {"provider": "Bad Network!"}),
    ("provider", {"provider": ""}),
    ("env", {"env": {"DEBUG": "x" * 40_000}}),
    ("env", {"env": {f"V{i}": "x" for i in range(300)}}),
    ("env", {"env": {f"V{i}": "x" * 30_000 for i in range(3)}}),
    ("env", {"env": {"1BAD": "x"}}),
    ("env", {"env": {"DEBUG": True}}),
    ("env", {"env": ["DEBUG=true"]}),
    ("ports", {"ports": [{"port": 70000}]}),
    ("ports", {"ports": [{"port": 80}, {"port": 80}]}),
    ("ports", {"ports": [{"port": 80, "expose": "yes"}]}),
    ("ports", {"ports": [{"port": 80, "protocol": "udp"}]}),
    ("command", {"command": "nginx -g daemon off"}),
    ("args", {"args": [1, 2]}),
    ("volumes", {"volumes": [{"name": "v", "mountPath": "relative"}]}),
    ("volumes", {"volumes": [{"name": "v", "mountPath": "/a/../etc"}]}),
    ("volumes", {"volumes": [{"name": "v", "mountPath": "/v", "size": "2Zi"}]}),
    ("volumes", {"volumes": [{"name": "v", "mountPath": "/outputs"}]}),
    ("inputs", {"inputs": [{"cid": "QmNope", "path": "/in"}]}),
    ("gpus", {"gpus": -1}),
    ("gpus", {"gpus": 1000}),
    ("reward", {"reward": "-1"}),
    ("reward", {"reward": "abc"}),
    ("reward", {"reward": "0.1234567890123456789"}),
    ("reward", {"reward": True}),
    ("unknownField", {"unknownField": 1}),
]


def test_bad_create_bodies_are_400_naming_the_field(client, team):
    # one node for all cases (each case is one request; a failure names its case)
    for field, change in BAD:
        resp = client.post(f"{BASE}/jobs", json={**CREATE, **change}, headers=team.headers)
        assert resp.status_code == 400, (change, resp.text)
        body = resp.json()
        assert body["success"] is False
        assert body["error"]["code"] == "VALIDATION_ERROR", change
        assert body["error"]["message"].startswith(field), (change, body["error"]["message"])
    total = client.get(f"{BASE}/jobs", headers=team.headers).json()["meta"]["pagination"]
    assert total["total"] == 0


def test_each_required_field_is_required(client, team):
    for missing in ["provider", "image", "cpu", "memory", "storage", "duration"]:
        body = {k: v for k, v in CREATE.items() if k != missing}
        resp = client.post(f"{BASE}/jobs", json=body, headers=team.headers)
        assert resp.status_code == 400
        assert resp.json()["error"]["message"].startswith(missing), resp.text


def test_not_json_and_wrong_shapes_are_400(client, team):
    for content in [b"{", b"[]", b'"job"', b"null"]:
        resp = client.post(
            f"{BASE}/jobs",
            content=content,
            headers={**team.headers, "Content-Type": "application/json"},
        )
        assert resp.status_code == 400, (content, resp.text)
        assert resp.json()["error"]["code"] == "VALIDATION_ERROR"


UNITS = [
    ("512Mi", "512Mi", 512 * 1024**2),
    ("2Gi", "2Gi", 2 * 1024**3),
    ("1G", "1G", 10**9),
    ("1024Mi", "1Gi", 1024**3),
    ("64M", "64M", 64 * 10**6),
    ("1GiB", "1Gi", 1024**3),
    ("8388608", "8Mi", 8 * 1024**2),
]


def test_units_are_parsed_and_shown(app, client, team):
    for given, shown, size in UNITS:
        resp = client.post(f"{BASE}/jobs", json={**CREATE, "memory": given}, headers=team.headers)
        assert resp.status_code == 201, resp.text
        assert resp.json()["data"]["memory"] == shown
        assert job_row(app, resp.json()["data"]["id"]).spec["memory_bytes"] == size


def test_uppercase_network_is_the_same_network(app, client, team):
    resp = client.post(f"{BASE}/jobs", json={**CREATE, "provider": "Akash"}, headers=team.headers)
    assert resp.json()["data"]["provider"] == "akash"
