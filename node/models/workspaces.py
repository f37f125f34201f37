"""Workspaces group jobs; members have a role: owner, member or viewer. API keys of a
workspace carry one of those roles or `provider` (`node.authz.policy` says what each may do).

Every user may have one personal workspace (`personal_workspaces`), made the first time a
job is created without naming a workspace; it is listed with the others."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from node.db import Base, UTCDateTime, utcnow


class Role(enum.StrEnum):
    VIEWER = "viewer"
    MEMBER = "member"
    OWNER = "owner"
    # API keys only: a provider daemon's admission to the workspace's private pool.
    PROVIDER = "provider"


# The roles a member can hold (a provider is admitted by a key, never a member).
MEMBERSHIP_ROLES = frozenset({Role.OWNER, Role.MEMBER, Role.VIEWER})


class Workspace(Base):
    __tablename__ = "workspaces"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    # Loaded only when read (the workspace listings), never by the access checks.
    personal: Mapped[PersonalWorkspace | None] = relationship(
        lazy="select", uselist=False, viewonly=True
    )

    @property
    def is_personal(self) -> bool:
        return self.personal is not None


class WorkspaceMember(Base):
    __tablename__ = "workspace_members"

    workspace_id: Mapped[int] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class PersonalWorkspace(Base):
    """A user's personal workspace: one per user (the primary key), where the jobs they
    create without naming a workspace land."""

    __tablename__ = "personal_workspaces"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    workspace_id: Mapped[int] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), unique=True, nullable=False
    )
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
