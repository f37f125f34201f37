"""Authentication rules: password login, token refresh, bearer verification.

(Sign-In with Ethereum and API keys are added here by the auth work.)"""

from __future__ import annotations

from sqlalchemy.orm import Session

from marketplace.errors import Unauthorized
from node.auth import repository
from node.auth.models import RefreshToken, User
from node.auth.passwords import hash_password, verify_password
from node.auth.tokens import decode_token, encode_token
from node.config import NodeSettings
from node.deps import Principal


def create_user(session: Session, username: str, password: str) -> User:
    user = User(username=username, password_hash=hash_password(password))
    session.add(user)
    session.flush()
    return user


def issue_token_pair(session: Session, settings: NodeSettings, user: User) -> dict[str, str]:
    """Access + refresh token for `user`; the subject is the wallet address if it has one."""
    subject = user.address or user.username or str(user.id)
    secret = settings.secret_key.get_secret_value()
    access, _ = encode_token(
        secret,
        user_id=user.id,
        subject=subject,
        token_type="access",
        ttl_seconds=settings.access_token_seconds,
    )
    refresh, claims = encode_token(
        secret,
        user_id=user.id,
        subject=subject,
        token_type="refresh",
        ttl_seconds=settings.refresh_token_seconds,
    )
    session.add(RefreshToken(jti=claims.jti, user_id=user.id, expires_at=claims.expires_at))
    session.flush()
    return {"access_token": access, "refresh_token": refresh, "token_type": "bearer"}


def login(session: Session, settings: NodeSettings, username: str, password: str) -> dict[str, str]:
    user = repository.user_by_username(session, username)
    if not verify_password(user.password_hash if user else None, password) or user is None:
        raise Unauthorized("Incorrect username or password")
    if not user.is_active:
        raise Unauthorized("Account disabled")
    return issue_token_pair(session, settings, user)


def authenticate_bearer(session: Session, settings: NodeSettings, token: str) -> Principal:
    claims = decode_token(settings.secret_key.get_secret_value(), token, "access")
    user = session.get(User, claims.user_id)
    if user is None or not user.is_active:
        raise Unauthorized("Invalid token")
    return Principal(user_id=user.id, subject=claims.subject, address=user.address)
