"""Every SQL query of the workspaces domain."""

from __future__ import annotations

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from node.models.auth import User
from node.models.workspaces import PersonalWorkspace, Role, Workspace, WorkspaceMember


def memberships_of_user(session: Session, user_id: int) -> list[tuple[Workspace, str]]:
    rows = session.execute(
        select(Workspace, WorkspaceMember.role)
        .join(WorkspaceMember, WorkspaceMember.workspace_id == Workspace.id)
        .where(WorkspaceMember.user_id == user_id)
        .order_by(Workspace.id)
    )
    return [(ws, role) for ws, role in rows.tuples()]


def members_of_workspace(session: Session, workspace_id: int) -> list[tuple[WorkspaceMember, User]]:
    rows = session.execute(
        select(WorkspaceMember, User)
        .join(User, User.id == WorkspaceMember.user_id)
        .where(WorkspaceMember.workspace_id == workspace_id)
        .order_by(WorkspaceMember.created_at, WorkspaceMember.user_id)
    )
    return [(m, u) for m, u in rows.tuples()]


def count_owners(session: Session, workspace_id: int) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(WorkspaceMember)
            .where(WorkspaceMember.workspace_id == workspace_id, WorkspaceMember.role == Role.OWNER)
        )
        or 0
    )


def lock_workspace(session: Session, workspace_id: int) -> Workspace | None:
    """The workspace row, locked for this transaction on PostgreSQL (membership changes
    that check the owner count serialize on it; SQLite serializes writers anyway)."""
    return session.scalars(
        select(Workspace).where(Workspace.id == workspace_id).with_for_update()
    ).first()


_PERSONAL_WORKSPACE_ID = select(PersonalWorkspace.workspace_id).where(
    PersonalWorkspace.user_id == bindparam("user_id")
)


def personal_workspace_id_of(session: Session, user_id: int) -> int | None:
    return session.scalar(_PERSONAL_WORKSPACE_ID, {"user_id": user_id})


def personal_owner_of(session: Session, workspace_id: int) -> int | None:
    """The user whose personal workspace this is, if it is one."""
    return session.scalar(
        select(PersonalWorkspace.user_id).where(PersonalWorkspace.workspace_id == workspace_id)
    )
