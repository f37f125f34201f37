"""Workspace rules: who may see or change what."""

from __future__ import annotations

from sqlalchemy.orm import Session

from marketplace.errors import Forbidden, WorkspaceNotFound
from node.deps import Principal
from node.workspaces.models import Role, Workspace, WorkspaceMember


def require_role(session: Session, principal: Principal, workspace_id: int, minimum: Role) -> Role:
    """Return the caller's role in the workspace.

    404 if the workspace does not exist; 403 if the caller is not a member, is below
    `minimum`, or holds an API key scoped to another workspace.
    """
    if session.get(Workspace, workspace_id) is None:
        raise WorkspaceNotFound()
    if principal.workspace_id is not None and principal.workspace_id != workspace_id:
        raise Forbidden("No access to this workspace")
    member = session.get(WorkspaceMember, (workspace_id, principal.user_id))
    if member is None:
        raise Forbidden("No access to this workspace")
    role = Role(member.role)
    if role.rank < minimum.rank:
        raise Forbidden(f"Role {role.value} cannot do this (needs {minimum.value})")
    return role


def create_workspace(session: Session, principal: Principal, name: str) -> Workspace:
    """Create a workspace; the caller becomes its owner."""
    ws = Workspace(name=name, created_by=principal.user_id)
    session.add(ws)
    session.flush()
    session.add(WorkspaceMember(workspace_id=ws.id, user_id=principal.user_id, role=Role.OWNER))
    session.flush()
    return ws
