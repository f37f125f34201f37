"""Workspace rules: creation (personal workspaces included), listing, and membership
management. Who may do what is decided by `node.authz.policy`; every function here names
its action.
"""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from marketplace.errors import (
    AlreadyMember,
    LastOwner,
    MemberNotFound,
    UserNotFound,
)
from node.auth import repository as auth_repository
from node.auth.principal import Principal
from node.authz.policy import (
    Action,
    allows,
    authorize,
    effective_role,
    require_user_credential,
)
from node.db import utcnow
from node.models.auth import User
from node.models.workspaces import PersonalWorkspace, Role, Workspace, WorkspaceMember
from node.workspaces import repository

_MAX_ID = 2**31 - 1  # ids are 32-bit on PostgreSQL; larger ones cannot exist
PERSONAL_WORKSPACE_NAME = "Personal"


def create_workspace(session: Session, principal: Principal, name: str) -> Workspace:
    """Create a workspace; the caller becomes its owner. API keys cannot (they are
    scoped to one workspace)."""
    require_user_credential(principal, "create workspaces")
    ws = Workspace(name=name, created_by=principal.user_id)
    session.add(ws)
    session.flush()
    session.add(WorkspaceMember(workspace_id=ws.id, user_id=principal.user_id, role=Role.OWNER))
    session.flush()
    return ws


# `Session.info` key: a `marketplace.lru.Lru` of user id -> personal workspace id, shared by
# the sessions of one sessionmaker (`node.runtime` puts one there). The pair never changes:
# a personal workspace is never deleted and keeps its owner (`_keep_an_owner`).
KNOWN_PERSONAL = "dcm.personal_workspaces"
MADE_HERE = "dcm.personal_workspaces_made"  # users whose workspace this session made


def personal_workspace_id(session: Session, principal: Principal) -> int:
    """The id of the caller's personal workspace, made (with the caller as owner) on first
    use. Once read from a committed row it is remembered (`KNOWN_PERSONAL`): a create
    without a workspace read it, then the caller's role in it, on every request.

    Two first uses at once (PostgreSQL) both try to insert; the one-per-user key of
    `personal_workspaces` lets one win and the other read the winner's row."""
    require_user_credential(principal, "use a personal workspace")
    known = session.info.get(KNOWN_PERSONAL)
    if known is not None and (ws_id := known.get(principal.user_id)) is not None:
        return ws_id
    found = repository.personal_workspace_id_of(session, principal.user_id)
    if found is not None:
        if known is not None and principal.user_id not in session.info.get(MADE_HERE, ()):
            known.put(principal.user_id, found)  # committed: not one this session may undo
        return found
    session.info.setdefault(MADE_HERE, set()).add(principal.user_id)
    try:
        with session.begin_nested():
            ws = Workspace(name=PERSONAL_WORKSPACE_NAME, created_by=principal.user_id)
            session.add(ws)
            session.flush()
            session.add(PersonalWorkspace(user_id=principal.user_id, workspace_id=ws.id))
            session.add(
                WorkspaceMember(workspace_id=ws.id, user_id=principal.user_id, role=Role.OWNER)
            )
        made = ws.id
    except IntegrityError:
        winner = repository.personal_workspace_id_of(session, principal.user_id)
        if winner is None:
            raise
        made = winner
    session.flush()
    return made


def list_workspaces(session: Session, principal: Principal) -> list[tuple[Workspace, Role]]:
    """The workspaces the caller may read, with its effective role (for a key: its one)."""
    out = []
    for ws, _ in repository.memberships_of_user(session, principal.user_id):
        if principal.workspace_id is not None and ws.id != principal.workspace_id:
            continue
        role = effective_role(session, principal, ws.id)
        if role is not None and allows(role, Action.READ_WORKSPACE):
            out.append((ws, role))
    return out


def get_workspace(
    session: Session, principal: Principal, workspace_id: int
) -> tuple[Workspace, Role]:
    role = authorize(session, principal, workspace_id, Action.READ_WORKSPACE)
    ws = session.get(Workspace, workspace_id)
    assert ws is not None
    return ws, role


def list_members(
    session: Session, principal: Principal, workspace_id: int
) -> list[tuple[WorkspaceMember, User]]:
    authorize(session, principal, workspace_id, Action.READ_WORKSPACE)
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
    authorize(session, principal, workspace_id, Action.MANAGE_MEMBERS)
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
    if repository.personal_owner_of(session, workspace_id) == member.user_id:
        raise LastOwner("A personal workspace keeps its owner")


def change_member_role(
    session: Session, principal: Principal, workspace_id: int, user_id: int, role: Role
) -> tuple[WorkspaceMember, User]:
    authorize(session, principal, workspace_id, Action.MANAGE_MEMBERS)
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
    leaving = user_id == principal.user_id
    action = Action.READ_WORKSPACE if leaving else Action.MANAGE_MEMBERS
    authorize(session, principal, workspace_id, action)
    repository.lock_workspace(session, workspace_id)
    member = _member(session, workspace_id, user_id)
    _keep_an_owner(session, workspace_id, member)
    session.delete(member)
    auth_repository.revoke_member_api_keys(session, workspace_id, user_id, utcnow())
    session.flush()
