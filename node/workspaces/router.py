"""Workspace routes: create, list, read; members add, list, change role, remove."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Response

from marketplace.errors import AlreadyMember, LastOwner, UserNotFound
from node.auth.deps import PrincipalDep
from node.deps import SessionDep
from node.models.auth import User
from node.models.workspaces import Role, Workspace, WorkspaceMember
from node.openapi import raises
from node.workspaces import service
from node.workspaces.schemas import (
    MemberAdd,
    MemberRead,
    MemberUpdate,
    WorkspaceCreate,
    WorkspaceRead,
)

router = APIRouter(prefix="/workspaces", tags=["workspaces"])

WorkspaceId = Annotated[int, Path(ge=1, le=2**31 - 1)]
UserId = Annotated[int, Path(ge=1, le=2**31 - 1)]


def _workspace(ws: Workspace, role: Role | str) -> dict[str, Any]:
    return {
        "id": ws.id,
        "name": ws.name,
        "role": role,
        "is_personal": ws.is_personal,
        "created_by": ws.created_by,
        "created_at": ws.created_at,
    }


def _member(member: WorkspaceMember, user: User) -> dict[str, Any]:
    return {
        "user_id": user.id,
        "username": user.username,
        "address": user.address,
        "role": member.role,
        "created_at": member.created_at,
    }


@router.post("", status_code=201, response_model=WorkspaceRead)
def create_workspace(
    body: WorkspaceCreate, principal: PrincipalDep, session: SessionDep
) -> dict[str, Any]:
    """Create a workspace; the caller becomes its owner."""
    return _workspace(service.create_workspace(session, principal, body.name), Role.OWNER)


@router.get("", response_model=list[WorkspaceRead])
def list_workspaces(principal: PrincipalDep, session: SessionDep) -> list[dict[str, Any]]:
    """The caller's workspaces, each with the caller's role."""
    return [_workspace(ws, role) for ws, role in service.list_workspaces(session, principal)]


@router.get("/{workspace_id}", response_model=WorkspaceRead)
def get_workspace(
    workspace_id: WorkspaceId, principal: PrincipalDep, session: SessionDep
) -> dict[str, Any]:
    return _workspace(*service.get_workspace(session, principal, workspace_id))


@router.post("/{workspace_id}/members", status_code=201, response_model=MemberRead)
@raises(AlreadyMember, UserNotFound)
def add_member(
    workspace_id: WorkspaceId, body: MemberAdd, principal: PrincipalDep, session: SessionDep
) -> dict[str, Any]:
    """Add a member by `username` or wallet `address` (owners only). Adding an address
    that never signed in creates its user. An existing member is 409 `ALREADY_MEMBER`."""
    member, user = service.add_member(
        session,
        principal,
        workspace_id,
        username=body.username,
        address=body.address,
        role=body.role,
    )
    return _member(member, user)


@router.get("/{workspace_id}/members", response_model=list[MemberRead])
def list_members(
    workspace_id: WorkspaceId, principal: PrincipalDep, session: SessionDep
) -> list[dict[str, Any]]:
    return [_member(m, u) for m, u in service.list_members(session, principal, workspace_id)]


@router.patch("/{workspace_id}/members/{user_id}", response_model=MemberRead)
@raises(LastOwner)
def change_member_role(
    workspace_id: WorkspaceId,
    user_id: UserId,
    body: MemberUpdate,
    principal: PrincipalDep,
    session: SessionDep,
) -> dict[str, Any]:
    """Change a member's role (owners only); demoting the last owner is 409 `LAST_OWNER`."""
    return _member(
        *service.change_member_role(session, principal, workspace_id, user_id, body.role)
    )


@router.delete("/{workspace_id}/members/{user_id}", status_code=204)
@raises(LastOwner)
def remove_member(
    workspace_id: WorkspaceId, user_id: UserId, principal: PrincipalDep, session: SessionDep
) -> Response:
    """Remove a member (owners; members may remove themselves). The last owner cannot be
    removed (409 `LAST_OWNER`)."""
    service.remove_member(session, principal, workspace_id, user_id)
    return Response(status_code=204)
