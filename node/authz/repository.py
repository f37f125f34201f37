"""Every SQL query of the authorization rule: the workspaces a caller reaches, the pools a
provider was admitted to, the open market."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import BindParameter, ColumnElement, Select, and_, bindparam, select
from sqlalchemy.orm import Session

from node.models.auth import ApiKey, User
from node.models.jobs import Job
from node.models.providers import Provider, ProviderAdmission
from node.models.workspaces import Role, Workspace, WorkspaceMember


def open_market() -> ColumnElement[bool]:
    """Jobs whose reward is escrowed: offered to every matching provider."""
    return Job.reward_wei != 0


_WORKSPACE_ROLE = (  # built once (the by-id read's statement; see node.jobs.repository)
    select(Workspace.id, WorkspaceMember.role)
    .outerjoin(
        WorkspaceMember,
        and_(
            WorkspaceMember.workspace_id == Workspace.id,
            WorkspaceMember.user_id == bindparam("user_id"),
        ),
    )
    .where(Workspace.id == bindparam("workspace_id"))
)


def workspace_role(session: Session, workspace_id: int, user_id: int) -> tuple[bool, str | None]:
    """Whether the workspace exists, and the role `user_id` holds there (None: not a
    member), in one statement."""
    row = session.execute(
        _WORKSPACE_ROLE, {"workspace_id": workspace_id, "user_id": user_id}
    ).first()
    return (False, None) if row is None else (True, row.role)


_MEMBER_WORKSPACES = select(WorkspaceMember.workspace_id).where(  # built once: every list
    WorkspaceMember.user_id == bindparam("user_id"),
    WorkspaceMember.role.in_(bindparam("roles", expanding=True)),
)


def member_workspace_ids(session: Session, user_id: int, roles: Collection[Role]) -> list[int]:
    """The workspaces where `user_id` holds one of `roles`, in id order."""
    values = {"user_id": user_id, "roles": sorted(r.value for r in roles)}
    return sorted(session.scalars(_MEMBER_WORKSPACES, values))


def admitted_workspace_ids(
    provider_id: int | BindParameter[int], creator_roles: Collection[Role]
) -> Select[Any]:
    """Subquery: the workspaces whose pool `provider_id` is admitted to now: through a key
    it presented that is not revoked and whose creator is active and still holds one of
    `creator_roles` there."""
    return (
        select(ProviderAdmission.workspace_id)
        .join(ApiKey, ApiKey.id == ProviderAdmission.api_key_id)
        .join(User, User.id == ApiKey.user_id)
        .join(
            WorkspaceMember,
            and_(
                WorkspaceMember.workspace_id == ApiKey.workspace_id,
                WorkspaceMember.user_id == ApiKey.user_id,
            ),
        )
        .where(
            ProviderAdmission.provider_id == provider_id,
            ApiKey.workspace_id == ProviderAdmission.workspace_id,
            ApiKey.role == Role.PROVIDER.value,
            ApiKey.revoked_at.is_(None),
            User.is_active.is_(True),
            WorkspaceMember.role.in_(sorted(r.value for r in creator_roles)),
        )
    )


def is_admitted(
    session: Session, provider_id: int, workspace_id: int, creator_roles: Collection[Role]
) -> bool:
    stmt = admitted_workspace_ids(provider_id, creator_roles).where(
        ProviderAdmission.workspace_id == workspace_id
    )
    return session.execute(stmt.limit(1)).first() is not None


def provider_id_of(session: Session, address: str) -> int | None:
    return session.scalars(select(Provider.id).where(Provider.address == address)).first()
