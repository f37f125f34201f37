"""The authorization matrix: role x credential x dialect x action, each case one real
request against one node, checked against one table of expected permissions.

The table below restates the product's rule (issue 9, DESIGN "Who may run a job") on its
own: it does not import `node.authz.policy`, so a change of the code that breaks the rule
fails here.

- Roles: owner, member, viewer (workspace members; their API keys) and provider (an
  API-key role: a provider daemon admitted to the workspace's private pool). A provider
  has no password account: its credentials are its wallet (SIWE token, admitted by the
  provider key it presented at registration) and the provider key itself.
- Dialects and the actions each has: seed 001 (`/workspace/{id}/jobs...`: read, create,
  update, cancel, retry), seed 002 (`/v1/jobs...`: read, create, cancel), the provider
  routes (claim; write result through `/progress` and `/result`), Kubo RPC
  (`/api/v0/add`: content write).
- Refusals as each dialect documents them: seed 001 403; seed 002 404 for a job the
  caller may not read, 403 for one it may read but not act on, 403 for a create; the
  claim of a registered but not admitted wallet is 204 (nothing is offered to it) and
  the job stays pending, a claim without a wallet 403; provider writes 403; Kubo 403.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from fastapi.testclient import TestClient
from sqlalchemy import update

from marketplace.jobs.states import JobStatus
from marketplace.sdk.http import siwe_payload
from node.config import NodeSettings
from node.db import session_scope
from node.jobs.service import create_job
from node.models.auth import User
from node.models.jobs import Job
from tests.fixtures.app import create_app
from tests.fixtures.db import PostgresTemplates
from tests.fixtures.factories import auth_headers, make_user, make_workspace
from tests.fixtures.passwords import use_cheap_password_hashing

ROLES = ("owner", "member", "viewer", "provider")
CREDENTIALS = ("password", "wallet", "api_key")

# What each role may do, by itself (the table).
ROLE_ACTIONS: dict[str, set[str]] = {
    "owner": {"read", "create", "update", "cancel", "retry", "content_write"},
    "member": {"read", "create", "update", "cancel", "retry", "content_write"},
    "viewer": {"read"},
    "provider": {"claim", "write_result", "content_write"},
}


def allowed(role: str, credential: str, action: str) -> bool:
    if action == "content_write" and credential != "api_key":
        return True  # any signed-in user writes content; API keys are held to their role
    if action in ("claim", "write_result") and credential == "api_key":
        return False  # claims and results come from the provider's wallet, never a key
    return action in ROLE_ACTIONS[role]


CASES = [
    ("seed001", "read"),
    ("seed001", "create"),
    ("seed001", "update"),
    ("seed001", "cancel"),
    ("seed001", "retry"),
    ("v1", "read"),
    ("v1", "create"),
    ("v1", "cancel"),
    ("provider", "claim"),
    ("provider", "write_result/progress"),
    ("provider", "write_result/result"),
    ("kubo", "content_write"),
]
SUCCESS = {"create": 201}


def expected_status(role: str, credential: str, dialect: str, action: str) -> int:
    base = action.split("/")[0]
    if allowed(role, credential, base):
        return SUCCESS.get(base, 200)
    if dialect == "v1" and base in ("read", "cancel"):
        return 403 if allowed(role, credential, "read") else 404
    if dialect == "provider" and base == "claim":
        return 204 if credential == "wallet" else 403
    return 403


ACTORS = [
    (role, credential)
    for role, credential in itertools.product(ROLES, CREDENTIALS)
    if not (role == "provider" and credential == "password")
]
MATRIX = [
    pytest.param(role, cred, dialect, action, id=f"{dialect}-{action}-{role}-{cred}")
    for (dialect, action), (role, cred) in itertools.product(CASES, ACTORS)
]

CLAIM_TYPE = "matrix-claim"  # only the claim and write cases make jobs of this type


@dataclass
class World:
    """One node, one workspace with a member of each role per credential, the keys of
    each role, and registered providers: the admitted one and the others."""

    client: TestClient
    workspace_id: int
    owner_id: int
    headers: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    admitted: dict[str, str] = field(default_factory=dict)
    counter: Iterator[int] = field(default_factory=itertools.count)

    @property
    def app(self) -> Any:
        return self.client.app

    def job(self, *, job_type: str = "matrix", status: JobStatus | None = None) -> int:
        with session_scope(self.app.state.runtime.sessionmaker) as session:
            job = create_job(
                session, job_type=job_type, workspace_id=self.workspace_id, created_by=self.owner_id
            )
            if status is not None:
                job.status = status.value
            return job.id

    def only_pending_claim_job(self) -> int:
        """Close every pending claim-type job left by earlier cases; make a fresh one."""
        with session_scope(self.app.state.runtime.sessionmaker) as session:
            session.execute(
                update(Job)
                .where(Job.job_type == CLAIM_TYPE, Job.status == JobStatus.PENDING.value)
                .values(status=JobStatus.CANCELLED.value)
            )
        return self.job(job_type=CLAIM_TYPE)

    def status_of(self, job_id: int) -> str:
        with session_scope(self.app.state.runtime.sessionmaker) as session:
            job = session.get(Job, job_id)
            assert job is not None
            return job.status


def _siwe_headers(client: TestClient, account: Any) -> dict[str, str]:
    nonce = client.get("/auth/nonce").json()
    resp = client.post("/auth/siwe", json=siwe_payload(nonce, account, "matrix"))
    assert resp.status_code == 200, resp.text
    return {"Authorization": f"Bearer {resp.json()['access_token']}"}


def _register(client: TestClient, headers: dict[str, str], keys: list[str]) -> None:
    body = {"name": "p", "job_types": [CLAIM_TYPE], "max_concurrent": 256, "api_keys": keys}
    resp = client.post("/v1/providers", json=body, headers=headers)
    assert resp.status_code == 201, resp.text


@pytest.fixture(scope="module")
def world(
    pg_templates: PostgresTemplates | None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    tmp: Path = tmp_path_factory.mktemp("authz-matrix")
    url = pg_templates.fresh() if pg_templates else f"sqlite:///{tmp / 'node.sqlite3'}"
    settings = NodeSettings(
        data_dir=tmp / "node",
        database_url=url,
        environment="development",
        public_url="http://testserver",
    )
    with pytest.MonkeyPatch.context() as mp:
        use_cheap_password_hashing(mp)
        app = create_app(settings)
        with TestClient(app) as client:
            yield _build(client)
    if pg_templates:
        pg_templates.drop(url)


def _build(client: TestClient) -> World:
    app = client.app
    owner = make_user(app, username="owner-password")
    wallets = {}
    members: dict[int, str] = {}
    for role in ("member", "viewer"):
        user = make_user(app, username=f"{role}-password")
        members[user.id] = role
    for role in ("owner", "member", "viewer"):
        account = Account.create()
        wallets[role] = account
        members[make_user(app, username=f"{role}-wallet", address=account.address).id] = role
    workspace_id = make_workspace(app, owner, name="matrix", members=members)
    world = World(client=client, workspace_id=workspace_id, owner_id=owner.id)

    for role in ("owner", "member", "viewer"):
        world.headers[(role, "password")] = auth_headers(client, f"{role}-password")
        world.headers[(role, "wallet")] = _siwe_headers(client, wallets[role])
    owner_headers = world.headers[("owner", "password")]
    for role in ROLES:
        resp = client.post(
            f"/workspaces/{workspace_id}/api-keys",
            json={"name": role, "role": role},
            headers=owner_headers,
        )
        assert resp.status_code == 201, resp.text
        world.headers[(role, "api_key")] = {"Authorization": f"Bearer {resp.json()['key']}"}
    provider_key = world.headers[("provider", "api_key")]["Authorization"].removeprefix("Bearer ")

    # The provider daemon: a wallet of no workspace, admitted by the provider key.
    world.headers[("provider", "wallet")] = _siwe_headers(client, Account.create())
    _register(client, world.headers[("provider", "wallet")], [provider_key])
    # Every other wallet is a registered provider too, admitted nowhere: its refusals
    # come from the admission, not from a missing registration.
    for role in ("owner", "member", "viewer"):
        _register(client, world.headers[(role, "wallet")], [])
    with session_scope(app.state.runtime.sessionmaker) as session:
        assert session.get(User, owner.id) is not None
    return world


def _act(world: World, role: str, credential: str, dialect: str, action: str) -> Any:
    client, ws = world.client, world.workspace_id
    headers = world.headers[(role, credential)]
    n = next(world.counter)
    if dialect == "seed001":
        if action == "create":
            body = {"job_type": "matrix", "workspace_id": ws}
            return client.post(f"/workspace/{ws}/jobs", json=body, headers=headers)
        status = JobStatus.FAILED if action == "retry" else None
        job = world.job(status=status)
        base = f"/workspace/{ws}/jobs/job_{job}"
        if action == "read":
            return client.get(base, headers=headers)
        if action == "update":
            return client.patch(base, json={"progress_percent": 5}, headers=headers)
        return client.post(f"{base}/{action}", headers=headers)
    if dialect == "v1":
        if action == "create":
            body = {"type": "matrix", "payload": {}, "workspaceId": ws}
            return client.post("/v1/jobs", json=body, headers=headers)
        job = world.job()
        if action == "read":
            return client.get(f"/v1/jobs/job_{job}", headers=headers)
        return client.post(f"/v1/jobs/job_{job}/cancel", headers=headers)
    if dialect == "provider":
        job = world.only_pending_claim_job()
        if action == "claim":
            body = {"job_types": [CLAIM_TYPE], "wait_seconds": 0}
            resp = client.post("/v1/providers/claim", json=body, headers=headers)
            if resp.status_code == 200:
                assert resp.json()["data"]["job"]["id"] == f"job_{job}"
            else:
                assert world.status_of(job) == "pending"  # nothing was handed out
            return resp
        claim = client.post(
            "/v1/providers/claim",
            json={"job_types": [CLAIM_TYPE], "wait_seconds": 0},
            headers=world.headers[("provider", "wallet")],
        )
        assert claim.status_code == 200, claim.text
        attempt = claim.json()["data"]["lease"]["attempt"]
        endpoint = action.split("/")[1]
        body = (
            {"attempt": attempt, "percent": 10}
            if endpoint == "progress"
            else {"attempt": attempt, "result_cid": "Qm" + "m" * 44}
        )
        return client.post(f"/v1/jobs/job_{job}/{endpoint}", json=body, headers=headers)
    assert dialect == "kubo"
    data = f"matrix content {n}\n".encode()
    return client.post("/api/v0/add", files={"file": ("m.txt", data)}, headers=headers)


@pytest.mark.parametrize(("role", "credential", "dialect", "action"), MATRIX)
def test_authorization_matrix(
    world: World, role: str, credential: str, dialect: str, action: str
) -> None:
    resp = _act(world, role, credential, dialect, action)
    expected = expected_status(role, credential, dialect, action)
    assert resp.status_code == expected, resp.text


def test_matrix_covers_every_role_credential_and_action() -> None:
    assert {(r, c) for r, c, *_ in (p.values for p in MATRIX)} == set(ACTORS)
    actions = {a.split("/")[0] for _, a in CASES}
    assert actions == {a for acts in ROLE_ACTIONS.values() for a in acts}
    # Each allowed and each refused outcome occurs, in every dialect.
    for dialect in {d for d, _ in CASES}:
        outcomes = {
            expected_status(r, c, d, a) < 300
            for r, c, d, a in (p.values for p in MATRIX)
            if d == dialect
        }
        assert outcomes == {True, False}, dialect
