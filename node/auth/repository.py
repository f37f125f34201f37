"""Every SQL query of the auth domain."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from node.auth.models import User


def user_by_username(session: Session, username: str) -> User | None:
    return session.scalars(select(User).where(User.username == username)).first()


def user_by_address(session: Session, address: str) -> User | None:
    return session.scalars(select(User).where(User.address == address)).first()
