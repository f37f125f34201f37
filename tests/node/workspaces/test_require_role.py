"""`authorize`, the check every workspace route (jobs included) goes through
(`node.authz.policy`, which replaced `require_role`: the minimum role each test asked
for is now the action that role stood for)."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from marketplace.errors import Forbidden, WorkspaceNotFound
from node.auth.principal import Principal
from node.auth.service import authenticate_bearer
from node.authz.policy import Action, authorize
from node.db import session_scope
from node.models.workspaces import MEMBERSHIP_ROLES, Role
from tests.fixtures.factories import auth_headers, make_user, make_workspace

# What each membership role used to be asked for stands for.
READ, WRITE, MANAGE = Action.READ_JOB, Action.CREATE_JOB, Action.MANAGE_MEMBERS
ACTION_OF = {Role.VIEWER: READ, Role.MEMBER: WRITE, Role.OWNER: MANAGE}


def _check(app: FastAPI, principal: Principal, ws: int, minimum: Role) -> Role:
    with session_scope(app.state.runtime.sessionmaker) as session:
        return authorize(session, principal, ws, ACTION_OF[minimum])


def _principal(user_id: int) -> Principal:
    return Principal(user_id=user_id, subject=str(user_id))


@pytest.fixture
def team(app: FastAPI) -> dict[str, int]:
    owner = make_user(app, username="owner")
    member = make_user(app, username="member")
    viewer = make_user(app, username="viewer")
    stranger = make_user(app, username="stranger")
    ws = make_workspace(app, owner, members={member.id: "member", viewer.id: "viewer"})
    return {
        "ws": ws,
        "owner": owner.id,
        "member": member.id,
        "viewer": viewer.id,
        "stranger": stranger.id,
    }


def test_viewer_cannot_write_jobs(app: FastAPI, team: dict[str, int]) -> None:
    with pytest.raises(Forbidden):
        _check(app, _principal(team["viewer"]), team["ws"], Role.MEMBER)


def test_viewer_can_read(app: FastAPI, team: dict[str, int]) -> None:
    assert _check(app, _principal(team["viewer"]), team["ws"], Role.VIEWER) == Role.VIEWER


def test_member_can_write_but_not_manage(app: FastAPI, team: dict[str, int]) -> None:
    assert _check(app, _principal(team["member"]), team["ws"], Role.MEMBER) == Role.MEMBER
    with pytest.raises(Forbidden):
        _check(app, _principal(team["member"]), team["ws"], Role.OWNER)


def test_owner_passes_every_level(app: FastAPI, team: dict[str, int]) -> None:
    for minimum in MEMBERSHIP_ROLES:
        assert _check(app, _principal(team["owner"]), team["ws"], minimum) == Role.OWNER


def test_non_member_is_forbidden(app: FastAPI, team: dict[str, int]) -> None:
    with pytest.raises(Forbidden):
        _check(app, _principal(team["stranger"]), team["ws"], Role.VIEWER)


@pytest.mark.parametrize("ws", [999, 0, -3, 2**63])
def test_unknown_workspace_is_not_found(app: FastAPI, team: dict[str, int], ws: int) -> None:
    with pytest.raises(WorkspaceNotFound):
        _check(app, _principal(team["owner"]), ws, Role.VIEWER)


def test_key_principal_uses_the_lower_of_key_and_member_role(
    app: FastAPI, client: TestClient, team: dict[str, int]
) -> None:
    headers = auth_headers(client, "owner")
    key = client.post(
        f"/workspaces/{team['ws']}/api-keys", json={"name": "ro", "role": "viewer"}, headers=headers
    ).json()["key"]
    with session_scope(app.state.runtime.sessionmaker) as session:
        principal = authenticate_bearer(session, app.state.runtime.settings, key)
        assert principal.api_key_id is not None and principal.workspace_id == team["ws"]
        assert authorize(session, principal, team["ws"], READ) == Role.VIEWER
        with pytest.raises(Forbidden):
            authorize(session, principal, team["ws"], WRITE)


def test_key_principal_is_forbidden_in_other_workspaces(
    app: FastAPI, client: TestClient, team: dict[str, int]
) -> None:
    other = make_workspace(
        app, make_user(app, username="other-owner"), members={team["owner"]: "owner"}
    )
    scoped = Principal(user_id=team["owner"], subject="owner", workspace_id=team["ws"])
    with pytest.raises(Forbidden):
        _check(app, scoped, other, Role.VIEWER)
