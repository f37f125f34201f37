"""Provider networks (seed 003's `provider`, `dcm provider run --pool`): a job of a
network is claimed only by a provider serving it and its job type; an unknown network
keeps the job pending and the job says why. Every claim is a real `/v1/providers/claim`."""

from __future__ import annotations

from tests.node.plugin_core.conftest import BASE, CLAIM, FakeProvider, create, job_row


def test_akash_provider_claims_an_akash_job_and_a_default_one_does_not(app, client, team):
    job = create(client, team.headers)  # provider: akash
    default = FakeProvider(app, client, "plain", keys=[team.provider_key])
    assert default.registered["networks"] == ["default"]
    assert default.claim() is None
    akash = FakeProvider(app, client, "akash1", networks=["akash"], keys=[team.provider_key])
    got = akash.claim()
    assert got is not None and got["job"]["id"] == job["id"]
    assert got["job"]["spec"]["pool"] == "akash"


def test_default_network_jobs_go_to_default_providers(app, client, team):
    job = create(client, team.headers, provider="default")
    akash = FakeProvider(app, client, "akash1", networks=["akash"], keys=[team.provider_key])
    assert akash.claim() is None
    both = FakeProvider(
        app, client, "both", networks=["akash", "default"], keys=[team.provider_key]
    )
    assert both.claim()["job"]["id"] == job["id"]


def test_a_provider_of_the_network_but_not_the_job_type_does_not_claim(app, client, team):
    job = create(client, team.headers)
    FakeProvider(
        app, client, "trainer", networks=["akash"], keys=[team.provider_key], job_types=["yolo"]
    )
    data = client.get(f"{BASE}/jobs/{job['id']}", headers=team.headers).json()["data"]
    assert data["status"] == "pending"
    assert "container jobs on the network 'akash'" in data["statusMessage"]


def test_unknown_network_stays_pending_and_says_why(app, client, team):
    job = create(client, team.headers, provider="golem")
    assert job["status"] == "pending"
    assert "network 'golem'" in job["statusMessage"]
    FakeProvider(app, client, "akash1", networks=["akash"], keys=[team.provider_key]).claim()
    data = client.get(f"{BASE}/jobs/{job['id']}", headers=team.headers).json()["data"]
    assert data["status"] == "pending" and "networks served: akash" in data["statusMessage"]
    assert job_row(app, job["id"]).status == "pending"
    # once a provider serves it, the reason goes and the job is claimed
    golem = FakeProvider(app, client, "golem1", networks=["golem"], keys=[team.provider_key])
    listed = client.get(f"{BASE}/jobs?provider=golem", headers=team.headers).json()["data"]
    assert listed[0]["statusMessage"] is None
    assert golem.claim()["job"]["id"] == job["id"]
    assert job_row(app, job["id"]).progress_message is None


def test_a_private_job_still_needs_its_workspace_pool(app, client, team):
    """Networks narrow the private pool, they do not replace it: a provider of the right
    network that the workspace did not admit gets nothing."""
    create(client, team.headers)
    stranger = FakeProvider(app, client, "stranger", networks=["akash"])
    assert stranger.claim() is None


def test_jobs_are_matched_on_cpu_memory_storage_and_gpus(app, client, team):
    job = create(client, team.headers, cpu=4000, memory="8Gi", storage="10Gi", gpus=1)
    small = {"cpu_cores": 2, "ram_mb": 4096, "disk_free_mb": 100_000}
    FakeProvider(
        app, client, "small", networks=["akash"], keys=[team.provider_key], capabilities=small
    )
    no_gpu = {"cpu_cores": 8, "ram_mb": 16384, "disk_free_mb": 100_000}
    FakeProvider(
        app, client, "nogpu", networks=["akash"], keys=[team.provider_key], capabilities=no_gpu
    )
    for name in ("small", "nogpu"):
        from tests.fixtures.factories import auth_headers

        resp = client.post(CLAIM, json={}, headers=auth_headers(client, name))
        assert resp.status_code == 204, name
    big = {**no_gpu, "gpus": [{"name": "H200", "memory_mb": 141_000}]}
    fits = FakeProvider(
        app, client, "big", networks=["akash"], keys=[team.provider_key], capabilities=big
    )
    assert fits.claim()["job"]["id"] == job["id"]


def test_network_names_are_checked_at_registration(app, client):
    from eth_account import Account

    from tests.fixtures.factories import auth_headers, make_user

    make_user(app, username="p", address=Account.create().address)
    headers = auth_headers(client, "p")
    for networks in [[], ["Bad Name"], ["x" * 65], [1]]:
        resp = client.post("/v1/providers", json={"networks": networks}, headers=headers)
        assert resp.status_code == 400, (networks, resp.text)
    resp = client.post("/v1/providers", json={"networks": ["Akash", "akash"]}, headers=headers)
    assert resp.status_code == 201 and resp.json()["data"]["networks"] == ["akash"]
