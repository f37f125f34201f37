"""Workspace rules: who may see or change what, and membership management.

Roles rank viewer < member < owner. Reading needs viewer, writing jobs needs member,
managing members and API keys needs owner. A caller using an API key acts with the lower
of the key's role and the creator's current role, and only in the key's workspace.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from marketplace.errors import (
    AlreadyMember,
    Forbidden,
    LastOwner,
    MemberNotFound,
    UserNotFound,
    WorkspaceNotFound,
)
from node.auth import repository as auth_repository
from node.auth.models import ApiKey, User
from node.db import utcnow
from node.deps import Principal
from node.workspaces import repository
from node.workspaces.models import Role, Workspace, WorkspaceMember

_MAX_ID = 2**31 - 1  # ids are 32-bit on PostgreSQL; larger ones cannot exist


def _lower(a: Role, b: Role) -> Role:
    return a if a.rank <= b.rank else b


def require_role(session: Session, principal: Principal, workspace_id: int, minimum: Role) -> Role:
    """Return the caller's role in the workspace.

    404 if the workspace does not exist; 403 if the caller is not a member, is below
    `minimum`, or holds an API key scoped to another workspace. With an API key the
    role is the lower of the key's role and the creator's membership role.
    """
    if not 0 < workspace_id <= _MAX_ID or session.get(Workspace, workspace_id) is None:
        raise WorkspaceNotFound()
    if principal.workspace_id is not None and principal.workspace_id != workspace_id:
        raise Forbidden("No access to this workspace")
    member = session.get(WorkspaceMember, (workspace_id, principal.user_id))
    if member is None:
        raise Forbidden("No access to this workspace")
    role = Role(member.role)
    if principal.api_key_id is not None:
        key = session.get(ApiKey, principal.api_key_id)
        if key is None or key.revoked_at is not None or key.workspace_id != workspace_id:
            raise Forbidden("No access to this workspace")
        role = _lower(role, Role(key.role))
    if role.rank < minimum.rank:
        raise Forbidden(f"Role {role.value} cannot do this (needs {minimum.value})")
    return role


def create_workspace(session: Session, principal: Principal, name: str) -> Workspace:
    """Create a workspace; the caller becomes its owner. API keys cannot (they are
    scoped to one workspace)."""
    if principal.api_key_id is not None:
        raise Forbidden("API keys cannot create workspaces")
    ws = Workspace(name=name, created_by=principal.user_id)
    session.add(ws)
    session.flush()
    session.add(WorkspaceMember(workspace_id=ws.id, user_id=principal.user_id, role=Role.OWNER))
    session.flush()
    return ws


def list_workspaces(session: Session, principal: Principal) -> list[tuple[Workspace, Role]]:
    """The caller's workspaces with their effective role (only the key's one for a key)."""
    out = []
    for ws, _ in repository.memberships_of_user(session, principal.user_id):
        if principal.workspace_id is not None and ws.id != principal.workspace_id:
            continue
        out.append((ws, require_role(session, principal, ws.id, Role.VIEWER)))
    return out


def get_workspace(
    session: Session, principal: Principal, workspace_id: int
) -> tuple[Workspace, Role]:
    role = require_role(session, principal, workspace_id, Role.VIEWER)
    ws = session.get(Workspace, workspace_id)
    assert ws is not None
    return ws, role


def list_members(
    session: Session, principal: Principal, workspace_id: int
) -> list[tuple[WorkspaceMember, User]]:
    require_role(session, principal, workspace_id, Role.VIEWER)
    return repository.members_of_workspace(session, workspace_id)


def _find_or_create_user(session: Session, username: str | None, address: str | None) -> User:
    if username is not None:
        user = auth_repository.user_by_username(session, username)
        if user is None:
            raise UserNotFound(f"No user named {username!r}")
        return user
    assert address is not None
    # The wallet signs in later (SIWE) and finds itself a member already.
    return auth_repository.get_or_create_wallet_user(session, address)


def add_member(
    session: Session,
    principal: Principal,
    workspace_id: int,
    *,
    username: str | None = None,
    address: str | None = None,
    role: Role = Role.MEMBER,
) -> tuple[WorkspaceMember, User]:
    """Add a user (by username or wallet address) with a role; owners only.

    An existing member is a 409 `ALREADY_MEMBER`: a role change is an explicit PATCH.
    """
    require_role(session, principal, workspace_id, Role.OWNER)
    user = _find_or_create_user(session, username, address)
    if session.get(WorkspaceMember, (workspace_id, user.id)) is not None:
        raise AlreadyMember("User is already a member; PATCH the member to change the role")
    member = WorkspaceMember(workspace_id=workspace_id, user_id=user.id, role=role.value)
    session.add(member)
    session.flush()
    return member, user


def _member(session: Session, workspace_id: int, user_id: int) -> WorkspaceMember:
    member = None
    if 0 < user_id <= _MAX_ID:
        member = session.get(WorkspaceMember, (workspace_id, user_id))
    if member is None:
        raise MemberNotFound()
    return member


def _keep_an_owner(session: Session, workspace_id: int, member: WorkspaceMember) -> None:
    if member.role == Role.OWNER and repository.count_owners(session, workspace_id) <= 1:
        raise LastOwner("A workspace must keep at least one owner")


def change_member_role(
    session: Session, principal: Principal, workspace_id: int, user_id: int, role: Role
) -> tuple[WorkspaceMember, User]:
    require_role(session, principal, workspace_id, Role.OWNER)
    repository.lock_workspace(session, workspace_id)
    member = _member(session, workspace_id, user_id)
    if role != Role.OWNER:
        _keep_an_owner(session, workspace_id, member)
    member.role = role.value
    session.flush()
    user = session.get(User, user_id)
    assert user is not None
    return member, user


def remove_member(session: Session, principal: Principal, workspace_id: int, user_id: int) -> None:
    """Remove a member (owners; anyone may remove themselves). The last owner stays (409).
    The removed member's API keys for this workspace are revoked."""
    minimum = Role.VIEWER if user_id == principal.user_id else Role.OWNER
    require_role(session, principal, workspace_id, minimum)
    repository.lock_workspace(session, workspace_id)
    member = _member(session, workspace_id, user_id)
    _keep_an_owner(session, workspace_id, member)
    session.delete(member)
    auth_repository.revoke_member_api_keys(session, workspace_id, user_id, utcnow())
    session.flush()
