"""Every SQL query of the auth domain.

The consume/revoke functions are single conditional UPDATEs: the row count says whether
this request won, so two concurrent uses of one refresh token or nonce cannot both pass.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import CursorResult, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from node.models.auth import ApiKey, RefreshToken, SiweNonce, User


def user_by_username(session: Session, username: str) -> User | None:
    return session.scalars(select(User).where(User.username == username)).first()


def user_by_address(session: Session, address: str) -> User | None:
    return session.scalars(select(User).where(User.address == address)).first()


def get_or_create_wallet_user(session: Session, address: str) -> User:
    """The user of a checksummed address, created (no username, no password) if new."""
    user = user_by_address(session, address)
    if user is not None:
        return user
    try:
        with session.begin_nested():
            user = User(address=address)
            session.add(user)
    except IntegrityError:  # a concurrent first use of the same wallet won
        user = user_by_address(session, address)
        if user is None:
            raise
    return user


def _rowcount(result: object) -> int:
    assert isinstance(result, CursorResult)
    return result.rowcount


def revoke_refresh_token(session: Session, jti: str, now: dt.datetime) -> bool:
    """Revoke an active refresh token; False if it is unknown, revoked or expired."""
    result = session.execute(
        update(RefreshToken)
        .where(
            RefreshToken.jti == jti,
            RefreshToken.revoked_at.is_(None),
            RefreshToken.expires_at > now,
        )
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    return _rowcount(result) == 1


def revoke_user_refresh_tokens(session: Session, user_id: int, now: dt.datetime) -> int:
    result = session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    return _rowcount(result)


def add_nonce(session: Session, nonce: str, expires_at: dt.datetime) -> SiweNonce:
    row = SiweNonce(nonce=nonce, expires_at=expires_at)
    session.add(row)
    session.flush()
    return row


def consume_nonce(session: Session, nonce: str, now: dt.datetime) -> bool:
    """Mark a nonce used; False if it was never issued, is used, or has expired."""
    result = session.execute(
        update(SiweNonce)
        .where(SiweNonce.nonce == nonce, SiweNonce.used_at.is_(None), SiweNonce.expires_at > now)
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    return _rowcount(result) == 1


def delete_stale_nonces(session: Session, before: dt.datetime) -> None:
    """Drop nonces that expired before `before` (used or not: they can never pass again)."""
    session.execute(
        delete(SiweNonce)
        .where(SiweNonce.expires_at < before)
        .execution_options(synchronize_session=False)
    )


def api_key_by_hash(session: Session, key_hash: str) -> ApiKey | None:
    return session.scalars(select(ApiKey).where(ApiKey.key_hash == key_hash)).first()


def api_keys_of_workspace(session: Session, workspace_id: int) -> list[ApiKey]:
    return list(
        session.scalars(
            select(ApiKey).where(ApiKey.workspace_id == workspace_id).order_by(ApiKey.id)
        )
    )


def revoke_member_api_keys(
    session: Session, workspace_id: int, user_id: int, now: dt.datetime
) -> None:
    session.execute(
        update(ApiKey)
        .where(
            ApiKey.workspace_id == workspace_id,
            ApiKey.user_id == user_id,
            ApiKey.revoked_at.is_(None),
        )
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
