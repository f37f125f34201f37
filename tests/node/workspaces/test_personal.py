"""Personal workspaces: where a job created without naming a workspace lands."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from node.auth.principal import Principal
from node.db import make_engine, make_sessionmaker, session_scope
from node.models.jobs import Job
from node.models.workspaces import PersonalWorkspace, Workspace, WorkspaceMember
from node.schema import alembic_config, upgrade_schema
from node.workspaces.service import KNOWN_PERSONAL, MADE_HERE, personal_workspace_id
from tests.fixtures.db import PG_ADMIN_URL, drop_database, empty_database
from tests.fixtures.factories import auth_headers, make_user
from tests.fixtures.statements import count_statements


def _create(client: TestClient, headers: dict[str, str]) -> dict:
    resp = client.post("/v1/jobs", json={"type": "t", "payload": {}}, headers=headers)
    assert resp.status_code == 201, resp.text
    return resp.json()["data"]


def test_first_job_without_a_workspace_makes_the_personal_workspace(
    app: FastAPI, client: TestClient
) -> None:
    make_user(app, username="alice")
    headers = auth_headers(client, "alice")
    assert client.get("/workspaces", headers=headers).json() == []  # made on first use only
    first = _create(client, headers)
    second = _create(client, headers)
    [ws] = client.get("/workspaces", headers=headers).json()
    assert (ws["name"], ws["role"], ws["is_personal"]) == ("Personal", "owner", True)
    assert first["workspaceId"] == second["workspaceId"] == ws["id"]
    listed = client.get(f"/workspace/{ws['id']}/jobs", headers=headers).json()["data"]
    assert {j["job_id"] for j in listed} == {first["id"], second["id"]}


def test_personal_workspaces_are_per_user(app: FastAPI, client: TestClient) -> None:
    make_user(app, username="alice")
    make_user(app, username="bob")
    alice, bob = auth_headers(client, "alice"), auth_headers(client, "bob")
    job = _create(client, alice)
    assert _create(client, bob)["workspaceId"] != job["workspaceId"]
    assert client.get(f"/v1/jobs/{job['id']}", headers=bob).status_code == 404
    resp = client.get(f"/workspace/{job['workspaceId']}/jobs", headers=bob)
    assert resp.status_code == 403


def test_named_workspaces_are_not_personal(app: FastAPI, client: TestClient) -> None:
    make_user(app, username="alice")
    headers = auth_headers(client, "alice")
    created = client.post("/workspaces", json={"name": "Team"}, headers=headers).json()
    assert created["is_personal"] is False


def test_personal_workspace_keeps_its_owner(app: FastAPI, client: TestClient) -> None:
    alice = make_user(app, username="alice")
    make_user(app, username="bob")
    headers = auth_headers(client, "alice")
    ws = _create(client, headers)["workspaceId"]
    added = client.post(
        f"/workspaces/{ws}/members", json={"username": "bob", "role": "owner"}, headers=headers
    )
    assert added.status_code == 201
    bob = auth_headers(client, "bob")
    for method, body in (("PATCH", {"role": "member"}), ("DELETE", None)):
        url = f"/workspaces/{ws}/members/{alice.id}"
        resp = client.request(method, url, json=body, headers=bob)
        assert resp.status_code == 409 and resp.json()["code"] == "LAST_OWNER", method


def test_api_key_must_name_its_workspace(app: FastAPI, client: TestClient) -> None:
    make_user(app, username="alice")
    headers = auth_headers(client, "alice")
    ws = client.post("/workspaces", json={"name": "Team"}, headers=headers).json()["id"]
    key = client.post(
        f"/workspaces/{ws}/api-keys", json={"name": "ci", "role": "member"}, headers=headers
    ).json()["key"]
    bearer = {"Authorization": f"Bearer {key}"}
    resp = client.post("/v1/jobs", json={"type": "t", "payload": {}}, headers=bearer)
    assert resp.status_code == 403
    named = client.post(
        "/v1/jobs", json={"type": "t", "payload": {}, "workspaceId": ws}, headers=bearer
    )
    assert named.status_code == 201


def test_concurrent_first_uses_make_one_personal_workspace(app: FastAPI) -> None:
    user = make_user(app)
    principal = Principal(user_id=user.id, subject=user.username or "")
    got: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def first_use() -> None:
        try:
            start.wait()
            with session_scope(app.state.runtime.sessionmaker) as session:
                got.append(personal_workspace_id(session, principal))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=first_use) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(set(got)) == 1
    with session_scope(app.state.runtime.sessionmaker) as session:
        assert session.scalars(select(PersonalWorkspace.workspace_id)).all() == got[:1]
        members = select(WorkspaceMember).where(WorkspaceMember.workspace_id == got[0])
        assert [(m.user_id, m.role) for m in session.scalars(members)] == [(user.id, "owner")]


def test_the_personal_workspace_is_remembered_once_committed(app: FastAPI) -> None:
    """Its id is remembered once read from a committed row (it never changes), so a
    create without a workspace reads neither it nor the caller's role; one a session
    made and rolled back is not, and the next use makes it again."""
    user = make_user(app)
    principal = Principal(user_id=user.id, subject=user.username or "")
    factory = app.state.runtime.sessionmaker
    known = factory.kw["info"][KNOWN_PERSONAL]
    session = factory()
    made = personal_workspace_id(session, principal)
    assert personal_workspace_id(session, principal) == made  # found, but made here
    session.rollback()
    session.close()
    assert known.get(user.id) is None
    with session_scope(factory) as session:
        made = personal_workspace_id(session, principal)
        # SQLite kept the first session's: its savepoint, outside a transaction, committed
        made_here = user.id in session.info.get(MADE_HERE, ())
    assert known.get(user.id) == (None if made_here else made)  # made: the next remembers
    with session_scope(factory) as session:
        assert personal_workspace_id(session, principal) == made
    assert known.get(user.id) == made
    with count_statements(app) as statements, session_scope(factory) as session:
        assert personal_workspace_id(session, principal) == made
    assert statements == []


@pytest.fixture
def empty_database_url(tmp_path: Path) -> Iterator[str]:
    """A database no migration ran on (the suite's PostgreSQL ones are cloned migrated)."""
    if not PG_ADMIN_URL:
        yield f"sqlite:///{tmp_path / 'empty.sqlite3'}"
        return
    url = empty_database()
    yield url
    drop_database(url)


def test_migration_moves_jobs_without_a_workspace_into_personal_workspaces(
    empty_database_url: str,
) -> None:
    engine = make_engine(empty_database_url)
    cfg = alembic_config(engine)
    for revision in ("0002_jobs", "0003_auth", "0004_content", "0005_chain", "0007_providers"):
        command.upgrade(cfg, revision)  # every head but the personal workspaces
    with engine.begin() as conn:
        for uid, name in ((1, "alice"), (2, "bob")):
            conn.execute(
                text(
                    "INSERT INTO users (id, username, is_active, created_at) "
                    "VALUES (:id, :name, true, CURRENT_TIMESTAMP)"
                ),
                {"id": uid, "name": name},
            )
        conn.execute(
            text(
                "INSERT INTO workspaces (id, name, created_by, created_at) "
                "VALUES (7, 'Team', 2, CURRENT_TIMESTAMP)"
            )
        )
        jobs = [(1, 1, None, "0"), (2, 1, None, "0"), (3, 2, 7, "0"), (4, None, None, "5")]
        for job_id, creator, ws, reward in jobs:
            conn.execute(
                text(
                    "INSERT INTO jobs (id, job_type, status, priority, priority_rank,"
                    " workspace_id, created_by, spec, reward_wei, retry_count, max_retries,"
                    " attempt, created_at, updated_at) VALUES (:id, 't', 'pending', 'normal',"
                    " 1, :ws, :by, '{}', :reward, 0, 3, 0, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                ),
                {"id": job_id, "ws": ws, "by": creator, "reward": reward},
            )
    upgrade_schema(engine)
    with session_scope(make_sessionmaker(engine)) as session:
        personal = {p.user_id: p.workspace_id for p in session.scalars(select(PersonalWorkspace))}
        assert set(personal) == {1}  # bob made no job without a workspace
        ws = session.get(Workspace, personal[1])
        assert ws is not None and ws.created_by == 1 and ws.name == "Personal"
        assert session.get(WorkspaceMember, (personal[1], 1)).role == "owner"
        placed = {j.id: j.workspace_id for j in session.scalars(select(Job))}
        assert placed == {1: personal[1], 2: personal[1], 3: 7, 4: None}
    engine.dispose()
